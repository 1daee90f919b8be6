//! Staying in the foreground as a container process's parent (`run`, `exec` without
//! `--detach`): forward signals, proxy a terminal, reap, and return the exit code
//! (128+N when killed by signal N, as shells do).

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::error::{Context, Result};

/// Signals passed on to the process we wait for.
const FORWARDED: [Signal; 9] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGCONT,
    Signal::SIGWINCH,
];

/// A socketpair standing in for `--console-socket` when we proxy the terminal ourselves:
/// (our end, the end handed to the container side).
pub fn console_pair() -> Result<(OwnedFd, OwnedFd)> {
    socket::socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context(|| "console socketpair".into())
}

/// Block the forwarded signals (and SIGCHLD) and wait for `pid`, proxying the terminal
/// whose master arrives on `console` if given. Returns the exit code.
pub fn wait(pid: i32, console: Option<&OwnedFd>) -> Result<i32> {
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(s);
    }
    mask.add(Signal::SIGCHLD);
    mask.thread_block().context(|| "block signals".into())?;
    let res = match console {
        Some(sock) => {
            let master = crate::console::recv_fd(sock).context(|| "receive pty master".into())?;
            wait_with_tty(pid, &mask, &master)
        }
        None => wait_forwarding(pid, &mask),
    };
    let _ = mask.thread_unblock();
    res
}

fn exit_code(ws: WaitStatus) -> Option<i32> {
    match ws {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Reap children until the init exits; pass on everything else.
fn wait_forwarding(pid: i32, mask: &SigSet) -> Result<i32> {
    let sfd = SignalFd::with_flags(mask, SfdFlags::SFD_CLOEXEC).context(|| "signalfd".into())?;
    loop {
        if let Some(code) = reap(pid)? {
            return Ok(code);
        }
        let Some(info) = sfd.read_signal().context(|| "read signal".into())? else {
            continue;
        };
        let sig = info.ssi_signo as i32;
        if sig != libc::SIGCHLD {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::try_from(sig).ok());
        }
    }
}

/// Non-blocking reap: the init's exit code once it has exited.
fn reap(pid: i32) -> Result<Option<i32>> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return Ok(None),
            Ok(ws) => {
                if ws.pid() == Some(Pid::from_raw(pid))
                    && let Some(code) = exit_code(ws)
                {
                    return Ok(Some(code));
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context(|| "waitpid".into()),
        }
    }
}

/// Proxy our stdin/stdout to the container's pty until the init exits.
fn wait_with_tty(pid: i32, mask: &SigSet, master: &OwnedFd) -> Result<i32> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let sfd = SignalFd::with_flags(mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context(|| "signalfd".into())?;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let raw = crate::console::RawMode::enter(stdin.as_fd());
    if let Ok((rows, cols)) = hako_sys::tty::get_winsize(stdin.as_fd()) {
        let _ = hako_sys::tty::set_winsize(master.as_fd(), rows, cols);
    }
    let mut buf = [0u8; 16 * 1024];
    let mut stdin_open = true;
    // The master hangs up (EIO) once no process holds the slave: stop polling it then, or
    // poll would return at once forever.
    let mut master_open = true;
    let code = loop {
        let mut fds = vec![
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(
                master.as_fd(),
                if master_open {
                    PollFlags::POLLIN
                } else {
                    PollFlags::empty()
                },
            ),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context(|| "poll".into()),
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (sig_ready, master_ready, stdin_ready) = (ready(0), ready(1), ready(2));
        if master_ready && master_open {
            match nix::unistd::read(master.as_fd(), &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => master_open = false,
                Ok(n) => write_all(stdout.as_fd(), &buf[..n]),
                Err(_) => {}
            }
        }
        if stdin_ready {
            match nix::unistd::read(stdin.as_fd(), &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => write_all(master.as_fd(), &buf[..n]),
            }
        }
        if sig_ready {
            while let Ok(Some(info)) = sfd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGWINCH {
                    if let Ok((rows, cols)) = hako_sys::tty::get_winsize(stdin.as_fd()) {
                        let _ = hako_sys::tty::set_winsize(master.as_fd(), rows, cols);
                    }
                } else if sig != libc::SIGCHLD {
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::try_from(sig).ok());
                }
            }
        }
        // Every turn, not only on SIGCHLD: a program that exited before SIGCHLD was blocked
        // (a short `exec -t ID true`) sent its signal to the default disposition, which
        // drops it; its exit is only seen here.
        if let Some(code) = reap(pid)? {
            // Drain what the program printed last.
            while let Ok(n) = nix::unistd::read(master.as_fd(), &mut buf) {
                if n == 0 {
                    break;
                }
                write_all(stdout.as_fd(), &buf[..n]);
                if n < buf.len() {
                    break;
                }
            }
            break code;
        }
    };
    drop(raw);
    Ok(code)
}

fn write_all(fd: std::os::fd::BorrowedFd<'_>, mut data: &[u8]) {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}
