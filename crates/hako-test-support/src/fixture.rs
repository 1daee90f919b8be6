//! The busybox fixture: a rootfs made from Debian's static `/bin/busybox`, built once and
//! cached under [`fixtures_dir`], then copied into a fresh bundle for each test.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

use crate::Config;

/// Where cached fixtures live: `$HAKO_FIXTURES`, else `<workspace>/.fixtures`.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("HAKO_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => crate::workspace_root().join(".fixtures"),
    }
}

const BUSYBOX: &str = "/bin/busybox";

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
user:x:1000:1000:user:/home/user:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

const GROUP: &str = "root:x:0:\ntty:x:5:\nuser:x:1000:\nnobody:x:65534:\n";

/// The cached busybox rootfs template, built on first use (safe across parallel processes:
/// each builder works in its own temp dir and the first `rename` wins).
pub fn busybox_rootfs() -> Result<&'static Path> {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    if let Some(path) = ROOTFS.get() {
        return Ok(path);
    }
    let path = build_busybox_rootfs()?;
    Ok(ROOTFS.get_or_init(|| path))
}

fn build_busybox_rootfs() -> Result<PathBuf> {
    let dir = fixtures_dir();
    let done = dir.join("busybox-rootfs");
    if done.join("bin/busybox").exists() && done.join("etc/group").exists() {
        return Ok(done);
    }
    if !Path::new(BUSYBOX).exists() {
        bail!("{BUSYBOX} is missing: install busybox-static (scripts/test.sh does)");
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".busybox-rootfs-")
        .tempdir_in(&dir)
        .context("creating fixture temp dir")?;
    let root = tmp.path();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755))?;
    for (sub, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("root", 0o700),
        ("home/user", 0o755),
        ("var/tmp", 0o1777),
        ("run", 0o755),
        ("mnt", 0o755),
        ("usr/bin", 0o755),
        ("sbin", 0o755),
    ] {
        let p = root.join(sub);
        fs::create_dir_all(&p)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
    }
    fs::copy(BUSYBOX, root.join("bin/busybox")).context("copying busybox")?;
    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .context("busybox --list")?;
    if !list.status.success() {
        bail!("busybox --list failed");
    }
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        symlink("busybox", root.join("bin").join(applet))?;
    }
    fs::write(root.join("etc/passwd"), PASSWD)?;
    fs::write(root.join("etc/group"), GROUP)?;
    fs::write(root.join("etc/hostname"), "hako\n")?;
    fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n")?;
    let kept = tmp.keep();
    // Never remove a complete copy another process installed: a third one may be reading
    // it (busybox_tar tars it; a removal under that tar left a tar without etc/).
    let complete = |d: &Path| d.join("bin/busybox").exists() && d.join("etc/group").exists();
    let mut renamed = fs::rename(&kept, &done);
    if renamed.is_err() && done.exists() && !complete(&done) {
        // A partial copy from an older version: replace it.
        let _ = fs::remove_dir_all(&done);
        renamed = fs::rename(&kept, &done);
    }
    if let Err(err) = renamed {
        // Another process won the race; use its copy.
        let _ = fs::remove_dir_all(&kept);
        if !complete(&done) {
            return Err(err).context("installing busybox rootfs fixture");
        }
    }
    Ok(done)
}

/// A tar of the busybox rootfs, built once into [`fixtures_dir`] (like the rootfs: each
/// builder writes its own temp file and renames it into place) and shared by every test
/// process; a temp copy per process would leave thousands of tars behind.
pub fn busybox_tar() -> Result<&'static Path> {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    if let Some(path) = TAR.get() {
        return Ok(path);
    }
    let rootfs = busybox_rootfs()?;
    let done = fixtures_dir().join("busybox-rootfs.tar");
    if !done.exists() {
        let tmp = tempfile::Builder::new()
            .prefix(".busybox-rootfs-tar-")
            .tempfile_in(fixtures_dir())
            .context("creating fixture temp file")?;
        let st = Command::new("tar")
            .arg("-C")
            .arg(rootfs)
            .arg("-cf")
            .arg(tmp.path())
            .arg(".")
            .status()
            .context("running tar")?;
        if !st.success() {
            bail!("tar of the busybox rootfs failed: {st}");
        }
        tmp.persist(&done)
            .map_err(|e| e.error)
            .context("installing busybox tar fixture")?;
    }
    Ok(TAR.get_or_init(|| done))
}

/// One OCI bundle (`config.json` + `rootfs/`) in its own temp dir, removed on Drop after
/// detaching any mount left inside it (so a leaked bind mount never makes us delete host files).
#[derive(Debug)]
pub struct Bundle {
    path: PathBuf,
}

impl Bundle {
    /// A fresh bundle with a private copy of the busybox rootfs and `config.json`.
    pub fn new(config: &Config) -> Result<Self> {
        let bundle = Self::empty()?;
        copy_tree(busybox_rootfs()?, &bundle.rootfs())?;
        bundle.write_config(config)?;
        Ok(bundle)
    }

    /// A bundle directory with neither rootfs nor config (for bad-input tests).
    pub fn empty() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("hako-e2e-")
            .tempdir()?
            .keep();
        // World-traversable: a container in a user namespace must reach its rootfs.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
        Ok(Self { path: dir })
    }

    /// The bundle directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<bundle>/rootfs`.
    pub fn rootfs(&self) -> PathBuf {
        self.path.join("rootfs")
    }

    /// The marker every container process of this bundle carries in its environment, so
    /// leak checks can find it after `pivot_root` hides its root and cwd.
    pub fn env_marker(&self) -> String {
        format!("HAKO_E2E_BUNDLE={}", self.path.display())
    }

    /// Write `config` (plus the env marker) as `config.json`.
    pub fn write_config(&self, config: &Config) -> Result<()> {
        let mut config = config.clone();
        config.push_env_raw(&self.env_marker());
        self.write_raw(&serde_json::to_string_pretty(config.json())?)
    }

    /// Write `text` verbatim as `config.json`.
    pub fn write_raw(&self, text: &str) -> Result<()> {
        fs::write(self.path.join("config.json"), text).context("writing config.json")
    }

    /// Write an executable file inside the rootfs (`rel` is relative to the rootfs).
    pub fn write_executable(&self, rel: &str, text: &str) -> Result<PathBuf> {
        let path = self.rootfs().join(rel.trim_start_matches('/'));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, text)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        Ok(path)
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        crate::leak::detach_mounts_under(&self.path);
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Build a persistent bundle at `dir` (for scripts and benchmarks): a fresh copy of the
/// busybox rootfs and `config.json`. Replaces an existing rootfs there.
pub fn install_bundle(dir: &Path, config: &Config) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    let rootfs = dir.join("rootfs");
    if rootfs.exists() {
        crate::leak::detach_mounts_under(&rootfs);
        fs::remove_dir_all(&rootfs).with_context(|| format!("removing {}", rootfs.display()))?;
    }
    copy_tree(busybox_rootfs()?, &rootfs)?;
    let text = serde_json::to_string_pretty(config.json())?;
    fs::write(dir.join("config.json"), text).context("writing config.json")
}

/// Copy a directory tree: regular files copied, symlinks recreated, modes kept.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    fs::set_permissions(to, fs::metadata(from)?.permissions())?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_symlink() {
            symlink(fs::read_link(entry.path())?, &dest)?;
        } else {
            fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}
