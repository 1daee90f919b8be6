#!/usr/bin/env bash
# A throw-away QEMU guest running Debian's own kernel on this host's userland, for the tests
# that need what the host kernel lacks: pure cgroup v2, systemd as PID 1, XFS quotas.
#
#   scripts/vm/vm.sh setup                  Debian kernel (apt-get download) + initramfs, cached
#   scripts/vm/vm.sh boot KIND JOBDIR       boot, run JOBDIR/job.sh in the guest, print its "@@" lines
#
# KIND is `v2` (a shell script is PID 1 and mounts cgroup2 alone at /sys/fs/cgroup) or
# `systemd` (the host's systemd 252 boots as PID 1, with a target that runs the job).
# The guest's / is an overlay: the host's / shared read-only over 9p below, a tmpfs above,
# so every binary, test executable and fixture is at the same path as on the host, and
# nothing the guest writes reaches the host, except JOBDIR (a second, writable 9p share,
# mounted at /job): job.sh writes logs there, and its exit status lands in JOBDIR/status.
#
# Env: HAKO_VM_CACHE (default /var/cache/hako-vm), HAKO_VM_TIMEOUT (seconds, default 900),
# HAKO_VM_MEM (MiB, default 2048).
# Facts behind the choices (measured on the 2-core CI machine): KVM cannot run a guest here
# (/dev/kvm is a PVM backend), so this is TCG, ~50x slower than the host; the uncompressed
# vmlinux boots through its PVH note and skips the ~7 s the xz decompressor takes under TCG.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${HAKO_VM_CACHE:-/var/cache/hako-vm}
TIMEOUT=${HAKO_VM_TIMEOUT:-900}
MEM=${HAKO_VM_MEM:-2048}
# Modules the initramfs needs to reach the root (dependency order); everything else is
# loaded on demand inside the guest from the kernel's full module tree.
INITRD_MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay"

die() { echo "vm: $*" >&2; exit 1; }

# The kernel package linux-image-amd64 points at (Debian's current stable kernel).
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null \
        | awk '/Depends: linux-image-[0-9]/{print $2; exit}'
}

kernel_dir() {
    local pkg; pkg=$(kernel_package)
    [ -n "$pkg" ] || die "apt knows no linux-image-amd64 (run apt-get update)"
    echo "$CACHE/${pkg#linux-image-}"
}

setup() {
    command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing (apt-get install qemu-system-x86)"
    [ -x /bin/busybox ] && file -L /bin/busybox | grep -q static \
        || die "/bin/busybox must be busybox-static (apt-get install busybox-static)"
    local kd; kd=$(kernel_dir)
    local kver; kver=$(basename "$kd")
    if [ ! -e "$kd/.done" ]; then
        echo "vm: fetching linux-image-$kver (download only, never installed on the host)"
        mkdir -p "$CACHE"
        tmp=$(mktemp -d "$CACHE/.fetch.XXXXXX")   # global: the EXIT trap needs it
        trap 'rm -rf "${tmp:-}"' EXIT
        (cd "$tmp" && apt-get download -q "linux-image-$kver" >/dev/null 2>&1) \
            || (cd "$tmp" && apt-get update -qq && apt-get download -q "linux-image-$kver") \
            || die "cannot download linux-image-$kver"
        mkdir -p "$tmp/k"
        dpkg-deb -x "$tmp"/linux-image-*.deb "$tmp/k"
        depmod -b "$tmp/k" "$kver"      # the package ships no modules.dep
        # The xz stream inside the bzImage, decompressed (xz complains about the trailer).
        local off; off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$tmp/k/boot/vmlinuz-$kver" | head -1 | cut -d: -f1)
        [ -n "$off" ] || die "vmlinuz-$kver is not xz-compressed: cannot extract vmlinux"
        tail -c +$((off + 1)) "$tmp/k/boot/vmlinuz-$kver" | xz -dc > "$tmp/k/vmlinux" 2>/dev/null || true
        [ "$(head -c 4 "$tmp/k/vmlinux" | od -An -c | tr -d ' ')" = 177ELF ] \
            || die "could not extract an ELF vmlinux from vmlinuz-$kver"
        touch "$tmp/k/.done"
        rm -rf "$kd"; mv "$tmp/k" "$kd"
    fi
    build_initrd "$kd" "$kver"
}

