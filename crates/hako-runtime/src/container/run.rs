//! `run`: create + start, and unless detached, stay as the container's parent: forward
//! signals, proxy the terminal when there is one, and delete the container when its init
//! exits, exiting with the init's status (128+N when killed by signal N).

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::create::{Console, CreateOptions, create};
use crate::container::Container;
use crate::error::{Context, Result};

/// Signals the foreground `run` passes on to the container's init.
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

/// Run a container. Returns the exit code `hako-runtime run` should exit with.
pub fn run(opts: &CreateOptions, detach: bool) -> Result<i32> {
    let wants_tty = crate::config::Config::load(&opts.bundle)?
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let mut proxy_end = None;
    let console = match &opts.console_socket {
        Some(p) => Console::Path(p.clone()),
        None if wants_tty && !detach => {
            let (ours, theirs) = socket::socketpair(
                AddressFamily::Unix,
                SockType::Stream,
                None,
                SockFlag::SOCK_CLOEXEC,
            )
            .context(|| "console socketpair".into())?;
            proxy_end = Some(ours);
            Console::Fd(theirs)
        }
        None => Console::None,
    };
    // Block the forwarded signals before the init can run the user's program, so none is
    // lost between start and the wait loop. The init was cloned with the old mask.
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(s);
    }
    mask.add(Signal::SIGCHLD);

    let created = create(opts, console)?;
    let root = opts.root.as_path();
    let c = Container {
        dir: created.dir,
        st: created.state,
    };
    if let Err(e) = super::start::release(&c) {
        let _ = super::delete::destroy(&c);
        return Err(e);
    }
    if let Err(e) = crate::hooks::run_all(
        "poststart",
        &c.st.poststart,
        &crate::hooks::HookState {
            oci_version: &c.st.oci_version,
            id: &c.st.id,
            status: "running",
            pid: Some(c.st.pid),
            bundle: &c.st.bundle,
            annotations: Some(&c.st.annotations),
        },
    ) {
        eprintln!("hako-runtime: warning: {e}");
    }
    if detach {
        return Ok(0);
    }
    mask.thread_block().context(|| "block signals".into())?;
    let code = match proxy_end {
        Some(sock) => {
            let master = receive_master(&sock)?;
            wait_with_tty(c.st.pid, &mask, &master)?
        }
        None => wait_forwarding(c.st.pid, &mask)?,
    };
    let _ = mask.thread_unblock();
    super::delete::destroy(&Container::load(root, &opts.id)?)?;
    Ok(code)
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

fn receive_master(sock: &OwnedFd) -> Result<OwnedFd> {
    crate::console::recv_fd(sock).context(|| "receive pty master".into())
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
    let code = loop {
        let mut fds = vec![
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
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
        if master_ready {
            match nix::unistd::read(master.as_fd(), &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => {}
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
