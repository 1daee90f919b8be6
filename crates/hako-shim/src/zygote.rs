//! A shim started ahead of need (`hako serve` keeps one): `hako-shim --zygote-fd N PAD`.
//!
//! Why: a shim's spawn is on the way from `docker run`'s attach to the container's start:
//! the server's fork and the exec it waits for (~1 ms), then the shim's own start-up to its
//! detach fork (~0.7 ms). A zygote has done all of that before it is needed, and waits on a
//! socket pair for the command line it would have been spawned with.
//!
//! ```text
//!   server                                  zygote (hako-shim --zygote-fd N PAD)
//!   socketpair(SEQPACKET), spawn ─────────▶ close inherited fds but N, detach (fork: the
//!   reap the child                           server's child exits, the grandchild goes on
//!                                            in a new session), recvmsg on N
//!   start: one message ─────────────────────▶ {"args","cwd","fds","stderr"} + SCM_RIGHTS
//!   close its end                            stderr onto 2, its command line written over
//!                                            PAD, the descriptors renumbered, then the shim
//!                                            goes on as if spawned with those arguments
//!   end of file instead (the server stopped
//!   keeping one, or died) ───────────────────▶ exit 0
//! ```
//!
//! The command line: `/proc/<pid>/cmdline` is the memory of the process's arguments; the
//! zygote is started with PAD (a [`PAD_LEN`]-byte argument) and writes the real arguments
//! over it, so what reads a shim's command line (`ps`, the engine's `is_shim_of`, `system
//! check`) sees `hako-shim --id ID ...` as for a spawned shim. A command line longer than
//! the pad is spawned as before ([`fits`]).

use std::io::{IoSlice, IoSliceMut, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::{Deserialize, Serialize};

/// The zygote's first argument; the descriptor number of its end of the socket pair follows.
pub const FLAG: &str = "--zygote-fd";
/// The length of the argument the real command line is written over.
pub const PAD_LEN: usize = 6144;
/// At most this many descriptors in a handover (the kernel's SCM_MAX_FD is 253).
pub const MAX_FDS: usize = 200;
/// The largest handover message.
const MAX_MESSAGE: usize = 64 * 1024;

/// What the server hands a zygote: the command line it would have spawned, the directory
/// relative paths in it are relative to, and which of the server's descriptor numbers in
/// it each passed descriptor stands for.
#[derive(Debug, Serialize, Deserialize)]
pub struct Handover {
    /// The whole command line, the program first.
    pub args: Vec<String>,
    /// The spawner's working directory.
    pub cwd: String,
    /// For each passed descriptor in order, the number the arguments name it by.
    pub fds: Vec<RawFd>,
    /// The index of the passed descriptor that becomes the shim's stderr.
    pub stderr: Option<usize>,
}

/// The pad argument.
pub fn pad() -> String {
    "z".repeat(PAD_LEN)
}

/// Whether `args` (the program first) can be written over a zygote's command line: the
/// zygote's is `PROGRAM --zygote-fd N PAD`, each ending in a NUL.
pub fn fits(args: &[String], program: &str) -> bool {
    let room = program.len() + 1 + FLAG.len() + 1 + 1 + PAD_LEN + 1;
    args.iter().map(|a| a.len() + 1).sum::<usize>() <= room
}

/// Sends `h` with `fds` (in the order of `h.fds`, then the stderr one where `h.stderr`
/// says) over the server's end of the socket pair.
pub fn send(ctl: &OwnedFd, h: &Handover, fds: &[RawFd]) -> std::io::Result<()> {
    let body = serde_json::to_vec(h).map_err(std::io::Error::other)?;
    if body.len() > MAX_MESSAGE || fds.len() > MAX_FDS {
        return Err(std::io::Error::other("handover too large"));
    }
    let cmsg = [ControlMessage::ScmRights(fds)];
    let iov = [IoSlice::new(&body)];
    let sent = sendmsg::<()>(
        ctl.as_raw_fd(),
        &iov,
        if fds.is_empty() { &[] } else { &cmsg },
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    if sent != body.len() {
        return Err(std::io::Error::other("handover cut short"));
    }
    Ok(())
}

/// `hako-shim --zygote-fd N ...`: N.
pub fn invoked_as() -> Option<RawFd> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != FLAG {
        return None;
    }
    args.next()?.to_str()?.parse().ok()
}

/// The zygote's life: detach, wait for a handover, then be the shim it describes. Never
/// returns.
pub fn serve(fd: RawFd) -> ! {
    crate::daemon::close_inherited(&[fd]);
    let Some(ctl) = hako_sys::fd::from_inherited(fd) else {
        std::process::exit(1);
    };
    let _ = nix::fcntl::fcntl(
        &ctl,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    if crate::daemon::detach().is_err() {
        std::process::exit(1);
    }
    // The host's cgroup mounts, read once here for the container's create and delete
    // (each a process of this one's): /proc/self/mountinfo and /proc/cgroups cost ~0.25
    // ms a read (perf, `docker run --rm` through `hako serve`). Hierarchies are mounted
    // at boot; a table that changed meanwhile would be read by the next zygote.
    let _ = hako_cgroups::detect_layout();
    let (h, fds) = match receive(&ctl) {
        Ok(Some(got)) => got,
        // End of file: the server keeps no zygote any more, or is gone.
        Ok(None) => std::process::exit(0),
        Err(e) => {
            eprintln!("hako-shim: zygote handover: {e}");
            std::process::exit(1);
        }
    };
    drop(ctl);
    become_shim(h, fds)
}

fn receive(ctl: &OwnedFd) -> std::io::Result<Option<(Handover, Vec<OwnedFd>)>> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (n, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(
            ctl.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        fds.extend(raw.into_iter().map(hako_sys::fd::from_received));
                    }
                }
                break (msg.bytes, fds);
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    };
    if n == 0 {
        return Ok(None);
    }
    let h: Handover = serde_json::from_slice(&buf[..n]).map_err(std::io::Error::other)?;
    if h.fds.len() + usize::from(h.stderr.is_some()) != fds.len() {
        return Err(std::io::Error::other(format!(
            "{} descriptors for {} numbers",
            fds.len(),
            h.fds.len()
        )));
    }
    Ok(Some((h, fds)))
}

