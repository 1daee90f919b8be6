//! The one user-space relay hako has: published ports on IPv6 loopback (`[::1]:P`, and
//! `[::]:P` reached as `[::1]:P`). The kernel drops `::1` leaving `lo`, so no NAT can serve
//! them (see hako-net's `firewall`); the shim already holds the bound socket, so it serves
//! it and relays to the container. Every other address of a published port is kernel NAT
//! and never reaches this socket.
//!
//! TCP: a thread accepts; each connection gets two copying threads (one per direction),
//! which end with the connection. UDP: a thread receives on the held socket; each client
//! address gets a socket connected to the container and a thread sending the container's
//! answers back from the held socket (so they come from the published port), ended after
//! [`UDP_IDLE`] without traffic. Signals stay blocked in them (the mask is inherited).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A UDP client's relay ends after this long without a datagram either way (docker-proxy
/// keeps UDP flows 90 s).
pub const UDP_IDLE: Duration = Duration::from_secs(90);

/// Starts relaying what arrives on `socket` (bound; a TCP one not yet listening) to
/// `target`: connections of a stream socket, datagrams of a datagram socket.
pub fn start(socket: OwnedFd, target: SocketAddr) -> Result<(), String> {
    let ty = nix::sys::socket::getsockopt(&socket, nix::sys::socket::sockopt::SockType)
        .map_err(|e| format!("the [::1] relay's socket: {e}"))?;
    if ty == nix::sys::socket::SockType::Datagram {
        return start_udp(UdpSocket::from(socket), target);
    }
    nix::sys::socket::listen(&socket, nix::sys::socket::Backlog::MAXCONN)
        .map_err(|e| format!("listen for the [::1] relay: {e}"))?;
    let listener = TcpListener::from(socket);
    std::thread::Builder::new()
        .name("relay-accept".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(c) => {
                        let _ = std::thread::Builder::new()
                            .name("relay".into())
                            .spawn(move || relay(c, target));
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })
        .map_err(|e| format!("start the [::1] relay: {e}"))?;
    Ok(())
}

fn relay(client: TcpStream, target: SocketAddr) {
    let Ok(upstream) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (Ok(mut c2), Ok(mut u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let back = std::thread::Builder::new()
        .name("relay".into())
        .spawn(move || {
            let _ = std::io::copy(&mut u2, &mut c2);
            let _ = c2.shutdown(Shutdown::Write);
        });
    let (mut c, mut u) = (client, upstream);
    let _ = std::io::copy(&mut c, &mut u);
    let _ = u.shutdown(Shutdown::Write);
    if let Ok(h) = back {
        let _ = h.join();
    }
}

/// One client of the UDP relay: its socket towards the container and when it last spoke.
struct Flow {
    upstream: Arc<UdpSocket>,
    last: Arc<Mutex<Instant>>,
}

fn start_udp(socket: UdpSocket, target: SocketAddr) -> Result<(), String> {
    let socket = Arc::new(socket);
    let flows: Arc<Mutex<HashMap<SocketAddr, Flow>>> = Arc::default();
    std::thread::Builder::new()
        .name("relay-udp".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                let (n, client) = match socket.recv_from(&mut buf) {
                    Ok(x) => x,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                };
                let Some(flow) = udp_flow(&socket, &flows, client, target) else {
                    continue;
                };
                *flow.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                let _ = flow.upstream.send(&buf[..n]);
            }
        })
        .map_err(|e| format!("start the [::1] relay: {e}"))?;
    Ok(())
}

/// The flow of `client`, made (socket + answering thread) on its first datagram.
fn udp_flow(
    socket: &Arc<UdpSocket>,
    flows: &Arc<Mutex<HashMap<SocketAddr, Flow>>>,
    client: SocketAddr,
    target: SocketAddr,
) -> Option<Flow> {
    let mut map = flows.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(f) = map.get(&client) {
        return Some(Flow {
            upstream: f.upstream.clone(),
            last: f.last.clone(),
        });
    }
    let bind: SocketAddr = if target.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let up = UdpSocket::bind(bind).ok()?;
    up.connect(target).ok()?;
    let _ = up.set_read_timeout(Some(Duration::from_secs(5)));
    let flow = Flow {
        upstream: Arc::new(up),
        last: Arc::new(Mutex::new(Instant::now())),
    };
    let (up, last, back, all) = (
        flow.upstream.clone(),
        flow.last.clone(),
        socket.clone(),
        flows.clone(),
    );
    std::thread::Builder::new()
        .name("relay-udp".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                match up.recv(&mut buf) {
                    Ok(n) => {
                        *last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                        let _ = back.send_to(&buf[..n], client);
                    }
                    Err(e)
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                            && last.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
                                < UDP_IDLE => {}
                    // Nothing listened in the container (ICMP): the next datagram may
                    // find something.
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                    // Idle: forget the flow; a later datagram makes a new one.
                    Err(_) => break,
                }
            }
            all.lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&client);
        })
        .ok()?;
    map.insert(
        client,
        Flow {
            upstream: flow.upstream.clone(),
            last: flow.last.clone(),
        },
    );
    Some(flow)
}
