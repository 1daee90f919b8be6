//! [`Net`]: networks and containers' network state, over the store, the bridge driver, the
//! firewall and the DNS resolver. See the crate docs for the picture.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use ipnet::IpNet;
use nix::fcntl::{Flock, FlockArg};
use rusqlite::Connection;

use crate::bridge::Bridge;
use crate::driver::{Driver, Release, Request};
use crate::error::{Error, ErrorList, IoContext, Result};
use crate::files::{self, DnsConfig};
use crate::firewall::{Backend, Batch, foreign};
use crate::netns::{self, Netns};
use crate::ports::{self, Mapping, Wanted};
use crate::spare::Spares;
use crate::store::{self, Attachment, Endpoint, Network, Sandbox, Subnet};
use crate::{dns, ipam, subnets};

/// Where things are and the defaults of the default network.
#[derive(Debug, Clone)]
pub struct NetOptions {
    /// The store's database (`<root>/hako-image.db`).
    pub db: PathBuf,
    /// The exec root: namespaces under `netns/`, the lock, the resolver's files.
    pub exec_root: PathBuf,
    /// The default network's bridge (`hako0`).
    pub bridge_name: String,
    /// The default network's subnet (default: the first of `10.77.0.0/16`, ... that the
    /// host does not route yet).
    pub bridge_subnet: Option<String>,
    /// The MTU of new networks (default 1500).
    pub mtu: Option<u32>,
    /// The resolver program (`hako-dns`).
    pub dns_program: PathBuf,
    /// The firewall driver; `None`: `HAKO_FIREWALL`, else detected at first use
    /// (`firewall::Backend::detect`: nftables, iptables where nftables is unusable).
    pub firewall: Option<Backend>,
}

/// `hako network create`.
#[derive(Debug, Clone, Default)]
pub struct NetworkCreate {
    /// Name.
    pub name: String,
    /// `bridge` (default).
    pub driver: Option<String>,
    /// `--subnet` (each with its `--gateway` and `--ip-range`, in order).
    pub subnets: Vec<(String, Option<String>, Option<String>)>,
    /// `--internal`.
    pub internal: bool,
    /// `--ipv6`.
    pub ipv6: bool,
    /// `--label`.
    pub labels: HashMap<String, String>,
    /// `-o`.
    pub options: HashMap<String, String>,
}

/// What a container asks of one network (`--network`, `--ip`, `--network-alias`...).
#[derive(Debug, Clone, Default)]
pub struct AttachRequest {
    /// Network name or id.
    pub network: String,
    /// `--network-alias`.
    pub aliases: Vec<String>,
    /// `--ip`.
    pub ipv4: Option<String>,
    /// `--ip6`.
    pub ipv6: Option<String>,
    /// `--mac-address`.
    pub mac: Option<String>,
}

/// What starting a container needs.
#[derive(Debug, Clone)]
pub struct SetupRequest {
    /// Container id.
    pub container: String,
    /// Its name.
    pub name: String,
    /// Its host name.
    pub hostname: String,
    /// Ports to publish.
    pub ports: Vec<Wanted>,
    /// `--dns*`.
    pub dns: DnsConfig,
    /// `--add-host` values.
    pub extra_hosts: Vec<String>,
}

/// A container's network, set up.
#[derive(Debug)]
pub struct Setup {
    /// Its endpoints, in interface order.
    pub endpoints: Vec<Endpoint>,
    /// Published ports, host ports chosen.
    pub ports: Vec<Mapping>,
    /// The bound host ports: the shim must hold them for the container's life.
    pub sockets: Vec<OwnedFd>,
    /// Sockets (index into `sockets`) the shim must relay to a container address: TCP on
    /// IPv6 loopback, which no NAT serves.
    pub proxies: Vec<(usize, std::net::SocketAddr)>,
    /// `/etc/hosts`.
    pub hosts: String,
    /// `/etc/resolv.conf`.
    pub resolv: String,
}

/// The second half of a container's network setup ([`Net::setup_begin`]): it holds the
/// network lock until [`Wiring::finish`].
#[derive(Debug)]
pub struct Wiring<'a> {
    net: &'a Net,
    _lock: Lock,
    container: String,
    atts: Vec<(Attachment, Network)>,
    ns: Netns,
    endpoints: Vec<Endpoint>,
    ports: Vec<Mapping>,
}

impl Wiring<'_> {
    /// Makes the interfaces, routes, firewall rules and the resolver. On failure the
    /// whole setup is undone (the namespace too) and the lock released.
    pub fn finish(self) -> Result<()> {
        let r = self.net.wire(&self);
        if r.is_err() {
            let _ = self.net.teardown_locked(&self.container, Release::Delete);
        }
        r
    }
}

/// The driver's requests for a container's endpoints `eps` on `atts`, in `ns`.
fn requests<'a>(
    container: &'a str,
    atts: &'a [(Attachment, Network)],
    eps: &'a [Endpoint],
    ns: &'a Netns,
) -> Vec<Request<'a>> {
    eps.iter()
        .zip(atts)
        .enumerate()
        .map(|(i, (e, (_, n)))| Request {
            network: n,
            container,
            netns: ns,
            ifname: &e.ifname,
            host_veth: &e.host_veth,
            ipv4: e.ipv4,
            ipv6: e.ipv6,
            mac: ipam::parse_mac(&e.mac).unwrap_or([2, 0x42, 0, 0, 0, 0]),
            default_route: i == 0,
        })
        .collect()
}

/// A container's network records: its attachments (with their networks), live endpoints
/// and sandbox.
#[derive(Debug, Clone, Default)]
pub struct ContainerNet {
    /// What it asked for, network by network, in order.
    pub attachments: Vec<(Attachment, Network)>,
    /// Its live interfaces.
    pub endpoints: Vec<Endpoint>,
    /// Its live namespace and published ports.
    pub sandbox: Option<Sandbox>,
}

/// [`ContainerNet`] of every container with network records, by container id.
#[derive(Debug, Clone, Default)]
pub struct NetSnapshot {
    /// By container id.
    pub containers: std::collections::HashMap<String, ContainerNet>,
}

/// The networking half of the engine.
#[derive(Debug)]
pub struct Net {
    opts: NetOptions,
    conn: Mutex<Connection>,
    backend: OnceLock<std::result::Result<Backend, String>>,
    bridge: Mutex<Option<Bridge>>,
    spares: std::sync::Arc<Spares>,
}

