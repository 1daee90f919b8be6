#!/bin/sh
# Build the static hako-init: target/release/hako-init (or $CARGO_TARGET_DIR/release).
#
# hako-init is bind-mounted into arbitrary images (busybox, alpine, distroless) for
# `hako run --init`; a dynamically linked glibc binary would not start there. A plain
# `cargo build` makes it static-pie (.cargo/config.toml, scripts/cc-static-bins); this
# script builds it alone and checks.
set -eu
cd "$(dirname "$0")/.."
cargo build -p hako-init --release --bin hako-init
bin="${CARGO_TARGET_DIR:-target}/release/hako-init"
if ldd "$bin" 2>&1 | grep -q '=>'; then
    echo "build-init.sh: $bin is dynamically linked:" >&2
    ldd "$bin" >&2
    exit 1
fi
file "$bin" 2>/dev/null || true
ls -l "$bin"
