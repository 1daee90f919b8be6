#!/usr/bin/env bash
# Pull benchmark: the image of bench/unpack.sh pushed once to Debian's `docker-registry` on
# 127.0.0.1 (random port, its own storage under /tmp/hako-bench-pull), then in ONE hyperfine
# invocation (warm cache):
#
#   hako-pull           `hako pull --insecure` into a fresh root (download, verify, unpack,
#                       register: the image is ready to run afterwards)
#   skopeo             `skopeo copy docker://... oci:DIR` (download and verify only)
#   skopeo+umoci       the same plus `umoci unpack` (ready to run, like hako and docker)
#
# `docker pull` is not measured: it needs a dockerd of its own (own data root, own netns)
# that can reach the loopback registry; see bench/README.md.
#
#   bench/pull.sh                   RUNS=5 bench/pull.sh     (default 3 runs, 1 warmup)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
[ "$(id -u)" -eq 0 ] || { echo "the benchmark needs root" >&2; exit 1; }
ensure_packages hyperfine skopeo umoci docker-registry python3

CACHE=/tmp/hako-bench-unpack
DIR=/tmp/hako-bench-pull
WORK="$DIR/work"
TARGET="$(target_dir)"
RUNS="${RUNS:-3}"
HAKO="$TARGET/release/hako"

if [ ! -e "$CACHE/.done" ]; then
    echo "no image yet: run bench/unpack.sh once first (it generates $CACHE)" >&2
    exit 1
fi
if [ ! -x "$HAKO" ]; then
    step "build (release)"
    cargo build --release -p hako-cli --bins
fi

rm -rf "$DIR"
mkdir -p "$DIR/data" "$WORK" bench/results
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$DIR/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $DIR/data
http:
  addr: 127.0.0.1:$PORT
EOF
docker-registry serve "$DIR/config.yml" >"$DIR/registry.log" 2>&1 &
REGISTRY_PID=$!
cleanup() {
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done

REF="127.0.0.1:$PORT/hako-bench/unpack:latest"
step "push once (skopeo, gzip layers as a registry wants them)"
skopeo copy -q --dest-tls-verify=false "docker-archive:$CACHE/image.tar" "docker://$REF"

HAKO_CMD="$HAKO --root $WORK/hako pull -q --insecure $REF >/dev/null"
SKOPEO_CMD="skopeo copy -q --src-tls-verify=false docker://$REF oci:$WORK/oci:bench"
UMOCI_CMD="$SKOPEO_CMD && umoci unpack --image $WORK/oci:bench $WORK/bundle >/dev/null"

step "measure (warm cache, $RUNS runs each)"
hyperfine --style basic --warmup 1 --runs "$RUNS" \
    --export-json bench/results/pull.json --export-markdown bench/results/pull.md \
    -n hako-pull --prepare "rm -rf $WORK/hako" "$HAKO_CMD" \
    -n skopeo --prepare "rm -rf $WORK/oci" "$SKOPEO_CMD" \
    -n skopeo+umoci --prepare "rm -rf $WORK/oci $WORK/bundle" "$UMOCI_CMD"

python3 - bench/results/pull.json <<'EOF'
import json, statistics, sys
res = json.load(open(sys.argv[1]))["results"]
med = {r["command"]: statistics.median(r["times"]) for r in res}
ref = med["hako-pull"]
print(f"\n{'command':<14}{'median':>10}{'mean':>10}{'stddev':>9}{'vs hako':>9}")
for r in res:
    m = med[r["command"]]
    print(f"{r['command']:<14}{m:>9.2f}s{r['mean']:>9.2f}s{r['stddev'] or 0:>8.2f}s{m / ref:>8.2f}x")
EOF
