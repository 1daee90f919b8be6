#!/usr/bin/env bash
# `hako build` against `docker build` (dockerd's classic builder: Debian's docker has no
# buildx) and `buildah bud`: a cold build (--no-cache), a fully cached rebuild and a rebuild
# after one source file changed, of a realistic multi-stage Dockerfile, one run each
# (hyperfine --runs 1), side by side.
#
#   sudo bench/build.sh                       # all three
#   ENGINES="hako docker" bench/build.sh
#   CACHED_RUNS=10 bench/build.sh             # the fully cached rebuild 10 times each (mean)
#
# The Dockerfile: a Debian 12 stage with gcc compiles a small C program, which is then
# copied into a slim Debian 12 stage. Both bases are made here, once, with mmdebstrap
# (cached in $BASES: debian-gcc.tar, debian-slim.tar), imported into hako, and handed to
# the others as `hako save` archives, so every engine starts from the same bytes.
#
# Isolation: own roots under $BENCH_DIR; dockerd runs inside `unshare --net` with
# --bridge=none and no iptables; every engine builds with --network none (the RUNs here
# need no network, and hako's default bridge would be made in the host's namespace).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh

ENGINES="${ENGINES:-hako docker buildah}"
CACHED_RUNS="${CACHED_RUNS:-1}"
BENCH_DIR="${BENCH_DIR:-/tmp/hako-bench/build}"
BASES="${BASES:-/var/tmp/hako-bench}"
TARGET="$(target_dir)"
HAKO="${HAKO:-$TARGET/release/hako}"
[ -x "$HAKO" ] || { echo "build first: cargo build --release -p hako-cli -p hako-runtime" >&2; exit 1; }
command -v hyperfine >/dev/null || ensure_packages hyperfine
command -v mmdebstrap >/dev/null || ensure_packages mmdebstrap
has() { [[ " $ENGINES " == *" $1 "* ]]; }
if has buildah; then command -v buildah >/dev/null || ensure_packages buildah; fi

mkdir -p "$BASES"
if [ ! -s "$BASES/debian-gcc.tar" ]; then
    step "Debian 12 + gcc base (mmdebstrap, once)"
    mmdebstrap --variant=minbase --include=gcc,libc6-dev bookworm "$BASES/debian-gcc.tar" http://deb.debian.org/debian
fi
if [ ! -s "$BASES/debian-slim.tar" ]; then
    step "Debian 12 minbase (mmdebstrap, once)"
    mmdebstrap --variant=minbase bookworm "$BASES/debian-slim.tar" http://deb.debian.org/debian
fi

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR/ctx"
export HAKO_ROOT="$BENCH_DIR/hako" HAKO_EXEC_ROOT=/tmp/hkb-build
DOCKER_SOCK="$BENCH_DIR/docker/docker.sock"
DOCKER=(docker -H "unix://$DOCKER_SOCK")
# buildah's default OCI runtime here is crun, which refuses cgroup v1 hybrid hosts ("cgroups in
# hybrid mode not supported"): runc it is.
BUILDAH=(buildah --root "$BENCH_DIR/buildah/root" --runroot "$BENCH_DIR/buildah/run")
BUILDAH_RUN=(--runtime "$(command -v runc || echo runc)")
DOCKERD_PID=""

cleanup() {
    set +e
    [ -n "$DOCKERD_PID" ] && kill "$DOCKERD_PID" 2>/dev/null && wait "$DOCKERD_PID" 2>/dev/null
    find /sys/fs/cgroup -maxdepth 2 -type d -name hako-bench-build -exec rmdir {} + 2>/dev/null
    grep " $BENCH_DIR" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
    rm -rf /tmp/hkb-build
}
trap cleanup EXIT

