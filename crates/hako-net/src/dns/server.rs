//! The `hako-dns` process: see the module docs of [`crate::dns`] for its life.
//!
//! One thread per listening socket (UDP and TCP per gateway address), one short thread per
//! relayed query; the main thread waits for SIGHUP (reload) and SIGTERM/SIGINT (exit) on a
//! signalfd, the signals blocked in every thread.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::wire::{self, Query};
use crate::store;

/// Where the resolver's data and files are.
#[derive(Debug, Clone)]
pub struct Config {
    /// The store.
    pub db: PathBuf,
    /// The exec root.
    pub exec_root: PathBuf,
}

/// A bound address: gateway of which network, and its sockets.
struct Listener {
    network: String,
    /// 53, or the port taken instead when 53 was in use (the start DNATs 53 to it).
    port: u16,
    udp: Arc<UdpSocket>,
    tcp: Arc<TcpListener>,
    /// Set before the sockets are shut down: their threads end then, and only then.
    closed: Arc<AtomicBool>,
}

/// What the serving threads share.
struct Shared {
    cfg: Config,
    upstreams: Vec<SocketAddr>,
    search: Vec<String>,
}

/// Runs the resolver until nothing is left to serve; returns the exit code.
pub fn run(cfg: Config) -> i32 {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGHUP, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(s);
    }
    if mask.thread_block().is_err() {
        return 1;
    }
    let Ok(sfd) = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC) else {
        return 1;
    };
    let mut listeners: HashMap<IpAddr, Listener> = HashMap::new();
    let mut generation = 0u64;
    loop {
        generation += 1;
        let keep = reload(&cfg, &mut listeners, generation);
        if !keep {
            for l in listeners.values() {
                close(l);
            }
            return 0;
        }
        // Wake every 30 s even without a signal: a resolver whose store or exec root is
        // gone (a deleted test root, a wiped /run) has nobody left to serve.
        loop {
            let mut fds = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&sfd),
                nix::poll::PollFlags::POLLIN,
            )];
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(30_000u16)) {
                Ok(0) => {
                    if !cfg.db.exists() || !owns_pid_file(&cfg) {
                        for l in listeners.values() {
                            close(l);
                        }
                        return 0;
                    }
                }
                _ => break,
            }
        }
        match sfd.read_signal() {
            Ok(Some(si)) if si.ssi_signo == Signal::SIGHUP as u32 => continue,
            Ok(Some(_)) => {
                let _lock = super::lock(&cfg.exec_root);
                let _ = std::fs::remove_file(super::pid_file(&cfg.exec_root));
                let _ = std::fs::remove_file(super::listen_file(&cfg.exec_root));
                return 0;
            }
            _ => continue,
        }
    }
}

/// Whether the pid file still names this process.
fn owns_pid_file(cfg: &Config) -> bool {
    std::fs::read_to_string(super::pid_file(&cfg.exec_root))
        .is_ok_and(|p| p.trim() == std::process::id().to_string())
}

fn close(l: &Listener) {
    l.closed.store(true, Ordering::SeqCst);
    let _ = nix::sys::socket::shutdown(l.udp.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    let _ = nix::sys::socket::shutdown(l.tcp.as_raw_fd(), nix::sys::socket::Shutdown::Both);
}

/// The gateways to listen on: user networks with at least one live endpoint. `None` when
/// the store cannot be read just now (then nothing changes).
fn wanted(db: &Path) -> Option<HashMap<IpAddr, String>> {
    let mut out = HashMap::new();
    let conn = store::open_read_only(db).ok()?;
    let ids: BTreeSet<String> = conn
        .prepare("SELECT DISTINCT network FROM net_endpoints")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect::<rusqlite::Result<_>>())
        })
        .ok()?;
    for id in ids {
        if let Ok(n) = store::find_network(&conn, &id)
            && n.resolves_names()
        {
            for s in &n.subnets {
                out.insert(s.gateway, n.id.clone());
            }
        }
    }
    Some(out)
}

