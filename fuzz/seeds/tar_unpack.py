#!/usr/bin/env python3
"""Writes the seed corpus of the tar_unpack target: benign layers with every entry kind
hako unpacks, and the hostile tars of crates/hako-storage/tests/unpack.rs, plus ones aimed
at the parent-layer tree the target puts in the layer dir (symlinks `out -> ../outside`,
`abs -> /outside`, `etc -> /etc`, `up -> ..`).

    python3 fuzz/seeds/tar_unpack.py fuzz/seeds/tar_unpack

Seeds end right after the tar end marker (no 10 KiB record padding) to stay small."""

import gzip
import io
import os
import subprocess
import sys
import tarfile


def entry(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, link="", pax=None, **kw):
    return (name, kind, data, mode, link, pax or {}, kw)


def build(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, data, mode, link, pax, kw in entries:
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.mode = mode
            ti.mtime = kw.get("mtime", 1700000000)
            ti.uid = kw.get("uid", 0)
            ti.gid = kw.get("gid", 0)
            ti.linkname = link
            ti.devmajor = kw.get("major", 0)
            ti.devminor = kw.get("minor", 0)
            ti.pax_headers = pax
            if kind == tarfile.REGTYPE:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)
    raw = buf.getvalue()
    # Cut the record padding after the two zero blocks that end the archive.
    end = len(raw)
    while end >= 1024 and raw[end - 512:end] == bytes(512) and raw[end - 1024:end - 512] == bytes(512):
        end -= 512
    return raw[: end + 512]


D, F, S, H = tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE

SEEDS = {
    "benign-kinds": [
        entry("./", D, mode=0o755),
        entry("bin/", D, mode=0o755),
        entry("bin/sh", F, b"#!/bin/sh\necho hi\n", mode=0o4755),
        entry("bin/ash", H, link="bin/sh"),
        entry("bin/busybox", S, link="sh"),
        entry("dev/", D),
        entry("dev/null", tarfile.CHRTYPE, mode=0o666, major=1, minor=3),
        entry("dev/loop0", tarfile.BLKTYPE, mode=0o660, major=7, minor=0),
        entry("run/fifo", tarfile.FIFOTYPE, mode=0o600),
        entry("etc/passwd", F, b"root:x:0:0:root:/root:/bin/sh\n", uid=0, gid=0),
        entry("home/user/", D, mode=0o700, uid=1000, gid=1000),
        entry("home/user/.profile", F, b"export A=1\n", mode=0o600, uid=1000, gid=1000),
    ],
    "benign-pax": [
        entry("usr/bin/ping", F, b"\x7fELF", mode=0o755,
              pax={"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00",
                   "SCHILY.xattr.user.comment": "hi",
                   "mtime": "1700000000.123456789", "uid": "70000", "gid": "70001"}),
        entry("a/" + "long-name-" * 12 + "/file", F, b"long\n"),
        entry("a/trusted", F, b"x", pax={"SCHILY.xattr.trusted.overlay.opaque": "y"}),
    ],
    "benign-gnu-longname": [entry("d/" + "x" * 150, F, b"gnu long name\n")],
    "whiteouts": [
        entry("base/.wh.file", F),
        entry("base/dir/.wh..wh..opq", F),
        entry("base/dir/new", F, b"new\n"),
        entry(".wh.out", F),
        entry("etc/.wh.passwd", F),
    ],
    "replace-kinds": [
        entry("base/file/", D),
        entry("base/dir", F, b"now a file\n"),
        entry("base/dir/escape", F, b"through a file?\n"),
        entry("abs/", D),
        entry("base/dir2", S, link="/outside"),
        entry("base/dir2/x", F, b"x"),
    ],
    "root-mode": [entry("./", D, mode=0o000), entry("x", F, b"x")],
    # crates/hako-storage/tests/unpack.rs: evil_tars_are_refused_and_write_nothing_outside
    "evil-dot-dot": [entry("../outside/x", F, b"x")],
    "evil-dot-dot-deep": [entry("a/", D), entry("a/../../outside/x", F, b"x")],
    "evil-absolute": [entry("/tmp/hako-evil", F, b"x")],
    "evil-symlink-abs-write": [entry("link", S, link="/outside"), entry("link/x", F, b"x")],
    "evil-symlink-rel-write": [entry("link", S, link="../outside"), entry("link/x", F, b"x")],
    "evil-symlink-up-dir": [entry("up2", S, link=".."), entry("up2/outside/newdir/", D)],
    "evil-hardlink-dot-dot": [entry("h", H, link="../outside/file")],
    "evil-hardlink-abs": [entry("h", H, link="/etc/passwd")],
    "evil-hardlink-missing": [entry("h", H, link="nothere")],
    "evil-hardlink-through-symlink": [entry("s", S, link="/etc"), entry("h", H, link="s/passwd")],
    "evil-whiteout-through-symlink": [entry("s", S, link="../outside"), entry("s/.wh.file", F)],
    # Through the parent-layer tree the target prepares.
    "evil-base-out": [entry("out/file", F, b"pwned\n")],
    "evil-base-abs": [entry("abs/file", F, b"pwned\n"), entry("abs/dir/", D)],
    "evil-base-etc": [entry("etc/passwd", F, b"pwned\n")],
    "evil-base-up": [entry("up/outside/file", F, b"pwned\n")],
    "evil-base-hardlink": [entry("h", H, link="out/file"), entry("h2", H, link="base/dir/escape")],
    "evil-base-whiteout": [entry("out/.wh.file", F), entry("abs/.wh..wh..opq", F)],
    "evil-base-xattr": [entry("base/dir/escape", S, link="../../../outside/file",
                              pax={"SCHILY.xattr.user.x": "1"})],
    "evil-device-then-file": [entry("disk", tarfile.BLKTYPE, major=8, minor=0),
                              entry("disk", F, b"over a device\n")],
    "evil-fifo-then-dir": [entry("p", tarfile.FIFOTYPE), entry("p/", D), entry("p/x", F, b"x")],
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, entries in SEEDS.items():
        fmt = tarfile.GNU_FORMAT if "gnu" in name else tarfile.PAX_FORMAT
        data = build(entries, fmt)
        with open(os.path.join(out, name + ".tar"), "wb") as f:
            f.write(data)
    for name in ["benign-kinds", "evil-base-out"]:
        data = build(SEEDS[name])
        with open(os.path.join(out, name + ".tar.gz"), "wb") as f:
            f.write(gzip.compress(data, mtime=0))
        zst = subprocess.run(["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE, check=True)
        with open(os.path.join(out, name + ".tar.zst"), "wb") as f:
            f.write(zst.stdout)


if __name__ == "__main__":
    main()
