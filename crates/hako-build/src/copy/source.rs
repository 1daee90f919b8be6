//! Where COPY reads from: the build context (with its `.dockerignore`, nothing outside
//! it reachable) or the root filesystem of a stage or image (`--from`).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use hako_sys::fs::{Root, Rules};
use nix::errno::Errno;
use nix::fcntl::OFlag;

use super::CopyError;
use crate::ignore::{Matcher, clean_path};

/// A directory COPY reads from.
#[derive(Debug)]
pub struct SourceRoot {
    root: Root,
    path: PathBuf,
    ignore: Matcher,
    context: bool,
}

impl SourceRoot {
    /// The build context at `path`, without what `ignore` excludes. Symlinks are followed
    /// only while they stay inside it.
    pub fn context(path: &Path, ignore: Matcher) -> Result<SourceRoot, CopyError> {
        Ok(SourceRoot {
            root: open_root(path, Rules::Beneath)?,
            path: path.to_path_buf(),
            ignore,
            context: true,
        })
    }

    /// A root filesystem (a stage or image for `--from`): absolute symlinks mean its `/`.
    pub fn rootfs(path: &Path) -> Result<SourceRoot, CopyError> {
        Ok(SourceRoot {
            root: open_root(path, Rules::InRoot)?,
            path: path.to_path_buf(),
            ignore: Matcher::default(),
            context: false,
        })
    }

    /// The directory on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is the build context (files are owned by root once copied).
    pub fn is_context(&self) -> bool {
        self.context
    }

    /// Whether `rel` (clean, relative) is hidden by `.dockerignore`.
    pub fn ignored(&self, rel: &str) -> bool {
        !rel.is_empty() && rel != "." && self.ignore.excluded(rel)
    }

    pub(crate) fn skip_dir(&self, rel: &str) -> bool {
        !rel.is_empty() && self.ignore.skip_dir(rel)
    }

    /// `src` as written → a clean relative path; `..` out of the context is refused.
    pub fn relative(&self, src: &str) -> Result<String, CopyError> {
        let trimmed = src.trim_start_matches('/');
        let cleaned = clean_path(if trimmed.is_empty() { "." } else { trimmed });
        if cleaned == ".." || cleaned.starts_with("../") {
            if self.context {
                return Err(CopyError::Forbidden {
                    path: src.to_string(),
                    why: "outside the build context".into(),
                });
            }
            // In a root filesystem `..` stops at `/`, as the kernel does.
            return Ok(clean_path(&format!("/{cleaned}"))
                .trim_start_matches('/')
                .to_string());
        }
        Ok(if cleaned == "." {
            String::new()
        } else {
            cleaned
        })
    }

    /// Opens `rel` following symlinks (context: never out of it; rootfs: in its root).
    pub(crate) fn open(&self, rel: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
        self.root.open_at(rel, flags)
    }
}

fn open_root(path: &Path, rules: Rules) -> Result<Root, CopyError> {
    Root::open(path, rules).map_err(|e| CopyError::io(format!("open {}", path.display()), e))
}
