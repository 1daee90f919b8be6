//! Who applies a batch of nftables commands: libnftables in this process (the library
//! `nft` itself is a thin shell over, loaded with `dlopen` by `hako_sys::nftables`), else
//! the `nft` program (`nft -f -`). Both read the same text and apply it as one kernel
//! transaction.
//!
//! Measured on the development VM (2 shared cores, load ~3), one container's batch
//! (base chains rebuilt + its elements): see `bench/net-setup.sh` and the numbers in
//! `bench/README.md`. In-process saves the fork + exec + dynamic loading of `nft`.
//! `HAKO_NFT=exec` forces the program (for the benchmark and as an escape hatch).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// Which backend runs batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// libnftables in-process.
    Library,
    /// `nft -f -`.
    Program,
}

impl Backend {
    /// libnftables when it loads (unless `HAKO_NFT=exec`), else the `nft` program.
    pub fn detect() -> Backend {
        if std::env::var("HAKO_NFT").as_deref() == Ok("exec") || !hako_sys::nftables::available() {
            Backend::Program
        } else {
            Backend::Library
        }
    }

    /// Applies `commands` atomically.
    pub fn apply(self, commands: &str) -> Result<String> {
        match self {
            Backend::Library => {
                let mut nft = hako_sys::nftables::Nft::new()
                    .ok_or_else(|| Error::Nft("libnftables could not make a context".into()))?;
                nft.run(commands)
                    .map_err(|e| Error::Nft(first_line(&e.to_string())))
            }
            Backend::Program => {
                let mut child = Command::new("nft")
                    .args(["-f", "-"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| {
                        Error::Nft(format!(
                            "neither libnftables nor the nft program can be used ({e}); install nftables"
                        ))
                    })?;
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = stdin.write_all(commands.as_bytes());
                }
                let out = child
                    .wait_with_output()
                    .map_err(|e| Error::Nft(format!("nft: {e}")))?;
                if out.status.success() {
                    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
                } else {
                    Err(Error::Nft(first_line(&String::from_utf8_lossy(
                        &out.stderr,
                    ))))
                }
            }
        }
    }
}

/// nft's errors come as three lines (message, the command, a caret line): keep the
/// message and the command.
fn first_line(s: &str) -> String {
    let mut lines = s.lines().filter(|l| !l.trim().is_empty());
    match (lines.next(), lines.next()) {
        (Some(a), Some(b)) => format!("{} ({})", a.trim(), b.trim()),
        (Some(a), None) => a.trim().to_string(),
        _ => s.trim().to_string(),
    }
}
