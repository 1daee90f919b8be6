#!/bin/sh
# Stage 2 of the test guest, PID 1 on the overlay root (see scripts/vm/vm.sh). Runs on the
# host's own /bin/sh. Kind `v2`: mounts cgroup2 alone at /sys/fs/cgroup (with nsdelegate,
# as systemd does), runs /job/job.sh, powers off. Kind `systemd`: adds a target that runs
# the job as a service, removes the host's enabled units from the guest's view, and execs
# systemd. Lines starting with "@@" are the ones the host prints.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p" | tail -1; }
up() { cut -d' ' -f1 /proc/uptime; }
kind=$(arg hako.kind)
echo "@@ vm: stage2 kind=$kind kernel=$(uname -r) uptime=$(up)"
# Anything that sees the host's files must never write there: the overlay keeps the
# guest's writes in memory; /job is the one way back.
printf '' > /etc/fstab
# The host may itself run in a container: its marker would make systemd (and the tests)
# believe the guest is one.
rm -f /.dockerenv /run/.containerenv
echo hako-vm > /etc/hostname
cat > /usr/local/sbin/hako-vm-finish <<'FIN'
#!/bin/sh
# hako-vm-finish STATUS: record the job's status for the host, then power off at once.
# A job that asked for a reboot (/job/reboot) gets a real one instead: its status so far is
# kept for the next boot (/job/rebooted), systemd stops everything, the kernel restarts
# (qemu -no-reboot ends, vm.sh boots the guest again).
if [ -e /job/reboot ] && [ "$(cat /proc/1/comm)" = systemd ]; then
    echo "$1" > /job/rebooted && rm -f /job/reboot
    echo "@@ vm: reboot (status so far $1) uptime=$(cut -d' ' -f1 /proc/uptime)"
    sync
    exec systemctl reboot --no-block
fi
echo "$1" > /job/status
echo "@@ vm-status $1 uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
if [ "$$" = 1 ] || [ "$(cat /proc/1/comm)" != systemd ]; then
    exec poweroff -f
fi
exec systemctl poweroff --force --force
FIN
chmod 755 /usr/local/sbin/hako-vm-finish

