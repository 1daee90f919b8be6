#!/usr/bin/env bash
# Pull benchmark: the image of bench/unpack.sh pushed once to Debian's `docker-registry`,
# then pulled by each of these in turn, round after round (bench/interleave.py, warm cache):
#
#   hako-pull      `hako pull --insecure` into a fresh root (download, verify, unpack,
#                  register: the image is ready to run afterwards)
#   docker-pull    `docker pull` by a private dockerd whose data root is emptied before
#                  each run (`docker rmi`): download, verify, unpack, register
#   skopeo         `skopeo copy docker://... oci:DIR` (download and verify only)
#   skopeo+umoci   the same plus `umoci unpack` (ready to run, like hako and docker)
#
#   bench/pull.sh                   RUNS=5 bench/pull.sh     (default 3 rounds, 1 warmup)
#   COMMANDS="hako-pull docker-pull" bench/pull.sh            only these
#
# Everything runs in one private network, mount and pid namespace (the script re-executes
# itself under `unshare`): the registry listens on that namespace's 127.0.0.1, where
# hako, skopeo and the private dockerd all reach it, and nothing touches the host's
# network, its dockerd or its mounts. dockerd gets its own data root (a loop-mounted ext4
# with a journal, see bench/fresh-fs.sh), exec root, socket and an empty daemon.json;
# `--bridge=none --iptables=false`. hako and skopeo write into a fresh ext4 for each run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh
[ "$(id -u)" -eq 0 ] || { echo "the benchmark needs root" >&2; exit 1; }

CACHE=/tmp/hako-bench-unpack
DIR=/tmp/hako-bench-pull
WORK="$DIR/work"
TARGET="$(target_dir)"
RUNS="${RUNS:-3}"
HAKO="$TARGET/release/hako"
COMMANDS="${COMMANDS:-hako-pull docker-pull skopeo skopeo+umoci}"

if [ -z "${HAKO_BENCH_IN_NS:-}" ]; then
    ensure_packages skopeo umoci docker-registry docker.io python3
    if [ ! -e "$CACHE/.done" ]; then
        echo "no image yet: run bench/unpack.sh once first (it generates $CACHE)" >&2
        exit 1
    fi
    if [ ! -x "$HAKO" ]; then
        step "build (release)"
        cargo build --release -p hako-cli --bins
    fi
    # --kill-child: when this script ends, the kernel ends the registry and dockerd too.
    exec unshare --net --mount --pid --fork --kill-child --mount-proc \
        env HAKO_BENCH_IN_NS=1 "$0" "$@"
fi

# ---- inside the private namespaces from here on
ip link set lo up
rm -rf "$DIR"
mkdir -p "$DIR/data" "$WORK" bench/results
PIDS=()
cleanup() {
    if [ -S "$DIR/docker.sock" ]; then
        kill "$(cat "$DIR/docker.pid" 2>/dev/null)" 2>/dev/null || true
    fi
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    bench/fresh-fs.sh --umount "$WORK" "$DIR/work.img" || true
    bench/fresh-fs.sh --umount "$DIR/docker" "$DIR/docker.img" || true
    rm -rf "$DIR"
}
trap cleanup EXIT

PORT=5000
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
PIDS+=($!)
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done

REF="127.0.0.1:$PORT/hako-bench/unpack:latest"
step "push once (skopeo, gzip layers as a registry wants them)"
skopeo copy -q --dest-tls-verify=false "docker-archive:$CACHE/image.tar" "docker://$REF"

DOCKER="docker --host unix://$DIR/docker.sock"
if case " $COMMANDS " in *" docker-pull "*) true ;; *) false ;; esac; then
    step "start a private dockerd"
    FS_SIZE=4G bench/fresh-fs.sh "$DIR/docker" "$DIR/docker.img"
    export DOCKER_CONFIG="$DIR/cli"
    start_dockerd "$DIR/docker/data" "$DIR" "$DIR/docker.sock" \
        --insecure-registry="127.0.0.1:$PORT"
    PIDS+=("$DOCKERD_PID")
    $DOCKER version --format 'dockerd {{.Server.Version}}, storage driver' | tr -d '\n'
    $DOCKER info --format ' {{.Driver}}'
fi

HAKO_CMD="$HAKO --root $WORK/hako pull -q --insecure $REF >/dev/null"
DOCKER_CMD="$DOCKER pull -q $REF >/dev/null"
# The image and its layers go; what is left of the data root is a few metadata files.
DOCKER_PREP="$DOCKER rmi -f $REF >/dev/null 2>&1 || true"
SKOPEO_CMD="skopeo copy -q --src-tls-verify=false docker://$REF oci:$WORK/oci:bench"
UMOCI_CMD="$SKOPEO_CMD && umoci unpack --image $WORK/oci:bench $WORK/bundle >/dev/null"
FRESH="bench/fresh-fs.sh $WORK $DIR/work.img"

args=()
add() { case " $COMMANDS " in *" $1 "*) args+=(-n "$1" --prepare "$2" "${@:4}" "$3") ;; esac; }
add hako-pull "$FRESH" "$HAKO_CMD"
# dockerd does the work: its CPU time counts, not just the CLI's.
add docker-pull "$DOCKER_PREP" "$DOCKER_CMD" --daemon "$DIR/docker.pid"
add skopeo "$FRESH" "$SKOPEO_CMD"
add skopeo+umoci "$FRESH" "$UMOCI_CMD"

step "measure (warm cache, $RUNS interleaved rounds)"
python3 bench/interleave.py --warmup 1 --runs "$RUNS" \
    --json bench/results/pull.json --md bench/results/pull.md "${args[@]}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