/// Binds what is new, closes what is gone, writes the listen file. False: nothing to
/// serve, the pid file is gone and the caller exits.
fn reload(cfg: &Config, listeners: &mut HashMap<IpAddr, Listener>, generation: u64) -> bool {
    let Ok(_lock) = super::lock(&cfg.exec_root) else {
        return false;
    };
    let want = match wanted(&cfg.db) {
        Some(w) => w,
        None => {
            // Keep serving what we serve; the next SIGHUP tries again.
            return !listeners.is_empty();
        }
    };
    if want.is_empty() {
        let _ = std::fs::remove_file(super::pid_file(&cfg.exec_root));
        let _ = std::fs::remove_file(super::listen_file(&cfg.exec_root));
        return false;
    }
    let _ = std::fs::write(
        super::pid_file(&cfg.exec_root),
        format!("{}\n", std::process::id()),
    );
    let host = crate::files::host_resolv();
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        upstreams: host
            .servers
            .iter()
            .filter_map(|s| s.split('%').next()?.parse::<IpAddr>().ok())
            .map(|a| SocketAddr::new(a, 53))
            .take(3)
            .collect(),
        search: host.search.clone(),
    });
    listeners.retain(|addr, l| {
        let keep = want.get(addr) == Some(&l.network);
        if !keep {
            close(l);
        }
        keep
    });
    let mut failed = Vec::new();
    for (addr, network) in want {
        if listeners.contains_key(&addr) {
            continue;
        }
        let (udp, tcp, port) = match bind(addr) {
            Ok(b) => b,
            Err(e) => {
                // Said in the listen file: the start that asked reports it.
                failed.push((addr, e));
                continue;
            }
        };
        let l = Listener {
            network,
            port,
            udp: Arc::new(udp),
            tcp: Arc::new(tcp),
            closed: Arc::new(AtomicBool::new(false)),
        };
        spawn_udp(
            l.udp.clone(),
            l.network.clone(),
            shared.clone(),
            l.closed.clone(),
        );
        spawn_tcp(
            l.tcp.clone(),
            l.network.clone(),
            shared.clone(),
            l.closed.clone(),
        );
        listeners.insert(addr, l);
    }
    let mut text = format!("# {generation} {}\n", std::process::id());
    let mut addrs: Vec<_> = listeners.iter().collect();
    addrs.sort_by_key(|(a, _)| **a);
    for (a, l) in addrs {
        match l.port {
            53 => text.push_str(&format!("{a}\n")),
            p => text.push_str(&format!("{a} {p}\n")),
        }
    }
    for (a, e) in failed {
        text.push_str(&format!("! {a} {e}\n"));
    }
    let tmp = super::listen_file(&cfg.exec_root).with_extension("tmp");
    let _ = std::fs::write(&tmp, text);
    let _ = std::fs::rename(&tmp, super::listen_file(&cfg.exec_root));
    true
}

/// UDP and TCP on `addr` port 53; where another server holds 53 (a dnsmasq on
/// `0.0.0.0:53`), one free port for both instead, to which the start redirects 53 from the
/// network's containers (aardvark-dns's `dns_bind_port`, chosen here).
fn bind(addr: IpAddr) -> std::io::Result<(UdpSocket, TcpListener, u16)> {
    let sa = SocketAddr::new(addr, 53);
    match (UdpSocket::bind(sa), TcpListener::bind(sa)) {
        (Ok(u), Ok(t)) => return Ok((u, t, 53)),
        (Err(e), _) | (_, Err(e)) if e.kind() != std::io::ErrorKind::AddrInUse => return Err(e),
        _ => {}
    }
    let mut last = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind(SocketAddr::new(addr, 0))?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(addr, port)) {
            Ok(tcp) => return Ok((udp, tcp, port)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::AddrInUse)))
}

fn spawn_udp(
    sock: Arc<UdpSocket>,
    network: String,
    shared: Arc<Shared>,
    closed: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let (n, from) = match recv_from(&sock, &mut buf) {
                _ if closed.load(Ordering::SeqCst) => return,
                Ok((0, _) | (_, None)) | Err(_) => continue,
                Ok((n, Some(from))) => (n, from),
            };
            let msg = buf[..n].to_vec();
            match local(&shared, &network, &msg) {
                Some(reply) => {
                    let _ = sock.send_to(&reply, from);
                }
                None => {
                    let (sock, shared) = (sock.clone(), shared.clone());
                    std::thread::spawn(move || {
                        let reply = forward(&shared, &msg);
                        let _ = sock.send_to(&reply, from);
                    });
                }
            }
        }
    })
}

/// A datagram and its sender (None: no address, as after `close` shut the socket down).
///
/// Not `UdpSocket::recv_from`: std leaves the address storage uninitialized and asserts
/// that an IPv4 family comes with a whole `sockaddr_in`; after a shutdown `recvfrom`
/// returns 0 bytes and an address length of 0, the storage still holding the family of
/// the previous datagram, and the assertion panicked. In the release build (panic =
/// abort) that ended the whole resolver whenever one of several networks lost its last
/// container, leaving its pid and listen files and every other network without names
/// (the soak's "bad address" failures).
fn recv_from(sock: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, Option<SocketAddr>)> {
    let (n, _, from) = rustix::net::recvfrom(sock, buf, rustix::net::RecvFlags::empty())?;
    Ok((n, from.and_then(|a| SocketAddr::try_from(a).ok())))
}

fn spawn_tcp(l: Arc<TcpListener>, network: String, shared: Arc<Shared>, closed: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        loop {
            let accepted = l.accept();
            if closed.load(Ordering::SeqCst) {
                return;
            }
            let Ok((s, _)) = accepted else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let (network, shared) = (network.clone(), shared.clone());
            std::thread::spawn(move || serve_tcp(s, &network, &shared));
        }
    });
}

