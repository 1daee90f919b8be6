//! The shim's control protocol, and a small blocking client for it.
//!
//! Every request is **one JSON line** (terminated by `\n`) written on a *fresh* connection to
//! the unix stream socket `<state-dir>/attach.sock`; the shim answers with one JSON line.
//! Except for `attach`, the shim closes the connection after the reply. The JSON is serde's
//! externally tagged form in `snake_case`: a unit variant is a bare string, a variant with
//! fields is a one-key object.
//!
//! ```text
//!   client → shim                                      shim → client
//!   {"attach":{"stdin":true,"stdout":true,"stderr":true}}  {"attached":{"tty":false}}  then a stream
//!   {"resize":{"rows":40,"cols":120}}                  "ok"
//!   "start"                                            "ok" | {"error":{"message":"..."}}
//!   "wait"                                             {"exited":{"exit_code":3,"signal":null,
//!                                                        "finished_at":"2026-11-28T16:03:24.123456789Z",
//!                                                        "oom_killed":false,"restart_count":0}}
//!   "state"                                            {"state":{"pid":4242,"status":"running",...}}
//!   {"stop":{"no_restart":true}}                       "ok"
//! ```
//!
//! `start` is answered after `RUNTIME start ID` returned. `wait` is answered at the
//! container's *next* exit, or at once if it has exited and will not be restarted. The shim
//! ends right after the container's final exit, so a `wait` can also find no shim (the
//! socket is gone, the connection is refused or closed unanswered): the exit is then in
//! `exit.json`, written before the socket goes away. [`wait`] does both. `stop`
//! only marks the container as stopped by the user (the restart policy then leaves it
//! down); the engine sends the signal itself with `RUNTIME kill`.
//!
//! # The attach stream
//!
//! After the `attached` line the connection carries the container's stdio:
//!
//! * **tty**: raw bytes both ways (the pty).
//! * **no tty**: shim → client uses Docker's stdcopy framing, an 8-byte header
//!   `[stream, 0, 0, 0, len as u32 big-endian]` (stream 1 = stdout, 2 = stderr) and then
//!   `len` bytes of payload; client → shim bytes are raw stdin.
//!
//! A client that shuts down its write half closes the container's stdin when the shim runs
//! with `--stdin-once` and without `--tty` (Docker's rule: with a tty, the end of a
//! client's input is a detach, and the terminal stays open for the next attach). Clients that only want output never write. When the container has
//! exited and its output is drained the shim closes the connection.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The control socket in the state directory.
pub const ATTACH_SOCKET: &str = "attach.sock";
/// The socket the runtime sends the pty master to (`--console-socket`), with `--tty`.
pub const CONSOLE_SOCKET: &str = "console.sock";
/// The shim's pid and start time (`PID STARTTIME`, see [`shim_alive`]), written once it
/// is running.
pub const SHIM_PID_FILE: &str = "shim.pid";
/// The container init's pid, written by the runtime (`--pid-file`).
pub const INIT_PID_FILE: &str = "init.pid";
/// The last exit of the container ([`ExitInfo`] as JSON), replaced atomically.
pub const EXIT_FILE: &str = "exit.json";
/// The runtime's JSON log (`--log ... --log-format json`).
pub const RUNTIME_LOG: &str = "runtime.log";
/// Made in the state directory by a remover that claimed the container's removal and
/// waits for the shim to finish: the shim then ends without its exit command, which would
/// only find the removal under way and exit.
pub const REMOVING_FILE: &str = "removing";

/// Stream ids in the stdcopy header of a non-tty attach stream.
pub const STREAM_STDOUT: u8 = 1;
/// See [`STREAM_STDOUT`].
pub const STREAM_STDERR: u8 = 2;

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Attach to the container's stdio; reply [`Reply::Attached`], then the stream.
    Attach {
        /// Forward the client's bytes to the container's stdin.
        stdin: bool,
        /// Send the container's stdout.
        stdout: bool,
        /// Send the container's stderr.
        stderr: bool,
    },
    /// Set the terminal size (tty only); reply [`Reply::Ok`].
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// Run `RUNTIME start ID`; reply after it returned.
    Start,
    /// Reply [`Reply::Exited`] at the next exit (at once if exited for good).
    Wait,
    /// Reply [`Reply::State`].
    State,
    /// Mark the container stopped by the user, so the restart policy leaves it down.
    Stop {
        /// Do not restart after the coming exit (the only meaningful value is `true`).
        no_restart: bool,
    },
    /// Follow a new restart policy from now on (`docker update --restart`); reply
    /// [`Reply::Ok`], or an error for a policy the shim cannot parse.
    SetRestartPolicy {
        /// The policy in `--restart` syntax (`no`, `always`, `on-failure:3`...).
        policy: String,
    },
}

