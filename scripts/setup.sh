#!/usr/bin/env bash
# Quick start: install what is needed, build, make a `busybox` image from Debian's
# busybox-static (through `hako import`) and run `hako run --rm busybox echo hello from hako`.
#
#   scripts/setup.sh                 with hako-runtime
#   RUNTIME=runc scripts/setup.sh    the same with runc (or crun)
#
# Afterwards: target/release/hako run -it --rm busybox sh
# A plain OCI bundle is left in $HAKO_DEMO (default /tmp/hako-demo) for hako-runtime alone:
#   target/release/hako-runtime run -b /tmp/hako-demo demo
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

RUNTIME="${RUNTIME:-hako-runtime}"
DEMO="${HAKO_DEMO:-/tmp/hako-demo}"

step "packages"
ensure_packages "${HAKO_PACKAGES[@]}"

step "build (release)"
build_release
TARGET="$(target_dir)"
HAKO="$TARGET/release/hako"

step "busybox image from busybox-static (hako import)"
if ! "$HAKO" image inspect busybox >/dev/null 2>&1; then
    ROOTFS="$("$TARGET/release/hako-fixture" rootfs)"
    tar -C "$ROOTFS" -cf - . | "$HAKO" import --change 'CMD ["sh"]' - busybox
fi
"$TARGET/release/hako-fixture" bundle "$DEMO" --hostname hako -- echo hello from hako >/dev/null

step "hako run --rm busybox echo hello from hako"
if [ "$(basename "$RUNTIME")" = crun ] && grep -q ' /sys/fs/cgroup/unified ' /proc/self/mountinfo; then
    # crun cannot handle an empty cgroup2 beside cgroup v1: hide it in a private mount ns.
    unshare -m sh -c 'umount /sys/fs/cgroup/unified; exec "$@"' sh \
        "$HAKO" run --rm --runtime "$RUNTIME" busybox echo hello from hako
else
    "$HAKO" run --rm --runtime "$RUNTIME" busybox echo hello from hako
fi
echo
echo "next: $HAKO run -it --rm busybox sh"
