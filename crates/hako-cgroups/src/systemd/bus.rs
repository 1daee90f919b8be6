//! A blocking D-Bus connection over a unix socket: EXTERNAL authentication, method calls
//! with their replies, and signals kept until someone waits for them.
//!
//! ```text
//!  client                                   systemd (private socket, or the bus daemon)
//!    \0 AUTH EXTERNAL <hex uid>\r\n  ─────►
//!                                    ◄───── OK <guid>\r\n
//!    BEGIN\r\n                       ─────►
//!    [bus daemon only] Hello         ─────►  ◄── our unique name
//!    METHOD_CALL serial=n            ─────►
//!                                    ◄───── SIGNAL ...        (kept in `pending`)
//!                                    ◄───── METHOD_RETURN / ERROR reply_serial=n
//! ```

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::wire::{Decoder, Encoder, Value, WireError};

/// How long a call waits for its reply (systemd answers in milliseconds; a loaded TCG guest
/// in seconds).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Signals kept for later waits.
const MAX_PENDING: usize = 256;
const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;

/// Header field codes.
const PATH: u8 = 1;
const INTERFACE: u8 = 2;
const MEMBER: u8 = 3;
const ERROR_NAME: u8 = 4;
const REPLY_SERIAL: u8 = 5;
const DESTINATION: u8 = 6;
const SIGNATURE: u8 = 8;

/// Anything larger is not a message systemd would send us.
const MAX_MESSAGE: usize = 16 << 20;

/// What can go wrong on the bus.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BusError {
    #[error("cannot connect to {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("D-Bus authentication with {path} failed: {reply:?}")]
    Auth { path: PathBuf, reply: String },
    #[error("D-Bus I/O: {0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Wire(#[from] WireError),
    /// The peer answered with a D-Bus error.
    #[error("{name}: {message}")]
    Remote { name: String, message: String },
    #[error("no answer from systemd within {0:?}")]
    Timeout(Duration),
}

/// One received message.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) kind: u8,
    pub(crate) interface: String,
    pub(crate) member: String,
    pub(crate) error_name: String,
    pub(crate) reply_serial: u32,
    pub(crate) body: Vec<Value>,
}

/// A connection to systemd's D-Bus API.
#[derive(Debug)]
pub(crate) struct Bus {
    stream: UnixStream,
    serial: u32,
    /// Signals that arrived while we waited for a reply.
    pending: VecDeque<Message>,
}

/// `uid` as the peer sees it: in a user namespace (rootless: 0 inside is the user
/// outside), the kernel hands the peer the uid outside, and EXTERNAL must name that one.
/// `uid_map` is /proc/self/uid_map (`inside outside count` lines).
fn outer_uid(uid: u32, uid_map: &str) -> u32 {
    uid_map
        .lines()
        .find_map(|l| {
            let f: Vec<u32> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            match f[..] {
                [inside, outside, count] if uid >= inside && uid - inside < count => {
                    Some(outside + (uid - inside))
                }
                _ => None,
            }
        })
        .unwrap_or(uid)
}

