#!/usr/bin/env bash
# Install hako: the binaries (hako, hako-runtime, hako-shim, hako-init, hako-dns), bash/zsh/fish
# completions, man pages and the systemd unit for `hako system boot`.
#
#   scripts/install.sh                          build (release) and install under /usr/local
#   PREFIX=/usr DESTDIR=/tmp/pkg scripts/install.sh   staged, for packaging
#   NO_BUILD=1 scripts/install.sh               install what target/release already holds
#   NO_BUILD=1 HAKO_BUILD_DIR=target/debug ...  from another build directory
#
# hako finds its shim, runtime and init next to itself, so all binaries go to one bin dir.
# hako-init, hako-shim and hako-runtime are static-pie (checked before anything is copied).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

PREFIX="${PREFIX:-/usr/local}"
DESTDIR="${DESTDIR:-}"
ROOT="$DESTDIR$PREFIX"
BINS=(hako hako-runtime hako-shim hako-init hako-dns)

if [ -z "${NO_BUILD:-}" ]; then
    step "build (release)"
    build_release
fi
REL="${HAKO_BUILD_DIR:-$(target_dir)/release}"
check_static "$REL"
for b in "${BINS[@]}"; do
    [ -x "$REL/$b" ] || { echo "install.sh: $REL/$b is missing (cargo build --release)" >&2; exit 1; }
done

step "binaries -> $ROOT/bin"
install -d -m 0755 "$ROOT/bin"
for b in "${BINS[@]}"; do
    install -m 0755 "$REL/$b" "$ROOT/bin/$b"
done

step "completions"
install -d -m 0755 "$ROOT/share/bash-completion/completions" "$ROOT/share/zsh/site-functions" \
    "$ROOT/share/fish/vendor_completions.d"
"$REL/hako" completion bash >"$ROOT/share/bash-completion/completions/hako"
"$REL/hako" completion zsh >"$ROOT/share/zsh/site-functions/_hako"
"$REL/hako" completion fish >"$ROOT/share/fish/vendor_completions.d/hako.fish"
chmod 0644 "$ROOT/share/bash-completion/completions/hako" "$ROOT/share/zsh/site-functions/_hako" \
    "$ROOT/share/fish/vendor_completions.d/hako.fish"

step "man pages -> $ROOT/share/man/man1"
install -d -m 0755 "$ROOT/share/man/man1"
"$REL/hako" manpages "$ROOT/share/man/man1"
chmod 0644 "$ROOT"/share/man/man1/hako*.1

if [ -f scripts/hako-boot.service ]; then
    step "systemd unit -> $ROOT/lib/systemd/system"
    install -d -m 0755 "$ROOT/lib/systemd/system"
    sed "s|@BINDIR@|$PREFIX/bin|g" scripts/hako-boot.service >"$ROOT/lib/systemd/system/hako-boot.service"
    chmod 0644 "$ROOT/lib/systemd/system/hako-boot.service"
fi

echo
echo "installed under $ROOT; try: $PREFIX/bin/hako version"
