//! `hako-shim`: the per-container monitor process (hako's conmon / containerd-shim).
//!
//! The engine spawns one shim per container run. The shim creates the container through the
//! OCI runtime, then outlives the CLI that asked for it: it holds the container's stdio,
//! writes its log, serves attach clients, records each exit and applies the restart policy,
//! so `--restart` and `docker logs` work with no hako process other than the shim alive.
//! The engine talks to it through [`protocol`] (wire format and examples there).
//!
//! ```text
//!   hako-shim --id ID --bundle DIR --runtime PATH [--runtime-root DIR] --state-dir DIR
//!             --log-path FILE [--log-max-size BYTES] [--log-max-file N]
//!             [--tty] [--stdin] [--stdin-once] [--restart POLICY]
//!             [--exit-command PATH [--exit-command-arg ARG]...] [--ready-fd N]
//!             [--hold-fd N]... [--proxy N=ADDR]...
//!             [--stop-signal SIG] [--stop-timeout SECONDS]
//! ```
//!
//! # Lifecycle
//!
//! ```text
//!   engine                      hako-shim                         runtime / container
//!   ──────                      ─────────                         ───────────────────
//!   spawn (stdio /dev/null,
//!     pipe as --ready-fd) ────▶ fork; parent exits 0 ─▶ reaped
//!                               child: setsid, subreaper,
//!                               block signals (signalfd),
//!                               shim.pid, listen attach.sock
//!                               [--tty: listen console.sock]
//!                               RUNTIME create ─────────────────▶ init waits (created)
//!                               [--tty: pty master ◀─ console.sock]
//!   read ready fd ◀──────────── {"pid":N} (or {"error":..}, delete, exit 1)
//!   attach, resize ───────────▶ attach.sock
//!   "start" ──────────────────▶ RUNTIME start ──────────────────▶ runs
//!                               output ─▶ json-file log + attached clients
//!                               SIGCHLD: reap; init gone ◀─────── exits
//!                               drain output, exit.json
//!   "wait" answered ◀────────── Exited(ExitInfo); attach streams closed
//!                               restart policy? ─ yes: backoff, delete, create, start
//!                                               └ no:  delete, remove files,
//!                                                      exec --exit-command or exit 0
//! ```
//!
//! The main loop is single-threaded: one `poll` over the signalfd, the output pipes (or pty
//! master), the container's stdin, the control socket and its clients; see `monitor.rs`
//! for the state machine (created → running → draining → restarting | finished).
//!
//! # The state directory
//!
//! | file | written by | lifetime |
//! |---|---|---|
//! | `shim.pid` | shim | while the shim runs |
//! | `attach.sock` | shim | control socket, while the shim runs |
//! | `console.sock` | shim (`--tty`) | the runtime sends the pty master here, while the shim runs |
//! | `init.pid` | runtime (`--pid-file`) | the current init's pid, while the shim runs |
//! | `runtime.log` | runtime (`--log`, JSON) | kept; the runtime's errors, and restart failures |
//! | `exit.json` | shim | the last [`protocol::ExitInfo`], replaced atomically at every exit; kept |
//! | `shim.log` | shim | its own failures with timestamps: restart decisions, failed restarts, log writes that failed (see [`shimlog`]); kept |
//!
//! # Logs
//!
//! `--log-path` gets Docker's json-file format (one `{"log","stream","time"}` object per
//! line, partial lines flushed at 16 KiB and at EOF) with Docker's rotation: by default at
//! 10 MiB, at most 5 files (`FILE`, `FILE.1`, ... `FILE.4`).
//!
//! # Signals
//!
//! SIGTERM to the shim (a service manager stopping its unit, as at shutdown) stops the
//! container as `hako stop` does: `--stop-signal`, SIGKILL after `--stop-timeout`; the
//! restart policy does not fire, the exit is recorded as usual and the shim ends (see
//! `monitor/shutdown.rs`). SIGINT, SIGHUP, SIGQUIT, SIGUSR1/2 are ignored: the container is
//! otherwise stopped by the engine through the runtime (`RUNTIME kill`) after a `stop`
//! request. SIGPIPE is ignored (Rust's default); a client that went away is dropped.
//!
//! # Static binary
//!
//! Like hako-runtime and hako-init, every build links it static-pie (`.cargo/config.toml`,
//! `scripts/cc-static-bins`). The shim uses neither NSS nor `dlopen`.

pub mod events;
pub mod options;
pub mod protocol;
pub mod shimlog;
pub mod sockpath;
pub mod zygote;

mod client;
mod daemon;
mod health;
mod kmsg;
mod logfile;
mod monitor;
mod oom;
mod proxy;
mod runtime;
mod stdio;

use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

pub use logfile::{JsonLog, MAX_PARTIAL, Stream};
pub use options::{Options, RestartPolicy};

