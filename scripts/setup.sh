#!/usr/bin/env bash
# Quick start: install what is needed, build, and run a busybox container.
#
#   scripts/setup.sh                 with hako-runtime
#   RUNTIME=runc scripts/setup.sh    the same with runc (or crun)
#
# The bundle is left in $HAKO_DEMO (default /tmp/hako-demo) for you to play with:
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

case "$RUNTIME" in
    hako-runtime | hako) RT="$TARGET/release/hako-runtime" ;;
    */*) RT="$RUNTIME" ;;
    *) RT="$(command -v "$RUNTIME" || true)" ;;
esac
[ -x "$RT" ] || { echo "runtime $RUNTIME not found" >&2; exit 1; }

step "busybox bundle in $DEMO"
"$TARGET/release/hako-fixture" bundle "$DEMO" --hostname hako -- echo hello from hako

step "$RT run -b $DEMO"
STATE="$(mktemp -d /tmp/hako-demo-state.XXXXXX)"
trap 'rm -rf "$STATE"' EXIT
run=("$RT" --root "$STATE" run --bundle "$DEMO" "demo-$$")
if [ "$(basename "$RT")" = crun ] && grep -q ' /sys/fs/cgroup/unified ' /proc/self/mountinfo; then
    # crun cannot handle an empty cgroup2 beside cgroup v1: hide it in a private mount ns.
    unshare -m sh -c 'umount /sys/fs/cgroup/unified; exec "$@"' sh "${run[@]}"
else
    "${run[@]}"
fi
