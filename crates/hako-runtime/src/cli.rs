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
    /// Let systemd make the container's cgroup: a transient scope named by a cgroupsPath
    /// of the form slice:prefix:name (runc's systemd driver)
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
    /// Keep the caller's session keyring instead of giving the container its own
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
        /// Keep the container (state, cgroup) after it exits; `delete` removes it
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
    /// Run a new process inside a running container
    Exec(ExecArgs),
    /// List the processes running inside a container
    Ps {
        /// Output format
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Container id
        id: String,
        /// Options passed to ps(1) (table format only)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Suspend every process of a container (cgroup freezer)
    Pause {
        /// Container id
        id: String,
    },
    /// Resume a paused container
    Resume {
        /// Container id
        id: String,
    },
    /// Change the resource limits of a running container
    Update(UpdateArgs),
    /// Print container events and resource statistics as JSON
    Events {
        /// Interval between stats reports
        #[arg(long, default_value = "5s")]
        interval: String,
        /// Print one stats report and exit
        #[arg(long)]
        stats: bool,
        /// Container id
        id: String,
    },
    /// Checkpoint a running container with CRIU
    Checkpoint(CheckpointArgs),
    /// Restore a container from a CRIU checkpoint
    Restore(RestoreArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Unix socket that receives the pty master when a terminal is allocated
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Current working directory in the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE)
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// User to run as: UID[:GID]
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional group ids
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Path to a process.json (the `process` object of config.json) to run
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Detach from the process: return after it started
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the process pid to
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// SELinux label (rejected: no SELinux on this host)
    #[arg(long)]
    pub process_label: Option<String>,
    /// AppArmor profile (rejected: no AppArmor on this host)
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Set no_new_privs for the process
    #[arg(long)]
    pub no_new_privs: bool,
    /// Add a capability to the bounding, effective, permitted and ambient sets
    #[arg(short, long = "cap")]
    pub cap: Vec<String>,
    /// Pass this many extra descriptors (from fd 3 up) to the process
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Run in this sub-cgroup of the container (v2) or controller:path list (v1)
    #[arg(long)]
    pub cgroup: Option<String>,
    /// Allow exec into a paused container
    #[arg(long)]
    pub ignore_paused: bool,
    /// Container id
    pub id: String,
    /// Command and arguments (unless --process is given)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Read the new resources (OCI linux.resources JSON) from this file, or - for stdin
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Block IO weight (10-1000)
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period in microseconds
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds
    #[arg(long, allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(long)]
    pub cpu_share: Option<u64>,
    /// CPU realtime period in microseconds
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime in microseconds
    #[arg(long, allow_negative_numbers = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to use (0-3, 0,1)
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use (0-3, 0,1)
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with k/m/g suffix)
    #[arg(long, allow_negative_numbers = true)]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long, allow_negative_numbers = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 for unlimited)
    #[arg(long, allow_negative_numbers = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of pids (-1 or 0 for unlimited)
    #[arg(long, allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema (rejected: no resctrl)
    #[arg(long)]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (rejected: no resctrl)
    #[arg(long)]
    pub mem_bw_schema: Option<String>,
    /// Container id
    pub id: String,
}

/// What `checkpoint` and `restore` both give CRIU (runc's shared flags).
#[derive(Debug, clap::Args)]
pub struct CriuArgs {
    /// Directory of the checkpoint image
    #[arg(long, default_value = "checkpoint")]
    pub image_path: PathBuf,
    /// Directory for CRIU's work files and logs
    #[arg(long)]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections
    #[arg(long)]
    pub tcp_established: bool,
    /// Allow external unix sockets
    #[arg(long)]
    pub ext_unix_sk: bool,
    /// Allow shell jobs
    #[arg(long)]
    pub shell_job: bool,
    /// Allow file locks
    #[arg(long)]
    pub file_locks: bool,
}

impl CriuArgs {
    /// The CRIU flags the booleans stand for, each with whether it is on.
    pub fn flags(&self) -> [(bool, &'static str); 4] {
        [
            (self.tcp_established, "--tcp-established"),
            (self.ext_unix_sk, "--ext-unix-sk"),
            (self.shell_job, "--shell-job"),
            (self.file_locks, "--file-locks"),
        ]
    }
}

#[derive(Debug, clap::Args)]
pub struct CheckpointArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Directory of a previous (pre-dump) checkpoint
    #[arg(long)]
    pub parent_path: Option<PathBuf>,
    /// Keep the container running after the checkpoint
    #[arg(long)]
    pub leave_running: bool,
    /// Only dump memory (for iterative migration)
    #[arg(long)]
    pub pre_dump: bool,
    /// Container id
    pub id: String,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Path to the bundle directory
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Return after the restore
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the restored init's pid to
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Container id
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}
