#!/usr/bin/env bash
# Disk use and time of pull / load / save / push: hako next to a real dockerd (Debian's
# docker.io, overlay2) on the same image, each in a fresh store, inside private network,
# mount and pid namespaces (as bench/pull.sh; nothing touches the host's dockerd or network).
#
# The image (generated once, cached in /tmp/hako-bench-disk): three layers made of this
# host's own files, so they compress like a real distribution image does: /etc, /usr/sbin
# and python's library; /usr/share/doc and /usr/share/locale; a small top layer that
# deletes one file and adds one. It is pushed once (skopeo, gzip) to Debian's
# docker-registry on the namespace's 127.0.0.1.
#
#   bench/disk.sh                       disk use after pull and after load, then times
#   RUNS=3 bench/disk.sh                rounds of each timed command (default 3, 1 warmup)
#   HAKO_BEFORE=/path/to/old/hako bench/disk.sh   also an older hako build, side by side
#   TIMES=0 HAKO=target/debug/hako bench/disk.sh  disk use only (any build gives the same
#                                       bytes; times need the release build)
#
# Disk use is `du -s` (blocks) and `du -s --apparent-size` of the whole store directory
# (hako's --root; dockerd's --data-root), minus what the empty store held. Results:
# bench/results/disk.md (+ pull/load/save/push timing via bench/interleave.py).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh
[ "$(id -u)" -eq 0 ] || { echo "the benchmark needs root" >&2; exit 1; }

CACHE=/tmp/hako-bench-disk
DIR=/tmp/hako-bench-disk-run
TARGET="$(target_dir)"
RUNS="${RUNS:-3}"
HAKO="${HAKO:-$TARGET/release/hako}"

if [ -z "${HAKO_BENCH_IN_NS:-}" ]; then
    ensure_packages skopeo docker-registry docker.io python3
    if [ ! -e "$CACHE/.done" ] || [ ! -s "$CACHE/image.tar" ]; then
        step "generate the image ($CACHE)"
        rm -rf "$CACHE" && mkdir -p "$CACHE"
        tar --numeric-owner -C / -cf "$CACHE/l1.tar" etc usr/sbin usr/lib/python3.11
        tar --numeric-owner -C / -cf "$CACHE/l2.tar" usr/share/doc usr/share/locale
        mkdir -p "$CACHE/l3/etc" "$CACHE/l3/srv"
        : > "$CACHE/l3/etc/.wh.hostname"
        echo "hello from the top layer" > "$CACHE/l3/srv/hello"
        tar --numeric-owner -C "$CACHE/l3" -cf "$CACHE/l3.tar" etc srv
        python3 - "$CACHE" <<'EOF'
