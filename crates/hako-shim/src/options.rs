//! The command line (`hako-shim --help`).

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;

/// The per-container monitor: holds the container's stdio, writes its log, serves attach
/// on `<state-dir>/attach.sock`, records its exit and applies the restart policy.
#[derive(Debug, Clone, Parser)]
#[command(name = "hako-shim", version)]
pub struct Options {
    /// Container id (passed to the runtime)
    #[arg(long)]
    pub id: String,
    /// OCI bundle directory (holding config.json)
    #[arg(long)]
    pub bundle: PathBuf,
    /// OCI runtime binary with runc's command line (hako-runtime, runc, crun)
    #[arg(long)]
    pub runtime: PathBuf,
    /// The runtime's state root (`--root`); the runtime's default when not given
    #[arg(long)]
    pub runtime_root: Option<PathBuf>,
    /// --runtime is the hako-runtime built with this shim: `start`, `kill` and `delete`
    /// run in the shim through its library instead of as programs (`create` and `exec`,
    /// which put a process into the container, still run the sealed program)
    #[arg(long, requires = "runtime_root")]
    pub runtime_builtin: bool,
    /// Directory for the shim's sockets and files (attach.sock, exit.json, ...)
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Container log in Docker's json-file format (none for an exec process)
    #[arg(long)]
    pub log_path: Option<PathBuf>,
    /// Rotate the log when it would grow past this many bytes (0: never rotate)
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    pub log_max_size: u64,
    /// Keep at most this many log files, the current one included
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub log_max_file: u32,
    /// KEY=VALUE written as `attrs` into every log entry (Docker's labels/env/tag log
    /// options; repeat for several)
    #[arg(long = "log-attr", value_name = "KEY=VALUE")]
    pub log_attrs: Vec<String>,
    /// The container has a terminal (process.terminal in config.json must agree)
    #[arg(long)]
    pub tty: bool,
    /// Keep the container's stdin open for attach clients (else it is /dev/null)
    #[arg(long)]
    pub stdin: bool,
    /// Bring `lo` up in the container's network namespace after each create, restarts
    /// included (`--network none`: the runtime makes that namespace with `lo` down)
    #[arg(long)]
    pub loopback_up: bool,
    /// Close the container's stdin when the first attach client closes its input
    #[arg(long)]
    pub stdin_once: bool,
    /// Restart policy: no, always, unless-stopped, on-failure[:N]
    #[arg(long, default_value = "no")]
    pub restart: RestartPolicy,
    /// Program to exec (replacing the shim) after the container's final exit
    #[arg(long)]
    pub exit_command: Option<PathBuf>,
    /// An argument for --exit-command (repeat for several)
    #[arg(long = "exit-command-arg", allow_hyphen_values = true)]
    pub exit_command_args: Vec<String>,
    /// Before the exit command, wait for an exclusive lock on this file (a caller that
    /// removes the container itself, as `run --rm` in the foreground, holds it shared until
    /// it did), then skip the command if --bundle is gone by then
    #[arg(long, value_name = "FILE", requires = "exit_command")]
    pub exit_command_lock: Option<PathBuf>,
    /// Exec mode: run this OCI process (process.json) in the running container `--id`
    /// instead of creating a container; `start` runs `RUNTIME exec --detach`. The shim then
    /// monitors that one process: stdio, attach, resize, exit.json, no restart
    #[arg(long, value_name = "FILE")]
    pub exec_process: Option<PathBuf>,
    /// The exec session's id, for its events (exec mode)
    #[arg(long, requires = "exec_process")]
    pub exec_id: Option<String>,
    /// Healthcheck: the OCI process of the probe (process.json); runs every
    /// --health-interval while the container runs
    #[arg(long, value_name = "FILE")]
    pub health_process: Option<PathBuf>,
    /// Healthcheck: nanoseconds between probes
    #[arg(long, default_value_t = 30_000_000_000)]
    pub health_interval: u64,
    /// Healthcheck: nanoseconds a probe may run
    #[arg(long, default_value_t = 30_000_000_000)]
    pub health_timeout: u64,
    /// Healthcheck: consecutive failures before unhealthy
    #[arg(long, default_value_t = 3)]
    pub health_retries: u32,
    /// Healthcheck: nanoseconds after the start in which failures do not count
    #[arg(long, default_value_t = 0)]
    pub health_start_period: u64,
    /// Healthcheck: nanoseconds between probes during the start period
    #[arg(long, default_value_t = 5_000_000_000)]
    pub health_start_interval: u64,
    /// Append events (die, oom, exec_die, health_status...) to this log
    #[arg(long, value_name = "FILE")]
    pub events_log: Option<PathBuf>,
    /// Inherited descriptor that receives `{"pid":N}` or `{"error":"..."}` once the container
    /// is created, then is closed
    #[arg(long)]
    pub ready_fd: Option<i32>,
    /// Inherited descriptor, a pipe's read end: the shim starts up, then waits for one byte
    /// on it before it creates the container (its spawner sets the container's network up
    /// meanwhile); end of file first means the spawner gave up, and the shim ends with an
    /// error
    #[arg(long, value_name = "FD")]
    pub go_fd: Option<i32>,
    /// Inherited descriptor to hold, unused, until the shim exits (repeat for several): the
    /// container's published host ports, so no other process can take them meanwhile
    #[arg(long = "hold-fd")]
    pub hold_fds: Vec<i32>,
    /// FD=ADDR: listen on held TCP socket FD (a published port on IPv6 loopback, which no
    /// NAT can serve) and relay each connection to ADDR (repeat for several)
    #[arg(long = "proxy", value_name = "FD=ADDR")]
    pub proxies: Vec<String>,
    /// The container's stop signal: what the shim sends it when the shim itself gets
    /// SIGTERM (a service manager stopping everything, as at shutdown)
    #[arg(long, default_value = "SIGTERM", value_name = "SIGNAL")]
    pub stop_signal: String,
    /// Seconds from the stop signal to SIGKILL in that case (negative: no SIGKILL)
    #[arg(
        long,
        default_value_t = 10,
        allow_negative_numbers = true,
        value_name = "SECONDS"
    )]
    pub stop_timeout: i64,
}

