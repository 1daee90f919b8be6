//! `--storage-opt size=` on overlay2 over XFS with project quotas, on a loop-mounted XFS
//! image made by the test (needs root and mkfs.xfs; skipped with a message otherwise).
//!
//! Enforcement needs a kernel with `CONFIG_XFS_QUOTA`; on a kernel without it (XFS says
//! "quota support not available in this kernel" and refuses `-o pquota`) those tests say
//! so and return, and the rest (project id inheritance through the ioctls, detection,
//! Docker's error) still run. The VM stage (`scripts/vm`, Debian's kernel) runs them all
//! and fails there if the kernel lacks it; `vm_engine`'s `storage_opt_size_*` test is the
//! same through `hako run`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use hako_storage::{Driver, Error, Overlay2, StorageOpts};

/// A loop-mounted XFS image under /var/tmp. Drop unmounts it (the loop device goes with
/// it: `mount -o loop` sets autoclear) and deletes the image, also when the test failed.
struct XfsImage {
    dir: tempfile::TempDir,
    mnt: PathBuf,
}

impl XfsImage {
    fn new(mount_opts: &str) -> Option<XfsImage> {
        if !nix::unistd::geteuid().is_root() || which("mkfs.xfs").is_none() {
            // CI runs as root with xfsprogs (scripts/lib.sh): there this is a failure.
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "needs root and mkfs.xfs (apt-get install xfsprogs)"
            );
            eprintln!("skipped: needs root and mkfs.xfs (apt-get install xfsprogs)");
            return None;
        }
        if mount_opts.contains("quota") && !kernel_has_xfs_quota() {
            // The VM stage's guests boot Debian's kernel, which has it: there a kernel
            // without it is a failure (scripts/vm/test.sh sets HAKO_VM_KIND).
            assert!(
                std::env::var_os("HAKO_VM_KIND").is_none(),
                "the guest kernel lacks CONFIG_XFS_QUOTA"
            );
            eprintln!(
                "skipped: this kernel is built without CONFIG_XFS_QUOTA (the VM stage runs it)"
            );
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("hako-test-xfs-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let img = dir.path().join("img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        run(Command::new("truncate").args(["-s", "300M"]).arg(&img));
        run(Command::new("mkfs.xfs").arg("-q").arg(&img));
        let image = XfsImage { dir, mnt };
        run(Command::new("mount")
            .args(["-o", &format!("loop,{mount_opts}")])
            .arg(&img)
            .arg(&image.mnt));
        Some(image)
    }

    fn root(&self) -> &Path {
        &self.mnt
    }
}

impl Drop for XfsImage {
    fn drop(&mut self) {
        for m in hako_storage::mountinfo::mounts_under(&self.mnt)
            .iter()
            .rev()
        {
            if nix::mount::umount2(m, nix::mount::MntFlags::empty()).is_err() {
                let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        let _ = std::fs::remove_file(self.dir.path().join("img"));
    }
}

/// False only when /proc/config.gz says `# CONFIG_XFS_QUOTA is not set`.
fn kernel_has_xfs_quota() -> bool {
    use std::io::Read;
    let Ok(f) = std::fs::File::open("/proc/config.gz") else {
        return true;
    };
    let mut text = String::new();
    if flate2::read::GzDecoder::new(f)
        .read_to_string(&mut text)
        .is_err()
    {
        return true;
    }
    !text.lines().any(|l| l == "# CONFIG_XFS_QUOTA is not set")
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(prog))
            .find(|p| p.exists())
    })
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `mb` MiB to `path` and syncs; the first error.
fn write_mb(path: &Path, mb: usize) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    let chunk = vec![0x5au8; 1 << 20];
    for _ in 0..mb {
        f.write_all(&chunk)?;
    }
    f.sync_all()
}

fn size_opts(s: &str) -> StorageOpts {
    StorageOpts::parse(&[format!("size={s}")]).unwrap()
}

