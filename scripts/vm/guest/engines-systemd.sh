#!/bin/sh
# In the systemd guest: hako-runtime under the engines' systemd cgroup drivers, unchanged:
#   - dockerd with `native.cgroupdriver=systemd` and hako-runtime as its default runtime
#   - containerd's runc v2 shim with `SystemdCgroup = true` (`ctr run --runc-systemd-cgroup`,
#     which sets that same option of the shim) and `BinaryName` = hako-runtime
# Each: the container's scope exists with the limits as unit properties and in its files,
# the process is in it, `update` reaches both, and after removal no scope, cgroup, mount or
# process is left. Prints "@@ check NAME ok|FAILED: why"; exits 1 on the first failure.
# Env (from scripts/vm/test.sh's job): HAKO_RUNTIME, HAKO_FIXTURES.
set -u
rt=${HAKO_RUNTIME:?}
rootfs=${HAKO_FIXTURES:?}/busybox-rootfs
work=$(mktemp -d /tmp/hako-engines.XXXXXX)
failed=0

ok() { echo "@@ check $1 ok"; }
fail() {
    echo "@@ check $1 FAILED: $2"
    failed=1
}
# expect NAME WANT GOT
expect() {
    if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "want '$2', got '$3'"; fi
}
show() { systemctl show -p "$2" --value "$1"; }
gone() { # UNIT: wait for systemd to forget it
    i=0
    while [ "$(show "$1" LoadState)" != not-found ] && [ $i -lt 100 ]; do
        sleep 0.2
        i=$((i + 1))
    done
    [ "$(show "$1" LoadState)" = not-found ]
}
wait_for() { # SECONDS COMMAND...: until COMMAND succeeds
    n=$(($1 * 5))
    shift
    while ! "$@" >/dev/null 2>&1; do
        n=$((n - 1))
        [ $n -gt 0 ] || return 1
        sleep 0.2
    done
}
leftovers() { # DIR: mounts and processes that mention it
    grep -F " $1" /proc/self/mountinfo | cut -d' ' -f5
    for p in /proc/[0-9]*; do
        tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF "$1" && echo "pid ${p#/proc/}: $(tr '\0' ' ' <"$p/cmdline")"
    done
}

# ------------------------------------------------------------------ dockerd
d=$work/docker
mkdir -p "$d"
cat >"$d/daemon.json" <<EOF
{
  "exec-opts": ["native.cgroupdriver=systemd"],
  "runtimes": {"hako": {"path": "$rt"}},
  "default-runtime": "hako",
  "bridge": "none", "iptables": false, "ip6tables": false, "ip-masq": false,
  "userland-proxy": false
}
EOF
dockerd --config-file "$d/daemon.json" --data-root "$d/data" --exec-root "$d/exec" \
    --pidfile "$d/docker.pid" -H "unix://$d/docker.sock" >"$d/dockerd.log" 2>&1 &
