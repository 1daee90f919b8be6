//! The one user-space relay hako has: published TCP ports on IPv6 loopback (`[::1]:P`,
//! and `[::]:P` reached as `[::1]:P`). The kernel drops `::1` leaving `lo`, so no NAT can
//! serve them (see hako-net's `firewall`); the shim already holds the bound socket, so it
//! listens on it and relays each connection to the container. Every other address of a
//! published port is kernel NAT and never reaches this socket.
//!
//! A thread accepts; each connection gets two copying threads (one per direction), which
//! end with the connection. Signals stay blocked in them (the mask is inherited).

use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// Starts relaying connections accepted on `socket` (bound, not yet listening) to `target`.
pub fn start(socket: OwnedFd, target: SocketAddr) -> Result<(), String> {
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