#[test]
fn size_limits_the_container_layer_and_removal_frees_the_project() {
    let Some(xfs) = XfsImage::new("pquota") else {
        return;
    };
    let d = Overlay2::new(xfs.root()).unwrap();
    assert!(d.quota_supported());
    let base = common::Tar::new()
        .dir("etc")
        .file("etc/hostname", b"base\n")
        .bytes();
    d.apply_layer("hako-test-base", None, &mut &base[..])
        .unwrap();
    d.create_rw_with("hako-test-ctr", Some("hako-test-base"), &size_opts("20M"))
        .unwrap();
    let usage = d.quota_usage("hako-test-ctr").unwrap().expect("a project");
    assert_eq!(usage.limit_bytes, 20 << 20);
    assert_ne!(usage.project_id, 0);
    // The image layer has no project, no limit.
    assert_eq!(d.quota_usage("hako-test-base").unwrap(), None);

    let m = d.mount("hako-test-ctr").unwrap();
    write_mb(&m.rootfs.join("ten"), 10).expect("10 MiB fit in a 20 MiB quota");
    let err = write_mb(&m.rootfs.join("thirty"), 30).expect_err("30 MiB must not fit");
    assert!(
        matches!(err.raw_os_error(), Some(libc::EDQUOT | libc::ENOSPC)),
        "{err}"
    );
    let used = d.quota_usage("hako-test-ctr").unwrap().unwrap().used_bytes;
    assert!((10 << 20..=20 << 20).contains(&used), "used {used}");
    // The project is full now: a copy-up of a lower file fails too, and works again once
    // the partial file is gone (the first run on a kernel with XFS quota, in the VM
    // stage, met the full project here).
    assert!(std::fs::write(m.rootfs.join("etc/hostname"), b"changed\n").is_err());
    std::fs::remove_file(m.rootfs.join("thirty")).unwrap();
    std::fs::write(m.rootfs.join("etc/hostname"), b"changed\n").unwrap();

    let projid = usage.project_id;
    d.remove("hako-test-ctr").unwrap();
    let dev = std::ffi::CString::new(format!(
        "{}/overlay2/backingFsBlockDev",
        xfs.root().display()
    ))
    .unwrap();
    // XFS frees removed inodes' blocks in the background (deferred inactivation, 5.19+):
    // a sync flushes that work, then the project's usage is back to nothing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let q = loop {
        nix::unistd::sync();
        let q = hako_sys::quota::xfs_get_project_quota(&dev, projid).unwrap();
        if q.used_bytes == 0 || std::time::Instant::now() > deadline {
            break q;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!((q.used_bytes, q.hard_limit_bytes), (0, 0), "{q:?}");

    // The freed id is handed out again, with a fresh limit and nothing used.
    d.create_rw_with("hako-test-ctr2", Some("hako-test-base"), &size_opts("5M"))
        .unwrap();
    let again = d.quota_usage("hako-test-ctr2").unwrap().unwrap();
    assert_eq!(again.project_id, projid);
    assert_eq!(again.limit_bytes, 5 << 20);
    assert!(again.used_bytes < 1 << 20, "{again:?}");
    d.remove("hako-test-ctr2").unwrap();
    d.remove("hako-test-base").unwrap();
}

#[test]
fn two_containers_get_separate_projects() {
    let Some(xfs) = XfsImage::new("pquota") else {
        return;
    };
    let d = Overlay2::new(xfs.root()).unwrap();
    d.create_rw_with("hako-test-a", None, &size_opts("8M"))
        .unwrap();
    d.create_rw_with("hako-test-b", None, &size_opts("8M"))
        .unwrap();
    let a = d.quota_usage("hako-test-a").unwrap().unwrap();
    let b = d.quota_usage("hako-test-b").unwrap().unwrap();
    assert_ne!(a.project_id, b.project_id);
    // A base layer alone is bind-mounted; writes go to its diff/, which is in the project.
    let m = d.mount("hako-test-a").unwrap();
    write_mb(&m.rootfs.join("six"), 6).unwrap();
    write_mb(&d.paths("hako-test-b").unwrap().upper_dir.join("six"), 6).unwrap();
    assert!(write_mb(&m.rootfs.join("four"), 4).is_err());
    d.unmount("hako-test-a").unwrap();
}

#[test]
fn project_id_set_by_ioctl_is_inherited() {
    use std::os::fd::AsFd;
    let Some(xfs) = XfsImage::new("noquota") else {
        return;
    };
    let dir = xfs.root().join("hako-test-proj");
    std::fs::create_dir(&dir).unwrap();
    let f = std::fs::File::open(&dir).unwrap();
    let mut attr = hako_sys::quota::fs_get_xattr(f.as_fd()).unwrap();
    assert_eq!(attr.projid, 0);
    attr.projid = 4242;
    attr.xflags |= hako_sys::quota::FS_XFLAG_PROJINHERIT;
    hako_sys::quota::fs_set_xattr(f.as_fd(), &attr).unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/file"), b"x").unwrap();
    for p in [dir.join("sub"), dir.join("sub/file")] {
        let f = std::fs::File::open(&p).unwrap();
        let a = hako_sys::quota::fs_get_xattr(f.as_fd()).unwrap();
        assert_eq!(a.projid, 4242, "{}", p.display());
    }
}

#[test]
fn size_without_project_quotas_is_docker_s_error() {
    let Some(xfs) = XfsImage::new("noquota") else {
        return;
    };
    let d = Overlay2::new(xfs.root()).unwrap();
    assert!(!d.quota_supported());
    let err = d
        .create_rw_with("hako-test-ctr", None, &size_opts("20M"))
        .unwrap_err();
    assert!(matches!(err, Error::QuotaNotSupported), "{err:?}");
    assert_eq!(
        err.to_string(),
        "--storage-opt size is only supported for overlay over xfs with 'pquota' mount option"
    );
    assert!(!d.exists("hako-test-ctr"));
    // Without a size the same driver works.
    d.create_rw_with("hako-test-ctr", None, &StorageOpts::default())
        .unwrap();

    // Not XFS at all (ext4 or tmpfs under /var/tmp), and vfs never.
    let other = common::Fixture::new();
    let d = Overlay2::new(other.path()).unwrap();
    let err = d
        .create_rw_with("hako-test-ctr", None, &size_opts("20M"))
        .unwrap_err();
    assert!(matches!(err, Error::QuotaNotSupported), "{err:?}");
    let v = hako_storage::Vfs::new(other.path()).unwrap();
    assert!(
        v.create_rw_with("hako-test-ctr", None, &size_opts("20M"))
            .is_err()
    );
}
