//! The terminal side of an attach: copy the user's stdin to the container and its output
//! back, demultiplexing Docker's stdcopy frames (no tty) or passing raw bytes (tty) with
//! the terminal in raw mode, window size changes forwarded, and Docker's detach keys
//! (ctrl-p ctrl-q) to leave the container running.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use anyhow::{Context as _, Result};
use hako_engine::stream::{self, DetachScanner};
use hako_engine::{Attached, Resizer};
use nix::sys::signal::{SigSet, Signal};

/// How the attach ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The container's output ended (it exited).
    Exited,
    /// The user pressed the detach keys.
    Detached,
}

/// `ctrl-p,ctrl-q` -> bytes (Docker's syntax, parsed by the engine).
pub fn detach_keys(spec: &str) -> Result<Vec<u8>> {
    hako_engine::stream::parse_detach_keys(spec).map_err(super::engine_err)
}

/// Raw mode on the terminal while it lives.
struct RawMode {
    saved: Option<nix::sys::termios::Termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(stdin.as_fd()) else {
            return RawMode { saved: None };
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin().as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

fn stdin_is_tty() -> bool {
    nix::unistd::isatty(std::io::stdin().as_fd()).unwrap_or(false)
}

/// Docker's `CheckTty`: a tty with our stdin attached needs a terminal on that stdin
/// (`hako run -it IMAGE < file` fails, with Docker's message and status 1, before
/// anything is created).
pub fn check_tty(attach_stdin: bool, tty: bool) -> Result<()> {
    if attach_stdin && tty && !stdin_is_tty() {
        return Err(super::EngineError::with_code(
            "the input device is not a TTY",
            1,
        ));
    }
    Ok(())
}

/// This terminal's size (rows, cols), if stdout or stdin is one.
pub fn terminal_size() -> Option<(u16, u16)> {
    hako_sys::tty::get_winsize(std::io::stdout().as_fd())
        .or_else(|_| hako_sys::tty::get_winsize(std::io::stdin().as_fd()))
        .ok()
        .filter(|(r, c)| *r > 0 && *c > 0)
}

fn send_size(resizer: &Resizer) {
    if let Some((rows, cols)) = terminal_size() {
        let _ = resizer.resize(rows, cols);
    }
}

/// Copies stdio to and from the attached stream until the container's (or exec's)
/// output ends or the user detaches.
pub fn pump(att: Attached, stdin: bool, keys: &[u8]) -> Result<End> {
    let tty = att.tty;
    let raw = (tty && stdin && stdin_is_tty()).then(RawMode::enter);
    if tty {
        send_size(&att.resizer);
        // SIGWINCH is blocked in every thread; this one waits for it.
        let mut set = SigSet::empty();
        set.add(Signal::SIGWINCH);
        let _ = set.thread_block();
        let resizer = att.resizer.clone();
        std::thread::spawn(move || {
            while set.wait().is_ok() {
                send_size(&resizer);
            }
        });
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel::<End>();
    if stdin {
        let mut to_ctr = att.stream.try_clone().context("clone the attach stream")?;
        let mut scanner = DetachScanner::new(if tty { keys.to_vec() } else { Vec::new() });
        let tx = done_tx.clone();
        std::thread::spawn(move || {
            let mut input = std::io::stdin().lock();
            let mut buf = [0u8; 4096];
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let (out, detached) = scanner.feed(&buf[..n]);
                if to_ctr.write_all(&out).is_err() {
                    return;
                }
                if detached {
                    let _ = tx.send(End::Detached);
                    return;
                }
            }
            let _ = to_ctr.shutdown(std::net::Shutdown::Write);
        });
    }
    let mut from_ctr = att.stream.try_clone().context("clone the attach stream")?;
    std::thread::spawn(move || {
        let _ = copy_output(&mut from_ctr, tty);
        let _ = done_tx.send(End::Exited);
    });
    let end = done_rx.recv().unwrap_or(End::Exited);
    drop(raw);
    drop(att);
    Ok(end)
}

fn copy_output(s: &mut UnixStream, tty: bool) -> std::io::Result<()> {
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    if tty {
        let mut buf = [0u8; 8192];
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            stdout.write_all(&buf[..n])?;
            stdout.flush()?;
        }
    }
    let mut payload = Vec::new();
    while let Some(kind) = stream::read_frame(s, &mut payload)? {
        if kind == stream::STDERR {
            stderr.write_all(&payload)?;
            stderr.flush()?;
        } else {
            stdout.write_all(&payload)?;
            stdout.flush()?;
        }
    }
    Ok(())
}
