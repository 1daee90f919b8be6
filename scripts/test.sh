#!/usr/bin/env bash
# The test command: installs what tests need, builds release binaries and fixtures, then
# runs format, lint and the whole test suite. Exits non-zero if any of them fails.
#
#   scripts/test.sh                   everything
#   scripts/test.sh -E 'test(/runc$/)' extra arguments go to `cargo nextest run`
#
# End-to-end tests need root; as another user they print SKIP and pass.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

set -e
step "packages"
ensure_packages "${HAKO_PACKAGES[@]}"
if ! cargo nextest --version >/dev/null 2>&1; then
    step "installing cargo-nextest"
    cargo install --locked cargo-nextest
fi

step "build (release, all binaries)"
build_release
TARGET="$(target_dir)"
export HAKO_RUNTIME="$TARGET/release/hako-runtime"
export HAKO_INIT="$TARGET/release/hako-init"

step "fixtures"
"$TARGET/release/hako-fixture" rootfs
ensure_docker_py
set +e

failed=()
step "cargo fmt --check"
cargo fmt --all --check || failed+=("fmt")

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings || failed+=("clippy")

step "cargo build --workspace --bins (debug: the binaries a plain cargo build makes, which tests check)"
cargo build --workspace --bins || failed+=("build")

# Every test runs its hako in a network namespace of its own: hako's bridge and nftables
# table must not appear in this (the host's) namespace during the run.
host_net() {
    nft list table inet hako >/dev/null 2>&1 && echo "nftables table inet hako"
    ip link show hako0 >/dev/null 2>&1 && echo "interface hako0"
    true
}
host_net_before="$(host_net)"

step "cargo nextest run --workspace"
profile=default
[ "${CI:-}" = "true" ] && profile=ci
cargo nextest run --workspace --profile "$profile" --no-tests=warn "$@" || failed+=("tests")

host_net_new="$(comm -13 <(echo "$host_net_before" | sort) <(host_net | sort) | sed '/^$/d')"
if [ -n "$host_net_new" ]; then
    echo "the tests made hako network state in the host's namespace (a test ran hako outside" \
        "its own netns, or someone ran hako by hand meanwhile): $(echo "$host_net_new" | paste -sd, -)" >&2
    failed+=("host-network")
fi

# Pure cgroup v2 and systemd as PID 1 exist only in a QEMU guest on this kind of host
# (scripts/vm/README.md). Skipped when a filter was given, so `test.sh -E ...` stays quick.
if [ "$#" -eq 0 ]; then
    step "VM stage (scripts/vm/test.sh)"
    bash scripts/vm/test.sh || failed+=("vm")
fi

echo
if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all checks passed"
