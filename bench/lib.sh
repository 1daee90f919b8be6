# Shared by the benchmarks (sourced after scripts/lib.sh).

# start_dockerd DATA_ROOT STATE_DIR SOCK [dockerd flags...]
#
# A private dockerd for a benchmark: its data root DATA_ROOT; its exec root, pidfile
# (STATE_DIR/docker.pid), an empty daemon.json and its log (STATE_DIR/dockerd.log) under
# STATE_DIR; its API on the unix socket SOCK. No bridge, iptables rules or userland proxy:
# nothing of the host's network changes. DOCKERD_PREFIX (say "unshare --net") runs it in
# namespaces of its own. Sets DOCKERD_PID and returns once `docker version` answers (60 s
# at most; else the log's tail and failure).
start_dockerd() {
    local data=$1 state=$2 sock=$3
    shift 3
    mkdir -p "$state"
    echo '{}' >"$state/daemon.json"
    # shellcheck disable=SC2086 # DOCKERD_PREFIX is a command line
    ${DOCKERD_PREFIX:-} dockerd --data-root "$data" --exec-root "$state/exec" \
        --pidfile "$state/docker.pid" --host "unix://$sock" \
        --config-file "$state/daemon.json" --bridge=none --iptables=false \
        --ip6tables=false --ip-masq=false --userland-proxy=false \
        "$@" >"$state/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    local _
    for _ in $(seq 300); do
        docker --host "unix://$sock" version >/dev/null 2>&1 && return 0
        kill -0 "$DOCKERD_PID" 2>/dev/null || break
        sleep 0.2
    done
    echo "dockerd did not answer on $sock; its log:" >&2
    tail -20 "$state/dockerd.log" >&2
    return 1
}

# bench_storage DIR [RUN]
#
# Where a benchmark's engines keep their files, as on the hosts users run them: data roots
# on a journaled ext4 (a sparse 8 GiB image, loop-mounted at DIR/fs) and exec roots on a
# tmpfs (RUN, default DIR/run: /run is a tmpfs on Debian, Ubuntu, Fedora...). Sets BENCH_FS and
# BENCH_RUN; both engines get the same. This VM's root filesystem is an ext4 without a
# journal: there every new inode is checked against the inodes deleted in the last 30 s
# (fs/ext4/ialloc.c, recently_deleted, only without a journal), so back-to-back container
# runs (~50 files made and removed each) slow every later file creation down, more the
# faster they run: hako's `run --rm` took 46 ms there against 27 ms on a journaled ext4
# plus tmpfs, the same binary in one interleaved run. BENCH_STORAGE=root keeps everything
# under DIR on the root filesystem. Unmounted by bench_storage_cleanup.
bench_storage() {
    local dir=$1
    BENCH_FS="$dir/fs" BENCH_RUN="${2:-$dir/run}"
    mkdir -p "$BENCH_FS" "$BENCH_RUN"
    if [ "${BENCH_STORAGE:-journaled}" = root ]; then
        echo "storage: everything on the root filesystem under $dir (BENCH_STORAGE=root)"
        return 0
    fi
    command -v mkfs.ext4 >/dev/null || ensure_packages e2fsprogs
    truncate -s 8G "$dir/fs.img"
    mkfs.ext4 -q -F -O has_journal "$dir/fs.img"
    mount -o loop "$dir/fs.img" "$BENCH_FS"
    mount -t tmpfs -o mode=0755 bench-run "$BENCH_RUN"
    echo "storage: data roots on a journaled ext4 ($dir/fs.img), exec roots on a tmpfs (BENCH_STORAGE=root: the root filesystem)"
}

# bench_storage_cleanup DIR [RUN]: unmounts what bench_storage mounted (everything mounted
# under them first).
bench_storage_cleanup() {
    local dir=$1 run=${2:-$1/run} m
    for m in $(grep -oE " ($dir|$run)(/[^ ]*)?" /proc/self/mounts | sort -r); do
        umount -l "$m" 2>/dev/null
    done
    rm -f "$dir/fs.img"
}