use crate::daemon::ReadyPipe;
use crate::monitor::Shim;
use crate::protocol::{ATTACH_SOCKET, CONSOLE_SOCKET, SHIM_PID_FILE};
use crate::runtime::Runtime;

/// The whole life of a shim; never returns. Exits 0 after the container's final exit (or
/// execs `--exit-command`), 1 when the container could not be created.
pub fn run(opts: Options) -> ! {
    run_with(opts, true)
}

/// [`run`] for a [`zygote`] that detached already, in the spawner's working directory.
pub(crate) fn run_detached(opts: Options) -> ! {
    run_with(opts, false)
}

fn run_with(opts: Options, detach: bool) -> ! {
    let opts = absolute(opts);
    if !detach {
        // As `daemon::detach` does: hold no directory busy.
        let _ = nix::unistd::chdir("/");
    }
    let ready = opts.ready_fd.and_then(ReadyPipe::take);
    let go = opts.go_fd.and_then(hako_sys::fd::from_inherited);
    let mut keep: Vec<i32> = opts.hold_fds.clone();
    keep.extend(ready.as_ref().map(ReadyPipe::raw_fd));
    keep.extend(go.as_ref().map(std::os::fd::AsRawFd::as_raw_fd));
    daemon::close_inherited(&keep);
    // Held, never used; close-on-exec so neither the runtime nor the exit command gets
    // them: they close when the shim ends, however it ends.
    let mut held = daemon::hold(&opts.hold_fds);
    if detach && let Err(e) = daemon::detach() {
        fail(ready, &format!("hako-shim: {e}"), &opts);
    }
    let mut shim = match setup(&opts) {
        Ok(shim) => shim,
        Err(e) => fail(ready, &format!("hako-shim: {e}"), &opts),
    };
    if let Some(go) = go
        && !daemon::wait_for_go(go)
    {
        fail(
            ready,
            "hako-shim: the engine gave up before the container was created",
            &opts,
        );
    }
    match shim.create() {
        Ok(pid) => {
            // Relays start before the answer: when `run -d` returns, [::1] answers.
            for p in &opts.proxies {
                if let Err(e) = start_proxy(&mut held, p) {
                    shim.runtime_delete();
                    fail(ready, &format!("hako-shim: {e}"), &opts);
                }
            }
            if let Some(r) = ready {
                r.created(pid);
            }
        }
        Err(e) => {
            shim.runtime_delete();
            fail(ready, &e, &opts);
        }
    }
    shim.run();
    if opts.exec_process.is_some() {
        std::process::exit(0);
    }
    if let Some(program) = &opts.exit_command {
        // A remover (`run --rm`, an API `wait?condition=removed`, `rm -f`) claimed the
        // container's removal and waits for this shim to be gone: the exit command would
        // only start, find the removal under way and exit (~2 ms the remover waits too).
        if opts.state_dir.join(protocol::REMOVING_FILE).exists() {
            std::process::exit(0);
        }
        if let Some(lock) = &opts.exit_command_lock {
            // The published ports go now, not after the wait (`run` dropped the rest).
            drop(held);
            if removed_by_the_lock_holder(lock, &opts.bundle, &opts.state_dir) {
                std::process::exit(0);
            }
        }
        // Replaces the shim (podman's conmon does the same for `--rm`); returns only on error.
        let mut cmd = std::process::Command::new(program);
        cmd.args(&opts.exit_command_args);
        // Not with the shim's blocked signals: a service manager's SIGTERM must reach it.
        hako_sys::process::unblock_signals_in_child(&mut cmd);
        let _ = cmd.exec();
        std::process::exit(1);
    }
    std::process::exit(0);
}

/// `--exit-command-lock`: a caller attached to remove the container itself (a foreground
/// `run --rm`, `hako serve` answering `wait?condition=removed`) holds `lock` shared from
/// before the start until it removed the container, usually a few ms after the exit this
/// shim reported. Waits for it (the shim's files are gone: the remover no longer waits for
/// this process) and tells whether it removed the container, `bundle` and all. Without
/// that wait the exit command, a run of the whole `hako` binary, would start only to wait
/// the same way, beside the removal on a small machine's CPUs (~6 ms of it in a `docker
/// run --rm` timeline). A remover that dies releases the lock: the exit command then runs.
/// No lock file: nobody attached (or the removal is over, and the bundle says which).
/// A removal that leaves its last steps for after its caller's answer (`hako serve`)
/// lets the lock go with the bundle still there, its claim marked in `state_dir`
/// ([`protocol::REMOVING_FILE`]): the remover finishes it (the exit command ran in one
/// of eight `docker run --rm`, ~8 ms of CPU each, before this looked at the mark again).
fn removed_by_the_lock_holder(lock: &Path, bundle: &Path, state_dir: &Path) -> bool {
    if let Ok(f) = std::fs::File::open(lock) {
        let _ = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive);
    }
    !bundle.exists() || state_dir.join(protocol::REMOVING_FILE).exists()
}

