# Shared helpers for scripts/*.sh (sourced, not run).

# Install Debian packages that are missing (dpkg -s keeps reruns fast).
ensure_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "==> installing ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
    fi
}

# The packages that tests, the quick start and the benchmark use.
HAKO_PACKAGES=(busybox-static runc crun hyperfine tini iproute2 util-linux procps ca-certificates docker-registry docker.io containerd podman xfsprogs skopeo criu nftables
    qemu-system-x86 cpio kmod xz-utils jq
    # the CRI test: CNI plugins for pod networks, protoc for the k8s-cri gRPC bindings
    containernetworking-plugins protobuf-compiler)

# The cargo target dir (honours CARGO_TARGET_DIR).
target_dir() {
    echo "${CARGO_TARGET_DIR:-$(pwd)/target}"
}

# Release binaries. hako-runtime is then relinked statically (glibc static-pie): it is
# exec'd on every container start (twice, with the sealing re-exec, see seal.rs), and a
# static image skips the dynamic loader: about a fifth of its CPU time per `run`
# (bench/runtime-startup.sh). Only the final crate gets the flag; a global RUSTFLAGS
# would break the workspace's proc-macro crates.
build_release() {
    cargo build --release --workspace --bins
    cargo rustc --release -p hako-runtime --bin hako-runtime -- -C target-feature=+crt-static
    # hako-init is bind-mounted into arbitrary images for --init: it must be static too.
    sh scripts/build-init.sh >/dev/null
    # hako-shim outlives the CLI for every container: static, small and fast to exec.
    cargo rustc --release -p hako-shim --bin hako-shim -- -C target-feature=+crt-static
}

step() {
    echo
    echo "==> $*"
}