build_initrd() {
    local kd=$1 kver=$2
    local out="$kd/initrd.cpio.gz"
    local stamp; stamp=$(sha256sum "$HERE/vm.sh" /bin/busybox | sha256sum | cut -c1-16)
    [ -e "$out" ] && [ "$(cat "$kd/initrd.stamp" 2>/dev/null)" = "$stamp" ] && return 0
    local d; d=$(mktemp -d)
    mkdir -p "$d"/{bin,lib/modules,proc,sys,dev,lower,upper,newroot}
    cp /bin/busybox "$d/bin/busybox"
    for m in $INITRD_MODULES; do
        local f; f=$(find "$kd/lib/modules/$kver/kernel" -name "$m.ko" | head -1)
        [ -n "$f" ] || die "module $m.ko not in $kd"
        cp "$f" "$d/lib/modules/"
    done
    write_init "$kver" > "$d/init"
    chmod 755 "$d/init"
    (cd "$d" && find . | cpio -o -H newc --quiet | gzip -1) > "$out.tmp"
    mv "$out.tmp" "$out"
    echo "$stamp" > "$kd/initrd.stamp"
    rm -rf "$d"
}

# PID 1 of the initramfs: the host's / (9p, read-only) under a tmpfs, then stage 2 from
# the checkout (scripts/vm/guest/stage2.sh), which is PID 1 for the rest of the boot.
write_init() {
cat <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $INITRD_MODULES; do
    insmod /lib/modules/\$m.ko || echo "@@ vm: insmod \$m failed"
done
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^\$1=//p" | tail -1; }
fail() { echo "@@ vm: \$*"; echo "@@ vm-status 125"; poweroff -f; }
# 9p: cache=loose keeps what the guest read (the host's files do not change during a boot).
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /lower \
    || fail "cannot mount the host root over 9p"
mount -t tmpfs -o mode=755 upper /upper && mkdir -p /upper/u /upper/w
mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w root /newroot \
    || fail "cannot mount the overlay root"
mkdir -p /newroot/job /newroot/lib/modules/$kver
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 job /newroot/job \
    || fail "cannot mount the job share"
# The guest kernel's own modules (the host's /lib/modules is for the host kernel).
mount --bind "/lower\$(arg hako.modules)" /newroot/lib/modules/$kver
stage2=\$(arg hako.stage2)
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /bin/sh "\$stage2"
INIT
}

