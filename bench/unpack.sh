#!/usr/bin/env bash
# Unpack benchmark: a large multi-layer image (generated once, cached under
# /tmp/hako-bench-unpack) unpacked by each of these in turn, round after round
# (bench/interleave.py; warm page cache: dropping caches is not allowed on the shared
# machine), each run into a fresh ext4 (bench/fresh-fs.sh says why):
#
#   tar-x          GNU `tar -x` of each layer tar into its own dir (the physical reference)
#   hako-unpack    hako-storage's `examples/unpack` of each layer into its own dir (the same
#                  work as tar -x: whiteouts, ownership, xattrs, digests while streaming)
#   hako-load      `hako load -i image.tar` into a fresh root (blob store copy + verify +
#                  unpack + SQLite: everything Docker's `docker load` does)
#   skopeo+umoci   `skopeo copy docker-archive:... oci:DIR` + `umoci unpack` (full rootfs)
#
#   bench/unpack.sh                  generate if needed, build release if needed, measure
#   RUNS=5 bench/unpack.sh           runs per command (default 3, 1 warmup)
#   REGEN=1 bench/unpack.sh          regenerate the image
#   COMMANDS="tar-x hako-unpack" bench/unpack.sh    only these
#   BENCH_FS=dir bench/unpack.sh     write into a plain dir under /tmp instead of a fresh
#                                    ext4 per run (see bench/fresh-fs.sh for why not)
#
# The image (~540 MB uncompressed, 4 layers): 20,000 small files (1-8 KiB) in 400 dirs,
# three 100 MiB files, 10,000 more small files plus deletions of layer-1 files and an
# opaque directory, two 50 MiB files. File contents are random (incompressible).
# Results: bench/results/unpack.{json,md}; medians, CPU times and ratios vs tar -x are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
[ "$(id -u)" -eq 0 ] || { echo "the benchmark needs root" >&2; exit 1; }
ensure_packages skopeo umoci python3

CACHE=/tmp/hako-bench-unpack
WORK="$CACHE/work"
FS_IMG="$CACHE/fs.img"
TARGET="$(target_dir)"
RUNS="${RUNS:-3}"
HAKO="$TARGET/release/hako"
UNPACK="$TARGET/release/examples/unpack"

if [ ! -x "$HAKO" ] || [ ! -x "$UNPACK" ]; then
    step "build (release)"
    cargo build --release -p hako-cli -p hako-storage --bins --examples
fi

generate() {
    step "generate the image under $CACHE (once)"
    rm -rf "$CACHE"
    mkdir -p "$CACHE/layers"
    python3 - "$CACHE" <<'EOF'
import hashlib, json, os, random, subprocess, sys
cache = sys.argv[1]
rnd = random.Random(42)
src = os.path.join(cache, "src")

def small_files(root, count, dirs, prefix):
    for i in range(count):
        d = os.path.join(root, f"usr/share/{prefix}{i % dirs:03d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:05d}.dat"), "wb") as f:
            f.write(os.urandom(rnd.randint(1024, 8192)))

def big_file(root, name, mib):
    path = os.path.join(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))

layers = []
for n in range(1, 5):
    layers.append(os.path.join(src, f"l{n}"))
    os.makedirs(layers[-1])
small_files(layers[0], 20000, 400, "a")
os.makedirs(os.path.join(layers[0], "etc/conf.d"))
for i in range(50):
    open(os.path.join(layers[0], f"etc/conf.d/{i}.conf"), "w").write(f"x={i}\n")
for i in range(3):
    big_file(layers[1], f"opt/big/blob{i}.bin", 100)
small_files(layers[2], 10000, 200, "b")
# Deletions of layer-1 files (OCI whiteouts) and an opaque etc/conf.d.
for i in range(0, 400, 4):
    d = os.path.join(layers[2], f"usr/share/a{i:03d}")
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, f".wh.f{i:05d}.dat"), "w").close()
os.makedirs(os.path.join(layers[2], "etc/conf.d"))
open(os.path.join(layers[2], "etc/conf.d/.wh..wh..opq"), "w").close()
open(os.path.join(layers[2], "etc/conf.d/only.conf"), "w").write("only\n")
for i in range(2):
    big_file(layers[3], f"var/cache/data{i}.bin", 50)

