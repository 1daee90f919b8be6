//! Global flags and what they set up: logging, and the image store under `--root`.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};

/// `--root` of root (a rootless user's default: `$XDG_DATA_HOME/hako`).
pub const DEFAULT_ROOT: &str = "/var/lib/hako";
/// `--exec-root` of root (a rootless user's default: `$XDG_RUNTIME_DIR/hako`).
pub const DEFAULT_EXEC_ROOT: &str = "/run/hako";

/// hako's own options, given before the command (`hako --root DIR ps`), as Docker's
/// global options: `hako --help` lists them once, each command's help only its own flags.
#[derive(Debug, Args)]
pub struct Global {
    /// Root directory of hako's data (images, layers, containers; rootless:
    /// $XDG_DATA_HOME/hako)
    #[arg(
        long,
        env = "HAKO_ROOT",
        default_value = DEFAULT_ROOT,
        value_name = "DIR"
    )]
    pub root: PathBuf,

    /// Root directory of runtime state (shim sockets, runtime state; rootless:
    /// $XDG_RUNTIME_DIR/hako)
    #[arg(
        long = "exec-root",
        env = "HAKO_EXEC_ROOT",
        default_value = DEFAULT_EXEC_ROOT,
        value_name = "DIR"
    )]
    pub exec_root: PathBuf,

    /// Storage driver: overlay2 or vfs (default: what the root was created with, else
    /// overlay2 if an overlay mount works here, else vfs)
    #[arg(long = "storage-driver", value_name = "DRIVER")]
    pub storage_driver: Option<String>,

    /// Enable debug output (same as --log-level debug)
    #[arg(long, short = 'D')]
    pub debug: bool,

    /// Set the logging level
    #[arg(long = "log-level", value_enum, default_value_t = LogLevel::Warn)]
    pub log_level: LogLevel,

    /// Who makes containers' cgroups: systemd (a scope per container) or cgroupfs
    /// (default: systemd when it is PID 1 on a cgroup v2 host, for rootless hako when the
    /// user's systemd runs too; else cgroupfs)
    #[arg(
        long = "cgroup-manager",
        value_enum,
        env = "HAKO_CGROUP_MANAGER",
        value_name = "MANAGER"
    )]
    pub cgroup_manager: Option<CgroupManager>,
}

/// `--cgroup-manager` values (Podman's flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum CgroupManager {
    /// hako-runtime makes the cgroup directories itself
    Cgroupfs,
    /// systemd makes a transient scope for each container
    Systemd,
}

/// `--log-level` values (Docker's, `fatal` included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum LogLevel {
    /// Everything, including debug details
    Debug,
    /// Informational messages and up
    Info,
    /// Warnings and errors
    Warn,
    /// Errors only
    Error,
    /// Errors only (Docker's name)
    Fatal,
}

/// Logs go to stderr, one line each, without timestamps (a CLI, not a daemon).
pub fn init_logging(g: &Global) {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(max_level(g))
        .without_time()
        .with_target(false)
        .try_init();
}

/// [`init_logging`] for `hako serve`, a daemon: each line starts with its time (UTC, to
/// the microsecond), as dockerd's.
pub fn init_daemon_logging(g: &Global) {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(max_level(g))
        .with_timer(tracing_subscriber::fmt::time::SystemTime)
        .with_target(false)
        .try_init();
}

fn max_level(g: &Global) -> tracing::level_filters::LevelFilter {
    use tracing::level_filters::LevelFilter;
    match (g.debug, g.log_level) {
        (true, _) | (_, LogLevel::Debug) => LevelFilter::DEBUG,
        (_, LogLevel::Info) => LevelFilter::INFO,
        (_, LogLevel::Warn) => LevelFilter::WARN,
        (_, LogLevel::Error | LogLevel::Fatal) => LevelFilter::ERROR,
    }
}

/// Drivers Docker knows that this kernel or hako lacks, with the reason.
pub const UNAVAILABLE_DRIVERS: &[(&str, &str)] = &[
    ("aufs", "aufs is not in this kernel"),
    ("devicemapper", "device-mapper is not in this kernel"),
    ("btrfs", "not implemented by hako"),
    ("zfs", "not implemented by hako"),
    ("fuse-overlayfs", "not implemented by hako"),
];

impl Global {
    /// Checks `--storage-driver` before anything is opened, so `aufs` gets a reason rather
    /// than a complaint about the store.
    pub fn check_driver(&self) -> Result<()> {
        match self.storage_driver.as_deref() {
            None | Some("overlay2" | "vfs") => Ok(()),
            Some(d) => match UNAVAILABLE_DRIVERS.iter().find(|(n, _)| *n == d) {
                Some((_, why)) => {
                    bail!("storage driver {d} is not supported: {why} (use overlay2 or vfs)")
                }
                None => bail!("unknown storage driver {d:?} (supported: overlay2, vfs)"),
            },
        }
    }

    /// A normal user's hako has joined its user namespace (rootless.rs) by now, where it
    /// is root: anything else is a bug to name rather than a failure on the first file.
    fn check_root() -> Result<()> {
        if !nix::unistd::geteuid().is_root() {
            bail!("hako is not root in its user namespace (rootless setup did not run)");
        }
        Ok(())
    }

    /// Opens the engine (and its image store) under `--root` / `--exec-root`. The shim
    /// removes `--rm` containers by running this binary's hidden `container cleanup`.
    pub fn open_engine(&self) -> Result<hako_engine::Engine> {
        Self::check_root()?;
        self.check_driver()?;
        let mut opts = hako_engine::EngineOptions::new(&self.root);
        opts.exec_root = self.exec_root.clone();
        opts.driver = self.storage_driver.clone();
        match self.cgroup_manager {
            Some(CgroupManager::Cgroupfs) => {
                opts.cgroup_driver = hako_engine::CgroupDriver::Cgroupfs;
            }
            Some(CgroupManager::Systemd) => opts.cgroup_driver = hako_engine::CgroupDriver::Systemd,
            None => {}
        }
        // Test and packaging hooks: the binaries to use instead of the ones next to hako.
        for (var, slot) in [
            ("HAKO_INIT", &mut opts.init),
            ("HAKO_SHIM", &mut opts.shim),
            ("HAKO_DNS", &mut opts.dns),
            ("HAKO_RUNTIME", &mut opts.runtime),
        ] {
            if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
                *slot = PathBuf::from(p);
            }
        }
        // The default network's subnet, fixed when the network is first made (as --bip).
        if let Some(s) = std::env::var("HAKO_BRIDGE_SUBNET")
            .ok()
            .filter(|s| !s.is_empty())
        {
            opts.bridge_subnet = Some(s);
        }
        let exe = std::env::current_exe().context("find the hako executable")?;
        opts.cleanup_command = vec![
            exe.display().to_string(),
            "--root".into(),
            self.root.display().to_string(),
            "--exec-root".into(),
            self.exec_root.display().to_string(),
            "container".into(),
            "cleanup".into(),
        ];
        hako_engine::Engine::open(opts)
            .with_context(|| format!("open hako at {}", self.root.display()))
    }
}
