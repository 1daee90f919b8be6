//! Helpers shared by the storage tests: a temp root that unmounts everything on drop, and
//! a tar builder that can write any name (including hostile ones).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A temporary driver root. Drop unmounts whatever is mounted below it, then removes it,
/// also when the test failed.
pub struct Fixture {
    dir: Option<tempfile::TempDir>,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("hako-test-storage-")
            .tempdir_in("/var/tmp")
            .unwrap();
        Fixture { dir: Some(dir) }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let path = self.path().to_path_buf();
        for m in hako_storage::mountinfo::mounts_under(&path).iter().rev() {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
        drop(self.dir.take());
    }
}

/// Builds a tar in memory, entry by entry, with raw names.
pub struct Tar {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Tar {
    fn default() -> Self {
        Tar::new()
    }
}

impl Tar {
    pub fn new() -> Tar {
        Tar {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(name: &[u8], kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        let old = h.as_old_mut();
        assert!(
            name.len() < old.name.len(),
            "use long names via pax in tests"
        );
        old.name[..name.len()].copy_from_slice(name);
        h
    }

    fn push(&mut self, mut h: tar::Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.push(
            Self::header(name.as_bytes(), tar::EntryType::Directory, 0o755, 0),
            &[],
        )
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.file_raw(name.as_bytes(), data, 0o644)
    }

    pub fn file_raw(&mut self, name: &[u8], data: &[u8], mode: u32) -> &mut Self {
        self.push(
            Self::header(name, tar::EntryType::Regular, mode, data.len() as u64),
            data,
        )
    }

    pub fn file_owned(
        &mut self,
        name: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let mut h = Self::header(
            name.as_bytes(),
            tar::EntryType::Regular,
            mode,
            data.len() as u64,
        );
        h.set_uid(uid);
        h.set_gid(gid);
        self.push(h, data)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut h = Self::header(name.as_bytes(), tar::EntryType::Symlink, 0o777, 0);
        h.set_link_name_literal(target.as_bytes()).unwrap();
        self.push(h, &[])
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut h = Self::header(name.as_bytes(), tar::EntryType::Link, 0o644, 0);
        h.set_link_name_literal(target.as_bytes()).unwrap();
        self.push(h, &[])
    }

    pub fn device(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        major: u32,
        minor: u32,
    ) -> &mut Self {
        let mut h = Self::header(name.as_bytes(), kind, 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.push(h, &[])
    }

    /// A file entry preceded by a PAX header with `SCHILY.xattr.*` records.
    pub fn file_with_xattrs(
        &mut self,
        name: &str,
        data: &[u8],
        xattrs: &[(&str, &[u8])],
    ) -> &mut Self {
        let pax: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
            .collect();
        self.b
            .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
        self.file(name, data)
    }

    /// A file from disk, as tar-rs writes it (files with holes become GNU sparse entries).
    pub fn b_path(&mut self, path: &Path, name: &str) -> &mut Self {
        self.b.append_path_with_name(path, name).unwrap();
        self
    }

    pub fn whiteout(&mut self, dir: &str, name: &str) -> &mut Self {
        let path = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&path, b"")
    }

    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"")
    }

    pub fn bytes(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Every entry below `dir` (relative paths), to prove nothing was written.
pub fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap().path().strip_prefix(dir).unwrap().to_path_buf())
        .collect();
    v.sort();
    v
}

/// A 64-hex id like Docker's cache ids, derived from a label.
pub fn id(label: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(label.as_bytes()))
}
