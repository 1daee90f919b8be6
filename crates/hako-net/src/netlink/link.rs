//! Links: bridges, veth pairs (the peer made straight in the container's namespace), up,
//! master, MTU, hairpin, delete.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    DecodeError, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NlasIterator,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkExtentMask, LinkFlags, LinkInfo, LinkMessage, LinkMessageBuffer,
};

use super::{Socket, gone, nl_err};
use crate::error::Result;

/// What hako needs to know of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// ifindex.
    pub index: u32,
    /// Name.
    pub name: String,
    /// MTU.
    pub mtu: u32,
    /// The bridge it is a port of.
    pub master: Option<u32>,
    /// `bridge`, `veth`, ... (empty for plain devices).
    pub kind: String,
    /// IFF_UP.
    pub up: bool,
}

/// A veth pair: `host` stays here, `peer` is made inside the namespace `netns`.
#[derive(Debug)]
pub struct VethSpec<'a> {
    /// The host end's name.
    pub host: &'a str,
    /// The container end's name (`eth0`).
    pub peer: &'a str,
    /// The container's network namespace.
    pub netns: BorrowedFd<'a>,
    /// MTU of both ends.
    pub mtu: u32,
    /// MAC of the container end.
    pub peer_mac: Option<[u8; 6]>,
}

/// The device group links are moved to just before [`Socket::del_links`] deletes them
/// together ("hako" in ASCII; only ever used under hako-net's lock, for that instant).
const DELETE_GROUP: u32 = 0x6861_6b6f;

fn parse(m: &LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        name: String::new(),
        mtu: 0,
        master: None,
        kind: String::new(),
        up: m.header.flags.contains(LinkFlags::Up),
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Mtu(v) => l.mtu = *v,
            LinkAttribute::Controller(c) => l.master = Some(*c),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        l.kind = k.to_string();
                    }
                }
            }
            _ => {}
        }
    }
    l
}

