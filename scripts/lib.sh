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
HAKO_PACKAGES=(busybox-static runc crun hyperfine tini iproute2 util-linux procps ca-certificates docker-registry docker.io containerd podman xfsprogs e2fsprogs skopeo criu nftables
    qemu-system-x86 cpio kmod xz-utils jq
    # rootless mode: newuidmap/newgidmap, pasta
    uidmap passt
    # the CRI test: CNI plugins for pod networks, protoc for the k8s-cri gRPC bindings
    containernetworking-plugins protobuf-compiler
    # hako serve's client tests: docker-compose v1 (Python, speaks the Engine API), and a venv
    # for docker-py 7.x (ensure_docker_py); openssl makes the certificates of the TLS test
    docker-compose python3-venv openssl)

# docker-py 7.x (PyPI `docker`) in a venv under the fixtures dir, for the API client tests
# (crates/hako-cli/tests/api_clients.rs): Debian's python3-docker is 5.x, compose's own.
ensure_docker_py() {
    local venv="${HAKO_FIXTURES:-$(pwd)/.fixtures}/docker-py"
    if ! "$venv/bin/python" -c 'import docker, sys; sys.exit(int(docker.__version__.split(".")[0]) < 7)' 2>/dev/null; then
        echo "==> docker-py 7.x into $venv"
        rm -rf "$venv"
        /usr/bin/python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check 'docker>=7,<8'
    fi
}

# The cargo target dir (honours CARGO_TARGET_DIR).
target_dir() {
    echo "${CARGO_TARGET_DIR:-$(pwd)/target}"
}

# Release binaries. A plain cargo build makes hako-init, hako-shim and hako-runtime static
# (glibc static-pie, .cargo/config.toml + scripts/cc-static-bins): hako-init runs in any
# image for --init; the runtime is exec'd on every container start (twice, with the
# sealing re-exec, see seal.rs) and a static image skips the dynamic loader, about a fifth
# of its CPU time per `run` (bench/runtime-startup.sh). The check fails loudly if not.
build_release() {
    cargo build --release --workspace --bins
    check_static "$(target_dir)/release"
}

# Fails unless hako-init, hako-shim and hako-runtime in DIR are static.
check_static() {
    local bin
    for bin in hako-init hako-shim hako-runtime; do
        # A static(-pie) binary has no program interpreter: ldd has no "=>" line for it.
        if ldd "$1/$bin" 2>&1 | grep -q '=>'; then
            echo "$1/$bin is dynamically linked (see scripts/cc-static-bins):" >&2
            ldd "$1/$bin" >&2
            return 1
        fi
    done
}

step() {
    echo
    echo "==> $*"
}