impl Bus {
    /// Connects to `path` and authenticates as our uid; `daemon` says the socket is a bus
    /// daemon (which wants a Hello first), not systemd's private peer-to-peer socket.
    pub(crate) fn connect(path: &Path, daemon: bool) -> Result<Bus, BusError> {
        let stream = UnixStream::connect(path).map_err(|source| BusError::Connect {
            path: path.to_owned(),
            source,
        })?;
        stream.set_read_timeout(Some(CALL_TIMEOUT))?;
        let mut bus = Bus {
            stream,
            serial: 0,
            pending: VecDeque::new(),
        };
        bus.authenticate(path)?;
        if daemon {
            bus.call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "Hello",
                &[],
            )?;
        }
        Ok(bus)
    }

    fn authenticate(&mut self, path: &Path) -> Result<(), BusError> {
        let uid = outer_uid(
            nix::unistd::geteuid().as_raw(),
            &std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default(),
        )
        .to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        // AUTH and BEGIN go in one write, and the first message only after the server's
        // OK, as sd-bus's own clients do: systemd 252's sd-bus never looks at a message
        // that arrives in the same read as BEGIN (until more bytes come), so a call sent
        // right behind BEGIN got no answer whenever systemd woke late enough to read both
        // at once (seen as 30 s stalls of StopUnit in the CI's TCG guest; a probe that
        // sends BEGIN and a call in one write gets no reply 20 times out of 20).
        self.stream
            .write_all(format!("\0AUTH EXTERNAL {hex}\r\nBEGIN\r\n").as_bytes())?;
        let reply = self.read_line()?;
        if !reply.starts_with("OK ") {
            return Err(BusError::Auth {
                path: path.to_owned(),
                reply,
            });
        }
        Ok(())
    }

    fn read_line(&mut self) -> Result<String, BusError> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            self.stream.read_exact(&mut byte)?;
            line.push(byte[0]);
            if line.len() > 512 {
                break;
            }
        }
        Ok(String::from_utf8_lossy(&line).trim_end().to_owned())
    }

    /// Calls a method and returns the reply's body; a D-Bus error becomes
    /// [`BusError::Remote`].
    pub(crate) fn call(
        &mut self,
        destination: &str,
        path: &str,
        interface: &str,
        member: &str,
        args: &[Value],
    ) -> Result<Vec<Value>, BusError> {
        self.serial += 1;
        let serial = self.serial;
        let msg = encode_call(serial, destination, path, interface, member, args);
        self.stream.write_all(&msg)?;
        loop {
            let m = self.read_message()?;
            match m.kind {
                METHOD_RETURN if m.reply_serial == serial => return Ok(m.body),
                ERROR if m.reply_serial == serial => {
                    return Err(BusError::Remote {
                        name: m.error_name,
                        message: m
                            .body
                            .first()
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    });
                }
                SIGNAL => self.keep(m),
                _ => {}
            }
        }
    }

    /// Waits for a signal `interface.member` for which `matches` holds (signals that came
    /// in earlier count too), returning its body.
    pub(crate) fn wait_signal(
        &mut self,
        interface: &str,
        member: &str,
        timeout: Duration,
        mut matches: impl FnMut(&[Value]) -> bool,
    ) -> Result<Vec<Value>, BusError> {
        let wanted = |m: &Message| m.interface == interface && m.member == member;
        if let Some(i) = self
            .pending
            .iter()
            .position(|m| wanted(m) && matches(&m.body))
        {
            let m = self.pending.remove(i).expect("index from position");
            return Ok(m.body);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Wait for the first byte with poll, then read the whole message with the call
            // timeout: a read timing out halfway through a message would lose its framing.
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.stream.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => return Err(BusError::Timeout(timeout)),
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(BusError::Io(e.into())),
            }
            if Instant::now() >= deadline && fds[0].revents().is_none_or(|r| r.is_empty()) {
                return Err(BusError::Timeout(timeout));
            }
            let m = self.read_message()?;
            if m.kind == SIGNAL && wanted(&m) && matches(&m.body) {
                return Ok(m.body);
            }
            if m.kind == SIGNAL {
                self.keep(m);
            }
        }
    }

    /// Keeps a signal for a later [`Bus::wait_signal`]; systemd sends many (every unit's
    /// PropertiesChanged), so only the newest are kept.
    fn keep(&mut self, m: Message) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(m);
    }

    fn read_message(&mut self) -> Result<Message, BusError> {
        let mut fixed = [0u8; 16];
        self.stream.read_exact(&mut fixed)?;
        if fixed[0] != b'l' {
            return Err(WireError("only little-endian messages are understood".into()).into());
        }
        let word = |i: usize| {
            u32::from_le_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]) as usize
        };
        let (body_len, fields_len) = (word(4), word(12));
        let header_len = (16 + fields_len).next_multiple_of(8);
        let total = header_len + body_len;
        if total > MAX_MESSAGE {
            return Err(WireError(format!("a {total}-byte message")).into());
        }
        let mut buf = vec![0u8; total];
        buf[..16].copy_from_slice(&fixed);
        self.stream.read_exact(&mut buf[16..])?;
        decode_message(&buf, header_len)
    }
}

fn field(code: u8, v: Value) -> Value {
    Value::Struct(vec![Value::Byte(code), Value::Variant(Box::new(v))])
}