/// [`parse`] from an `RTM_NEWLINK` payload.
fn parse_raw(payload: &[u8]) -> std::io::Result<Link> {
    let invalid = |e: DecodeError| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let m = LinkMessageBuffer::new_checked(payload).map_err(invalid)?;
    let mut l = Link {
        index: m.link_index(),
        name: String::new(),
        mtu: 0,
        master: None,
        kind: String::new(),
        up: m.flags() & libc::IFF_UP.cast_unsigned() != 0,
    };
    let u32_of = |v: &[u8]| v.first_chunk::<4>().map_or(0, |b| u32::from_ne_bytes(*b));
    // Strings end with a NUL.
    let string_of = |v: &[u8]| {
        let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
        String::from_utf8_lossy(&v[..end]).into_owned()
    };
    for a in m.attributes() {
        let a = a.map_err(invalid)?;
        match a.kind() {
            libc::IFLA_IFNAME => l.name = string_of(a.value()),
            libc::IFLA_MTU => l.mtu = u32_of(a.value()),
            libc::IFLA_MASTER => l.master = Some(u32_of(a.value())),
            libc::IFLA_LINKINFO => {
                for i in NlasIterator::new(a.value()) {
                    let i = i.map_err(invalid)?;
                    if i.kind() == libc::IFLA_INFO_KIND {
                        l.kind = string_of(i.value());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(l)
}

fn named(name: &str) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m
}

fn indexed(index: u32) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m
}

impl Socket {
    /// The link called `name`, if there is one.
    ///
    /// Read from the answer's bytes, not through netlink-packet-route's `LinkMessage`:
    /// its parse of a bridge's `IFLA_INFO_DATA` (a few dozen attributes) formats an error
    /// context string for each, ~0.45 ms of a container's network setup (perf, 20 runs
    /// of `docker run --rm` through `hako serve`), for four fields.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>> {
        let mut m = named(name);
        // Only the device: no statistics or VF lists the kernel would otherwise add.
        m.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let mut found = None;
        let got = self
            .send(RouteNetlinkMessage::GetLink(m), NLM_F_REQUEST | NLM_F_ACK)
            .and_then(|seq| {
                self.recv_raw(seq, |kind, payload| {
                    if kind == libc::RTM_NEWLINK {
                        found = Some(parse_raw(payload)?);
                    }
                    Ok(())
                })
            });
        match got {
            Ok(()) => Ok(found),
            Err(e) if gone(&e) => Ok(None),
            Err(e) => Err(nl_err(format!("look up link {name}"))(e)),
        }
    }

    /// Every link in this namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let all = self
            .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))
            .map_err(nl_err("list links"))?;
        Ok(all
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(parse(l)),
                _ => None,
            })
            .collect())
    }

    /// Creates a bridge with MAC address `mac` (fails with EEXIST if it exists).
    ///
    /// The address is set, not left to the kernel: a bridge without one takes the lowest
    /// of its ports' addresses and changes it whenever a port with a lower one joins, and
    /// the containers' ARP caches then point their gateway at an address the bridge no
    /// longer answers on (a later container's start cut the others off for ~30 s).
    pub fn add_bridge(&mut self, name: &str, mtu: u32, mac: [u8; 6]) -> Result<()> {
        let mut m = named(name);
        m.attributes.push(LinkAttribute::Mtu(mtu));
        m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(vec![])),
        ]));
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(nl_err(format!("create bridge {name}")))
    }

    /// Creates a veth pair in one request, the peer directly in `spec.netns`: the container
    /// end never exists in the host's namespace, so no other process can see or take it.
    pub fn add_veth(&mut self, spec: &VethSpec<'_>) -> Result<()> {
        let mut peer = named(spec.peer);
        peer.attributes.push(LinkAttribute::Mtu(spec.mtu));
        peer.attributes
            .push(LinkAttribute::NetNsFd(spec.netns.as_raw_fd()));
        if let Some(mac) = spec.peer_mac {
            peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        let mut m = named(spec.host);
        m.attributes.push(LinkAttribute::Mtu(spec.mtu));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(nl_err(format!(
                "create veth pair {}/{}",
                spec.host, spec.peer
            )))
    }

    /// Brings a link up.
    pub fn set_up(&mut self, index: u32, name: &str) -> Result<()> {
        let mut m = indexed(index);
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(m), 0)
            .map_err(nl_err(format!("set {name} up")))
    }

    /// Takes a link down, by name; a link already gone is not an error. (A bridge port
    /// going down leaves forwarding and loses its learned addresses at once.)
    pub fn set_down(&mut self, name: &str) -> Result<()> {
        let mut m = named(name);
        m.header.change_mask = LinkFlags::Up;
        match self.request(RouteNetlinkMessage::SetLink(m), 0) {
            Ok(()) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            Err(e) => Err(nl_err(format!("set {name} down"))(e)),
        }
    }

    /// Makes `index` a port of bridge `master`, in hairpin mode (a container reaching its
    /// own published port goes out and back in through the same port), and up.
    pub fn enslave(&mut self, index: u32, name: &str, master: u32) -> Result<()> {
        let mut m = indexed(index);
        m.attributes.push(LinkAttribute::Controller(master));
        self.request(RouteNetlinkMessage::SetLink(m), 0)
            .map_err(nl_err(format!("attach {name} to its bridge")))?;
        let mut m = indexed(index);
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                true,
            )])),
        ]));
        self.request(RouteNetlinkMessage::NewLink(m), 0)
            .map_err(nl_err(format!("set hairpin mode on {name}")))
    }

    /// Deletes links together, in one request: the kernel unregisters them as one batch,
    /// waiting for one RCU grace period instead of one per link (the biggest part of a
    /// teardown on a busy host). Links already gone are skipped. The links are put in
    /// hako's device group first and the group is deleted (`ip link delete group N`);
    /// where that fails, one by one.
    pub fn del_links(&mut self, names: &[&str]) -> Result<()> {
        let mut found = Vec::new();
        for name in names {
            if let Some(l) = self.link(name)? {
                found.push(l);
            }
        }
        if let [one] = found.as_slice() {
            return self.del_link(&one.name);
        }
        if found.is_empty() {
            return Ok(());
        }
        let grouped = (|| {
            for l in &found {
                let mut m = indexed(l.index);
                m.attributes.push(LinkAttribute::Group(DELETE_GROUP));
                self.request(RouteNetlinkMessage::SetLink(m), 0)?;
            }
            let mut m = LinkMessage::default();
            m.attributes.push(LinkAttribute::Group(DELETE_GROUP));
            self.request(RouteNetlinkMessage::DelLink(m), 0)
        })();
        match grouped {
            Ok(()) => Ok(()),
            Err(_) => {
                let mut first = Ok(());
                for l in &found {
                    let r = self.del_link(&l.name);
                    if first.is_ok() {
                        first = r;
                    }
                }
                first
            }
        }
    }

    /// Deletes a link; a link already gone is not an error.
    pub fn del_link(&mut self, name: &str) -> Result<()> {
        match self.request(RouteNetlinkMessage::DelLink(named(name)), 0) {
            Ok(()) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            Err(e) => Err(nl_err(format!("delete link {name}"))(e)),
        }
    }
}