dpid=$!
docker() { DOCKER_HOST="unix://$d/docker.sock" DOCKER_CONFIG="$d/cli" /usr/bin/docker "$@"; }
t0=$(cut -d' ' -f1 /proc/uptime)
if wait_for 120 docker version; then
    echo "@@ vm: dockerd up in $(awk "BEGIN{print $(cut -d' ' -f1 /proc/uptime)-$t0}")s"
    expect dockerd-driver "systemd 2" "$(docker info --format '{{.CgroupDriver}} {{.CgroupVersion}}')"
    tar -C "$rootfs" -c . | docker import -c 'CMD ["sh"]' - hakovm/busybox >/dev/null
    id=$(docker run -d --network none -m 64m --pids-limit 50 --cpus 0.5 hakovm/busybox sleep 1000)
    unit=docker-$id.scope
    expect dockerd-runtime hako "$(docker inspect -f '{{.HostConfig.Runtime}}' "$id")"
    # hako-runtime's own state of the container (runc's would be state.json of another shape).
    # (dockerd 20.10 keeps every runtime's state under runtime-runc/moby.)
    sdir=$(find "$d/exec" -type d -path "*/runtime-*/moby/$id" | head -1)
    st=$("$rt" --root "$(dirname "${sdir:-/nonexistent/x}")" state "$id" 2>&1 | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p')
    [ "$st" = running ] || st="$st (no hako-runtime state; dirs: $(find "$d/exec" -maxdepth 3 -type d | tr '\n' ' '))"
    expect dockerd-hako-state running "$st"
    expect dockerd-scope "active /system.slice/$unit 67108864 50 500ms" \
        "$(show "$unit" ActiveState) $(show "$unit" ControlGroup) $(show "$unit" MemoryMax) $(show "$unit" TasksMax) $(show "$unit" CPUQuotaPerSecUSec)"
    cg=/sys/fs/cgroup/system.slice/$unit
    expect dockerd-files "67108864 50 50000 100000" "$(cat "$cg/memory.max" "$cg/pids.max" "$cg/cpu.max" | tr '\n' ' ' | sed 's/ $//')"
    pid=$(docker inspect -f '{{.State.Pid}}' "$id")
    expect dockerd-process "0::/system.slice/$unit" "$(cat "/proc/$pid/cgroup")"
    expect dockerd-cgroupns "0::/" "$(docker exec "$id" cat /proc/self/cgroup)"
    upd=$(docker update -m 32m --memory-swap 64m "$id" 2>&1)
    got="$(cat "$cg/memory.max") $(show "$unit" MemoryMax)"
    [ "$got" = "33554432 33554432" ] || got="$got (docker update: $upd)"
    expect dockerd-update "33554432 33554432" "$got"
    # The limit holds: dd's 64 MiB buffer under 16 MiB is OOM-killed.
    expect dockerd-oom 137 "$(docker run --rm --network none -m 16m --memory-swap 16m hakovm/busybox \
        sh -c 'dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo $?')"
    docker rm -f "$id" >/dev/null
    if gone "$unit" && [ ! -e "$cg" ]; then ok dockerd-scope-gone; else fail dockerd-scope-gone "$unit: $(show "$unit" ActiveState), $cg"; fi
else
    fail dockerd-start "dockerd did not answer in 120 s: $(tail -5 "$d/dockerd.log")"
fi
kill "$dpid" 2>/dev/null
wait "$dpid"
left=$(leftovers "$d"; systemctl list-units --all --no-legend 'docker-*.scope')
expect dockerd-nothing-left "" "$left"

# ---------------------------------------------------------------- containerd
c=$work/containerd
mkdir -p "$c"
cat >"$c/config.toml" <<EOF
version = 2
root = "$c/root"
state = "$c/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$c/containerd.sock"
EOF
containerd --config "$c/config.toml" >"$c/containerd.log" 2>&1 &
cpid=$!
ctr() { command ctr -a "$c/containerd.sock" -n hakovm "$@"; }
if wait_for 60 ctr version; then
    id=hakovm-ctr-$$
    unit=hakoctr-$id.scope
    cp -a "$rootfs" "$c/rootfs"
    ctr run -d --rootfs --runc-binary "$rt" --runc-systemd-cgroup \
        --cgroup "system.slice:hakoctr:$id" --memory-limit 67108864 \
        "$c/rootfs" "$id" sleep 1000 >"$c/run.log" 2>&1 || fail ctr-run "$(cat "$c/run.log")"
    expect ctr-scope "active /system.slice/$unit 67108864" \
        "$(show "$unit" ActiveState) $(show "$unit" ControlGroup) $(show "$unit" MemoryMax)"
    cg=/sys/fs/cgroup/system.slice/$unit
    expect ctr-files 67108864 "$(cat "$cg/memory.max")"
    pid=$(ctr task ls | awk -v id="$id" '$1 == id {print $2}')
    expect ctr-process "0::/system.slice/$unit" "$(cat "/proc/$pid/cgroup" 2>&1)"
    # The shim ran hako-runtime: its state under the shim's runtime root (Root's default).
    expect ctr-hako-state running \
        "$("$rt" --root /run/containerd/runc/hakovm state "$id" 2>/dev/null | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p')"
    # ctr's spec has no cgroup namespace: an exec sees (and joins) the scope.
    expect ctr-exec "0::/system.slice/$unit" "$(ctr task exec --exec-id e1 "$id" cat /proc/self/cgroup 2>&1)"
    ctr task kill -s KILL "$id"
    wait_for 30 sh -c "! command ctr -a '$c/containerd.sock' -n hakovm task ls | grep -q RUNNING"
    ctr task delete "$id" >/dev/null
    ctr container delete "$id" >/dev/null
    if gone "$unit" && [ ! -e "$cg" ]; then ok ctr-scope-gone; else fail ctr-scope-gone "$unit: $(show "$unit" ActiveState)"; fi
else
    fail containerd-start "containerd did not answer in 60 s: $(tail -5 "$c/containerd.log")"
fi
kill "$cpid" 2>/dev/null
wait "$cpid"
left=$(leftovers "$c"; systemctl list-units --all --no-legend 'hakoctr-*.scope')
expect ctr-nothing-left "" "$left"

[ "$failed" = 0 ] || { echo "@@ vm: dockerd log tail:"; tail -20 "$d/dockerd.log" | sed 's/^/@@   /'; }
rm -rf "$work"
exit "$failed"