fn serve_tcp(mut s: TcpStream, network: &str, shared: &Shared) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    loop {
        let mut len = [0u8; 2];
        if s.read_exact(&mut len).is_err() {
            return;
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if s.read_exact(&mut msg).is_err() {
            return;
        }
        let reply = local(shared, network, &msg).unwrap_or_else(|| forward(shared, &msg));
        let n = u16::try_from(reply.len()).unwrap_or(0).to_be_bytes();
        if s.write_all(&n).and_then(|()| s.write_all(&reply)).is_err() {
            let _ = s.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// The answer from the store, if the name is a container's on `network`.
fn local(shared: &Shared, network: &str, msg: &[u8]) -> Option<Vec<u8>> {
    let Some(q) = wire::parse_query(msg) else {
        return Some(wire::error(msg, wire::RCODE_SERVFAIL)).filter(|r| !r.is_empty());
    };
    let addrs = lookup(shared, network, &q)?;
    let fit: Vec<IpAddr> = addrs
        .into_iter()
        .filter(|a| match q.qtype {
            wire::TYPE_A => a.is_ipv4(),
            wire::TYPE_AAAA => a.is_ipv6(),
            _ => false,
        })
        .collect();
    Some(wire::answer(msg, &q, &fit, wire::RCODE_OK))
}

/// The addresses of the container called `q.name` on `network` (None: not ours).
fn lookup(shared: &Shared, network: &str, q: &Query) -> Option<Vec<IpAddr>> {
    let mut name = q.name.as_str();
    for s in &shared.search {
        if let Some(short) = name.strip_suffix(&format!(".{}", s.to_ascii_lowercase())) {
            name = short;
        }
    }
    if name.is_empty() || name.contains('.') {
        return None;
    }
    let conn = store::open_read_only(&shared.cfg.db).ok()?;
    let mut st = conn
        .prepare(
            "SELECT e.container, s.name, COALESCE(a.aliases, '[]'), e.ipv4, e.ipv6
             FROM net_endpoints e JOIN net_sandboxes s ON s.container = e.container
             LEFT JOIN net_attachments a ON a.container = e.container AND a.network = e.network
             WHERE e.network = ?1",
        )
        .ok()?;
    let rows = st
        .query_map([network], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })
        .ok()?;
    let mut found = None;
    for (id, cname, aliases, v4, v6) in rows.flatten() {
        let aliases: Vec<String> = serde_json::from_str(&aliases).unwrap_or_default();
        let hit = cname.eq_ignore_ascii_case(name)
            || (name.len() == 12 && id.starts_with(name))
            || id == name
            || aliases.iter().any(|a| a.eq_ignore_ascii_case(name));
        if hit {
            let v = found.get_or_insert_with(Vec::new);
            v.extend(v4.and_then(|s| s.parse::<IpAddr>().ok()));
            v.extend(v6.and_then(|s| s.parse::<IpAddr>().ok()));
        }
    }
    found
}

/// Relays a query to the host's resolvers; SERVFAIL when none answers.
fn forward(shared: &Shared, msg: &[u8]) -> Vec<u8> {
    for up in &shared.upstreams {
        let bind: SocketAddr = if up.is_ipv6() {
            "[::]:0".parse().unwrap_or(*up)
        } else {
            "0.0.0.0:0".parse().unwrap_or(*up)
        };
        let Ok(s) = UdpSocket::bind(bind) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.connect(up).and_then(|()| s.send(msg)).is_err() {
            continue;
        }
        let mut buf = [0u8; 4096];
        if let Ok(n) = s.recv(&mut buf)
            && n >= 2
            && buf[..2] == msg[..2]
        {
            return buf[..n].to_vec();
        }
    }
    wire::error(msg, wire::RCODE_SERVFAIL)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `name.` type A.
    fn query(name: &str) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            m.push(u8::try_from(l.len()).unwrap());
            m.extend_from_slice(l.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        m
    }

    /// A listener closed while its thread waits for the next query (a network lost its
    /// last container; the resolver serves others): the thread ends, without a panic. It
    /// panicked in std's `recv_from` after a query had been answered, and the release
    /// resolver (panic = abort) died with it.
    #[test]
    fn closing_a_listener_that_answered_ends_its_thread_without_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Arc::new(Shared {
            cfg: Config {
                db: dir.path().join("no-store.db"),
                exec_root: dir.path().to_path_buf(),
            },
            upstreams: Vec::new(),
            search: Vec::new(),
        });
        for round in 0..3 {
            let udp = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
            let l = Listener {
                network: "n".into(),
                port: 53,
                udp: udp.clone(),
                tcp: Arc::new(TcpListener::bind("127.0.0.1:0").unwrap()),
                closed: Arc::new(AtomicBool::new(false)),
            };
            let thread = spawn_udp(udp.clone(), "n".into(), shared.clone(), l.closed.clone());
            // Answered (SERVFAIL: no store, no upstream) by the listener's thread.
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c.send_to(&query("web"), udp.local_addr().unwrap()).unwrap();
            let mut buf = [0u8; 512];
            let n = c.recv(&mut buf).expect("an answer");
            assert!(
                n >= 12 && buf[..2] == [0x12, 0x34],
                "round {round}: {:?}",
                &buf[..n]
            );
            // The thread is back waiting in recvfrom (or about to be): close under it.
            std::thread::sleep(Duration::from_millis(50));
            close(&l);
            assert!(
                thread.join().is_ok(),
                "round {round}: the listener's thread panicked when it was closed"
            );
        }
    }
}