/// How the container's init ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// The exit code, or 128+N when signal N killed it.
    pub exit_code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// When the shim reaped it: RFC 3339 UTC with nanoseconds.
    pub finished_at: String,
    /// The cgroup recorded an OOM kill during this run (best effort).
    pub oom_killed: bool,
    /// Restarts done before this exit.
    pub restart_count: u32,
}

/// The shim's view of the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimState {
    /// The init's pid while it runs (also while created, before start).
    pub pid: Option<i32>,
    /// `created`, `running`, `restarting` or `exited`.
    pub status: String,
    /// When the current (or last) run started: RFC 3339 UTC with nanoseconds.
    pub started_at: Option<String>,
    /// The last exit, if any.
    pub exit: Option<ExitInfo>,
    /// Restarts done by the restart policy.
    pub restart_count: u32,
    /// Whether the container has a terminal.
    pub tty: bool,
}

/// The shim's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// Done.
    Ok,
    /// Failed, with a message for the user.
    Error {
        /// What went wrong.
        message: String,
    },
    /// The attach stream follows.
    Attached {
        /// Raw bytes (tty) rather than stdcopy frames.
        tty: bool,
    },
    /// Answer to [`Request::Wait`].
    Exited(ExitInfo),
    /// Answer to [`Request::State`].
    State(ShimState),
}

/// The path of the control socket of the shim with state directory `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(ATTACH_SOCKET)
}

/// Send one request on a fresh connection and read the one-line reply.
///
/// For [`Request::Wait`] this blocks until the container exits.
pub fn request(state_dir: &Path, req: &Request) -> io::Result<Reply> {
    let mut stream = crate::sockpath::connect(&socket_path(state_dir))?;
    send(&mut stream, req)?;
    read_reply(&mut stream)
}

/// Attach to the container's stdio. Returns the connection positioned right after the
/// reply line (nothing of the stream is consumed) and whether the container has a tty.
pub fn attach(
    state_dir: &Path,
    stdin: bool,
    stdout: bool,
    stderr: bool,
) -> io::Result<(UnixStream, bool)> {
    let mut stream = crate::sockpath::connect(&socket_path(state_dir))?;
    send(
        &mut stream,
        &Request::Attach {
            stdin,
            stdout,
            stderr,
        },
    )?;
    match read_reply(&mut stream)? {
        Reply::Attached { tty } => Ok((stream, tty)),
        Reply::Error { message } => Err(io::Error::other(message)),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected reply to attach: {other:?}"),
        )),
    }
}

/// Wait for the container's next exit, as [`Request::Wait`] does; when the shim is already
/// gone (it ends right after the container's final exit, possibly before a `wait` reaches
/// it), the exit it recorded in `exit.json`.
pub fn wait(state_dir: &Path) -> io::Result<ExitInfo> {
    match request(state_dir, &Request::Wait) {
        Ok(Reply::Exited(exit)) => Ok(exit),
        Ok(Reply::Error { message }) => Err(io::Error::other(message)),
        Ok(other) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected reply to wait: {other:?}"),
        )),
        Err(e) if shim_gone(&e) => read_exit(state_dir)?.ok_or(e),
        Err(e) => Err(e),
    }
}

/// The errors of a connection to a shim that has ended (socket removed, listener closed,
/// connection dropped unanswered).
fn shim_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::UnexpectedEof
    )
}