boot() {
    local kind=${1:?kind} job=${2:?job dir}
    case "$kind" in v2|systemd) ;; *) die "unknown guest kind $kind (v2, systemd)" ;; esac
    job=$(cd "$job" && pwd)
    [ -e "$job/job.sh" ] || die "$job/job.sh is missing"
    local kd; kd=$(kernel_dir)
    local kver; kver=$(basename "$kd")
    [ -e "$kd/.done" ] && [ -e "$kd/initrd.cpio.gz" ] || die "no guest kernel in $kd: run $0 setup"
    rm -f "$job/status"
    # no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check can
    # time out and panic ("IO-APIC + timer doesn't work"), as it can in any slow VM.
    # apparmor=0: Debian's kernel enables AppArmor, but the host's userland has no
    # apparmor_parser (dockerd would refuse to start containers without it).
    local append="console=ttyS0 quiet panic=-1 no_timer_check apparmor=0 hako.kind=$kind hako.stage2=$HERE/guest/stage2.sh hako.modules=$kd/lib/modules/$kver"
    [ "$kind" = systemd ] && append+=" systemd.unit=hako-vm.target systemd.show_status=0"
    # JOBDIR/disk.img: a disk that outlives the boot (stage 2 keeps hako's store and
    # systemd's units on it), for a job that reboots the guest.
    local disk=()
    [ -e "$job/disk.img" ] && disk=(-drive "file=$job/disk.img,format=raw,if=virtio,cache=unsafe")
    rm -f "$job/rebooted" "$job/reboot"
    : > "$job/console.log"
    local t0; t0=$(date +%s.%N)
    local qrc n qpid locked=
    for n in 1 2; do
        # panic=-1 + -no-reboot: a kernel panic (or a reboot) ends qemu; timeout ends a
        # guest that hangs.
        set +e
        timeout --kill-after=10 "$TIMEOUT" qemu-system-x86_64 -accel tcg -m "$MEM" -smp 2 \
            -kernel "$kd/vmlinux" -initrd "$kd/initrd.cpio.gz" -append "$append" \
            -nographic -no-reboot -nodefaults -serial stdio -monitor none \
            -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
            -virtfs "local,path=$job,mount_tag=job,security_model=none,multidevs=remap" \
            "${disk[@]}" </dev/null > >(tr -d '\r' >> "$job/console.log") 2>&1 &
        qpid=$!
        # A guest kernel whose CPUs are all stuck (the watchdog's soft lockup, a minute
        # and more: seen twice under TCG, each right after a memory cgroup's OOM kill,
        # with nothing running any more) is ended now instead of at the timeout; the
        # caller (scripts/vm/test.sh) boots the guest once more.
        while kill -0 "$qpid" 2>/dev/null; do
            if grep -aqE 'soft lockup - CPU#[0-9]+ stuck for ([6-9][0-9]|[0-9]{3,})s' "$job/console.log"; then
                locked=1
                kill "$qpid" 2>/dev/null
                break
            fi
            sleep 2
        done
        wait "$qpid"
        qrc=$?
        sleep 0.5 # the console's last lines, through tr
        set -e
        [ -z "$locked" ] || break
        # The job asked for a reboot (stage 2's hako-vm-finish): boot once more.
        [ "$qrc" = 0 ] && [ ! -e "$job/status" ] && [ -e "$job/rebooted" ] && [ "$n" = 1 ] || break
        # How long the guest's shutdown took, on its own clock: from stage 2's line before
        # `systemctl reboot` to the kernel's "Restarting system".
        local said restarted
        said=$(grep -a '^@@ vm: reboot' "$job/console.log" | tail -1 | sed -n 's/.*uptime=\([0-9.]*\).*/\1/p' || true)
        restarted=$(grep -a 'reboot: Restarting system' "$job/console.log" | tail -1 \
            | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p' || true)
        [ -n "$said" ] && [ -n "$restarted" ] \
            && echo "vm: $kind guest shutdown (systemctl reboot to the kernel's restart): $(awk "BEGIN{printf \"%.1f\", $restarted-$said}")s"
        echo "vm: $kind guest rebooted after $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N)-$t0}")s"
    done
    local wall; wall=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N)-$t0}")
    grep -a '^@@' "$job/console.log" || true
    echo "vm: $kind guest: qemu rc=$qrc, ${wall}s wall (console: $job/console.log)"
    if [ -n "$locked" ]; then
        echo "vm: the $kind guest's kernel locked up (soft lockup on every CPU): ended" >&2
        exit 3
    fi
    [ "$qrc" = 124 ] && die "the $kind guest did not finish within ${TIMEOUT}s"
    local status; status=$(cat "$job/status" 2>/dev/null || true)
    [ -n "$status" ] || die "the $kind guest ended without a status (see $job/console.log)"
    return "$status"
}

case "${1:-}" in
    setup) setup ;;
    boot) shift; boot "$@" ;;
    *) echo "usage: $0 setup | boot v2|systemd JOBDIR" >&2; exit 2 ;;
esac
