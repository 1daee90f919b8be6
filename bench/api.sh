#!/usr/bin/env bash
# hako serve against Debian's dockerd, both driven by the same stock docker CLI:
#   1. `docker run --rm busybox true` (hyperfine, both servers in one invocation; then the
#      same in interleaved rounds, bench/interleave.py), and the CLI's own share of it
#      (bench/cli_floor.py: a server that answers at once)
#   2. idle RSS: hako serve vs dockerd + its containerd (VmRSS after the runs, 5 s idle; and
#      right after and 6 s after the 100-container / 100-image lists)
#   3. `docker ps -a` with 100 containers and `docker images` with 100 images
#
#   sudo bench/api.sh                       release binaries from target/release
#   HAKO_BIN=/path/to/dir RUNS=20 bench/api.sh
#
# Each server runs in a network namespace of its own (`unshare --net`) with its own data
# root, exec root and socket under $BENCH_DIR: the host's dockerd, network and firewall
# are never touched, and both are torn down (by pid) at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh

BIN="${HAKO_BIN:-$(pwd)/target/release}"
RUNS="${RUNS:-20}"
LIST_RUNS="${LIST_RUNS:-30}"
N="${N:-100}"
DIR="${BENCH_DIR:-/tmp/hako-bench-api}"
for b in hako hako-shim hako-runtime hako-init hako-dns; do
    [ -x "$BIN/$b" ] || { echo "bench/api.sh: $BIN/$b missing (scripts/lib.sh build_release)" >&2; exit 1; }
done
for t in docker dockerd hyperfine unshare; do
    command -v "$t" >/dev/null || { echo "bench/api.sh: $t is needed" >&2; exit 1; }
done
FIXTURE="${HAKO_FIXTURES:-$(pwd)/.fixtures}/busybox-rootfs.tar"
# The tests make this tar on first use; on a fresh checkout, make it from the rootfs fixture.
if [ ! -f "$FIXTURE" ]; then
    rootfs=$("$BIN/hako-fixture" rootfs) || {
        echo "bench/api.sh: $FIXTURE missing and hako-fixture rootfs failed" >&2; exit 1; }
    tar -C "$rootfs" -cf "$FIXTURE.tmp" . && mv "$FIXTURE.tmp" "$FIXTURE"
fi

rm -rf "$DIR"
mkdir -p "$DIR/hako" "$DIR/docker" "$DIR/work"
bench_storage "$DIR"
HSOCK="$DIR/hako/api.sock"
DSOCK="$DIR/docker/docker.sock"
export DOCKER_CONFIG="$DIR/docker-config"
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
HAKO=("$BIN/hako" --root "$BENCH_FS/hako" --exec-root "$BENCH_RUN/hako")
export HAKO_INIT="$BIN/hako-init"

hpid="" dpid=""
# The server under an `unshare --fork` (its only child).
child() { pgrep -P "$1" | head -1; }
cleanup() {
    set +e
    DOCKER_HOST="unix://$DSOCK" docker rm -f $(DOCKER_HOST="unix://$DSOCK" docker ps -aq) >/dev/null 2>&1
    DOCKER_HOST="unix://$HSOCK" docker rm -f $(DOCKER_HOST="unix://$HSOCK" docker ps -aq) >/dev/null 2>&1
    # unshare does not pass signals on: stop the servers themselves (dockerd stops the
    # containerd it started), then the unshares end.
    for p in $hpid $dpid; do kill "$(child "$p")" 2>/dev/null; done
    for _ in $(seq 300); do
        kill -0 "$hpid" 2>/dev/null || kill -0 "$dpid" 2>/dev/null || break
        sleep 0.1
    done
    # dockerd's data root holds overlay mounts in the host's mount namespace: unmount
    # ours (under $DIR only) before removing it.
    bench_storage_cleanup "$DIR"
    rm -rf "$DIR"
}
trap cleanup EXIT

# The servers: `unshare --net --fork` keeps its pid; the server is its only child.
unshare --net --fork bash -c "ip link set lo up; exec ${HAKO[*]} serve --host unix://$HSOCK" \
    >"$DIR/hako/serve.log" 2>&1 &
