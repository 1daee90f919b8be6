//! XFS project quotas: the file attribute ioctls that tag a directory with a project id,
//! and `quotactl(2)` on the block device to limit what a project may use.
//!
//! Constants and layouts are from `<linux/fs.h>` (`struct fsxattr`), `<linux/quota.h>`
//! (`QCMD`, `PRJQUOTA`) and `<linux/dqblk_xfs.h>` (`struct fs_disk_quota`,
//! `struct fs_quota_statv`). Block counts in those structs are 512-byte "basic blocks".

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `FS_XFLAG_PROJINHERIT`: files and directories created inside inherit the project id.
pub const FS_XFLAG_PROJINHERIT: u32 = 0x0000_0200;

/// `struct fsxattr` from `<linux/fs.h>`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsXattr {
    /// `FS_XFLAG_*` flags.
    pub xflags: u32,
    /// Extent size hint.
    pub extsize: u32,
    /// Number of extents (read only).
    pub nextents: u32,
    /// Project id.
    pub projid: u32,
    /// CoW extent size hint.
    pub cowextsize: u32,
    pad: [u8; 8],
}

// _IOR('X', 31, struct fsxattr) and _IOW('X', 32, struct fsxattr); the struct is 28 bytes.
const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801c_581f;
const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401c_5820;

/// `ioctl(fd, FS_IOC_FSGETXATTR)`: the extended attributes (flags, project id) of the
/// file open at `fd`.
pub fn fs_get_xattr(fd: BorrowedFd<'_>) -> io::Result<FsXattr> {
    let mut attr = FsXattr::default();
    // SAFETY: `attr` is a writable `struct fsxattr` of exactly the size encoded in the
    // request number, and lives for the whole call; `fd` is a valid open descriptor.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FSGETXATTR, &mut attr as *mut FsXattr) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(attr)
}

