//! rtnetlink, synchronously: a [`Socket`] bound to the network namespace it was opened in,
//! and the few requests hako needs (links, addresses, routes).
//!
//! Why `netlink-packet-route` + `netlink-sys` and not `rtnetlink`: hako's engine is
//! synchronous (a CLI, and an API server that calls it from plain threads); rtnetlink is
//! async and would pull an async runtime into every `hako run` for a handful of request /
//! ACK exchanges. netavark made the same choice (`network/netlink.rs`). The message types
//! are the rust-netlink project's, so nothing is encoded by hand.
//!
//! A netlink socket talks to the namespace it was *created* in, whatever thread uses it
//! later: [`crate::netns::Netns::socket`] opens one inside a container's namespace from a
//! short-lived thread, and everything after runs from the caller's thread.

mod addr;
mod link;
mod route;

pub use link::{Link, VethSpec};
pub use route::Route;

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN,
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, ParseableParametrized,
};
use netlink_packet_route::{RouteNetlinkMessage, RouteNetlinkMessageBuffer};
use netlink_sys::{Socket as NlSocket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::error::{Error, Result};

/// An rtnetlink socket in one network namespace.
#[derive(Debug)]
pub struct Socket {
    sock: NlSocket,
    seq: u32,
    buf: Vec<u8>,
}

impl Socket {
    /// A socket in the calling thread's network namespace.
    pub fn new() -> Result<Socket> {
        let ctx = |source| Error::Netlink {
            context: "open a netlink socket".into(),
            source,
        };
        let mut sock = NlSocket::new(NETLINK_ROUTE).map_err(ctx)?;
        sock.bind_auto().map_err(ctx)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(ctx)?;
        // Extended ACKs: the kernel says *why* (e.g. "Invalid prefix for given prefix length").
        let _ = sock.set_ext_ack(true);
        Ok(Socket {
            sock,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        nl.finalize();
        let mut out = vec![0; nl.buffer_len()];
        nl.serialize(&mut out);
        self.sock.send(&out, 0)?;
        Ok(self.seq)
    }

    /// Receives the messages answering `seq` and hands each to `f`; returns at the ACK or
    /// at the end of a dump.
    fn recv(&mut self, seq: u32, mut f: impl FnMut(RouteNetlinkMessage)) -> io::Result<()> {
        self.recv_raw(seq, |kind, payload| {
            let m = RouteNetlinkMessage::parse_with_param(
                &RouteNetlinkMessageBuffer::new(payload),
                kind,
            )
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            f(m);
            Ok(())
        })
    }

    /// Receives the answers to `seq` until the ACK or the end of a dump, unparsed: `f` gets
    /// each one's type and payload (the caller may read only the attributes it needs; see
    /// [`Socket::link`]).
    fn recv_raw(
        &mut self,
        seq: u32,
        mut f: impl FnMut(u16, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let invalid = |e: netlink_packet_core::DecodeError| {
            io::Error::new(io::ErrorKind::InvalidData, e.to_string())
        };
        loop {
            let n = self.sock.recv(&mut &mut self.buf[..], 0)?;
            let mut off = 0;
            while off < n {
                let msg = NetlinkBuffer::new_checked(&self.buf[off..n]).map_err(invalid)?;
                let len = usize::try_from(msg.length()).unwrap_or(n);
                // NLMSG_ALIGN: messages start on 4-byte boundaries.
                off += (len.max(16) + 3) & !3;
                if msg.sequence_number() != seq {
                    continue;
                }
                match msg.message_type() {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let code = msg
                            .payload()
                            .first_chunk::<4>()
                            .map_or(-libc::EBADMSG, |b| i32::from_ne_bytes(*b));
                        return match code {
                            0 => Ok(()),
                            c => Err(io::Error::from_raw_os_error(-c)),
                        };
                    }
                    NLMSG_NOOP | NLMSG_OVERRUN => {}
                    t => f(t, msg.payload())?,
                }
            }
        }
    }

    /// Sends a request and waits for its ACK.
    pub(crate) fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_ACK | flags)?;
        self.recv(seq, |_| {})
    }

    /// Sends a dump request and collects the answers.
    pub(crate) fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_DUMP)?;
        let mut all = Vec::new();
        self.recv(seq, |m| all.push(m))?;
        Ok(all)
    }
}

/// `io::Error` → [`Error::Netlink`] with `context`.
pub(crate) fn nl_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let context = context.into();
    move |source| Error::Netlink { context, source }
}

/// ENODEV / ENOENT / ESRCH / EADDRNOTAVAIL: the thing to delete is already gone.
pub(crate) fn gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENODEV | libc::ENOENT | libc::ESRCH | libc::EADDRNOTAVAIL)
    )
}