import hashlib, io, json, os, sys, tarfile
d = sys.argv[1]
layers = [f"{d}/l{i}.tar" for i in (1, 2, 3)]
def sha(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()
ids = [sha(p) for p in layers]
config = json.dumps({
    "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
    "config": {"Cmd": ["/bin/sh"]},
    "rootfs": {"type": "layers", "diff_ids": [f"sha256:{i}" for i in ids]},
    "history": [{"created": "2026-01-01T00:00:00Z"}] * 3,
}).encode()
cid = hashlib.sha256(config).hexdigest()
with tarfile.open(f"{d}/image.tar", "w", format=tarfile.PAX_FORMAT) as t:
    def add(name, data=None, path=None):
        if path:
            t.add(path, arcname=name)
        else:
            info = tarfile.TarInfo(name); info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    add(f"{cid}.json", config)
    for p, i in zip(layers, ids):
        add(f"{i}/layer.tar", path=p)
    add("manifest.json", json.dumps([{
        "Config": f"{cid}.json", "RepoTags": ["hako-bench/disk:latest"],
        "Layers": [f"{i}/layer.tar" for i in ids]}]).encode())
EOF
        rm -rf "$CACHE/l3" "$CACHE"/l?.tar
        touch "$CACHE/.done"
    fi
    if [ ! -x "$HAKO" ]; then
        step "build (release)"
        cargo build --release -p hako-cli --bins
    fi
    exec unshare --net --mount --pid --fork --kill-child --mount-proc \
        env HAKO_BENCH_IN_NS=1 "$0" "$@"
fi

# ---- inside the private namespaces from here on
ip link set lo up
rm -rf "$DIR"
mkdir -p "$DIR/data" bench/results
PIDS=()
DOCKER="docker --host unix://$DIR/docker.sock"
export DOCKER_CONFIG="$DIR/cli"
cleanup() {
    [ -s "$DIR/reg2.pid" ] && kill "$(cat "$DIR/reg2.pid")" 2>/dev/null || true
    $DOCKER rm -f $($DOCKER ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    bench/fresh-fs.sh --umount "$DIR/docker" "$DIR/docker.img" || true
    bench/fresh-fs.sh --umount "$DIR/hako" "$DIR/hako.img" || true
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
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$PORT
EOF
docker-registry serve "$DIR/config.yml" >"$DIR/registry.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done
REF="127.0.0.1:$PORT/hako-bench/disk:latest"
# A second, empty registry for the pushes: restarted on a wiped storage before each push,
# so every layer is uploaded (no blob to find, none to mount).
P2=5001
sed -e "s|$DIR/data|$DIR/data2|" -e "s|:$PORT|:$P2|" "$DIR/config.yml" > "$DIR/config2.yml"
cat > "$DIR/reg2.sh" <<EOF
#!/usr/bin/env bash
[ -s "$DIR/reg2.pid" ] && kill "\$(cat "$DIR/reg2.pid")" 2>/dev/null && sleep 0.2
rm -rf "$DIR/data2"
docker-registry serve "$DIR/config2.yml" >>"$DIR/registry2.log" 2>&1 &
echo \$! > "$DIR/reg2.pid"
for _ in \$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$P2) 2>/dev/null && exit 0; sleep 0.05; done
exit 1
EOF
chmod +x "$DIR/reg2.sh"
step "push once (skopeo, gzip layers)"
skopeo copy -q --dest-tls-verify=false "docker-archive:$CACHE/image.tar" "docker://$REF"
skopeo inspect --raw --tls-verify=false "docker://$REF" |
    python3 -c 'import json,sys; m=json.load(sys.stdin); print("compressed layers:", sum(l["size"] for l in m["layers"]), "bytes")'

step "start a private dockerd"
FS_SIZE=6G bench/fresh-fs.sh "$DIR/docker" "$DIR/docker.img"
FS_SIZE=6G bench/fresh-fs.sh "$DIR/hako" "$DIR/hako.img"
start_dockerd "$DIR/docker/data" "$DIR" "$DIR/docker.sock" \
    --insecure-registry="127.0.0.1:$PORT" --insecure-registry="127.0.0.1:$P2"
PIDS+=("$DOCKERD_PID")
$DOCKER version --format 'dockerd {{.Server.Version}}, storage driver' | tr -d '\n'
$DOCKER info --format ' {{.Driver}}'

# du of a directory: "blocks apparent" in bytes.
usage() { echo "$(du -s -B1 "$1" | cut -f1) $(du -s -B1 --apparent-size "$1" | cut -f1)"; }
OUT=bench/results/disk.md
{
    echo "# disk use: the same 3-layer image in hako and in dockerd $($DOCKER version --format '{{.Server.Version}}')"
    echo
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| store | after | du (blocks) | du --apparent-size | of which blobs/ (hako) or image/ (docker) |"
    echo "|---|---|---|---|---|"
} > "$OUT"
row() { # store what dir base-blocks base-apparent meta-dir
    local now; now=($(usage "$3"))
    local meta; meta=$(du -s -B1 --apparent-size "$6" 2>/dev/null | cut -f1 || echo 0)
    printf '| %s | %s | %d MiB | %d MiB | %d KiB |\n' "$1" "$2" \
        $(( (now[0] - $4) >> 20 )) $(( (now[1] - $5) >> 20 )) $(( meta >> 10 )) | tee -a "$OUT"
}

hako_store() { # name binary
    local root="$DIR/hako/$1"
    rm -rf "$root"; mkdir -p "$root"
    "$2" --root "$root" images >/dev/null
    local base; base=($(usage "$root"))
    "$2" --root "$root" pull -q --insecure "$REF" >/dev/null
    "$2" --root "$root" images >/dev/null   # a later command, as a user would run
    row "$1" pull "$root" "${base[@]}" "$root/blobs"
    rm -rf "$root"; mkdir -p "$root"
    "$2" --root "$root" images >/dev/null
    "$2" --root "$root" load -q -i "$CACHE/image.tar" >/dev/null
    row "$1" load "$root" "${base[@]}" "$root/blobs"
    rm -rf "$root"
}
step "disk use"
hako_store hako "$HAKO"
if [ -n "${HAKO_BEFORE:-}" ]; then hako_store hako-before "$HAKO_BEFORE"; fi
base=($(usage "$DIR/docker/data"))
$DOCKER pull -q "$REF" >/dev/null
row docker pull "$DIR/docker/data" "${base[@]}" "$DIR/docker/data/image"
$DOCKER rmi -f "$REF" >/dev/null
$DOCKER image prune -af >/dev/null
$DOCKER load -q -i "$CACHE/image.tar" >/dev/null
row docker load "$DIR/docker/data" "${base[@]}" "$DIR/docker/data/image"

if [ "${TIMES:-1}" = 0 ]; then
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
    exit 0
fi
step "time (warm cache, $RUNS interleaved rounds)"
# hako: pull and load into a fresh root each time; save and push from a loaded root (its
# layers came uncompressed: pushed as they are) and from a pulled one (they came gzip'd:
# rebuilt and compressed anew for a registry that lacks them, as docker push does).
H="$DIR/hako/t"; HG="$DIR/hako/g"; HP="$DIR/hako/p"
for r in "$H" "$HG"; do rm -rf "$r"; mkdir -p "$r"; done
"$HAKO" --root "$H" load -q -i "$CACHE/image.tar" >/dev/null
"$HAKO" --root "$H" tag hako-bench/disk:latest "127.0.0.1:$P2/hako/disk:latest"
"$HAKO" --root "$HG" pull -q --insecure "$REF" >/dev/null
"$HAKO" --root "$HG" tag "$REF" "127.0.0.1:$P2/hakogz/disk:latest"
# docker: every image removed before a pull or a load (a tag removed alone leaves the layers).
RMI_ALL="$DOCKER rmi -f \$($DOCKER images -q --no-trunc | sort -u) >/dev/null 2>&1 || true"
args=(
    -n hako-pull --prepare "rm -rf $HP" "$HAKO --root $HP pull -q --insecure $REF >/dev/null"
    -n docker-pull --prepare "$RMI_ALL" --daemon "$DIR/docker.pid" "$DOCKER pull -q $REF >/dev/null"
    -n hako-load --prepare "rm -rf $HP" "$HAKO --root $HP load -q -i $CACHE/image.tar >/dev/null"
    -n docker-load --prepare "$RMI_ALL" --daemon "$DIR/docker.pid"
        "$DOCKER load -q -i $CACHE/image.tar >/dev/null"
    -n hako-save "$HAKO --root $H save -o $DIR/hako-save.tar hako-bench/disk"
    -n docker-save --daemon "$DIR/docker.pid" "$DOCKER save -o $DIR/docker-save.tar hako-bench/disk"
    # Pushes into the empty second registry: every layer is uploaded.
    -n hako-push --prepare "$DIR/reg2.sh" \
        "$HAKO --root $H push -q 127.0.0.1:$P2/hako/disk:latest >/dev/null"
    -n hako-push-gz --prepare "$DIR/reg2.sh" \
        "$HAKO --root $HG push -q 127.0.0.1:$P2/hakogz/disk:latest >/dev/null"
    -n docker-push --prepare "$DIR/reg2.sh; $DOCKER tag hako-bench/disk:latest 127.0.0.1:$P2/docker/disk:latest" \
        --daemon "$DIR/docker.pid" "$DOCKER push -q 127.0.0.1:$P2/docker/disk:latest >/dev/null"
)
if [ -n "${HAKO_BEFORE:-}" ]; then
    HB="$DIR/hako/tb"
    rm -rf "$HB"; mkdir -p "$HB"
    "$HAKO_BEFORE" --root "$HB" load -q -i "$CACHE/image.tar" >/dev/null
    "$HAKO_BEFORE" --root "$HB" tag hako-bench/disk:latest "127.0.0.1:$P2/before/disk:latest"
    args+=(
        -n before-pull --prepare "rm -rf $HP" "$HAKO_BEFORE --root $HP pull -q --insecure $REF >/dev/null"
        -n before-load --prepare "rm -rf $HP" "$HAKO_BEFORE --root $HP load -q -i $CACHE/image.tar >/dev/null"
        -n before-save "$HAKO_BEFORE --root $HB save -o $DIR/before-save.tar hako-bench/disk"
        -n before-push --prepare "$DIR/reg2.sh" \
            "$HAKO_BEFORE --root $HB push -q 127.0.0.1:$P2/before/disk:latest >/dev/null"
    )
fi
python3 bench/interleave.py --warmup 1 --runs "$RUNS" \
    --json bench/results/disk-time.json --md bench/results/disk-time.md "${args[@]}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