hpid=$!
unshare --net --fork bash -c "ip link set lo up; exec dockerd --data-root $BENCH_FS/docker \
    --exec-root $BENCH_RUN/docker --pidfile $DIR/docker/dockerd.pid --host unix://$DSOCK \
    --containerd-namespace hakobench --containerd-plugins-namespace hakobench-p" \
    >"$DIR/docker/dockerd.log" 2>&1 &
dpid=$!
for s in "$HSOCK" "$DSOCK"; do
    for _ in $(seq 300); do DOCKER_HOST="unix://$s" docker version >/dev/null 2>&1 && break; sleep 0.1; done
done
H="DOCKER_HOST=unix://$HSOCK"
D="DOCKER_HOST=unix://$DSOCK"

# The same busybox image in both.
"${HAKO[@]}" import "$FIXTURE" busybox --change 'CMD ["sh"]' >/dev/null
"${HAKO[@]}" save busybox | env "$D" docker load >/dev/null
for e in "$H" "$D"; do env "$e" docker run --rm busybox true; done

echo "== docker run --rm busybox true ($RUNS runs) — load: $(cut -d' ' -f1-3 /proc/loadavg)"
hyperfine -N --warmup 2 --runs "$RUNS" --export-markdown "$DIR/run.md" \
    -n "hako serve" "env $H docker run --rm busybox true" \
    -n "dockerd" "env $D docker run --rm busybox true"
# The same, interleaved: each round runs both once, in turn (bench/interleave.py), so a
# change of the VM's speed during the runs (hyperfine runs all of hako's, then all of
# dockerd's) hits both alike; medians and means of the rounds.
echo "== the same, $RUNS interleaved rounds"
python3 bench/interleave.py --ms --warmup 2 --runs "$RUNS" --md "$DIR/run-interleaved.md" \
    -n "hako serve" "env $H docker run --rm busybox true" \
    -n "dockerd" "env $D docker run --rm busybox true"
# The CLI's own share, in the same minute: a server that answers at once (bench/cli_floor.py).
echo "== the docker CLI alone against a server that answers at once"
python3 bench/cli_floor.py "$RUNS" | grep -E "Time|Range"

sleep 5
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hserve=$(child "$hpid")
dd=$(child "$dpid")
cd_pid=$(pgrep -P "$dd" -x containerd | head -1 || true)
h_kb=$(rss "$hserve")
d_kb=$(rss "$dd")
c_kb=$(rss "${cd_pid:-0}")
echo "== idle RSS (kB): hako serve $h_kb; dockerd $d_kb + containerd $c_kb = $((d_kb + c_kb))"
# Anonymous memory vs pages of the binary and libraries (shared with every hako process).
split() { awk '/RssAnon|RssFile/ {printf "%s %s kB  ", $1, $2}' "/proc/$1/status" 2>/dev/null; echo; }
echo "   hako serve: $(split "$hserve")"
echo "   dockerd:    $(split "$dd")"

# 100 containers (created) and 100 images (imported one-file tars) in each.
for i in $(seq "$N"); do
    printf '%s' "$i" >"$DIR/work/f"
    tar -C "$DIR/work" -cf "$DIR/work/i$i.tar" f
done
for e in "$H" "$D"; do
    for i in $(seq "$N"); do
        env "$e" docker create busybox true >/dev/null
        env "$e" docker import "$DIR/work/i$i.tar" "benchimg$i:latest" >/dev/null
    done
done
echo "== docker ps -a ($N containers) / docker images ($N + 1 images) — load: $(cut -d' ' -f1-3 /proc/loadavg)"
hyperfine -N --warmup 3 --runs "$LIST_RUNS" --export-markdown "$DIR/list.md" \
    -n "ps hako serve" "env $H docker ps -a" \
    -n "ps dockerd" "env $D docker ps -a" \
    -n "images hako serve" "env $H docker images" \
    -n "images dockerd" "env $D docker images"
echo "== RSS right after the lists (kB): hako serve $(rss "$hserve"); dockerd $(rss "$dd") + containerd $(rss "${cd_pid:-0}")"
sleep 6
echo "== idle RSS 6 s after the lists (kB): hako serve $(rss "$hserve"); dockerd $(rss "$dd") + containerd $(rss "${cd_pid:-0}")"
echo "   hako serve: $(split "$hserve")"
cat "$DIR/run.md" "$DIR/run-interleaved.md" "$DIR/list.md"
