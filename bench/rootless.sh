#!/usr/bin/env bash
# Rootless `hako run --rm busybox true` against rootless `podman run --rm`, one hyperfine
# run, as a normal user this script makes (with a /etc/subuid range) and removes.
#
#   sudo bench/rootless.sh                 # 30 runs each
#   RUNS=50 HAKO=target/debug/hako bench/rootless.sh
#
# Both with --network none (no pasta/slirp in the timing) and the same busybox rootfs
# (imported by each). podman: runc as runtime (crun refuses this hybrid cgroup host),
# cgroupfs manager, file events; hako: its own runtime. Neither has a cgroup here: the
# host delegates none to the user.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

RUNS="${RUNS:-30}"
WARMUP="${WARMUP:-3}"
TARGET="$(target_dir)"
HAKO="${HAKO:-$TARGET/release/hako}"
[ -x "$HAKO" ] || { echo "build first (bash -c '. scripts/lib.sh; build_release'), or HAKO=target/debug/hako" >&2; exit 1; }
HAKO=$(realpath "$HAKO")
command -v hyperfine >/dev/null || ensure_packages hyperfine
[ -e "${HAKO_FIXTURES:-.fixtures}/busybox-rootfs.tar" ] || { echo "no busybox-rootfs.tar fixture: run the tests once" >&2; exit 1; }
TAR=$(realpath "${HAKO_FIXTURES:-.fixtures}/busybox-rootfs.tar")

USER_NAME="hkbench$$"
useradd -m -s /bin/sh "$USER_NAME"
uid=$(id -u "$USER_NAME")
HOME_DIR=/home/$USER_NAME
RUN_DIR=/tmp/$USER_NAME-run
cleanup() {
    set +e
    # This user's processes only (the pause process, podman's catatonit).
    for p in $(ps -o pid= -u "$uid"); do kill -9 "$p" 2>/dev/null; done
    sleep 0.5
    rm -rf "$RUN_DIR"
    userdel -r "$USER_NAME" >/dev/null 2>&1
}
trap cleanup EXIT
install -d -m 700 -o "$uid" "$RUN_DIR"
[ "$(stat -c %a /dev/net/tun)" = 666 ] || chmod 0666 /dev/net/tun
cp "$TAR" "$HOME_DIR/busybox.tar" && chown "$uid" "$HOME_DIR/busybox.tar"

as_user() {
    runuser -u "$USER_NAME" -- env HOME="$HOME_DIR" XDG_RUNTIME_DIR="$RUN_DIR" \
        PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin "$@"
}
PODMAN="podman --cgroup-manager cgroupfs --events-backend file --runtime runc"
as_user "$HAKO" import "$HOME_DIR/busybox.tar" busybox >/dev/null
as_user $PODMAN import "$HOME_DIR/busybox.tar" localhost/busybox >/dev/null
# Trial runs: both must work before they are timed.
as_user "$HAKO" run --rm --network none busybox true
as_user $PODMAN run --rm --network none localhost/busybox true

echo "load before: $(uptime)"
mkdir -p bench/results
hyperfine --runs "$RUNS" --warmup "$WARMUP" --shell=none \
    --export-json bench/results/rootless.json --export-markdown bench/results/rootless.md \
    -n "hako rootless" "runuser -u $USER_NAME -- env HOME=$HOME_DIR XDG_RUNTIME_DIR=$RUN_DIR $HAKO run --rm --network none busybox true" \
    -n "podman rootless" "runuser -u $USER_NAME -- env HOME=$HOME_DIR XDG_RUNTIME_DIR=$RUN_DIR $PODMAN run --rm --network none localhost/busybox true"
echo "load after: $(uptime)"
python3 - <<'PY'
import json
r = {x["command"]: x for x in json.load(open("bench/results/rootless.json"))["results"]}
h, p = r["hako rootless"], r["podman rootless"]
cpu = lambda x: (x["user"] + x["system"]) * 1000
print(f"hako rootless   mean {h['mean']*1000:7.1f} ms  cpu {cpu(h):6.1f} ms")
print(f"podman rootless mean {p['mean']*1000:7.1f} ms  cpu {cpu(p):6.1f} ms")
print(f"ratio podman/hako: wall {p['mean']/h['mean']:.2f}x, cpu {cpu(p)/cpu(h):.2f}x")
PY
