//! COPY and ADD on the filesystem: choosing sources ([`select`]), their content digest
//! for the cache key ([`digest`]), and copying them into a mounted root filesystem
//! ([`write`]) without ever leaving it.
//!
//! ```text
//!  sources ─► select (wildcards, .dockerignore, --exclude, symlinks kept in the root)
//!         ─► items: a tree of entries each (metadata + sha256 of the content)
//!         ─► digest: the cache key part (names, type, mode, owner, size, link target,
//!            device, xattrs, content; never the mtime)
//!         ─► write: mkdir -p of the destination in-root, entries made with *at calls
//!            that never follow a symlink, content re-hashed while copied (a file that
//!            changed since it was hashed fails the step instead of poisoning the cache)
//! ```

mod select;
mod source;
mod write;

use std::ffi::OsString;

pub use select::{SelectOptions, select};
pub use source::SourceRoot;
pub use write::{WriteOptions, mkdir_p, write};

use sha2::{Digest, Sha256};

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symlink with its target (never followed).
    Symlink(String),
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A named pipe.
    Fifo,
    /// A socket (skipped).
    Socket,
}

impl Kind {
    fn tag(&self) -> &'static str {
        match self {
            Kind::File => "f",
            Kind::Dir => "d",
            Kind::Symlink(_) => "l",
            Kind::Char => "c",
            Kind::Block => "b",
            Kind::Fifo => "p",
            Kind::Socket => "s",
        }
    }
}

/// One file, directory or link of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path below the item (`""` is the item itself).
    pub rel: String,
    /// The type.
    pub kind: Kind,
    /// Permission bits with setuid/setgid/sticky.
    pub mode: u32,
    /// Owner (0 for the build context, which is copied as root's).
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Bytes of a regular file.
    pub size: u64,
    /// Modification time (kept on the copy, not part of the digest).
    pub mtime: (i64, i64),
    /// Device number of a device node.
    pub rdev: u64,
    /// (dev, ino) of a file with several links.
    pub dev_ino: Option<(u64, u64)>,
    /// The earlier entry this one is a hard link of.
    pub hardlink_to: Option<usize>,
    /// Extended attributes, sorted.
    pub xattrs: Vec<(OsString, Vec<u8>)>,
    /// sha256 of a regular file's content.
    pub digest: Option<[u8; 32]>,
}

/// One selected source with everything below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The source as written.
    pub src: String,
    /// Its clean path in the source root.
    pub rel: String,
    /// The part of the path `--parents` keeps.
    pub keep: String,
    /// A directory (its contents are copied, not itself).
    pub is_dir: bool,
    /// The item itself first, then its tree in walk order.
    pub entries: Vec<Entry>,
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A source that does not exist (or is excluded by `.dockerignore`).
    #[error(
        "{path:?}: not found (the path must exist in the build context and not be excluded by .dockerignore)"
    )]
    NotFound {
        /// The source as written.
        path: String,
    },
    /// A source outside the context.
    #[error("forbidden path {path:?}: {why}")]
    Forbidden {
        /// The source as written.
        path: String,
        /// Why.
        why: String,
    },
    /// The destination cannot take the copy.
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
    },
    /// A source file changed while the build was reading it.
    #[error("{path:?} changed while it was being copied; run the build again")]
    Changed {
        /// The file.
        path: String,
    },
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl CopyError {
    pub(crate) fn io(context: String, e: nix::errno::Errno) -> CopyError {
        CopyError::Io {
            context,
            source: std::io::Error::from(e),
        }
    }
}

/// The content digest of selected items: `sha256:<hex>` over each entry's name, type,
/// mode, owner, size, link target, device, xattrs and content digest, in order.
pub fn digest(items: &[Item]) -> String {
    let mut h = Sha256::new();
    for it in items {
        h.update(b"item\0");
        h.update(it.rel.as_bytes());
        h.update(b"\0");
        h.update(it.keep.as_bytes());
        h.update([u8::from(it.is_dir)]);
        for e in &it.entries {
            h.update(e.rel.as_bytes());
            h.update(b"\0");
            h.update(e.kind.tag().as_bytes());
            let link = match &e.kind {
                Kind::Symlink(t) => t.as_str(),
                _ => "",
            };
            h.update(
                format!(
                    "\0{:o}\0{}\0{}\0{}\0{}\0{}\0{}\0",
                    e.mode,
                    e.uid,
                    e.gid,
                    e.size,
                    link,
                    e.rdev,
                    e.hardlink_to
                        .map_or(String::new(), |i| it.entries[i].rel.clone()),
                )
                .as_bytes(),
            );
            for (k, v) in &e.xattrs {
                h.update(std::os::unix::ffi::OsStrExt::as_bytes(k.as_os_str()));
                h.update(b"=");
                h.update(v);
                h.update(b"\0");
            }
            if let Some(d) = &e.digest {
                h.update(d);
            }
            h.update(b"\n");
        }
    }
    format!("sha256:{:x}", h.finalize())
}

#[cfg(test)]
mod tests;