/// `ioctl(fd, FS_IOC_FSSETXATTR)`: sets the flags and project id of the file open at `fd`.
pub fn fs_set_xattr(fd: BorrowedFd<'_>, attr: &FsXattr) -> io::Result<()> {
    // SAFETY: the kernel only reads a `struct fsxattr` of the size encoded in the request
    // number from `attr`, which is valid and borrowed for the whole call.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FSSETXATTR, attr as *const FsXattr) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

const PRJQUOTA: libc::c_int = 2;
const fn xqm_cmd(n: libc::c_int) -> libc::c_int {
    (('X' as libc::c_int) << 8) + n
}
/// `QCMD(cmd, PRJQUOTA)`.
const fn qcmd_prj(cmd: libc::c_int) -> libc::c_int {
    (cmd << 8) | PRJQUOTA
}
const Q_XGETQUOTA: libc::c_int = xqm_cmd(3);
const Q_XSETQLIM: libc::c_int = xqm_cmd(4);
const Q_XGETQSTATV: libc::c_int = xqm_cmd(8);

const FS_DQUOT_VERSION: i8 = 1;
const FS_PROJ_QUOTA: i8 = 2;
const FS_DQ_BSOFT: u16 = 1 << 2;
const FS_DQ_BHARD: u16 = 1 << 3;
const FS_QSTATV_VERSION1: i8 = 1;
const FS_QUOTA_PDQ_ACCT: u16 = 1 << 4;
const FS_QUOTA_PDQ_ENFD: u16 = 1 << 5;

/// `struct fs_disk_quota` from `<linux/dqblk_xfs.h>`.
#[repr(C)]
#[derive(Debug, Default)]
struct FsDiskQuota {
    d_version: i8,
    d_flags: i8,
    d_fieldmask: u16,
    d_id: u32,
    d_blk_hardlimit: u64,
    d_blk_softlimit: u64,
    d_ino_hardlimit: u64,
    d_ino_softlimit: u64,
    d_bcount: u64,
    d_icount: u64,
    d_itimer: i32,
    d_btimer: i32,
    d_iwarns: u16,
    d_bwarns: u16,
    d_itimer_hi: i8,
    d_btimer_hi: i8,
    d_rtbtimer_hi: i8,
    d_padding2: i8,
    d_rtb_hardlimit: u64,
    d_rtb_softlimit: u64,
    d_rtbcount: u64,
    d_rtbtimer: i32,
    d_rtbwarns: u16,
    d_padding3: i16,
    d_padding4: [u8; 8],
}

/// `struct fs_qfilestatv`.
#[repr(C)]
#[derive(Debug, Default)]
struct FsQfilestatv {
    qfs_ino: u64,
    qfs_nblks: u64,
    qfs_nextents: u32,
    qfs_pad: u32,
}

/// `struct fs_quota_statv`.
#[repr(C)]
#[derive(Debug, Default)]
struct FsQuotaStatv {
    qs_version: i8,
    qs_pad1: u8,
    qs_flags: u16,
    qs_incoredqs: u32,
    qs_uquota: FsQfilestatv,
    qs_gquota: FsQfilestatv,
    qs_pquota: FsQfilestatv,
    qs_btimelimit: i32,
    qs_itimelimit: i32,
    qs_rtbtimelimit: i32,
    qs_bwarnlimit: u16,
    qs_iwarnlimit: u16,
    qs_rtbwarnlimit: u16,
    qs_pad3: u16,
    qs_pad4: u32,
    qs_pad2: [u64; 7],
}

/// Whether project quotas are accounted and enforced on the filesystem of the block
/// device `dev` (`quotactl(Q_XGETQSTATV, PRJQUOTA)`).
pub fn xfs_project_quota_enforced(dev: &CStr) -> io::Result<bool> {
    let mut st = FsQuotaStatv {
        qs_version: FS_QSTATV_VERSION1,
        ..FsQuotaStatv::default()
    };
    // SAFETY: `dev` is a NUL-terminated path valid for the call; `st` is a writable
    // `fs_quota_statv` with the version field set, as Q_XGETQSTATV requires, and lives
    // for the whole call.
    let ret = unsafe {
        libc::quotactl(
            qcmd_prj(Q_XGETQSTATV),
            dev.as_ptr(),
            0,
            (&mut st as *mut FsQuotaStatv).cast::<libc::c_char>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let want = FS_QUOTA_PDQ_ACCT | FS_QUOTA_PDQ_ENFD;
    Ok(st.qs_flags & want == want)
}

/// Usage and limits of one project.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProjectQuota {
    /// Block hard limit in bytes (0: none).
    pub hard_limit_bytes: u64,
    /// Bytes in use.
    pub used_bytes: u64,
    /// Inodes in use.
    pub inodes: u64,
}

/// Sets the block hard and soft limit of project `projid` on the filesystem of block
/// device `dev` to `bytes` (rounded up to 512-byte blocks; 0 removes the limit).
pub fn xfs_set_project_limit(dev: &CStr, projid: u32, bytes: u64) -> io::Result<()> {
    let blocks = bytes.div_ceil(512);
    let mut q = FsDiskQuota {
        d_version: FS_DQUOT_VERSION,
        d_flags: FS_PROJ_QUOTA,
        d_fieldmask: FS_DQ_BHARD | FS_DQ_BSOFT,
        d_id: projid,
        d_blk_hardlimit: blocks,
        d_blk_softlimit: blocks,
        ..FsDiskQuota::default()
    };
    let id =
        libc::c_int::try_from(projid).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `dev` is a NUL-terminated path valid for the call; Q_XSETQLIM reads one
    // `fs_disk_quota` (version and fieldmask set) from `q`, which outlives the call.
    let ret = unsafe {
        libc::quotactl(
            qcmd_prj(Q_XSETQLIM),
            dev.as_ptr(),
            id,
            (&mut q as *mut FsDiskQuota).cast::<libc::c_char>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Usage and limit of project `projid` on the filesystem of block device `dev`.
/// A project the filesystem has no record of reads as all zeros.
pub fn xfs_get_project_quota(dev: &CStr, projid: u32) -> io::Result<ProjectQuota> {
    let mut q = FsDiskQuota::default();
    let id =
        libc::c_int::try_from(projid).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `dev` is a NUL-terminated path valid for the call; Q_XGETQUOTA writes one
    // `fs_disk_quota` into `q`, which is writable and outlives the call.
    let ret = unsafe {
        libc::quotactl(
            qcmd_prj(Q_XGETQUOTA),
            dev.as_ptr(),
            id,
            (&mut q as *mut FsDiskQuota).cast::<libc::c_char>(),
        )
    };
    if ret < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOENT) {
            return Ok(ProjectQuota::default());
        }
        return Err(e);
    }
    Ok(ProjectQuota {
        hard_limit_bytes: q.d_blk_hardlimit * 512,
        used_bytes: q.d_bcount * 512,
        inodes: q.d_icount,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_the_kernel() {
        assert_eq!(std::mem::size_of::<FsXattr>(), 28);
        assert_eq!(std::mem::size_of::<FsDiskQuota>(), 112);
        assert_eq!(std::mem::size_of::<FsQuotaStatv>(), 160);
        assert_eq!(qcmd_prj(Q_XSETQLIM), 0x0058_0402);
    }
}