# Scratch space in memory, and an empty state for every engine the tests may start (the
# host's own /var/lib/docker and friends are not the guest's business). Debian's tmpfiles
# would otherwise empty the host's /tmp into the overlay at boot: slow under TCG.
# A checkout below one of them (a clone in /tmp) stays seen: bound aside, then back.
repo=$(cd "$(dirname "$0")/../../.." && pwd)
for d in /tmp /var/tmp /var/lib/hako /var/lib/docker /var/lib/containerd /var/lib/containers; do
    case "$repo/" in
    "$d"/*)
        mkdir -p /.hako-repo && mount --bind "$repo" /.hako-repo
        mkdir -p "$d" && mount -t tmpfs -o mode=755 tmpfs "$d"
        mkdir -p "$repo" && mount --bind /.hako-repo "$repo" && umount /.hako-repo
        ;;
    *) mkdir -p "$d" && mount -t tmpfs -o mode=755 tmpfs "$d" ;;
    esac
done
# A disk that survives a reboot (vm.sh attaches JOBDIR/disk.img as the first virtio disk,
# when there is one): hako's store and systemd's unit directory live on it, as they would on
# a real host's root disk, so a job can reboot the guest (`systemctl reboot`; vm.sh boots it
# again) and find what it installed and created. Everything else stays in memory.
disk=
if [ "$kind" = systemd ] && [ -e /job/disk.img ]; then
    modprobe virtio_blk && modprobe ext4 || echo "@@ vm: cannot load virtio_blk/ext4"
    disk=/var/lib/hako-vm-disk
    mkdir -p $disk && mount /dev/vda $disk || { echo "@@ vm: cannot mount the disk"; disk=; }
fi
if [ -n "$disk" ]; then
    umount /var/lib/hako
    mkdir -p $disk/hako && mount --bind $disk/hako /var/lib/hako
    boots=$(( $(cat $disk/boots 2>/dev/null || echo 0) + 1 ))
    echo $boots > $disk/boots
    echo "@@ vm: boot $boots with the disk (/var/lib/hako, /etc/systemd/system) uptime=$(up)"
fi
# pasta (rootless networking) opens /dev/net/tun: the node appears with the module (no udev
# static nodes here; the rootless tests make it 0666, as distributions do).
modprobe tun 2>/dev/null || echo "@@ vm: no tun module"
chmod 1777 /tmp /var/tmp

if [ "$kind" = systemd ]; then
    # The host enables docker, containerd, postgresql, podman sockets, apt timers...: none
    # of them belongs in the test guest (the job starts what it needs).
    for w in /etc/systemd/system/*.wants; do rm -rf "$w"; done
    # Boot work a throw-away guest does not need; each costs seconds of CPU under TCG.
    for u in systemd-random-seed.service systemd-sysusers.service modprobe@.service \
        dev-hugepages.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
        sys-kernel-config.mount sys-fs-fuse-connections.mount systemd-binfmt.service \
        proc-sys-fs-binfmt_misc.automount systemd-journal-flush.service \
        systemd-update-utmp.service systemd-update-utmp-runlevel.service \
        systemd-pstore.service systemd-tmpfiles-clean.timer ldconfig.service \
        systemd-machine-id-commit.service systemd-firstboot.service \
        systemd-hwdb-update.service systemd-journal-catalog-update.service \
        systemd-update-done.service kmod-static-nodes.service systemd-remount-fs.service \
        systemd-ask-password-console.path systemd-ask-password-wall.path \
        e2scrub_reap.service apt-daily.timer apt-daily-upgrade.timer man-db.timer getty.target; do
        ln -sf /dev/null "/etc/systemd/system/$u"
    done
    if [ -n "$disk" ]; then
        # The first boot fills the disk's unit directory with the one made above; later
        # boots find it with what the job enabled there.
        [ -d $disk/systemd-system ] || cp -a /etc/systemd/system $disk/systemd-system
        mount --bind $disk/systemd-system /etc/systemd/system
    fi
    # After a reboot, multi-user.target too: what the job enabled there (WantedBy=) runs
    # at boot, before the job.
    after=
    [ "${boots:-1}" -gt 1 ] && after=multi-user.target
    cat > /etc/systemd/system/hako-vm.target <<UNIT
[Unit]
Description=hako test guest
Requires=basic.target hako-vm.service
Wants=$after
After=basic.target hako-vm.service
AllowIsolate=yes
UNIT
    cat > /etc/systemd/system/hako-vm.service <<UNIT
[Unit]
Description=hako test job
After=basic.target dbus.socket $after
Wants=dbus.socket

[Service]
# simple: `systemctl is-system-running --wait` in the job must not wait for the job itself
Type=simple
ExecStart=/bin/sh -c 'sh /job/job.sh; hako-vm-finish \$?'
# At a reboot the job's leftovers (the shims of the containers its tests left running) get
# systemd's SIGTERM like any service's processes: each shim stops its container and ends
# (hako-shim's SIGTERM handling; reboot_2 checks the containers' kill/die events).
StandardInput=null
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/ttyS0
TTYReset=no
TTYVHangup=no
UNIT
    umount /sys /proc
    exec /lib/systemd/systemd --unit=hako-vm.target --show-status=false
fi

mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mkdir -p /dev/shm /dev/mqueue
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t mqueue mqueue /dev/mqueue
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/lock
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
# What systemd would do on such a host: every controller available to the children.
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || echo "@@ vm: cannot enable $c"
done
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
modprobe loop    # loop devices for the device-rule and XFS tests
hostname hako-vm
ip link set lo up
echo "@@ vm: cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control) uptime=$(up)"
sh /job/job.sh
hako-vm-finish $?
