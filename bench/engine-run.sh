#!/usr/bin/env bash
# `hako run --rm busybox true` against `docker run --rm` and `podman run --rm`, in one
# hyperfine run; then N containers started detached (`run -d ... sleep`): total time and the
# memory of all per-container monitors (hako-shim vs containerd-shim-runc-v2 vs conmon).
#
#   sudo bench/engine-run.sh                    # all engines, 30 runs, 100 detached
#   RUNS=50 DETACHED=50 bench/engine-run.sh
#   ENGINES="hako docker" bench/engine-run.sh
#
# Isolation: every engine has its own data/exec roots under $BENCH_DIR (default
# /tmp/hako-bench/engines); dockerd runs inside `unshare --net` with --bridge=none and no
# iptables, so the host's network is untouched. Every container runs with --network none,
# so no engine pays for networking the others skip (bridge networks: bench/net.sh). The busybox image
# is the same in all three: hako imports it, and its `hako save` output is loaded into the
# others.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh

RUNS="${RUNS:-30}"
WARMUP="${WARMUP:-3}"
DETACHED="${DETACHED:-100}"
ENGINES="${ENGINES:-hako docker podman}"
BENCH_DIR="${BENCH_DIR:-/tmp/hako-bench/engines}"
TARGET="$(target_dir)"
HAKO="$TARGET/release/hako"
[ -x "$HAKO" ] || { echo "build first: bash -c '. scripts/lib.sh; build_release'" >&2; exit 1; }
command -v hyperfine >/dev/null || ensure_packages hyperfine

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
# A short exec root: shim sockets live at <exec-root>/containers/<id>/attach.sock.
export HAKO_ROOT="$BENCH_DIR/hako" HAKO_EXEC_ROOT=/tmp/hkb-run
DOCKER_SOCK="$BENCH_DIR/docker/docker.sock"
DOCKER=(docker -H "unix://$DOCKER_SOCK")
PODMAN=(podman --root "$BENCH_DIR/podman/root" --runroot "$BENCH_DIR/podman/run"
    --tmpdir "$BENCH_DIR/podman/tmp" --cgroup-manager cgroupfs --events-backend file
    --runtime runc) # crun refuses this hybrid cgroup host; docker uses runc too
export CONTAINERS_CONF="$BENCH_DIR/podman/containers.conf"
DOCKERD_PID=""

cleanup() {
    set +e
    "$HAKO" ps -aq --no-trunc 2>/dev/null | xargs -r "$HAKO" rm -f >/dev/null 2>&1
    if [ -S "$DOCKER_SOCK" ]; then
        "${DOCKER[@]}" ps -aq | xargs -r "${DOCKER[@]}" rm -f >/dev/null 2>&1
    fi
    [ -n "$DOCKERD_PID" ] && kill "$DOCKERD_PID" 2>/dev/null && wait "$DOCKERD_PID" 2>/dev/null
    if [ -d "$BENCH_DIR/podman" ]; then
        "${PODMAN[@]}" rm -af >/dev/null 2>&1
    fi
    rm -rf /tmp/hkb-run
    # dockerd's --cgroup-parent: empty once its containers are gone.
    find /sys/fs/cgroup -maxdepth 2 -type d -name hako-bench-docker -exec rmdir {} + 2>/dev/null
    grep " $BENCH_DIR" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
}
trap cleanup EXIT

has() { [[ " $ENGINES " == *" $1 "* ]]; }

step "busybox image (hako import of busybox-static)"
ROOTFS="$("$TARGET/release/hako-fixture" rootfs)"
tar -C "$ROOTFS" -cf - . | "$HAKO" import --change 'CMD ["sh"]' - busybox >/dev/null
"$HAKO" save -o "$BENCH_DIR/busybox.tar" busybox

if has docker; then
    step "private dockerd"
    DOCKERD_PREFIX="unshare --net" start_dockerd "$BENCH_DIR/docker/data" "$BENCH_DIR/docker" \
        "$DOCKER_SOCK" --cgroup-parent /hako-bench-docker
    "${DOCKER[@]}" load -i "$BENCH_DIR/busybox.tar" >/dev/null
