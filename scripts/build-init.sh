#!/bin/sh
# Build hako-init statically linked: target/release/hako-init (or $CARGO_TARGET_DIR/release).
#
# hako-init is bind-mounted into arbitrary images (busybox, alpine, distroless) for
# `hako run --init`; a dynamically linked glibc binary would not start there. crt-static is
# passed to this one crate with `cargo rustc` (a global RUSTFLAGS=-Ctarget-feature=+crt-static
# breaks the workspace's proc-macro crates). The result is a static-pie glibc binary.
set -eu
cd "$(dirname "$0")/.."
cargo rustc -p hako-init --release --bin hako-init -- -C target-feature=+crt-static
bin="${CARGO_TARGET_DIR:-target}/release/hako-init"
# A static(-pie) binary has no program interpreter; ldd says "statically linked" or
# "not a dynamic executable".
if ldd "$bin" 2>&1 | grep -q '=>'; then
    echo "build-init.sh: $bin is dynamically linked:" >&2
    ldd "$bin" >&2
    exit 1
fi
file "$bin" 2>/dev/null || true
ls -l "$bin"