impl Options {
    /// The options with every inherited descriptor number (`--ready-fd`, `--go-fd`,
    /// `--hold-fd`, `--proxy FD=`) passed through `to` (a [`crate::zygote`] got them under
    /// other numbers); a number `to` does not know is an error.
    pub fn renumber_fds(mut self, to: impl Fn(i32) -> Option<i32>) -> Result<Self, String> {
        let map = |n: i32| to(n).ok_or_else(|| format!("descriptor {n} was not passed"));
        if let Some(fd) = self.ready_fd {
            self.ready_fd = Some(map(fd)?);
        }
        if let Some(fd) = self.go_fd {
            self.go_fd = Some(map(fd)?);
        }
        for fd in &mut self.hold_fds {
            *fd = map(*fd)?;
        }
        for p in &mut self.proxies {
            let (fd, addr) = p
                .split_once('=')
                .ok_or_else(|| format!("--proxy {p}: expected FD=ADDR"))?;
            let fd: i32 = fd
                .parse()
                .map_err(|_| format!("--proxy {p}: expected FD=ADDR"))?;
            *p = format!("{}={addr}", map(fd)?);
        }
        Ok(self)
    }

    /// The healthcheck, when a probe is configured.
    pub fn health(&self) -> Option<crate::health::HealthConfig> {
        let ns = Duration::from_nanos;
        self.health_process
            .clone()
            .map(|process| crate::health::HealthConfig {
                process,
                interval: ns(self.health_interval),
                timeout: ns(self.health_timeout),
                retries: self.health_retries,
                start_period: ns(self.health_start_period),
                start_interval: ns(self.health_start_interval),
            })
    }

    /// The command line that parses back into these options (for the engine that spawns
    /// the shim): `hako-shim` followed by these arguments.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |flag: &str, value: OsString| {
            args.push(flag.into());
            args.push(value);
        };
        push("--id", self.id.clone().into());
        push("--bundle", self.bundle.clone().into());
        push("--runtime", self.runtime.clone().into());
        if let Some(root) = &self.runtime_root {
            push("--runtime-root", root.clone().into());
        }
        push("--state-dir", self.state_dir.clone().into());
        if let Some(log) = &self.log_path {
            push("--log-path", log.clone().into());
        }
        push("--log-max-size", self.log_max_size.to_string().into());
        push("--log-max-file", self.log_max_file.to_string().into());
        for a in &self.log_attrs {
            push("--log-attr", a.clone().into());
        }
        push("--restart", self.restart.to_string().into());
        if let Some(cmd) = &self.exit_command {
            push("--exit-command", cmd.clone().into());
        }
        for arg in &self.exit_command_args {
            push("--exit-command-arg", arg.clone().into());
        }
        if let Some(lock) = &self.exit_command_lock {
            push("--exit-command-lock", lock.clone().into());
        }
        if let Some(p) = &self.exec_process {
            push("--exec-process", p.clone().into());
        }
        if let Some(id) = &self.exec_id {
            push("--exec-id", id.clone().into());
        }
        if let Some(p) = &self.health_process {
            push("--health-process", p.clone().into());
            push("--health-interval", self.health_interval.to_string().into());
            push("--health-timeout", self.health_timeout.to_string().into());
            push("--health-retries", self.health_retries.to_string().into());
            push(
                "--health-start-period",
                self.health_start_period.to_string().into(),
            );
            push(
                "--health-start-interval",
                self.health_start_interval.to_string().into(),
            );
        }
        if let Some(p) = &self.events_log {
            push("--events-log", p.clone().into());
        }
        if let Some(fd) = self.ready_fd {
            push("--ready-fd", fd.to_string().into());
        }
        if let Some(fd) = self.go_fd {
            push("--go-fd", fd.to_string().into());
        }
        for fd in &self.hold_fds {
            push("--hold-fd", fd.to_string().into());
        }
        for p in &self.proxies {
            push("--proxy", p.clone().into());
        }
        push("--stop-signal", self.stop_signal.clone().into());
        push("--stop-timeout", self.stop_timeout.to_string().into());
        for (on, flag) in [
            (self.tty, "--tty"),
            (self.stdin, "--stdin"),
            (self.stdin_once, "--stdin-once"),
            (self.runtime_builtin, "--runtime-builtin"),
            (self.loopback_up, "--loopback-up"),
        ] {
            if on {
                args.push(flag.into());
            }
        }
        args
    }
}

