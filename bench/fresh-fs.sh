#!/usr/bin/env bash
# bench/fresh-fs.sh MNT IMG: mount a brand-new ext4 (with a journal, as a Docker host's
# data root has) from the sparse file IMG at MNT, unmounting whatever was there.
# bench/fresh-fs.sh --umount MNT IMG: unmount and remove IMG.
#
# Why the benchmarks write into a fresh filesystem for every run: this VM's root ext4 has
# no journal, and ext4 without a journal will not reuse an inode freed in the last 60 s
# (5 minutes while its block is dirty): every file creation scans past all of them
# (`recently_deleted()` in fs/ext4/ialloc.c). After the `rm -rf` of the previous run's
# 30,000 files that scan cost more than the unpack itself, and it depended on how long
# ago the last run was: tar -x of the bench image took 9.6-27 s there, 2.2-2.7 s here.
set -euo pipefail
umount_only=""
if [ "${1:-}" = --umount ]; then umount_only=1; shift; fi
MNT="$1" IMG="$2"
if mountpoint -q "$MNT"; then umount "$MNT"; fi
rm -f "$IMG"
[ -n "$umount_only" ] && exit 0
truncate -s "${FS_SIZE:-8G}" "$IMG"
mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 "$IMG"
mkdir -p "$MNT"
# noinit_itable: no background zeroing of inode tables during the measured run.
mount -o loop,noinit_itable "$IMG" "$MNT"
