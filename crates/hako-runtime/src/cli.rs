//! runc's command line, so containerd, dockerd, podman and scripts written for runc can call
//! hako-runtime unchanged.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Default state root (runc uses /run/runc).
pub const DEFAULT_ROOT: &str = "/run/hako/runtime";

#[derive(Debug, Parser)]
#[command(
    name = "hako-runtime",
    version,
    about = "hako's OCI runtime: creates and runs containers from OCI bundles, with runc's command line",
    long_about = "hako-runtime creates and runs containers according to the OCI runtime specification.\n\
        It is a drop-in for runc: `hako-runtime spec && hako-runtime run <id>` in a directory\n\
        holding a rootfs/ runs a container, and containerd, dockerd or podman can use it as\n\
        their runtime binary."
)]
pub struct Cli {
    /// Directory for container state (tmpfs recommended)
    #[arg(long, global = true, default_value = DEFAULT_ROOT, env = "HAKO_RUNTIME_ROOT")]
    pub root: PathBuf,
    /// Write log messages to this file instead of stderr
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Format of log messages
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug messages
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups (not supported yet: an error)
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Path of the criu binary (accepted for compatibility)
    #[arg(long, global = true, hide = true)]
    pub criu: Option<PathBuf>,
    /// Rootless mode: true, false or auto (accepted for compatibility)
    #[arg(long = "rootless", hide = true)]
    pub global_rootless: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Path to the bundle directory (holding config.json)
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is true
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// File to write the container init's pid to
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot_root (for a ramdisk root): move the rootfs and chroot
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring (accepted; hako-runtime never makes one)
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many extra descriptors (from fd 3 up) to the container
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Container id (unique under --root)
    pub id: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a starter config.json in the bundle directory
    Spec {
        /// Where to write config.json
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A config for running without root (user namespace, no network namespace)
        #[arg(long)]
        rootless: bool,
    },
    /// Create a container: everything but running the user's program
    Create(CreateArgs),
    /// Run the user's program in a created container
    Start {
        /// Container id
        id: String,
    },
    /// Create and start a container; wait for it unless --detach
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return right after starting; the container's stdio stays attached
        #[arg(short, long)]
        detach: bool,
        /// Keep the container after it exits (accepted; `delete` removes it)
        #[arg(long)]
        keep: bool,
    },
    /// Print a container's state as JSON
    State {
        /// Container id
        id: String,
    },
    /// Send a signal to a container's init (default SIGTERM)
    Kill {
        /// Send the signal to every process of the container
        #[arg(short, long)]
        all: bool,
        /// Container id
        id: String,
        /// Signal name (KILL, SIGKILL) or number
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and everything it holds
    Delete {
        /// Kill the container first if it is still running
        #[arg(short, long)]
        force: bool,
        /// Container id
        id: String,
    },
    /// List containers
    #[command(visible_alias = "ps-all")]
    List {
        /// Output format
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Print only container ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print the features this runtime implements, as JSON
    Features,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}
