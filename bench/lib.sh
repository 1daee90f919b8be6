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