diff_ids = []
for n, l in enumerate(layers, 1):
    out = os.path.join(cache, "layers", f"layer{n}.tar")
    subprocess.run(["tar", "--numeric-owner", "--sort=name", "-C", l, "-cf", out, "."], check=True)
    h = hashlib.sha256()
    with open(out, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    diff_ids.append("sha256:" + h.hexdigest())
config = {
    "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
    "config": {"Cmd": ["/bin/sh"]},
    "rootfs": {"type": "layers", "diff_ids": diff_ids},
    "history": [{"created": "2024-01-01T00:00:00Z", "comment": f"layer {i}"} for i in range(1, 5)],
}
cfg = json.dumps(config).encode()
cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
arc = os.path.join(cache, "archive")
os.makedirs(arc)
open(os.path.join(arc, cfg_name), "wb").write(cfg)
names = []
for n in range(1, 5):
    name = f"layer{n}/layer.tar"
    os.makedirs(os.path.join(arc, f"layer{n}"))
    os.link(os.path.join(cache, "layers", f"layer{n}.tar"), os.path.join(arc, name))
    names.append(name)
json.dump([{"Config": cfg_name, "RepoTags": ["hako-bench/unpack:latest"], "Layers": names}],
          open(os.path.join(arc, "manifest.json"), "w"))
subprocess.run(["tar", "-C", arc, "-cf", os.path.join(cache, "image.tar"), "."], check=True)
subprocess.run(["rm", "-rf", src, arc], check=True)
EOF
    touch "$CACHE/.done"
}

if [ -n "${REGEN:-}" ] || [ ! -e "$CACHE/.done" ]; then
    generate
fi
du -sh "$CACHE/layers" "$CACHE/image.tar"
mkdir -p "$WORK" bench/results

# --prepare (untimed) gives each run an empty output: a fresh ext4 mounted at $WORK, or
# with BENCH_FS=dir the command's output dirs removed.
if [ "${BENCH_FS:-ext4}" = dir ]; then
    fresh() { echo "rm -rf $(printf "$WORK/%s " "$@")"; }
    trap 'rm -rf "$WORK"' EXIT
else
    fresh() { echo "bench/fresh-fs.sh $WORK $FS_IMG"; }
    trap 'bench/fresh-fs.sh --umount "$WORK" "$FS_IMG"; rm -rf "$WORK"' EXIT
fi

# Each command unpacks all four layers.
TAR_CMD="for n in 1 2 3 4; do mkdir -p $WORK/tar/\$n && tar -xf $CACHE/layers/layer\$n.tar -C $WORK/tar/\$n; done"
HAKO_UNPACK_CMD="for n in 1 2 3 4; do mkdir -p $WORK/unpack/\$n && $UNPACK $CACHE/layers/layer\$n.tar $WORK/unpack/\$n >/dev/null; done"
HAKO_LOAD_CMD="$HAKO --root $WORK/hako load -q -i $CACHE/image.tar >/dev/null"
UMOCI_CMD="skopeo copy -q docker-archive:$CACHE/image.tar oci:$WORK/oci:bench && umoci unpack --image $WORK/oci:bench $WORK/bundle >/dev/null"

# COMMANDS picks a subset (skopeo+umoci alone takes ~40 s a run).
COMMANDS="${COMMANDS:-tar-x hako-unpack hako-load skopeo+umoci}"
args=()
add() { case " $COMMANDS " in *" $1 "*) args+=(-n "$1" --prepare "$2" "$3") ;; esac; }
add tar-x "$(fresh tar)" "$TAR_CMD"
add hako-unpack "$(fresh unpack)" "$HAKO_UNPACK_CMD"
add hako-load "$(fresh hako)" "$HAKO_LOAD_CMD"
add skopeo+umoci "$(fresh oci bundle)" "$UMOCI_CMD"

step "measure (warm cache, $RUNS interleaved rounds, output: ${BENCH_FS:-ext4})"
python3 bench/interleave.py --warmup 1 --runs "$RUNS" \
    --json bench/results/unpack.json --md bench/results/unpack.md "${args[@]}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
