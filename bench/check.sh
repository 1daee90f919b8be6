#!/usr/bin/env bash
# How long `hako system check` takes on a large store (issue 12: "fast enough to run on a
# store with 1,000 images and containers").
#
# The store: N images, each of its own (`hako import` of a generated one-file tar, so N
# layers and N blobs to hash), and N containers created from them (records, bundles,
# container layers; created, not started: a running container adds a shim and a cgroup
# the check looks at, see K). Then `system check` is timed with hyperfine, and
# `system check --repair` (waits for the exclusive lock, fixes nothing here) once.
#
#   sudo bench/check.sh                     release binaries from target/release
#   HAKO_BIN=/path/to/dir N=1000 K=20 RUNS=5 bench/check.sh
#
#   N     images and containers (default 1000)
#   K     of the containers, how many run (`start`) during the check (default 20)
#   RUNS  timed `system check` runs (default 5, one warmup)
#
# Everything runs inside `unshare --net --mount --fork` (no host network, mounts die with
# the namespace) on a store under $BENCH_DIR, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${HAKO_BIN:-$(pwd)/target/release}"
N="${N:-1000}"
K="${K:-20}"
RUNS="${RUNS:-5}"
DIR="${BENCH_DIR:-/tmp/hako-bench-check}"
for b in hako hako-shim hako-runtime hako-init; do
    [ -x "$BIN/$b" ] || { echo "bench/check.sh: $BIN/$b missing (scripts/lib.sh build_release)" >&2; exit 1; }
done
for t in hyperfine unshare python3; do
    command -v "$t" >/dev/null || { echo "bench/check.sh: $t is needed" >&2; exit 1; }
done

if [ -z "${HAKO_BENCH_IN_NS:-}" ]; then
    rm -rf "$DIR"
    mkdir -p "$DIR"
    trap 'rm -rf "$DIR"' EXIT
    HAKO_BENCH_IN_NS=1 unshare --net --mount --fork bash -c \
        "mount --make-rprivate / && ip link set lo up && exec $(printf '%q ' "$0")"
    exit
fi

export HAKO_INIT="$BIN/hako-init"
h() { "$BIN/hako" --root "$DIR/root" --exec-root "$DIR/exec" "$@"; }
echo "==> bench/check.sh: N=$N images and containers ($K running), load $(cut -d' ' -f1-3 /proc/loadavg)"

# One tar per image, one small file in it (nothing runs in the created containers; the K
# running ones use the busybox fixture).
python3 - "$DIR/tars" "$N" <<'EOF'
import io, os, sys, tarfile
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
for i in range(n):
    with tarfile.open(f"{d}/{i}.tar", "w") as t:
        data = f"image {i}\n".encode() * 64
        ti = tarfile.TarInfo(f"data/f{i}")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
EOF

t0=$(date +%s.%N)
seq 0 $((N - 1)) | xargs -P 4 -I{} "$BIN/hako" --root "$DIR/root" --exec-root "$DIR/exec" \
    import "$DIR/tars/{}.tar" "img{}:v" >/dev/null
t1=$(date +%s.%N)
seq 0 $((N - 1)) | xargs -P 4 -I{} "$BIN/hako" --root "$DIR/root" --exec-root "$DIR/exec" \
    create --name "c{}" "img{}:v" /data/f{} >/dev/null
t2=$(date +%s.%N)
FIXTURE="${HAKO_FIXTURES:-$(pwd)/.fixtures}/busybox-rootfs.tar"
running=0
if [ "$K" -gt 0 ] && [ -f "$FIXTURE" ]; then
    h import "$FIXTURE" busybox --change 'CMD ["sh"]' >/dev/null
    for i in $(seq 1 "$K"); do h run -d --network none --name "r$i" busybox sleep 100000 >/dev/null; done
    running=$K
fi
awk -v n="$N" -v a="$t0" -v b="$t1" -v c="$t2" -v k="$running" 'BEGIN {
    printf "made %d images in %.1f s, %d containers in %.1f s (4 at a time), %d running\n", n, b - a, n, c - b, k }'
h system df
h system check | tail -3

hyperfine -N --warmup 1 --runs "$RUNS" \
    "$BIN/hako --root $DIR/root --exec-root $DIR/exec system check -q" \
    "$BIN/hako --root $DIR/root --exec-root $DIR/exec ps -a -q" \
    "$BIN/hako --root $DIR/root --exec-root $DIR/exec images -q"
hyperfine -N --runs 1 "$BIN/hako --root $DIR/root --exec-root $DIR/exec system check --repair -q"

# Clean up: containers (the running ones too), then images; the mounts die with the
# namespace, the directory with the outer script.
h container prune -f >/dev/null || true
for i in $(seq 1 "$running"); do h rm -f "r$i" >/dev/null || true; done
h container prune -f >/dev/null
h image prune -a -f >/dev/null
echo "after cleanup: $(h ps -aq | wc -l) containers, $(h images -q | wc -l) images"
