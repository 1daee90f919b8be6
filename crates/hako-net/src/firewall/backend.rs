//! Who applies hako's firewall: nftables (hako's table `inet hako`) through libnftables in
//! this process (the library `nft` itself is a thin shell over, loaded with `dlopen` by
//! `hako_sys::nftables`), else the `nft` program (`nft -f -`); both read the same text and
//! apply it as one kernel transaction. Where nftables cannot be used (no libnftables and no
//! `nft`, or a kernel without nf_tables: hosts still on iptables-legacy), the iptables
//! driver (`super::iptables`) keeps the same rules in chains of hako's own.
//!
//! Measured on the development VM (2 shared cores, load ~3), one container's batch
//! (base chains rebuilt + its elements): see `bench/net-setup.sh` and the numbers in
//! `bench/README.md`. In-process saves the fork + exec + dynamic loading of `nft`.
//!
//! `HAKO_FIREWALL` chooses instead of the detection: `nftables` (libnftables, else `nft`),
//! `nft` (the program: the benchmark's escape hatch, also `HAKO_NFT=exec`), `iptables` or
//! `iptables-legacy` (the iptables driver through `iptables`/`ip6tables` or their
//! `-legacy` variants).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// Which driver applies the firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// nftables, libnftables in-process.
    Library,
    /// nftables, `nft -f -`.
    Program,
    /// iptables (the fallback): `iptables-restore`/`ip6tables-restore`, or their
    /// `-legacy` variants when `legacy`.
    Iptables {
        /// The `-legacy` programs.
        legacy: bool,
    },
}

/// Whether `program` is in `$PATH`.
fn in_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or_else(|| Path::new("/usr/sbin").join(program).is_file())
}

/// Errors by which the kernel says it has no nftables (not a bad batch).
fn kernel_lacks_nftables(e: &str) -> bool {
    e.to_ascii_lowercase().contains("not supported")
}

impl Backend {
    /// The driver `HAKO_FIREWALL` (or `HAKO_NFT=exec`) asks for, if any.
    pub fn from_env() -> Result<Option<Backend>> {
        if std::env::var("HAKO_NFT").as_deref() == Ok("exec") {
            return Ok(Some(Backend::Program));
        }
        match std::env::var("HAKO_FIREWALL").as_deref() {
            Err(_) | Ok("") => Ok(None),
            Ok("nftables") => Backend::detect_nftables().map(Some),
            Ok(name) => Backend::from_name(name).map(Some).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "HAKO_FIREWALL={name}: use nftables, nft, iptables or iptables-legacy"
                ))
            }),
        }
    }

    /// `nft`, `iptables`, `iptables-legacy` (`nftables`: see [`Backend::detect`]).
    pub fn from_name(name: &str) -> Option<Backend> {
        match name.trim() {
            "nft" => Some(Backend::Program),
            "iptables" => Some(Backend::Iptables { legacy: false }),
            "iptables-legacy" => Some(Backend::Iptables { legacy: true }),
            _ => None,
        }
    }

    /// The name [`Backend::from_name`] takes (`nftables` for libnftables).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Library => "nftables",
            Backend::Program => "nft",
            Backend::Iptables { legacy: false } => "iptables",
            Backend::Iptables { legacy: true } => "iptables-legacy",
        }
    }

    /// nftables through libnftables, else the `nft` program (no fallback).
    fn detect_nftables() -> Result<Backend> {
        if hako_sys::nftables::available() {
            Ok(Backend::Library)
        } else if in_path("nft") {
            Ok(Backend::Program)
        } else {
            Err(Error::Nft(
                "neither libnftables nor the nft program can be used; install nftables".into(),
            ))
        }
    }

    /// libnftables, else the `nft` program, when the kernel takes nftables; else iptables.
    pub fn detect() -> Result<Backend> {
        let nft = if hako_sys::nftables::available() {
            Backend::Library
        } else if in_path("nft") {
            Backend::Program
        } else if in_path("iptables-restore") {
            return Ok(Backend::Iptables { legacy: false });
        } else {
            return Err(Error::Nft(
                "neither libnftables, the nft program nor iptables can be used; install nftables"
                    .into(),
            ));
        };
        // The kernel may lack nf_tables (or refuse it here): fall back where iptables is.
        match nft.apply("list tables\n") {
            Err(Error::Nft(e)) if kernel_lacks_nftables(&e) && in_path("iptables-restore") => {
                tracing::debug!("nftables unusable ({e}): the iptables driver is used");
                Ok(Backend::Iptables { legacy: false })
            }
            _ => Ok(nft),
        }
    }

    /// Whether this is the nftables driver (`inet hako`).
    pub fn is_nftables(self) -> bool {
        matches!(self, Backend::Library | Backend::Program)
    }

    /// Applies nftables `commands` atomically (an iptables backend refuses).
    pub fn apply(self, commands: &str) -> Result<String> {
        match self {
            // The process's context for this namespace, kept (hako_sys::nftables: a
            // socket closed right after a deletion waits for an RCU grace period).
            Backend::Library => hako_sys::nftables::run_shared(commands)
                .ok_or_else(|| Error::Nft("libnftables could not make a context".into()))?
                .map_err(|e| Error::Nft(first_line(&e.to_string()))),
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
            Backend::Iptables { .. } => Err(Error::Nft(
                "the iptables driver is in use, not nftables".into(),
            )),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_names_and_a_kernel_without_nftables() {
        for b in [
            Backend::Program,
            Backend::Iptables { legacy: false },
            Backend::Iptables { legacy: true },
        ] {
            assert_eq!(Backend::from_name(b.name()), Some(b));
            assert_eq!(Backend::from_name(&format!("{}\n", b.name())), Some(b));
        }
        assert_eq!(Backend::from_name("nftables"), None, "detected, not named");
        assert_eq!(Backend::from_name("ipchains"), None);
        // What libnftables and nft say on a kernel without nf_tables, and what they say
        // for a bad batch (no fallback then).
        assert!(kernel_lacks_nftables(
            "Error: Could not process rule: Operation not supported"
        ));
        assert!(kernel_lacks_nftables("Protocol not supported"));
        assert!(!kernel_lacks_nftables(
            "Error: syntax error, unexpected newline (list tables)"
        ));
        assert!(!Backend::Iptables { legacy: true }.is_nftables());
        assert!(
            Backend::Iptables { legacy: false }
                .apply("list tables\n")
                .is_err()
        );
    }
}
