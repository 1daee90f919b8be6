//! A named network namespace (`ip netns add`) removed on Drop.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, bail};

/// The default network's bridge (hako's default name), kept once made.
pub const DEFAULT_BRIDGE: &str = "hako0";

/// The network of an interface address (`10.77.0.1/16` → `10.77.0.0/16`).
fn subnet_of(addr: &str) -> Option<String> {
    let (ip, len) = addr.split_once('/')?;
    let len: u32 = len.parse().ok()?;
    match ip.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            Some(format!(
                "{}/{len}",
                std::net::Ipv4Addr::from(u32::from(a) & mask)
            ))
        }
        std::net::IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            Some(format!(
                "{}/{len}",
                std::net::Ipv6Addr::from(u128::from(a) & mask)
            ))
        }
    }
}

/// `/run/netns/<name>`, deleted with `ip netns delete` on Drop.
#[derive(Debug)]
pub struct NetnsGuard {
    name: String,
}

impl NetnsGuard {
    /// Create `hako-e2e-<pid>-<n>`.
    pub fn new() -> Result<Self> {
        let name = crate::unique_id("hako-e2e");
        // The name holds this process's pid: a namespace of that name is a leftover of a
        // test process that had the pid before and was killed (no Drop ran), never a live one.
        if PathBuf::from("/run/netns").join(&name).exists() {
            let _ = Command::new("ip").args(["netns", "delete", &name]).output();
        }
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

/// A test's own network "host": a fresh network namespace (loopback up) in which every
/// hako command of the test runs (through `nsenter`), so that bridges, addresses, routes,
/// nftables tables and published ports of parallel tests never meet, and the real host's
/// network is never touched. Whatever a test leaves in it dies with it.
#[derive(Debug)]
pub struct NetSandbox {
    ns: NetnsGuard,
}

impl NetSandbox {
    /// A new namespace with `lo` up.
    pub fn new() -> Result<Self> {
        let ns = NetnsGuard::new()?;
        let out = Command::new("ip")
            .args(["-n", ns.name(), "link", "set", "lo", "up"])
            .output()?;
        if !out.status.success() {
            bail!(
                "ip link set lo up: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Self { ns })
    }

    /// The namespace file.
    pub fn path(&self) -> PathBuf {
        self.ns.path()
    }

    /// Its name (`ip -n NAME ...`).
    pub fn name(&self) -> &str {
        self.ns.name()
    }

    /// `program` to be run inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        c
    }

    /// Runs `f` on a thread inside the namespace (in-process sockets, say).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).expect("open the test's netns");
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("enter the test's netns");
                f()
            })
            .join()
            .expect("netns thread")
        })
    }

    /// What hako networking left in the namespace: interfaces other than `lo` and the
    /// default bridge ([`DEFAULT_BRIDGE`]), elements in hako's nftables table other than
    /// that bridge's, and any process still inside (shims, containers, hako-dns).
    pub fn leaks(&self) -> Vec<String> {
        let mut out = Vec::new();
        let text = |args: &[&str]| {
            Command::new("ip")
                .args(["-n", self.name()])
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        // The default network's bridge stays once made, with its rules, as Docker's
        // `docker0` does: not a leak. Its subnet, from the bridge's gateway address.
        let kept: Vec<String> = text(&["-o", "addr", "show", "dev", DEFAULT_BRIDGE])
            .lines()
            .filter_map(|l| {
                let mut w = l
                    .split_whitespace()
                    .skip_while(|w| *w != "inet" && *w != "inet6");
                w.next()?;
                subnet_of(w.next()?)
            })
            .chain([
                format!("\"{DEFAULT_BRIDGE}\""),
                format!("\"{DEFAULT_BRIDGE}\" . \"{DEFAULT_BRIDGE}\""),
            ])
            .collect();
        for line in text(&["-o", "link", "show"]).lines() {
            let name = line.split(':').nth(1).unwrap_or("").trim();
            let name = name.split('@').next().unwrap_or(name);
            if name != "lo" && name != DEFAULT_BRIDGE && !name.is_empty() {
                out.push(format!("interface {name}"));
            }
        }
        let table = self
            .command("nft")
            .args(["list", "table", "inet", "hako"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for line in table.lines().filter(|l| l.contains("elements = ")) {
            let items = line
                .split_once('{')
                .map_or(line, |(_, rest)| rest)
                .trim_end_matches([' ', '}', ','])
                .split(", ")
                .map(str::trim)
                .filter(|i| !i.is_empty() && !kept.iter().any(|k| k == i))
                .count();
            if items > 0 {
                out.push(format!("nft {}", line.trim()));
            }
        }
        let pids = Command::new("ip")
            .args(["netns", "pids", self.name()])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for pid in pids.split_whitespace() {
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .replace('\0', " ");
            out.push(format!("process {pid} in the test's netns: {}", cmd.trim()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::subnet_of;

    #[test]
    fn the_subnet_of_a_gateway_address() {
        assert_eq!(subnet_of("10.77.0.1/16").as_deref(), Some("10.77.0.0/16"));
        assert_eq!(subnet_of("172.18.5.1/24").as_deref(), Some("172.18.5.0/24"));
        assert_eq!(
            subnet_of("fd00:1:2::1/64").as_deref(),
            Some("fd00:1:2::/64")
        );
        assert_eq!(subnet_of("10.0.0.1/0").as_deref(), Some("0.0.0.0/0"));
        assert_eq!(subnet_of("nonsense"), None);
    }
}