/// A METHOD_CALL message, ready to write.
pub(crate) fn encode_call(
    serial: u32,
    destination: &str,
    path: &str,
    interface: &str,
    member: &str,
    args: &[Value],
) -> Vec<u8> {
    let mut body = Encoder::default();
    for a in args {
        body.put(a);
    }
    let signature: String = args.iter().map(Value::signature).collect();
    let mut fields = vec![
        field(PATH, Value::Path(path.into())),
        field(INTERFACE, Value::Str(interface.into())),
        field(MEMBER, Value::Str(member.into())),
        field(DESTINATION, Value::Str(destination.into())),
    ];
    if !signature.is_empty() {
        fields.push(field(SIGNATURE, Value::Sig(signature)));
    }
    let mut e = Encoder::default();
    e.buf.extend_from_slice(&[b'l', METHOD_CALL, 0, 1]);
    e.buf.extend_from_slice(
        &u32::try_from(body.buf.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    e.buf.extend_from_slice(&serial.to_le_bytes());
    e.put(&Value::Array("(yv)".into(), fields));
    e.pad(8);
    e.buf.extend_from_slice(&body.buf);
    e.buf
}

/// Parses a whole message; `header_len` is where the (8-aligned) body starts.
pub(crate) fn decode_message(buf: &[u8], header_len: usize) -> Result<Message, BusError> {
    let mut d = Decoder::new(&buf[..header_len], 12);
    let Value::Array(_, fields) = d.value("a(yv)")? else {
        return Err(WireError("header fields are not an array".into()).into());
    };
    let mut m = Message {
        kind: buf[1],
        interface: String::new(),
        member: String::new(),
        error_name: String::new(),
        reply_serial: 0,
        body: Vec::new(),
    };
    let mut signature = String::new();
    for f in fields {
        let Value::Struct(parts) = f else { continue };
        let (Some(Value::Byte(code)), Some(v)) = (parts.first(), parts.get(1)) else {
            continue;
        };
        let text = || v.as_str().unwrap_or_default().to_owned();
        match *code {
            INTERFACE => m.interface = text(),
            MEMBER => m.member = text(),
            ERROR_NAME => m.error_name = text(),
            REPLY_SERIAL => {
                m.reply_serial = v.as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
            }
            SIGNATURE => signature = text(),
            _ => {}
        }
    }
    // The body's offsets count from its own start (it begins 8-aligned).
    let mut body = Decoder::new(&buf[header_len..], 0);
    m.body = body.values(&signature)?;
    Ok(m)
}

#[cfg(test)]
mod tests {

    #[test]
    fn external_auth_names_the_uid_outside_the_user_namespace() {
        assert_eq!(super::outer_uid(0, "         0          0 4294967295\n"), 0);
        assert_eq!(super::outer_uid(0, "0 1000 1\n1 100000 65536\n"), 1000);
        assert_eq!(super::outer_uid(5, "0 1000 1\n1 100000 65536\n"), 100004);
        assert_eq!(super::outer_uid(7, ""), 7);
    }
    use super::*;

    #[test]
    fn a_call_decodes_back() {
        let args = [
            Value::Str("hako-x.scope".into()),
            Value::Str("replace".into()),
            Value::Array(
                "(sv)".into(),
                vec![Value::Struct(vec![
                    Value::Str("PIDs".into()),
                    Value::Variant(Box::new(Value::Array("u".into(), vec![Value::U32(42)]))),
                ])],
            ),
            Value::Array("(sa(sv))".into(), Vec::new()),
        ];
        let buf = encode_call(
            7,
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StartTransientUnit",
            &args,
        );
        let fields_len = u32::from_le_bytes(buf[12..16].try_into().unwrap()) as usize;
        let header_len = (16 + fields_len).next_multiple_of(8);
        let m = decode_message(&buf, header_len).unwrap();
        assert_eq!(m.kind, METHOD_CALL);
        assert_eq!(m.interface, "org.freedesktop.systemd1.Manager");
        assert_eq!(m.member, "StartTransientUnit");
        assert_eq!(m.body, args);
        let body_len = u32::from_le_bytes(buf[4..8].try_into().unwrap()) as usize;
        assert_eq!(buf.len(), header_len + body_len);
    }

    /// A reply with no body to call `serial`.
    fn method_return(serial: u32) -> Vec<u8> {
        let mut e = Encoder::default();
        e.buf.extend_from_slice(&[b'l', METHOD_RETURN, 0, 1]);
        e.buf.extend_from_slice(&0u32.to_le_bytes());
        e.buf.extend_from_slice(&1u32.to_le_bytes());
        e.put(&Value::Array(
            "(yv)".into(),
            vec![field(REPLY_SERIAL, Value::U32(serial))],
        ));
        e.pad(8);
        e.buf
    }

    /// systemd 252 never answers a call that arrives in the same read as BEGIN: the client
    /// must send AUTH and BEGIN together and nothing more until the server's OK. The fake
    /// server reads what came before it answers (after giving the client time to write
    /// everything it would) and checks exactly that.
    #[test]
    fn nothing_follows_begin_before_the_servers_ok() {
        use std::io::{Read, Write};
        use std::os::unix::net::UnixListener;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("private");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(200));
            let mut first = [0u8; 512];
            let n = s.read(&mut first).unwrap();
            let first = String::from_utf8_lossy(&first[..n]).into_owned();
            let uid = outer_uid(
                nix::unistd::geteuid().as_raw(),
                &std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default(),
            )
            .to_string();
            let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
            if first != format!("\0AUTH EXTERNAL {hex}\r\nBEGIN\r\n") {
                return Err(format!("before OK the client sent {first:?}"));
            }
            s.write_all(b"OK 0123456789abcdef\r\n").unwrap();
            let mut fixed = [0u8; 16];
            s.read_exact(&mut fixed).unwrap();
            let serial = u32::from_le_bytes(fixed[8..12].try_into().unwrap());
            s.write_all(&method_return(serial)).unwrap();
            Ok(())
        });
        let result = Bus::connect(&path, false).and_then(|mut b| {
            b.call(
                "org.freedesktop.systemd1",
                "/org/freedesktop/systemd1",
                "org.freedesktop.DBus.Peer",
                "Ping",
                &[],
            )
        });
        server.join().unwrap().unwrap();
        assert_eq!(result.unwrap(), Vec::<Value>::new());
    }
}