fn become_shim(h: Handover, fds: Vec<OwnedFd>) -> ! {
    let mut fds: Vec<Option<OwnedFd>> = fds.into_iter().map(Some).collect();
    if let Some(i) = h.stderr
        && let Some(err) = fds.get_mut(i).and_then(Option::take)
    {
        let _ = nix::unistd::dup2_stderr(&err);
    }
    write_command_line(&h.args);
    let opts = match <crate::Options as clap::Parser>::try_parse_from(&h.args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // The spawner's numbers → this process's: each passed descriptor is kept open under
    // its new number, owned from here on by what the options hand it to.
    let mut map = Vec::new();
    for (orig, fd) in h.fds.iter().zip(fds.iter_mut()) {
        if let Some(fd) = fd.take() {
            map.push((*orig, std::os::fd::IntoRawFd::into_raw_fd(fd)));
        }
    }
    let opts = match opts.renumber_fds(|n| map.iter().find(|(o, _)| *o == n).map(|(_, r)| *r)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("hako-shim: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = std::env::set_current_dir(&h.cwd) {
        eprintln!("hako-shim: chdir {}: {e}", h.cwd);
        std::process::exit(2);
    }
    crate::run_detached(opts)
}

/// Writes `args` over this process's argument memory (from `/proc/self/stat`'s arg_start to
/// arg_end), NUL-padded: `/proc/self/cmdline` then reads them. Best effort; a command line
/// that does not fit is left as it was.
fn write_command_line(args: &[String]) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command name (which may hold spaces) start at field 3: arg_start and
    // arg_end are fields 48 and 49.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let (Some(Ok(start)), Some(Ok(end))) = (
        fields.get(45).map(|f| f.parse::<u64>()),
        fields.get(46).map(|f| f.parse::<u64>()),
    ) else {
        return;
    };
    let Ok(room) = usize::try_from(end.saturating_sub(start)) else {
        return;
    };
    let mut bytes: Vec<u8> = Vec::with_capacity(room);
    for a in args {
        bytes.extend_from_slice(a.as_bytes());
        bytes.push(0);
    }
    if bytes.len() > room {
        return;
    }
    bytes.resize(room, 0);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/mem")
        .and_then(|mut mem| {
            mem.seek(SeekFrom::Start(start))?;
            mem.write_all(&bytes)
        });
    if let Err(e) = written {
        eprintln!("hako-shim: writing the command line: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_fits_in_the_pad_or_is_refused() {
        let prog = "/usr/bin/hako-shim".to_string();
        let short = vec![prog.clone(), "--id".into(), "x".repeat(64)];
        assert!(fits(&short, &prog));
        let long = vec![prog.clone(), "y".repeat(PAD_LEN + 64)];
        assert!(!fits(&long, &prog));
    }
}