/// When the shim restarts the container after it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Never.
    No,
    /// Always, unless stopped by the user.
    Always,
    /// Like `Always` for the shim (the difference is about engine restarts).
    UnlessStopped,
    /// On a non-zero exit code, at most N times if N is given.
    OnFailure(Option<u32>),
}

impl RestartPolicy {
    /// Whether an exit with `code`, after `restarts` restarts so far, is followed by a
    /// restart (a stop by the user is checked by the caller).
    pub fn restarts(self, code: i32, restarts: u32) -> bool {
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure(max) => code != 0 && max.is_none_or(|n| restarts < n),
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
            RestartPolicy::OnFailure(None) => f.write_str("on-failure"),
            RestartPolicy::OnFailure(Some(n)) => write!(f, "on-failure:{n}"),
        }
    }
}

impl FromStr for RestartPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None => match s {
                "no" | "" => Ok(RestartPolicy::No),
                "always" => Ok(RestartPolicy::Always),
                "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
                "on-failure" => Ok(RestartPolicy::OnFailure(None)),
                _ => Err(format!("unknown restart policy {s:?}")),
            },
            Some(("on-failure", n)) => n
                .parse()
                .map(|n| RestartPolicy::OnFailure(Some(n)))
                .map_err(|_| format!("bad maximum retry count {n:?}")),
            Some(_) => Err(format!(
                "only on-failure takes a maximum retry count: {s:?}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inherited_descriptors_are_renumbered_or_refused() {
        let opts = Options::try_parse_from([
            "hako-shim",
            "--id",
            "c",
            "--bundle",
            "/b",
            "--runtime",
            "r",
            "--state-dir",
            "/s",
            "--ready-fd",
            "30",
            "--go-fd",
            "31",
            "--hold-fd",
            "32",
            "--hold-fd",
            "33",
            "--proxy",
            "33=[fd00::2]:80",
        ])
        .expect("parse");
        let map = |n: i32| (30..=33).contains(&n).then_some(n - 27);
        let o = opts.clone().renumber_fds(map).expect("renumber");
        assert_eq!((o.ready_fd, o.go_fd), (Some(3), Some(4)));
        assert_eq!(o.hold_fds, [5, 6]);
        assert_eq!(o.proxies, ["6=[fd00::2]:80"]);
        // A number that was not passed: the shim must not take whatever has it here.
        let e = opts
            .renumber_fds(|n| (n != 32).then_some(n))
            .expect_err("32 was not passed");
        assert!(e.contains("32"), "{e}");
    }

    #[test]
    fn restart_policies() {
        assert_eq!("no".parse(), Ok(RestartPolicy::No));
        assert_eq!(
            "on-failure:2".parse(),
            Ok(RestartPolicy::OnFailure(Some(2)))
        );
        assert!("always:3".parse::<RestartPolicy>().is_err());
        let p = RestartPolicy::OnFailure(Some(2));
        assert!(p.restarts(1, 0) && p.restarts(1, 1) && !p.restarts(1, 2) && !p.restarts(0, 0));
        assert!(RestartPolicy::Always.restarts(0, 100));
        for s in [
            "no",
            "always",
            "unless-stopped",
            "on-failure",
            "on-failure:3",
        ] {
            assert_eq!(s.parse::<RestartPolicy>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn to_args_round_trips() {
        let opts = Options::parse_from([
            "hako-shim",
            "--id",
            "c1",
            "--bundle",
            "/b",
            "--runtime",
            "runc",
            "--runtime-root",
            "/r",
            "--runtime-builtin",
            "--state-dir",
            "/s",
            "--log-path",
            "/l",
            "--tty",
            "--stdin-once",
            "--restart",
            "on-failure:2",
            "--exit-command",
            "/bin/hako",
            "--exit-command-arg",
            "--rm",
            "--exit-command-arg",
            "c1",
            "--exit-command-lock",
            "/locks/c1.attached",
            "--ready-fd",
            "3",
            "--go-fd",
            "4",
            "--stop-signal",
            "SIGUSR1",
            "--stop-timeout",
            "-1",
        ]);
        let args = std::iter::once(OsString::from("hako-shim")).chain(opts.to_args());
        let again = Options::parse_from(args);
        assert_eq!(format!("{again:?}"), format!("{opts:?}"));
        assert_eq!(again.exit_command_args, ["--rm", "c1"]);
        assert_eq!(again.log_max_size, 10 << 20);
        assert_eq!(
            (again.stop_signal.as_str(), again.stop_timeout),
            ("SIGUSR1", -1)
        );
    }
}
