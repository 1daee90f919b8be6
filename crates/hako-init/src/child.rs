//! Starting the child exactly as tini does:
//!
//! ```text
//!   hako-init (all signals blocked)
//!     └─ fork ─► child: setpgid(0, 0)                  its own process group, always
//!                       tcsetpgrp(stdin, getpgrp())    it owns the terminal, if any
//!                       sigprocmask(SETMASK, original) signals behave normally again
//!                       Command::exec(PROGRAM, ARGS)   std resets SIGPIPE to SIG_DFL, then
//!                                                      execvp()s
//! ```
//!
//! Why fork (via `hako_sys::clone3_fork`) and not just `Command::spawn`: the child must
//! take the terminal's foreground *before* exec, or a program that reads the tty at once
//! gets SIGTTIN and stops. `Command` can only do that in `pre_exec`, which is `unsafe`.
//!
//! Why `CommandExt::exec` in the child and not `nix::unistd::execvp`: Rust's runtime sets
//! SIGPIPE to SIG_IGN at startup, and an ignored signal stays ignored across exec (`yes |
//! head` would never see SIGPIPE). Resetting a disposition is `unsafe` in nix; std's exec
//! path does it for us. It does *not* reset the signal mask (only `Command::spawn` does, and
//! the test `child_starts_with_clean_signal_state` caught it), so the child restores the
//! mask hako-init was started with, as tini does. A signal that arrives between that and
//! the exec acts on the child with its default action, as with tini.
//!
//! hako-init is single-threaded, which is the contract of `clone3_fork`.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::process::Command;

use hako_sys::CloneResult;
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::unistd::{Pid, getpgrp, isatty, setpgid, tcsetpgrp};

/// Start `command` as a child in its own process group; returns its pid. `original_mask` is
/// the signal mask to give back (hako-init's own before it blocked everything).
pub fn spawn(command: &[OsString], original_mask: &SigSet) -> io::Result<Pid> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no program"))?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    match hako_sys::clone3_fork(CloneFlags::empty(), None)? {
        CloneResult::Parent(pid) => Ok(Pid::from_raw(pid)),
        CloneResult::Child => {
            let code = exec_child(&mut cmd, original_mask);
            std::process::exit(code)
        }
    }
}

/// In the child: never returns on success; returns the exit code on failure (126 when the
/// program exists but cannot be run, 127 when it is not found, as shells and Docker do).
fn exec_child(cmd: &mut Command, original_mask: &SigSet) -> i32 {
    let mut stderr = io::stderr().lock();
    if let Err(e) = setpgid(Pid::from_raw(0), Pid::from_raw(0)) {
        let _ = writeln!(stderr, "hako-init: setpgid: {e}");
        return 1;
    }
    // SIGTTOU is still blocked here (inherited mask), so a background hako-init may take
    // the terminal without being stopped. No terminal is the common case (ENOTTY).
    if isatty(io::stdin()).unwrap_or(false)
        && let Err(e) = tcsetpgrp(io::stdin(), getpgrp())
        && !matches!(e, Errno::ENOTTY | Errno::ENXIO)
    {
        let _ = writeln!(stderr, "hako-init: tcsetpgrp: {e}");
        return 1;
    }
    if let Err(e) = sigprocmask(SigmaskHow::SIG_SETMASK, Some(original_mask), None) {
        let _ = writeln!(stderr, "hako-init: restoring the signal mask: {e}");
        return 1;
    }
    let err = cmd.exec();
    let _ = writeln!(
        stderr,
        "hako-init: exec {}: {err}",
        cmd.get_program().to_string_lossy()
    );
    match err.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => 127,
        _ => 126,
    }
}
