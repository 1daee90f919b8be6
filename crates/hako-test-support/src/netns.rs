//! A named network namespace (`ip netns add`) removed on Drop.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, bail};

/// `/run/netns/<name>`, deleted with `ip netns delete` on Drop.
#[derive(Debug)]
pub struct NetnsGuard {
    name: String,
}

impl NetnsGuard {
    /// Create `hako-e2e-<pid>-<n>`.
    pub fn new() -> Result<Self> {
        let name = crate::unique_id("hako-e2e");
        let out = Command::new("ip").args(["netns", "add", &name]).output()?;
        if !out.status.success() {
            bail!(
                "ip netns add {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Self { name })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mounted namespace file a config can join by `path`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}