/// The last recorded exit (`<state-dir>/exit.json`), `None` if the container never exited.
pub fn read_exit(state_dir: &Path) -> io::Result<Option<ExitInfo>> {
    match std::fs::read(state_dir.join(EXIT_FILE)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Docker's exit code for a process the runtime could not start: 127 when the program is
/// not there, 126 when it cannot be executed, else 125 (the runtime's own failure).
pub fn start_failure_exit_code(message: &str) -> i32 {
    let lower = message.to_ascii_lowercase();
    if lower.contains("executable file not found") || lower.contains("no such file or directory") {
        127
    } else if lower.contains("permission denied") || lower.contains("exec format error") {
        126
    } else {
        125
    }
}

/// `shim.pid` for this process: its pid and its start time.
pub fn write_shim_pid(state_dir: &Path) -> io::Result<()> {
    let pid = std::process::id();
    let start = i32::try_from(pid)
        .ok()
        .and_then(hako_sys::process::proc_stat)
        .map_or(0, |(_, start)| start);
    std::fs::write(state_dir.join(SHIM_PID_FILE), format!("{pid} {start}\n"))
}

/// `shim.pid`: the shim's pid and start time (`None` in files of older shims).
pub fn read_shim_pid(state_dir: &Path) -> Option<(i32, Option<u64>)> {
    let text = std::fs::read_to_string(state_dir.join(SHIM_PID_FILE)).ok()?;
    let mut words = text.split_whitespace();
    let pid = words.next()?.parse::<i32>().ok()?;
    Some((pid, words.next().and_then(|s| s.parse::<u64>().ok())))
}

/// Does the shim that wrote `shim.pid` in `state_dir` still run? The very process, not
/// one that got its pid after it died (the start time differs), and not a zombie.
pub fn shim_alive(state_dir: &Path) -> bool {
    let Some((pid, recorded)) = read_shim_pid(state_dir) else {
        return false;
    };
    match (hako_sys::process::proc_stat(pid), recorded) {
        (Some((state, _)), _) if state == 'Z' || state == 'X' => false,
        (Some((_, start)), Some(recorded)) => start == recorded,
        // A pid file from a shim older than start times.
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Write `req` as one line.
fn send(stream: &mut UnixStream, req: &Request) -> io::Result<()> {
    let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)
}

/// Read one line and nothing after it (the attach stream follows the reply on the same
/// connection).
fn read_reply(stream: &mut UnixStream) -> io::Result<Reply> {
    let line = read_line(stream, 1 << 20)?;
    serde_json::from_slice(&line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Read up to and without the next `\n`, at most `max` bytes, consuming nothing after it:
/// peek at what has arrived, then take exactly the bytes up to the newline. Two system
/// calls for a reply that came in one piece (byte-sized reads took one per byte: ~240 for
/// a state reply).
pub(crate) fn read_line(stream: &mut UnixStream, max: usize) -> io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut line = Vec::with_capacity(256);
    let mut buf = [0u8; 4096];
    loop {
        let peeked = match nix::sys::socket::recv(
            stream.as_raw_fd(),
            &mut buf,
            nix::sys::socket::MsgFlags::MSG_PEEK,
        ) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if peeked == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the shim closed the connection before replying",
            ));
        }
        let newline = buf[..peeked].iter().position(|b| *b == b'\n');
        let take = newline.map_or(peeked, |i| i + 1);
        // Those bytes have arrived: this read returns them at once.
        stream.read_exact(&mut buf[..take])?;
        let content = &buf[..newline.unwrap_or(take)];
        if line.len() + content.len() > max {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
        line.extend_from_slice(content);
        if newline.is_some() {
            return Ok(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_readable() {
        let attach = Request::Attach {
            stdin: true,
            stdout: true,
            stderr: false,
        };
        assert_eq!(
            serde_json::to_string(&attach).unwrap(),
            r#"{"attach":{"stdin":true,"stdout":true,"stderr":false}}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Start).unwrap(),
            r#""start""#
        );
        assert_eq!(serde_json::to_string(&Reply::Ok).unwrap(), r#""ok""#);
        assert_eq!(
            serde_json::to_string(&Reply::Attached { tty: true }).unwrap(),
            r#"{"attached":{"tty":true}}"#
        );
        let exited: Reply = serde_json::from_str(
            r#"{"exited":{"exit_code":3,"signal":null,"finished_at":"x","oom_killed":false,"restart_count":1}}"#,
        )
        .unwrap();
        assert!(matches!(
            exited,
            Reply::Exited(ExitInfo { exit_code: 3, .. })
        ));
    }

    #[test]
    fn read_line_leaves_the_rest() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(b"\"ok\"\nstream bytes").unwrap();
        assert_eq!(read_line(&mut b, 100).unwrap(), b"\"ok\"");
        drop(a);
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"stream bytes");
    }

    #[test]
    fn read_line_joins_pieces_and_refuses_long_lines() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            for piece in [&b"{\"er"[..], b"ror\":", b"\"x\"}\nnext"] {
                a.write_all(piece).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            a
        });
        assert_eq!(read_line(&mut b, 100).unwrap(), br#"{"error":"x"}"#);
        let a = writer.join().unwrap();
        let mut next = [0u8; 4];
        b.read_exact(&mut next).unwrap();
        assert_eq!(&next, b"next");

        let (mut a2, mut b2) = UnixStream::pair().unwrap();
        a2.write_all(&[b'x'; 200]).unwrap();
        let e = read_line(&mut b2, 100).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        drop(a);
        drop(a2);
        let e = read_line(&mut b, 100).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