cat > "$BENCH_DIR/ctx/main.c" <<'EOF'
#include <stdio.h>
#include <string.h>
/* A small program with some work for the compiler. */
static unsigned long fib(unsigned n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
int main(int argc, char **argv) {
    unsigned n = argc > 1 ? (unsigned)strlen(argv[1]) + 20 : 25;
    printf("fib(%u) = %lu\n", n, fib(n));
    return 0;
}
EOF
for i in $(seq 1 40); do
    printf 'int helper_%d(int x) { return x * %d + %d; }\n' "$i" "$i" "$i" > "$BENCH_DIR/ctx/helper_$i.c"
done
cat > "$BENCH_DIR/ctx/Dockerfile" <<'EOF'
FROM bench/debian-gcc AS build
WORKDIR /src
COPY *.c ./
RUN gcc -O2 -o /usr/local/bin/app *.c && strip /usr/local/bin/app
RUN /usr/local/bin/app > /build-check

FROM bench/debian-slim
COPY --from=build /usr/local/bin/app /usr/local/bin/app
CMD ["app"]
EOF

step "bases into each engine"
"$HAKO" import --change 'CMD ["bash"]' "$BASES/debian-gcc.tar" bench/debian-gcc >/dev/null
"$HAKO" import --change 'CMD ["bash"]' "$BASES/debian-slim.tar" bench/debian-slim >/dev/null
"$HAKO" save -o "$BENCH_DIR/bases.tar" bench/debian-gcc bench/debian-slim

if has docker; then
    step "private dockerd"
    DOCKERD_PREFIX="unshare --net" start_dockerd "$BENCH_DIR/docker/data" "$BENCH_DIR/docker" \
        "$DOCKER_SOCK" --cgroup-parent /hako-bench-build
    "${DOCKER[@]}" load -i "$BENCH_DIR/bases.tar" >/dev/null
fi
if has buildah; then
    mkdir -p "$BENCH_DIR/buildah"
    "${BUILDAH[@]}" pull -q "docker-archive:$BENCH_DIR/bases.tar:bench/debian-gcc:latest" >/dev/null
    "${BUILDAH[@]}" pull -q "docker-archive:$BENCH_DIR/bases.tar:bench/debian-slim:latest" >/dev/null
fi

CTX="$BENCH_DIR/ctx"
cold=() cached=()
if has hako; then
    cold+=(-n "hako build" "$HAKO build -q --no-cache --network none -t app $CTX")
    cached+=(-n "hako build (cached)" "$HAKO build -q --network none -t app $CTX")
fi
if has docker; then
    cold+=(-n "docker build" "DOCKER_BUILDKIT=0 ${DOCKER[*]} build -q --no-cache --network none -t app $CTX")
    cached+=(-n "docker build (cached)" "DOCKER_BUILDKIT=0 ${DOCKER[*]} build -q --network none -t app $CTX")
fi
if has buildah; then
    cold+=(-n "buildah bud" "${BUILDAH[*]} bud ${BUILDAH_RUN[*]} -q --layers --no-cache --pull=false --network none -t app $CTX")
    cached+=(-n "buildah bud (cached)" "${BUILDAH[*]} bud ${BUILDAH_RUN[*]} -q --layers --pull=false --network none -t app $CTX")
fi

step "load: $(cut -d' ' -f1-3 /proc/loadavg)"
step "cold builds (--no-cache), one run each"
hyperfine --runs 1 --style basic --export-markdown "$BENCH_DIR/cold.md" "${cold[@]}"
step "fully cached rebuilds, $CACHED_RUNS run(s) each (after one build to fill the cache)"
hyperfine --runs "$CACHED_RUNS" --style basic --export-markdown "$BENCH_DIR/cached.md" "${cached[@]}"
step "one source file changed: the COPY, the compile and what follows re-run, one run each"
echo 'int helper_1(int x) { return x * 2 + 1; }' > "$CTX/helper_1.c"
hyperfine --runs 1 --style basic --export-markdown "$BENCH_DIR/changed.md" "${cached[@]}"
step "check: the images run; load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$HAKO" run --rm --network none app
cat "$BENCH_DIR/cold.md" "$BENCH_DIR/cached.md" "$BENCH_DIR/changed.md"
