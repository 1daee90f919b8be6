//! `hako-init`: the tiny init behind `hako run --init` (what Docker ships as `docker-init`,
//! which is tini). It runs one program as its child, forwards every signal it gets to it,
//! reaps every zombie that is re-parented to it, and exits with the child's status.
//!
//! ```text
//!   hako-init [-s] [-g] [-e CODE]... [-p SIGNAL] [-v] [--] PROGRAM [ARGS...]
//! ```
//!
//! Exit status: the child's exit code, 128+N when signal N killed it, 0 for codes given with
//! `-e`; 1 for hako-init's own errors (bad usage, cannot fork); 126/127 when PROGRAM cannot be
//! run / is not found.
//!
//! # Static
//!
//! The binary is bind-mounted read-only into arbitrary images (busybox, alpine, distroless),
//! where the host's glibc and dynamic loader do not exist: a dynamically linked hako-init
//! would fail there with "not found". Every `cargo build` links it static-pie
//! (`.cargo/config.toml` names `scripts/cc-static-bins` as the linker, which makes the link
//! line `-C target-feature=+crt-static` would give, for this binary and the shim and the
//! runtime only; a global crt-static breaks the workspace's proc-macro crates). hako-init
//! calls nothing that needs NSS or `dlopen`.
//!
//! # Differences from tini
//!
//! * SIGTTIN/SIGTTOU are blocked and dropped rather than ignored (see [`signals`]).
//! * Real-time signals are forwarded to the child only, also with `-g`.
//! * No `-w`/`-l`/`-V`; `-v` only adds messages.

mod args;
mod child;
mod signals;
mod supervise;

use std::io::Write;

use nix::sys::prctl;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::getpid;

use crate::args::{Action, Options};
use crate::supervise::Supervisor;

fn main() {
    let action = args::parse(std::env::args_os().skip(1), |key| {
        std::env::var_os(key).is_some()
    });
    let code = match action {
        Ok(Action::Run(opts)) => run(opts),
        Ok(Action::Help) => {
            print!("{}", args::USAGE);
            0
        }
        Ok(Action::Version) => {
            println!("hako-init {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Err(msg) => {
            let _ = write!(std::io::stderr(), "hako-init: {msg}\n{}", args::USAGE);
            1
        }
    };
    std::process::exit(code);
}

fn run(opts: Options) -> i32 {
    match start(&opts) {
        Ok((supervisor, signals)) => supervisor.run(&signals),
        Err(msg) => {
            eprintln!("hako-init: {msg}");
            1
        }
    }
}

/// Everything before the loop: block signals, become a subreaper, spawn the child.
fn start(opts: &Options) -> Result<(Supervisor, SignalFd), String> {
    let handled = signals::handled();
    let mut original_mask = SigSet::empty();
    sigprocmask(
        SigmaskHow::SIG_BLOCK,
        Some(&handled),
        Some(&mut original_mask),
    )
    .map_err(|e| format!("blocking signals: {e}"))?;
    let signalfd = SignalFd::with_flags(&handled, SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))?;

    if let Some(sig) = opts.parent_death_signal {
        let sig = Signal::try_from(sig).map_err(|e| format!("-p: {e}"))?;
        prctl::set_pdeathsig(sig).map_err(|e| format!("PR_SET_PDEATHSIG: {e}"))?;
    }
    let pid1 = getpid().as_raw() == 1;
    if !pid1 {
        if opts.subreaper {
            prctl::set_child_subreaper(true).map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
        } else {
            eprintln!(
                "hako-init: warning: not PID 1 and not a child subreaper: orphaned processes \
                 will not be re-parented to hako-init, so their zombies will not be reaped \
                 (use -s or TINI_SUBREAPER=1, or run hako-init as PID 1)"
            );
        }
    }

    let child = child::spawn(&opts.command, &original_mask)
        .map_err(|e| format!("starting the child: {e}"))?;
    if opts.verbosity >= 1 {
        eprintln!("hako-init: started {:?} as pid {child}", opts.command[0]);
    }
    let pidfd = hako_sys::pidfd_open(child.as_raw()).ok();
    Ok((
        Supervisor {
            child,
            kill_group: opts.kill_group,
            remap_to_zero: opts.remap_to_zero.clone(),
            verbosity: opts.verbosity,
            pidfd,
        },
        signalfd,
    ))
}