/// Held while the host's network is changed.
#[derive(Debug)]
struct Lock(#[allow(dead_code)] Flock<File>);

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Net {
    /// Opens the network store (making the tables and the built-in networks `bridge`,
    /// `host` and `none` when missing). Changes nothing on the host.
    pub fn open(opts: NetOptions) -> Result<Net> {
        let conn = store::open(&opts.db)?;
        let net = Net {
            spares: Spares::new(opts.exec_root.join("netns")),
            opts,
            conn: Mutex::new(conn),
            backend: OnceLock::new(),
            bridge: Mutex::new(None),
        };
        net.builtins()?;
        Ok(net)
    }

    /// From now on keep one network namespace made ahead, for the next setup to adopt
    /// (`hako serve`; see `spare.rs`). The first is made in the background.
    pub fn keep_spare_namespace(&self) {
        self.spares.start();
    }

    /// Keep none any more, and remove the one there is (at `hako serve`'s end).
    pub fn drop_spare_namespace(&self) {
        self.spares.stop();
    }

    /// Removes the spare namespaces of processes that are gone (a `hako serve` killed with
    /// SIGKILL): every engine's open does it, as it does its other recovery.
    pub fn sweep_dead_spares(&self) {
        crate::spare::sweep(&self.opts.exec_root.join("netns"), false);
    }

    /// Makes the next spare in the background, when spares are kept and the last was
    /// taken. Called once a start is done, off its way.
    pub fn replenish_spare_namespace(&self) {
        self.spares.replenish();
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Frees the connection's page cache and statements (an idle `hako serve`).
    pub fn release_memory(&self) {
        hako_sys::sqlite::release_memory(&self.conn());
    }

    fn lock(&self) -> Result<Lock> {
        let path = self.opts.exec_root.join("network.lock");
        std::fs::create_dir_all(&self.opts.exec_root)
            .ctx(|| format!("create {}", self.opts.exec_root.display()))?;
        let f = std::os::unix::fs::OpenOptionsExt::mode(
            File::options().create(true).truncate(false).write(true),
            0o600,
        )
        .open(&path)
        .ctx(|| format!("open {}", path.display()))?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map(Lock)
            .map_err(|(_, e)| Error::Io {
                context: format!("lock {}", path.display()),
                source: e.into(),
            })
    }

    fn with_bridge<T>(&self, f: impl FnOnce(&Bridge) -> Result<T>) -> Result<T> {
        let mut b = self.bridge.lock().unwrap_or_else(|p| p.into_inner());
        if b.is_none() {
            *b = Some(Bridge::new()?);
        }
        match b.as_ref() {
            Some(br) => f(br),
            None => Err(Error::InvalidArgument("no bridge driver".into())),
        }
    }

    /// The firewall driver (detected at first use: a command that never touches the
    /// firewall never probes it).
    pub fn backend(&self) -> Result<Backend> {
        self.backend
            .get_or_init(|| self.choose_backend().map_err(|e| e.to_string()))
            .clone()
            .map_err(Error::InvalidArgument)
    }

    /// The options' driver; else `HAKO_FIREWALL`'s, recorded in the exec root when it is
    /// iptables; else the recorded one (a container's rules must go through the driver
    /// that made them, whoever tears it down: the shim's exit command, a `hako rm` from
    /// another shell); else detected (`Backend::detect`).
    fn choose_backend(&self) -> Result<Backend> {
        if let Some(b) = self.opts.firewall {
            return Ok(b);
        }
        let record = self.opts.exec_root.join("firewall");
        if let Some(b) = Backend::from_env()? {
            let saved = match b {
                Backend::Iptables { .. } => std::fs::create_dir_all(&self.opts.exec_root)
                    .and_then(|()| std::fs::write(&record, b.name())),
                _ => std::fs::remove_file(&record).or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                }),
            };
            saved.ctx(|| format!("record the firewall driver in {}", record.display()))?;
            return Ok(b);
        }
        match std::fs::read_to_string(&record) {
            Ok(name) => Backend::from_name(&name).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{}: unknown firewall driver {:?}",
                    record.display(),
                    name.trim()
                ))
            }),
            Err(_) => Backend::detect(),
        }
    }

    /// Where a container's namespace is bound.
    pub fn netns_path(&self, container: &str) -> PathBuf {
        self.opts.exec_root.join("netns").join(container)
    }

    /// Notes that a container is about to join `container`'s namespace (`--network
    /// container:X`): its interfaces are then deleted at its teardown, not left to die with
    /// a namespace that the joiner keeps alive.
    pub fn mark_shared(&self, container: &str) -> Result<()> {
        let p = shared_marker(&self.netns_path(container));
        std::fs::write(&p, b"").ctx(|| format!("write {}", p.display()))
    }

    fn builtins(&self) -> Result<()> {
        let have: HashSet<String> = store::networks(&self.conn())?
            .into_iter()
            .filter(|n| n.builtin)
            .map(|n| n.name)
            .collect();
        for (name, driver) in [("host", "host"), ("none", "null")] {
            if !have.contains(name) {
                let _ = store::insert_network(
                    &self.conn(),
                    &Network {
                        id: crate::random_hex(64),
                        name: name.into(),
                        driver: driver.into(),
                        bridge: String::new(),
                        created: now(),
                        internal: false,
                        ipv6: false,
                        mtu: 0,
                        subnets: Vec::new(),
                        labels: HashMap::new(),
                        options: HashMap::new(),
                        builtin: true,
                    },
                );
            }
        }
        if !have.contains("bridge") {
            let subnet = match &self.opts.bridge_subnet {
                Some(s) => {
                    // `--bip`-style 10.1.0.1/16 (the bridge's address) or a plain subnet.
                    let n: IpNet = s.parse().map_err(|_| {
                        Error::InvalidArgument(format!("invalid default bridge subnet {s}"))
                    })?;
                    let gw = if n.addr() == n.network() {
                        subnets::first_host(&n)
                    } else {
                        n.addr()
                    };
                    Subnet {
                        subnet: n.trunc(),
                        gateway: gw,
                        ip_range: None,
                    }
                }
                None => {
                    let taken = crate::netlink::Socket::new()
                        .and_then(|mut nl| subnets::host_prefixes(&mut nl))
                        .unwrap_or_default();
                    let n = subnets::pick(
                        subnets::BRIDGE_POOL.iter().filter_map(|s| s.parse().ok()),
                        &taken,
                    )
                    .ok_or_else(|| {
                        Error::Conflict(
                            "no free subnet for the default bridge network; set one (HAKO_BRIDGE_SUBNET)"
                                .into(),
                        )
                    })?;
                    Subnet {
                        subnet: n,
                        gateway: subnets::first_host(&n),
                        ip_range: None,
                    }
                }
            };
            let _ = store::insert_network(
                &self.conn(),
                &Network {
                    id: crate::random_hex(64),
                    name: "bridge".into(),
                    driver: "bridge".into(),
                    bridge: self.opts.bridge_name.clone(),
                    created: now(),
                    internal: false,
                    ipv6: false,
                    mtu: self.opts.mtu.unwrap_or(1500),
                    subnets: vec![subnet],
                    labels: HashMap::new(),
                    options: HashMap::from([
                        (
                            "com.docker.network.bridge.name".to_string(),
                            self.opts.bridge_name.clone(),
                        ),
                        (
                            "com.docker.network.bridge.default_bridge".to_string(),
                            "true".to_string(),
                        ),
                    ]),
                    builtin: true,
                },
            );
        }
        Ok(())
    }

    // ------------------------------------------------------------ networks

    /// `network create`: checks everything, then records the network. Its bridge is made
    /// with its first container.
    pub fn create_network(&self, req: &NetworkCreate) -> Result<Network> {
        if !valid_name(&req.name) {
            return Err(Error::InvalidArgument(format!(
                "invalid network name {:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                req.name
            )));
        }
        match req.driver.as_deref() {
            None | Some("" | "bridge") => {}
            Some(d @ ("host" | "null")) => {
                return Err(Error::InvalidArgument(format!(
                    "only one instance of \"{d}\" network is allowed"
                )));
            }
            Some(d) => {
                return Err(Error::InvalidArgument(format!(
                    "plugin \"{d}\" not found (hako has the bridge driver)"
                )));
            }
        }
        // The check and the insert are one `BEGIN IMMEDIATE` transaction: two processes
        // creating networks at once would otherwise both pick the same free subnet (the
        // soak saw two networks share one, and their containers one address).
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let existing = store::networks(&tx)?;
        if existing.iter().any(|n| n.name == req.name) {
            return Err(Error::Conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let mut subs = Vec::new();
        for (s, g, r) in &req.subnets {
            subs.push(subnets::user_subnet(s, g.as_deref(), r.as_deref())?);
        }
        if subs.iter().filter(|s| s.subnet.addr().is_ipv4()).count() > 1
            || subs.iter().filter(|s| s.subnet.addr().is_ipv6()).count() > 1
        {
            return Err(Error::InvalidArgument(
                "hako networks have at most one IPv4 and one IPv6 subnet".into(),
            ));
        }
        let taken_nets: Vec<IpNet> = existing
            .iter()
            .flat_map(|n| n.subnets.iter().map(|s| s.subnet))
            .collect();
        for s in &subs {
            if taken_nets.iter().any(|t| subnets::overlaps(t, &s.subnet)) {
                return Err(Error::Conflict(
                    "invalid pool request: Pool overlaps with other one on this address space"
                        .into(),
                ));
            }
        }
        let host = crate::netlink::Socket::new()
            .and_then(|mut nl| subnets::host_prefixes(&mut nl))
            .unwrap_or_default();
        if !subs.iter().any(|s| s.subnet.addr().is_ipv4()) {
            let mut taken = taken_nets.clone();
            taken.extend(host.iter().copied());
            let n = subnets::pick(subnets::user_candidates(), &taken).ok_or_else(|| {
                Error::Conflict(
                    "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
                        .into(),
                )
            })?;
            subs.insert(
                0,
                Subnet {
                    subnet: n,
                    gateway: subnets::first_host(&n),
                    ip_range: None,
                },
            );
        }
        let has6 = subs.iter().any(|s| s.subnet.addr().is_ipv6());
        if has6 && !req.ipv6 {
            return Err(Error::InvalidArgument("an IPv6 subnet needs --ipv6".into()));
        }
        if req.ipv6 && !has6 {
            let n = subnets::random_ula();
            subs.push(Subnet {
                subnet: n,
                gateway: subnets::first_host(&n),
                ip_range: None,
            });
        }
        let id = crate::random_hex(64);
        let mut options = req.options.clone();
        let bridge = options
            .get("com.docker.network.bridge.name")
            .cloned()
            .unwrap_or_else(|| format!("hk-{}", &id[..12]));
        if bridge.is_empty() || bridge.len() > 15 || bridge.contains(['/', ' ']) {
            return Err(Error::InvalidArgument(format!(
                "invalid bridge name {bridge:?} (1 to 15 characters, no '/' or spaces)"
            )));
        }
        if existing.iter().any(|n| n.bridge == bridge) {
            return Err(Error::Conflict(format!(
                "bridge name {bridge} is used by another network"
            )));
        }
        let mtu = match options.get("com.docker.network.driver.mtu") {
            Some(m) => m
                .parse::<u32>()
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| Error::InvalidArgument(format!("invalid MTU {m:?}")))?,
            None => self.opts.mtu.unwrap_or(1500),
        };
        options.retain(|k, _| !k.is_empty());
        let n = Network {
            id,
            name: req.name.clone(),
            driver: "bridge".into(),
            bridge,
            created: now(),
            internal: req.internal,
            ipv6: req.ipv6,
            mtu,
            subnets: subs,
            labels: req.labels.clone(),
            options,
            builtin: false,
        };
        store::insert_network(&tx, &n)?;
        tx.commit()?;
        Ok(n)
    }

    /// Every network.
    pub fn networks(&self) -> Result<Vec<Network>> {
        store::networks(&self.conn())
    }

    /// One network by name, id or id prefix.
    pub fn network(&self, what: &str) -> Result<Network> {
        store::find_network(&self.conn(), what)
    }

    /// The containers attached to a network, with their live endpoint if running.
    pub fn network_containers(&self, id: &str) -> Result<Vec<(String, Option<Endpoint>)>> {
        let conn = self.conn();
        let live: HashMap<String, Endpoint> = store::network_endpoints(&conn, id)?
            .into_iter()
            .map(|e| (e.container.clone(), e))
            .collect();
        let mut out: Vec<(String, Option<Endpoint>)> = store::attached_to(&conn, id)?
            .into_iter()
            .map(|c| {
                let e = live.get(&c).cloned();
                (c, e)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// `network rm`: refused for built-in networks and networks with containers.
    pub fn remove_network(&self, what: &str) -> Result<Network> {
        let n = self.network(what)?;
        if n.builtin {
            return Err(Error::InvalidArgument(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        let _lock = self.lock()?;
        let users = store::attached_to(&self.conn(), &n.id)?;
        if !users.is_empty() {
            return Err(Error::Conflict(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        // No container: no bridge either, unless a crash left one.
        let _ = self.with_bridge(|b| b.teardown(&n, "", Release::Delete, true));
        hako_sys::crash::point("net.bridge-removed");
        store::delete_network(&self.conn(), &n.id)?;
        Ok(n)
    }

    // ------------------------------------------------------------ containers

    /// Checks what a container asks of its networks and records it (at `create`).
    /// Nothing on the host changes.
    pub fn configure(&self, container: &str, wants: &[AttachRequest]) -> Result<Vec<Attachment>> {
        let mut out = Vec::new();
        for w in wants {
            out.push(self.check_attach(container, w)?);
        }
        let conn = self.conn();
        for a in &out {
            store::attach(&conn, a)?;
        }
        Ok(out)
    }

    fn check_attach(&self, container: &str, w: &AttachRequest) -> Result<Attachment> {
        let n = self.network(&w.network)?;
        if n.driver != "bridge" {
            return Err(Error::InvalidArgument(format!(
                "container cannot be connected to network {} (driver {}): use --network {}",
                n.name, n.driver, n.name
            )));
        }
        let user = !n.builtin;
        if !user && (w.ipv4.is_some() || w.ipv6.is_some()) {
            return Err(Error::InvalidArgument(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        if !user && !w.aliases.is_empty() {
            return Err(Error::InvalidArgument(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            ));
        }
        let parse = |s: &Option<String>, v6: bool| -> Result<Option<IpAddr>> {
            let Some(s) = s else { return Ok(None) };
            let a: IpAddr = s
                .parse()
                .map_err(|_| Error::InvalidArgument(format!("invalid IP address: {s}")))?;
            if a.is_ipv6() != v6 {
                return Err(Error::InvalidArgument(format!(
                    "invalid IPv{} address: {s}",
                    if v6 { 6 } else { 4 }
                )));
            }
            let sub = if v6 { n.v6() } else { n.v4() };
            match sub {
                Some(sub) if ipam::usable(sub, a) => Ok(Some(a)),
                Some(sub) if sub.subnet.contains(&a) => Err(Error::InvalidArgument(format!(
                    "Address already in use: {a}"
                ))),
                _ => Err(Error::InvalidArgument(format!(
                    "no configured subnet or ip-range contain the IP address {a}"
                ))),
            }
        };
        let ipv4 = parse(&w.ipv4, false)?;
        let ipv6 = parse(&w.ipv6, true)?;
        if let Some(m) = &w.mac {
            ipam::parse_mac(m)?;
        }
        for a in &w.aliases {
            if !valid_name(a) {
                return Err(Error::InvalidArgument(format!(
                    "invalid network alias {a:?}"
                )));
            }
        }
        Ok(Attachment {
            container: container.to_string(),
            network: n.id,
            aliases: w.aliases.clone(),
            ipv4,
            ipv6,
            mac: w.mac.clone(),
        })
    }

    /// A container's attachments with their networks, in interface order.
    pub fn attachments(&self, container: &str) -> Result<Vec<(Attachment, Network)>> {
        let atts = store::attachments(&self.conn(), container)?;
        let mut out = Vec::new();
        for a in atts {
            let n = store::find_network(&self.conn(), &a.network)?;
            out.push((a, n));
        }
        Ok(out)
    }

    /// Every container's network records, read in one transaction with a handful of
    /// queries (a listing of N containers asks this once instead of N times each query).
    pub fn snapshot(&self) -> Result<NetSnapshot> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let networks = store::networks(&tx)?;
        let atts = store::all_attachments(&tx)?;
        let eps = store::all_endpoints(&tx)?;
        let sbs = store::sandboxes(&tx)?;
        tx.commit()?;
        let mut snap = NetSnapshot::default();
        for a in atts {
            // As find_network: the attachment names its network by id (or name).
            let Some(n) = networks
                .iter()
                .find(|n| n.name == a.network)
                .or_else(|| networks.iter().find(|n| n.id == a.network))
            else {
                continue;
            };
            let n = n.clone();
            snap.containers
                .entry(a.container.clone())
                .or_default()
                .attachments
                .push((a, n));
        }
        for e in eps {
            snap.containers
                .entry(e.container.clone())
                .or_default()
                .endpoints
                .push(e);
        }
        for sb in sbs {
            let id = sb.container.clone();
            snap.containers.entry(id).or_default().sandbox = Some(sb);
        }
        Ok(snap)
    }

    /// One container's network records ([`Net::snapshot`]'s part for one container).
    pub fn container_net(&self, container: &str) -> ContainerNet {
        ContainerNet {
            attachments: self.attachments(container).unwrap_or_default(),
            endpoints: self.endpoints(container).unwrap_or_default(),
            sandbox: self.sandbox(container).ok().flatten(),
        }
    }

    /// A container's live endpoints.
    pub fn endpoints(&self, container: &str) -> Result<Vec<Endpoint>> {
        store::endpoints(&self.conn(), container)
    }

    /// A container's live sandbox (namespace, published ports).
    pub fn sandbox(&self, container: &str) -> Result<Option<Sandbox>> {
        store::sandbox(&self.conn(), container)
    }

    /// Every live sandbox (for housekeeping).
    pub fn sandboxes(&self) -> Result<Vec<Sandbox>> {
        store::sandboxes(&self.conn())
    }

    /// Sets up a container's network (before its runtime starts it): namespace, addresses,
    /// interfaces, published ports, /etc files. On failure nothing is left.
    pub fn setup(&self, req: &SetupRequest) -> Result<Setup> {
        let (setup, wiring) = self.setup_begin(req)?;
        wiring.finish()?;
        Ok(setup)
    }

    /// [`Net::setup`] in two halves, for a caller with other work meanwhile (the engine
    /// spawns the shim, whose runtime joins the namespace by its path). This half reserves
    /// the host ports, makes the namespace, allocates the addresses and checks them: every
    /// refusal a user can cause comes from here. [`Wiring::finish`] (on any thread) then
    /// makes the interfaces, routes, firewall rules and the resolver; nothing of the
    /// container may run before it returns. The network lock is held from the first half
    /// to the end of the second; a failure of either leaves nothing.
    pub fn setup_begin(&self, req: &SetupRequest) -> Result<(Setup, Wiring<'_>)> {
        let lock = self.lock()?;
        if store::sandbox(&self.conn(), &req.container)?.is_some() {
            // A crash between setup and teardown: start afresh.
            let _ = self.teardown_locked(&req.container, Release::Delete);
        }
        let atts = self.attachments(&req.container)?;
        let v4 = atts.iter().any(|(_, n)| n.v4().is_some());
        let v6 = atts.iter().any(|(_, n)| n.v6().is_some());
        for (_, n) in &atts {
            if n.internal && !req.ports.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "cannot publish ports on internal network {}",
                    n.name
                )));
            }
        }
        // Host ports first: a taken port is refused before anything exists.
        let reserved = ports::reserve(&req.ports, v4, v6)?;
        let path = self.netns_path(&req.container);
        let _ = netns::remove(&path);
        // The record first, then what it owns: a crash after any step leaves a sandbox
        // whose holder is gone, which the next open tears down (namespace file included).
        store::insert_sandbox(
            &self.conn(),
            &Sandbox {
                container: req.container.clone(),
                netns: path.display().to_string(),
                name: req.name.clone(),
                hostname: req.hostname.clone(),
                ports: Vec::new(),
                owner: i32::try_from(std::process::id()).unwrap_or(0),
            },
        )?;
        hako_sys::crash::point("net.sandbox");
        let ns = match self.spares.adopt(&path) {
            Some(ns) => Ok(ns),
            None => Netns::create(&path),
        };
        let made = ns.and_then(|ns| {
            hako_sys::crash::point("net.netns");
            let setup = self.plan(req, &atts, &ns, reserved)?;
            Ok((setup, ns))
        });
        match made {
            Ok((setup, ns)) => {
                let wiring = Wiring {
                    net: self,
                    _lock: lock,
                    container: req.container.clone(),
                    atts,
                    ns,
                    endpoints: setup.endpoints.clone(),
                    ports: setup.ports.clone(),
                };
                Ok((setup, wiring))
            }
            Err(e) => {
                let _ = self.teardown_locked(&req.container, Release::Delete);
                Err(e)
            }
        }
    }

    /// The first half's tail: addresses allocated and checked, the /etc files and the
    /// relays computed.
    fn plan(
        &self,
        req: &SetupRequest,
        atts: &[(Attachment, Network)],
        ns: &Netns,
        reserved: ports::Reserved,
    ) -> Result<Setup> {
        let eps = self.allocate(&req.container, atts)?;
        hako_sys::crash::point("net.endpoints");
        let reqs = requests(&req.container, atts, &eps, ns);
        self.with_bridge(|b| reqs.iter().try_for_each(|r| b.validate(r)))?;
        let (hosts, resolv) = self.etc_files(req, atts, &eps)?;
        let mut proxies = Vec::new();
        for (i, m) in reserved.mappings.iter().enumerate() {
            let loopback_too = m.host_ip.is_unspecified() || m.host_ip.is_loopback();
            if matches!(m.proto, ports::Proto::Tcp | ports::Proto::Udp)
                && m.host_ip.is_ipv6()
                && loopback_too
                && let Some(t) = eps.iter().find_map(|e| e.ipv6)
            {
                proxies.push((i, std::net::SocketAddr::new(t, m.container_port)));
            }
        }
        Ok(Setup {
            endpoints: eps,
            ports: reserved.mappings,
            sockets: reserved.sockets,
            proxies,
            hosts,
            resolv,
        })
    }

    /// The second half of a setup (see [`Net::setup_begin`]).
    fn wire(&self, w: &Wiring<'_>) -> Result<()> {
        let reqs = requests(&w.container, &w.atts, &w.endpoints, &w.ns);
        self.with_bridge(|b| {
            for r in &reqs {
                let first = store::network_endpoints(&self.conn(), &r.network.id)?.len() == 1;
                b.setup(r)?;
                hako_sys::crash::point("net.interface");
                self.firewall_for_start(r.network, first)?;
            }
            Ok(())
        })?;
        let mut batch = Batch::default();
        for m in &w.ports {
            let target = w
                .endpoints
                .iter()
                .find_map(|e| if m.host_ip.is_ipv6() { e.ipv6 } else { e.ipv4 })
                .ok_or_else(|| {
                    Error::InvalidArgument("published port without a container address".into())
                })?;
            batch.add_port(m, target);
        }
        // Recorded before they exist: a crash in between must not leave rules that no
        // sandbox names (deleting an element that is not there is no error at teardown).
        store::update_sandbox(
            &self.conn(),
            &w.container,
            &w.ports,
            i32::try_from(std::process::id()).unwrap_or(0),
        )?;
        if !batch.is_empty() {
            batch.apply(self.backend()?)?;
            hako_sys::crash::point("net.ports");
        }
        let gateways: Vec<IpAddr> = w
            .atts
            .iter()
            .filter(|(_, n)| n.resolves_names())
            .flat_map(|(_, n)| n.subnets.iter().map(|s| s.gateway))
            .collect();
        if !gateways.is_empty() {
            let moved = dns::ensure(
                &self.opts.dns_program,
                &self.opts.db,
                &self.opts.exec_root,
                &gateways,
            )?;
            self.redirect_dns(&moved)?;
            hako_sys::crash::point("net.dns");
        }
        Ok(())
    }

    /// /etc/hosts and resolv.conf for a container on `atts` with endpoints `eps`.
    fn etc_files(
        &self,
        req: &SetupRequest,
        atts: &[(Attachment, Network)],
        eps: &[Endpoint],
    ) -> Result<(String, String)> {
        let gw = atts.first().and_then(|(_, n)| n.v4().map(|s| s.gateway));
        let mut extra = Vec::new();
        for h in &req.extra_hosts {
            extra.push(files::parse_add_host(h, gw)?);
        }
        let own: Vec<(IpAddr, Vec<String>)> = eps
            .iter()
            .zip(atts)
            .flat_map(|(e, (a, _))| {
                [e.ipv4, e.ipv6]
                    .into_iter()
                    .flatten()
                    .map(|ip| (ip, a.aliases.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let hosts = files::hosts(&extra, &own, &req.hostname);
        let resolver = atts
            .iter()
            .find(|(_, n)| n.resolves_names())
            .and_then(|(_, n)| n.v4().or(n.v6()).map(|s| s.gateway));
        let resolv = files::resolv_conf(&files::host_resolv(), &req.dns, resolver);
        Ok((hosts, resolv))
    }

    /// Allocates addresses for every attachment in one transaction.
    fn allocate(&self, container: &str, atts: &[(Attachment, Network)]) -> Result<Vec<Endpoint>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut out = Vec::new();
        for (i, (a, n)) in atts.iter().enumerate() {
            let e = self.allocate_one(&tx, container, a, n, i)?;
            store::insert_endpoint(&tx, &e)?;
            out.push(e);
        }
        tx.commit()?;
        Ok(out)
    }

    fn allocate_one(
        &self,
        conn: &Connection,
        container: &str,
        a: &Attachment,
        n: &Network,
        index: usize,
    ) -> Result<Endpoint> {
        let used: HashSet<IpAddr> = store::used_addresses(conn, &n.id)?.into_iter().collect();
        let pick =
            |s: Option<&Subnet>, wanted: Option<IpAddr>, v6: bool| -> Result<Option<IpAddr>> {
                let Some(s) = s else { return Ok(None) };
                let last = store::last(conn, &n.id, v6)?;
                let ip = ipam::allocate(s, &n.name, &used, last, wanted)?;
                if wanted.is_none() {
                    store::set_last(conn, &n.id, ip)?;
                }
                Ok(Some(ip))
            };
        let ipv4 = pick(n.v4(), a.ipv4, false)?;
        let ipv6 = pick(n.v6(), a.ipv6, true)?;
        let mac = match &a.mac {
            Some(m) => ipam::mac_text(ipam::parse_mac(m)?),
            None => ipam::mac_text(ipam::mac_for(ipv4)),
        };
        Ok(Endpoint {
            container: container.to_string(),
            network: n.id.clone(),
            endpoint_id: crate::random_hex(64),
            ifname: format!("eth{index}"),
            host_veth: format!("hk{}{index}", &container[..container.len().min(10)]),
            ipv4,
            ipv6,
            mac,
        })
    }

    /// Lets `bridge`'s routed traffic past other tables' FORWARD drop policies. A policy
    /// may appear after the bridge's first container (dockerd started later) and an
    /// iptables flush takes hako's accepts away, so every start checks: one in-process
    /// listing when nothing drops (firewall::foreign).
    /// Returns whether nothing stands in the way (no warning).
    fn open_forward(&self, bridge: &str) -> bool {
        let Ok(backend) = self.backend() else {
            return false;
        };
        let warnings = foreign::open(backend, bridge);
        for w in &warnings {
            tracing::warn!("{w}");
        }
        warnings.is_empty()
    }

    /// Port 53 of a gateway, UDP and TCP, to the resolver's port there (53 was taken).
    fn dns_mappings(moved: &[(IpAddr, u16)]) -> Vec<(Mapping, IpAddr)> {
        moved
            .iter()
            .flat_map(|(gw, port)| {
                [ports::Proto::Udp, ports::Proto::Tcp].map(|proto| {
                    let m = Mapping {
                        proto,
                        host_ip: *gw,
                        host_port: 53,
                        container_port: *port,
                    };
                    (m, *gw)
                })
            })
            .collect()
    }

    /// Redirects port 53 of the gateways where the resolver could not take it (a dnsmasq
    /// on 0.0.0.0:53) to the port it took: the network's containers still ask GW:53. A
    /// published-port element (`gw . proto . 53 : gw . port`); it goes with the network's
    /// last container (`network_elements`).
    fn redirect_dns(&self, moved: &[(IpAddr, u16)]) -> Result<()> {
        if moved.is_empty() {
            return Ok(());
        }
        let backend = self.backend()?;
        let maps = Self::dns_mappings(moved);
        let mut add = Batch::default();
        for (m, gw) in &maps {
            add.add_port(m, *gw);
        }
        // Usually already there: one batch. A resolver restarted on another port: the
        // element's value differs (nftables refuses to add it), replace it. iptables'
        // batch finds rules by key only, so it always replaces.
        if backend.is_nftables() && add.apply(backend).is_ok() {
            return Ok(());
        }
        let mut both = Batch::default();
        for (m, gw) in &maps {
            both.del_port(m);
            both.add_port(m, *gw);
        }
        both.apply(backend)
    }

    /// A start's firewall work on one of its networks: the network's elements with its
    /// first container, and the accepts ahead of another table's FORWARD drop
    /// ([`Net::open_forward`]). Both are skipped while the nftables ruleset is still the
    /// one they were done in (`firewall::generation`): the default network keeps its
    /// elements while it has no container, so its next start then touches no nftables at
    /// all: no libnftables loaded, no ruleset listed, no no-op committed (~2 ms of a ~30 ms
    /// `run --rm`). Only where the driver is detected (no option, environment or record
    /// naming one) is the record trusted; only the nftables driver writes it.
    fn firewall_for_start(&self, n: &Network, first: bool) -> Result<()> {
        use crate::firewall::generation;
        let state = self.opts.exec_root.join("firewall.verified");
        let detected = self.opts.firewall.is_none()
            && matches!(crate::firewall::Backend::from_env(), Ok(None))
            && !self.opts.exec_root.join("firewall").exists();
        let before = detected.then(generation::stamp).flatten();
        let forward = format!("forward:{}", n.bridge);
        let known = |key: &str| {
            before
                .as_ref()
                .is_some_and(|s| generation::verified(&state, s, key))
        };
        let elements_known = known(&n.id);
        let forward_known = known(&forward);
        if (elements_known || !first) && forward_known {
            return Ok(());
        }
        if first && !elements_known {
            self.network_elements(n, true)?;
        }
        hako_sys::crash::point("net.elements");
        let forward_open = forward_known || self.open_forward(&n.bridge);
        let Some(before) = before else { return Ok(()) };
        if !self.backend()?.is_nftables() {
            return Ok(());
        }
        let mut keys = Vec::new();
        if first || elements_known {
            keys.push(n.id.as_str());
        }
        if forward_open {
            keys.push(forward.as_str());
        }
        match generation::stamp() {
            Some(after) => generation::record(&state, &before, &after, &keys),
            None => {
                let _ = std::fs::remove_file(&state);
            }
        }
        Ok(())
    }

    /// Adds (or removes) a network's elements in the firewall.
    fn network_elements(&self, n: &Network, add: bool) -> Result<()> {
        let mut b = Batch::default();
        if add {
            b.add_network(n);
        } else {
            b.del_network(n);
            let gws: Vec<IpAddr> = n.subnets.iter().map(|s| s.gateway).collect();
            let moved: Vec<(IpAddr, u16)> = dns::redirected(&self.opts.exec_root)
                .into_iter()
                .filter(|(gw, _)| gws.contains(gw))
                .collect();
            for (m, _) in Self::dns_mappings(&moved) {
                b.del_port(&m);
            }
        }
        let backend = self.backend()?;
        let applied = match b.apply(backend) {
            Ok(()) => Ok(()),
            Err(e) if add => {
                // Left over from a crash: take them out and put them back.
                let mut d = Batch::default();
                d.del_network(n);
                let _ = d.apply(backend);
                b.apply(backend).map_err(|_| e)
            }
            Err(e) => Err(e),
        };
        // Another table's FORWARD drop policy (dockerd's): accepted ahead of it where that
        // can be done (by each start, `setup_inner`), said plainly where not; the
        // accepts go with the network's last container (firewall::foreign).
        if add {
            applied
        } else {
            let left = foreign::close(backend, &n.bridge);
            applied?;
            match left.is_empty() {
                true => Ok(()),
                false => Err(Error::Nft(left.join("; "))),
            }
        }
    }

    /// Gives back a container's network (it stopped): ports, interfaces, addresses,
    /// namespace; a user-defined network's bridge without containers goes too. Every
    /// error is collected. Its interfaces are deleted ([`Release::Delete`]).
    pub fn teardown(&self, container: &str) -> Result<()> {
        let _lock = self.lock()?;
        self.teardown_locked(container, Release::Delete)
    }

    /// Tears the container's network down only while its sandbox is still held by `owner`
    /// (checked under the lock); returns whether it did. A release decided on an owner
    /// read before the lock must not remove a sandbox that a new start set up meanwhile:
    /// a stop's exit command read the old shim as the owner, waited for the lock while
    /// `start` set the network up again, then removed the new namespace under the
    /// starting runtime (the soak: "open net namespace ...: No such file or directory").
    ///
    /// `release`: [`Release::WithNamespace`] when the caller knows the container's
    /// processes are gone (its shim saw it exit), so its namespace dies with the unmount;
    /// a namespace shared with another container ([`Net::mark_shared`]) has its interfaces
    /// deleted all the same.
    pub fn teardown_if_owner(&self, container: &str, owner: i32, release: Release) -> Result<bool> {
        let _lock = self.lock()?;
        // (Bound first: the connection's guard in a match head would be held through the
        // arms, and the teardown takes it again.)
        let sandbox = store::sandbox(&self.conn(), container)?;
        match sandbox {
            Some(s) if s.owner == owner => self.teardown_locked(container, release).map(|()| true),
            _ => Ok(false),
        }
    }

    fn teardown_locked(&self, container: &str, release: Release) -> Result<()> {
        let mut errs = ErrorList::default();
        let sandbox = store::sandbox(&self.conn(), container)?;
        let eps = store::endpoints(&self.conn(), container)?;
        if sandbox.is_none() && eps.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::default();
        for m in sandbox.iter().flat_map(|s| s.ports.iter()) {
            batch.del_port(m);
        }
        if !batch.is_empty() {
            errs.push(self.backend().and_then(|b| batch.apply(b)));
            hako_sys::crash::point("net.ports-removed");
        }
        let path = sandbox
            .as_ref()
            .map(|s| PathBuf::from(&s.netns))
            .unwrap_or_else(|| self.netns_path(container));
        let shared = shared_marker(&path);
        let release = match shared.exists() {
            true => Release::Delete,
            false => release,
        };
        // The namespace's unmount waits for an RCU grace period in the kernel
        // (namespace_unlock), as a link's deletion does: both at once.
        let mut names = false;
        let unmounted = std::thread::scope(|t| {
            let unmount = t.spawn(|| netns::remove(&path));
            self.teardown_endpoints(container, &eps, release, &mut errs, &mut names);
            unmount.join().unwrap_or_else(|_| {
                Err(Error::Io {
                    context: format!("unmount {}", path.display()),
                    source: std::io::Error::other("panicked"),
                })
            })
        });
        errs.push(unmounted);
        errs.push(remove_file(&shared));
        hako_sys::crash::point("net.netns-removed");
        errs.push(store::delete_sandbox(&self.conn(), container));
        if names {
            dns::reload(&self.opts.exec_root);
        }
        errs.into_result()
    }

    /// A container's interfaces and addresses, network by network (a user-defined
    /// network's rules and bridge with its last container; the default network keeps
    /// them, as Docker keeps `docker0`: [`keeps_bridge`]).
    fn teardown_endpoints(
        &self,
        container: &str,
        eps: &[Endpoint],
        release: Release,
        errs: &mut ErrorList,
        names: &mut bool,
    ) {
        for e in eps {
            let n = match store::find_network(&self.conn(), &e.network) {
                Ok(n) => n,
                Err(err) => {
                    errs.push::<()>(Err(err));
                    continue;
                }
            };
            *names |= n.resolves_names();
            // (The default network keeps its bridge: its endpoints, all of them, are not
            // read on every container's removal.)
            let last = !keeps_bridge(&n)
                && store::network_endpoints(&self.conn(), &n.id)
                    .map(|v| v.iter().all(|x| x.container == container))
                    .unwrap_or(false);
            if last {
                errs.push(self.network_elements(&n, false));
            }
            errs.push(self.with_bridge(|b| b.teardown(&n, &e.host_veth, release, last)));
            hako_sys::crash::point("net.interface-removed");
            errs.push(store::delete_endpoint(&self.conn(), container, &e.network));
            hako_sys::crash::point("net.endpoint-removed");
        }
    }

    /// Every container the store holds network state for (`hako system check` looks for
    /// ones without a record).
    pub fn containers(&self) -> Result<Vec<String>> {
        store::containers(&self.conn())
    }

    /// Forgets a container (it is being removed): teardown if needed, then its
    /// attachments.
    pub fn forget(&self, container: &str) -> Result<()> {
        let r = self.teardown(container);
        store::forget(&self.conn(), container)?;
        r
    }

    /// Marks a sandbox as held by a shim (the setting-up process may exit now).
    pub fn set_owner(&self, container: &str, owner: i32) -> Result<()> {
        let s = store::sandbox(&self.conn(), container)?;
        if let Some(s) = s {
            store::update_sandbox(&self.conn(), container, &s.ports, owner)?;
        }
        Ok(())
    }

    /// DNS answers the new name.
    pub fn rename(&self, container: &str, name: &str) -> Result<()> {
        store::rename(&self.conn(), container, name)
    }

    /// `network connect` of a container: records the attachment; with `running`, also
    /// makes the interface in its namespace now. Returns the new endpoint if made.
    pub fn connect(
        &self,
        container: &str,
        w: &AttachRequest,
        running: bool,
    ) -> Result<Option<Endpoint>> {
        let a = self.check_attach(container, w)?;
        let n = self.network(&w.network)?;
        if store::attachments(&self.conn(), container)?
            .iter()
            .any(|x| x.network == a.network)
        {
            return Err(Error::Conflict(format!(
                "endpoint with name {} already exists in network {}",
                container, n.name
            )));
        }
        if !running {
            store::attach(&self.conn(), &a)?;
            return Ok(None);
        }
        let _lock = self.lock()?;
        let sandbox = store::sandbox(&self.conn(), container)?.ok_or_else(|| {
            Error::InvalidArgument(format!("container {container} has no network namespace"))
        })?;
        // The attachment is recorded last, once the interface works: a connect killed
        // halfway leaves an endpoint without one (not connected, its interface and address
        // go with the container's teardown), which a new connect removes first.
        if store::endpoints(&self.conn(), container)?
            .iter()
            .any(|e| e.network == n.id)
        {
            self.disconnect_locked(container, &n)?;
        }
        let index = store::endpoints(&self.conn(), container)?
            .iter()
            .filter_map(|e| e.ifname.trim_start_matches("eth").parse::<usize>().ok())
            .max()
            .map(|m| m + 1)
            .unwrap_or(0);
        let made = (|| {
            let e = {
                let mut conn = self.conn();
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let e = self.allocate_one(&tx, container, &a, &n, index)?;
                store::insert_endpoint(&tx, &e)?;
                tx.commit()?;
                e
            };
            hako_sys::crash::point("net.connect-endpoint");
            let ns = Netns::open(Path::new(&sandbox.netns))?;
            let r = Request {
                network: &n,
                container,
                netns: &ns,
                ifname: &e.ifname,
                host_veth: &e.host_veth,
                ipv4: e.ipv4,
                ipv6: e.ipv6,
                mac: ipam::parse_mac(&e.mac).unwrap_or([2, 0x42, 0, 0, 0, 0]),
                default_route: index == 0,
            };
            let first = store::network_endpoints(&self.conn(), &n.id)?.len() == 1;
            self.with_bridge(|b| {
                b.validate(&r)?;
                b.setup(&r)
            })?;
            hako_sys::crash::point("net.connect-interface");
            if first {
                self.network_elements(&n, true)?;
            }
            let _ = self.open_forward(&n.bridge);
            if n.resolves_names() {
                let gateways: Vec<IpAddr> = n.subnets.iter().map(|s| s.gateway).collect();
                let moved = dns::ensure(
                    &self.opts.dns_program,
                    &self.opts.db,
                    &self.opts.exec_root,
                    &gateways,
                )?;
                self.redirect_dns(&moved)?;
            }
            store::attach(&self.conn(), &a)?;
            Ok(e)
        })();
        match made {
            Ok(e) => Ok(Some(e)),
            Err(err) => {
                let _ = self.disconnect_locked(container, &n);
                let _ = store::detach(&self.conn(), container, &n.id);
                Err(err)
            }
        }
    }

    /// `network disconnect`: the interface goes now if the container runs, and the
    /// attachment goes.
    pub fn disconnect(&self, container: &str, network: &str) -> Result<()> {
        let n = self.network(network)?;
        if !store::attachments(&self.conn(), container)?
            .iter()
            .any(|a| a.network == n.id)
        {
            return Err(Error::InvalidArgument(format!(
                "container {container} is not connected to network {}",
                n.name
            )));
        }
        let _lock = self.lock()?;
        // Not connected from here on; a crash before the interface is gone leaves an
        // endpoint without attachment, which the next connect or the teardown removes.
        store::detach(&self.conn(), container, &n.id)?;
        self.disconnect_locked(container, &n)
    }

    fn disconnect_locked(&self, container: &str, n: &Network) -> Result<()> {
        let eps = store::endpoints(&self.conn(), container)?;
        let Some(e) = eps.iter().find(|e| e.network == n.id) else {
            return Ok(());
        };
        let mut errs = ErrorList::default();
        let last = store::network_endpoints(&self.conn(), &n.id)?.len() == 1 && !keeps_bridge(n);
        if last {
            errs.push(self.network_elements(n, false));
        }
        errs.push(self.with_bridge(|b| b.teardown(n, &e.host_veth, Release::Delete, last)));
        hako_sys::crash::point("net.disconnect-interface");
        errs.push(store::delete_endpoint(&self.conn(), container, &n.id));
        if n.resolves_names() {
            dns::reload(&self.opts.exec_root);
        }
        errs.into_result()
    }

    /// Endpoints without an attachment (container, network id): a `network connect` or
    /// `disconnect` killed halfway left them, holding an address (and maybe an interface
    /// in the container). Setup records attachments before endpoints, and connect and
    /// disconnect keep the two apart only while they hold the network lock, so with no
    /// such operation in progress every one listed is stale.
    pub fn stale_endpoints(&self) -> Result<Vec<(String, String)>> {
        store::stale_endpoints(&self.conn())
    }

    /// Removes the endpoints [`Net::stale_endpoints`] lists (interface, address, the
    /// network's elements if it was the last one), under the network lock; returns how
    /// many went. One query when there are none.
    pub fn remove_stale_endpoints(&self) -> Result<usize> {
        if store::stale_endpoints(&self.conn())?.is_empty() {
            return Ok(0);
        }
        let _lock = self.lock()?;
        let stale = store::stale_endpoints(&self.conn())?;
        let mut errs = ErrorList::default();
        for (container, network) in &stale {
            tracing::info!(container = %container, network = %network, "removing an endpoint an interrupted connect or disconnect left");
            // (Bound first: the connection's guard in a `match` head lives through the arms.)
            let n = store::find_network(&self.conn(), network);
            match n {
                Ok(n) => errs.push(self.disconnect_locked(container, &n)),
                Err(e) => errs.push::<()>(Err(e)),
            }
        }
        errs.into_result().map(|()| stale.len())
    }

    /// Puts back the firewall elements of every live sandbox (after `nft flush ruleset`
    /// or a firewall reload wiped hako's table). Cheap when the table is intact.
    pub fn reconcile(&self) -> Result<()> {
        let sbs = store::sandboxes(&self.conn())?;
        if sbs.is_empty() {
            return Ok(());
        }
        let backend = self.backend()?;
        if crate::firewall::intact(backend) {
            return Ok(());
        }
        let _lock = self.lock()?;
        let mut seen = HashSet::new();
        let mut batch = Batch::default();
        for s in &sbs {
            let eps = store::endpoints(&self.conn(), &s.container)?;
            for e in &eps {
                if seen.insert(e.network.clone())
                    && let Ok(n) = store::find_network(&self.conn(), &e.network)
                {
                    batch.add_network(&n);
                }
            }
            for m in &s.ports {
                let t = eps
                    .iter()
                    .find_map(|e| if m.host_ip.is_ipv6() { e.ipv6 } else { e.ipv4 });
                if let Some(t) = t {
                    batch.add_port(m, t);
                }
            }
        }
        batch.apply(backend)
    }
}

/// Whether a network keeps its bridge and rules without containers: the default one, as
/// Docker keeps `docker0` (made with its first container, then there until reboot). Making
/// and deleting it around every container was most of a `run --rm` on it: a bridge's
/// deletion waits for RCU callbacks twice (~25 ms), its making sets sysctls and rules.
/// User-defined networks' bridges go with their last container (netavark's way), so an
/// unused network leaves nothing on the host.
fn keeps_bridge(n: &Network) -> bool {
    n.builtin
}

/// Present while another container's processes share the namespace at `netns`
/// (`--network container:X`): then its interfaces are deleted at teardown, not left to
/// die with it.
fn shared_marker(netns: &Path) -> PathBuf {
    let mut p = netns.as_os_str().to_owned();
    p.push(".shared");
    PathBuf::from(p)
}

fn remove_file(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).ctx(|| format!("remove {}", p.display()))
        }
        _ => Ok(()),
    }
}

fn now() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}