/// `--proxy FD=ADDR`: hands held socket FD to a relay towards ADDR.
fn start_proxy(held: &mut Vec<std::os::fd::OwnedFd>, spec: &str) -> Result<(), String> {
    let (fd, addr) = spec
        .split_once('=')
        .ok_or_else(|| format!("--proxy {spec}: expected FD=ADDR"))?;
    let fd: i32 = fd
        .parse()
        .map_err(|_| format!("--proxy {spec}: bad descriptor"))?;
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|_| format!("--proxy {spec}: bad address"))?;
    let i = held
        .iter()
        .position(|h| std::os::fd::AsRawFd::as_raw_fd(h) == fd)
        .ok_or_else(|| format!("--proxy {spec}: descriptor {fd} is not held"))?;
    proxy::start(held.remove(i), addr)
}

/// Everything before `create`: signals, files, sockets, log.
fn setup(opts: &Options) -> Result<Shim, String> {
    let signals = daemon::take_signals()?;
    let state = &opts.state_dir;
    std::fs::create_dir_all(state).map_err(|e| format!("creating {}: {e}", state.display()))?;
    protocol::write_shim_pid(state).map_err(|e| format!("writing {SHIM_PID_FILE}: {e}"))?;
    let listener = listen(&state.join(ATTACH_SOCKET))?;
    let console = if opts.tty {
        Some(listen(&state.join(CONSOLE_SOCKET))?)
    } else {
        None
    };
    let log = match &opts.log_path {
        Some(path) => {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            Some(
                JsonLog::open(path, opts.log_max_size, opts.log_max_file)
                    .map_err(|e| format!("opening {}: {e}", path.display()))?
                    .with_attrs(
                        opts.log_attrs
                            .iter()
                            .filter_map(|a| a.split_once('='))
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    ),
            )
        }
        None => None,
    };
    let cgroups_path = daemon::cgroups_path(&opts.bundle);
    let runtime = Runtime::new(&opts.runtime, opts.runtime_root.as_deref(), state, &opts.id)
        .with_systemd_cgroup(daemon::systemd_cgroups_path(cgroups_path.as_deref()).is_some())
        .with_builtin(opts.runtime_builtin);
    let oom = daemon::oom_files(cgroups_path.as_deref(), &opts.id);
    Ok(Shim::new(
        opts.clone(),
        runtime,
        signals,
        listener,
        console,
        log,
        oom,
    ))
}

/// A non-blocking listening socket at `path`, mode 0600 (a stale one is replaced).
fn listen(path: &Path) -> Result<UnixListener, String> {
    let l = sockpath::bind(path).map_err(|e| format!("listening on {}: {e}", path.display()))?;
    l.set_nonblocking(true)
        .map_err(|e| format!("listening on {}: {e}", path.display()))?;
    Ok(l)
}

/// Report `message` on the ready pipe, remove the shim's files, exit 1.
fn fail(ready: Option<ReadyPipe>, message: &str, opts: &Options) -> ! {
    if let Some(r) = ready {
        r.failed(message);
    }
    monitor::remove_files(&opts.state_dir);
    std::process::exit(1);
}

/// Make every path absolute: the shim changes its directory to `/`.
fn absolute(mut opts: Options) -> Options {
    let abs = |p: &mut PathBuf| {
        if let Ok(a) = std::path::absolute(&*p) {
            *p = a;
        }
    };
    abs(&mut opts.bundle);
    abs(&mut opts.state_dir);
    for p in [
        opts.log_path.as_mut(),
        opts.exec_process.as_mut(),
        opts.events_log.as_mut(),
        opts.health_process.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        abs(p);
    }
    if let Some(r) = opts.runtime_root.as_mut() {
        abs(r);
    }
    if opts.runtime.components().count() > 1 {
        abs(&mut opts.runtime);
    }
    if let Some(e) = opts.exit_command.as_mut()
        && e.components().count() > 1
    {
        abs(e);
    }
    opts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lock let go with the bundle still there: removed only when the remover marked
    /// its claim (it finishes after its answer); else the exit command has work to do.
    #[test]
    fn a_claimed_removal_is_the_lock_holders_even_with_the_bundle_still_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lock, bundle, state) = (
            dir.path().join("attached"),
            dir.path().join("bundle"),
            dir.path().join("state"),
        );
        std::fs::create_dir(&bundle).expect("bundle");
        std::fs::create_dir(&state).expect("state dir");
        std::fs::write(&lock, b"").expect("lock file");
        assert!(!removed_by_the_lock_holder(&lock, &bundle, &state));
        std::fs::write(state.join(protocol::REMOVING_FILE), b"").expect("mark");
        assert!(removed_by_the_lock_holder(&lock, &bundle, &state));
        std::fs::remove_file(state.join(protocol::REMOVING_FILE)).expect("unmark");
        std::fs::remove_dir(&bundle).expect("bundle gone");
        assert!(removed_by_the_lock_holder(&lock, &bundle, &state));
    }
}