fi
if has podman; then
    step "podman"
    mkdir -p "$BENCH_DIR/podman"
    printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n' > "$CONTAINERS_CONF"
    "${PODMAN[@]}" load -i "$BENCH_DIR/busybox.tar" >/dev/null
fi

step "run --rm busybox true ($RUNS runs each)"
cmds=()
names=()
if has hako; then
    cmds+=("$HAKO run --rm --network none busybox true"); names+=(hako)
fi
if has docker; then
    cmds+=("docker -H unix://$DOCKER_SOCK run --rm --network none busybox true"); names+=(docker)
fi
if has podman; then
    cmds+=("${PODMAN[*]} run --rm --network none busybox true"); names+=(podman)
fi
for c in "${cmds[@]}"; do $c >/dev/null || { echo "trial failed: $c" >&2; exit 1; }; done
hyperfine -N --runs "$RUNS" --warmup "$WARMUP" --export-json "$BENCH_DIR/run.json" \
    $(for i in "${!cmds[@]}"; do printf -- '-n %s ' "${names[$i]}"; done) "${cmds[@]}" >/dev/null
python3 - "$BENCH_DIR/run.json" <<'EOF'
import json, statistics, sys
r = json.load(open(sys.argv[1]))["results"]
base = {x["command"]: statistics.median(x["times"]) for x in r}
hako = base.get("hako")
print(f"{'engine':<8}{'median':>10}{'mean':>10}{'stddev':>10}{'vs hako':>10}")
for x in r:
    m = statistics.median(x["times"])
    ratio = f"{m / hako:.1f}x" if hako else "-"
    print(f"{x['command']:<8}{m*1000:>8.1f}ms{x['mean']*1000:>8.1f}ms{x['stddev']*1000:>8.1f}ms{ratio:>10}")
EOF

rss_of() { # total RSS (kB) and count of this benchmark's processes whose comm is $1
    local pids
    pids=$(pgrep -x "$1" | while read -r p; do
        grep -qF "$BENCH_DIR" "/proc/$p/cmdline" 2>/dev/null && echo "$p"; done | paste -sd, -)
    if [ -z "$pids" ]; then echo "0 0"; return; fi
    ps -p "$pids" -o rss= | awk '{s+=$1; n++} END {printf "%d %d\n", s, n}'
}
detached() { # engine, command prefix...
    local name=$1; shift
    local t0 t1
    t0=$(date +%s.%N)
    for i in $(seq "$DETACHED"); do "$@" run -d --network none busybox sleep 600 >/dev/null; done
    t1=$(date +%s.%N)
    echo "$name $(python3 -c "print(f'{$t1-$t0:.2f}')")"
}

step "$DETACHED detached containers per engine"
printf '%-8s %10s %14s %10s %12s\n' engine "total s" monitor "count" "RSS MiB"
if has hako; then
    read -r _ secs < <(detached hako "$HAKO")
    read -r kb n < <(rss_of hako-shim)
    printf '%-8s %10s %14s %10s %12.1f\n' hako "$secs" hako-shim "$n" "$(awk "BEGIN {print $kb/1024}")"
    "$HAKO" ps -aq --no-trunc | xargs -r "$HAKO" rm -f >/dev/null
fi
if has docker; then
    read -r _ secs < <(detached docker "${DOCKER[@]}")
    read -r kb n < <(rss_of containerd-shim)
    [ "$n" = 0 ] && read -r kb n < <(rss_of containerd-shim-runc-v2)
    printf '%-8s %10s %14s %10s %12.1f\n' docker "$secs" containerd-shim "$n" "$(awk "BEGIN {print $kb/1024}")"
    "${DOCKER[@]}" ps -aq | xargs -r "${DOCKER[@]}" rm -f >/dev/null
fi
if has podman; then
    read -r _ secs < <(detached podman "${PODMAN[@]}")
    read -r kb n < <(rss_of conmon)
    printf '%-8s %10s %14s %10s %12.1f\n' podman "$secs" conmon "$n" "$(awk "BEGIN {print $kb/1024}")"
    "${PODMAN[@]}" rm -af >/dev/null
fi
