//! Networks: the engine's side of hako-net. Which network a container is on (its
//! `NetworkMode` and `NetworkingConfig`), setting it up before the shim starts the
//! runtime, releasing it when the container stops (whoever notices first), Docker's
//! `NetworkSettings`, and the `network` calls that the CLI and the API server share.
//!
//! Who releases a container's network: the sandbox row names an *owner* process, first
//! the one starting the container, then its shim. The shim's exit command (`hako container
//! cleanup`, exec'd in place of the shim, same pid) releases it; so does `stop` once that
//! owner is gone; and [`Engine::open`]'s housekeeping releases every sandbox whose owner
//! died (`kill -9` of a shim). A new start of the same container takes ownership first, so
//! a late exit command of the previous run leaves the new one alone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bollard_stubs::models::{
    EndpointIpamConfig, EndpointResource, EndpointSettings, HostConfig, Ipam, IpamConfig,
    NetworkCreateRequest, NetworkInspect, NetworkSettings, NetworkingConfig, PortBinding, PortMap,
};
use hako_net::files::DnsConfig;
use hako_net::ports::{Binding, Wanted};
use hako_net::{AttachRequest, NetworkCreate, SetupRequest};
use hako_shim::protocol;

use crate::error::{Error, IoContext, Result};
use crate::records::Record;

use super::Engine;

/// Port sockets the shim relays: (index into the sockets, container address).
pub(crate) type Relays = Vec<(usize, std::net::SocketAddr)>;

/// What [`Engine::setup_network`] made.
#[derive(Debug, Default)]
pub(crate) struct NetworkSetup<'a> {
    /// The host port sockets the shim must hold.
    pub sockets: Vec<OwnedFd>,
    /// Which of them it relays.
    pub relays: Relays,
    /// The setup's second half, for a bridge network.
    pub wiring: Option<hako_net::Wiring<'a>>,
}

/// How a container is networked (`--network`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Its own namespace with loopback only.
    None,
    /// The host's namespace.
    Host,
    /// Another container's namespace (its id).
    Container(String),
    /// Bridge networks (the first one named by `--network`, default `bridge`).
    Bridge(String),
}

/// `NetworkMode` → [`Mode`] (without looking anything up).
pub fn mode_of(h: &HostConfig) -> Mode {
    match h.network_mode.as_deref() {
        None | Some("" | "default" | "bridge") => Mode::Bridge("bridge".into()),
        Some("none") => Mode::None,
        Some("host") => Mode::Host,
        Some(m) if m.starts_with("container:") => {
            Mode::Container(m.trim_start_matches("container:").to_string())
        }
        Some(n) => Mode::Bridge(n.to_string()),
    }
}

impl From<hako_net::Error> for Error {
    fn from(e: hako_net::Error) -> Error {
        match e {
            hako_net::Error::NoSuchNetwork(n) => Error::NoSuchNetwork(n),
            hako_net::Error::Conflict(m) => Error::Conflict(m),
            hako_net::Error::InvalidArgument(m) => Error::InvalidArgument(m),
            other => Error::Network(other.to_string()),
        }
    }
}

/// `PortBindings` → hako-net's bindings.
pub(crate) fn bindings(pm: Option<&PortMap>) -> Vec<Binding> {
    let mut out = Vec::new();
    for (k, v) in pm.into_iter().flatten() {
        let list = v.clone().unwrap_or_default();
        if list.is_empty() {
            out.push(Binding {
                container: k.clone(),
                host_ip: String::new(),
                host_port: String::new(),
            });
        }
        for b in list {
            out.push(Binding {
                container: k.clone(),
                host_ip: b.host_ip.unwrap_or_default(),
                host_port: b.host_port.unwrap_or_default(),
            });
        }
    }
    out.sort_by(|a, b| a.container.cmp(&b.container));
    out
}

/// The ports to publish for a container.
pub(crate) fn wanted_ports(h: &HostConfig, exposed_ports: &[String]) -> Result<Vec<Wanted>> {
    let w = hako_net::ports::wanted(
        &bindings(h.port_bindings.as_ref()),
        h.publish_all_ports == Some(true),
        exposed_ports,
    )?;
    Ok(w)
}

/// The image's and `--expose`'s ports (what `-P` publishes).
fn exposed_ports(rec: &Record) -> Vec<String> {
    rec.config.exposed_ports.clone().unwrap_or_default()
}

/// `EndpointSettings` of `NetworkingConfig` → hako-net's request for `network`.
fn attach_request(network: &str, e: Option<&EndpointSettings>) -> AttachRequest {
    let ipam = e.and_then(|e| e.ipam_config.as_ref());
    AttachRequest {
        network: network.to_string(),
        aliases: e.and_then(|e| e.aliases.clone()).unwrap_or_default(),
        ipv4: ipam
            .and_then(|i| i.ipv4_address.clone())
            .filter(|s| !s.is_empty()),
        ipv6: ipam
            .and_then(|i| i.ipv6_address.clone())
            .filter(|s| !s.is_empty()),
        mac: e
            .and_then(|e| e.mac_address.clone())
            .filter(|s| !s.is_empty()),
    }
}

impl Engine {
    /// The networking half.
    pub fn net(&self) -> &hako_net::Net {
        &self.net
    }

    /// Checks a new container's network options (nothing changes). Returns the
    /// attachments to record once the container has a record.
    pub(crate) fn plan_network(
        &self,
        host: &HostConfig,
        networking: Option<&NetworkingConfig>,
        exposed_ports: &[String],
    ) -> Result<Vec<AttachRequest>> {
        let ports = wanted_ports(host, exposed_ports)?;
        let endpoints = networking.and_then(|n| n.endpoints_config.as_ref());
        if self.opts.rootless && matches!(mode_of(host), Mode::Bridge(_)) {
            // pasta's network: nothing to attach (check_rootless_network refused others).
            return Ok(Vec::new());
        }
        match mode_of(host) {
            Mode::None | Mode::Host => Ok(Vec::new()),
            Mode::Container(other) => {
                self.get(&other)?;
                if !ports.is_empty() {
                    return Err(Error::InvalidArgument(
                        "conflicting options: port publishing and the container type network mode"
                            .into(),
                    ));
                }
                Ok(Vec::new())
            }
            Mode::Bridge(first) => {
                let n = self.net.network(&first)?;
                if n.driver != "bridge" {
                    return Err(Error::InvalidArgument(format!(
                        "network {} is not a bridge network",
                        n.name
                    )));
                }
                // The endpoint of the first network may be keyed by any of its names,
                // or by the mode as given: the docker CLI sends `NetworkMode: "default"`
                // with `EndpointsConfig: {"default": ...}`.
                let asked = host.network_mode.as_deref().unwrap_or("");
                let is_first = |name: &str| {
                    name == first
                        || name == n.name
                        || name == n.id
                        || (!asked.is_empty() && name == asked)
                };
                let mut reqs = vec![attach_request(
                    &first,
                    endpoints.and_then(|e| e.iter().find(|(k, _)| is_first(k)).map(|(_, v)| v)),
                )];
                for (name, e) in endpoints.into_iter().flatten() {
                    if is_first(name) {
                        continue;
                    }
                    reqs.push(attach_request(name, Some(e)));
                }
                if let Some(d) = &host.dns {
                    hako_net::files::validate_dns(&DnsConfig {
                        servers: d.clone(),
                        ..Default::default()
                    })?;
                }
                Ok(reqs)
            }
        }
    }

    /// Where the runtime finds the container's network namespace (None: a new one, or
    /// the host's for `host`).
    pub(crate) fn netns_for_spec(&self, id: &str, host: &HostConfig) -> Result<Option<PathBuf>> {
        Ok(match mode_of(host) {
            Mode::Bridge(_) => Some(self.net.netns_path(id)),
            Mode::Container(other) => {
                let o = self.get(&other)?;
                Some(self.net.netns_path(&o.id))
            }
            Mode::None | Mode::Host => None,
        })
    }

    /// Before the shim starts the runtime: the container's network (bridge modes), its
    /// /etc/hosts and resolv.conf. Returns the host port sockets the shim must hold, which
    /// of them it relays (index, container address), and the second half of the setup
    /// (interfaces, routes, rules: [`hako_net::Wiring`]) to finish while the shim and the
    /// runtime create the container, and before it starts.
    pub(crate) fn setup_network(&self, rec: &Record) -> Result<NetworkSetup<'_>> {
        if self.opts.rootless {
            self.setup_rootless_network(rec)?;
            return Ok(NetworkSetup::default());
        }
        match mode_of(&rec.host_config) {
            Mode::None | Mode::Host => return Ok(NetworkSetup::default()),
            Mode::Container(other) => {
                let o = self.get(&other)?;
                if !self.live(&o).status.is_active() {
                    return Err(Error::InvalidArgument(format!(
                        "cannot join network of a non running container: {}",
                        &o.id[..12]
                    )));
                }
                self.point_netns_at(rec, &o)?;
                return Ok(NetworkSetup::default());
            }
            Mode::Bridge(_) => {}
        }
        let exposed = exposed_ports(rec);
        let h = &rec.host_config;
        let (setup, wiring) = self.net.setup_begin(&SetupRequest {
            container: rec.id.clone(),
            name: rec.name.clone(),
            hostname: rec
                .config
                .hostname
                .clone()
                .unwrap_or_else(|| rec.id[..12].to_string()),
            ports: wanted_ports(h, &exposed)?,
            dns: DnsConfig {
                servers: h.dns.clone().unwrap_or_default(),
                search: h.dns_search.clone().unwrap_or_default(),
                options: h.dns_options.clone().unwrap_or_default(),
            },
            extra_hosts: h.extra_hosts.clone().unwrap_or_default(),
        })?;
        let dir = self.container_dir(&rec.id);
        let written = (|| {
            overwrite(&dir.join("hosts"), &setup.hosts)?;
            overwrite(&dir.join("resolv.conf"), &setup.resolv)
        })();
        if let Err(e) = written {
            // (The wiring's lock first: the teardown takes it.)
            drop(wiring);
            let _ = self.net.teardown(&rec.id);
            return Err(e);
        }
        Ok(NetworkSetup {
            sockets: setup.sockets,
            relays: setup.proxies,
            wiring: Some(wiring),
        })
    }

    /// The container's network is made with no host port to hand to its shim: a bridge
    /// network (not rootless) that publishes nothing. Its shim can then be spawned before
    /// the network is set up (`Engine::spawn_shim`).
    pub(crate) fn network_after_shim(&self, rec: &Record) -> bool {
        let exposed = exposed_ports(rec);
        !self.opts.rootless
            && matches!(mode_of(&rec.host_config), Mode::Bridge(_))
            && wanted_ports(&rec.host_config, &exposed).is_ok_and(|w| w.is_empty())
    }

    /// Docker's events: the container joins each of its networks at every start.
    pub(crate) fn network_connect_events(&self, rec: &Record) {
        for (_, n) in self.net.attachments(&rec.id).unwrap_or_default() {
            self.network_event("connect", &n.id, &n.name, &n.driver, Some(&rec.id));
        }
    }

    /// `container:X`: the spec joins X's namespace as it is now (a file hako made, or the
    /// namespace of X's init for a `none` container).
    fn point_netns_at(&self, rec: &Record, other: &Record) -> Result<()> {
        let path = match mode_of(&other.host_config) {
            Mode::Bridge(_) => {
                self.net.mark_shared(&other.id)?;
                self.net.netns_path(&other.id)
            }
            Mode::Host => {
                return Err(Error::InvalidArgument(
                    "cannot join the network of a container on the host network".into(),
                ));
            }
            _ => {
                let pid = self.live(other).pid.ok_or_else(|| {
                    Error::InvalidArgument(format!("container {} has no process", &other.id[..12]))
                })?;
                PathBuf::from(format!("/proc/{pid}/ns/net"))
            }
        };
        let file = self.container_dir(&rec.id).join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).ctx(|| "read config.json".into())?)
                .map_err(|e| Error::InvalidArgument(format!("config.json: {e}")))?;
        if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
            for n in ns.iter_mut() {
                if n["type"] == "network" {
                    n["path"] = serde_json::json!(path);
                }
            }
        }
        std::fs::write(&file, serde_json::to_vec(&spec).unwrap_or_default())
            .ctx(|| "write config.json".into())
    }

    /// Gives the container's network back if the process that holds it is gone (or is
    /// us: the shim's exit command runs with the shim's pid; or is that exit command, or
    /// the shim about to become it: its `shim.pid` removed, it touches nothing more). With `wait`, waits (10s at
    /// most) for a live holder to finish first.
    pub(crate) fn release_network(&self, id: &str, wait: bool) -> Result<()> {
        self.release_network_with(id, wait, false, true)
    }

    /// [`Engine::release_network`] for a caller that knows no process of the container is
    /// left although its shim still runs (it reported the exit and is finishing: `RUNTIME
    /// delete`, its files): the namespace goes now, with its interfaces, instead of after
    /// the shim.
    pub(crate) fn release_network_after_exit(&self, id: &str) -> Result<()> {
        self.release_network_with(id, true, true, true)
    }

    /// [`Engine::release_network_after_exit`] without the `disconnect` events (a removal
    /// that sent them already, before finishing after its answer).
    pub(crate) fn release_network_quietly(&self, id: &str) -> Result<()> {
        self.release_network_with(id, true, true, false)
    }

    /// [`Engine::release_network`] without `disconnect` events: a network set up ahead of
    /// a start (prepare.rs) that never came, so never announced with `connect` events.
    pub(crate) fn release_network_unannounced(&self, id: &str) -> Result<()> {
        self.release_network_with(id, true, false, false)
    }

    fn release_network_with(
        &self,
        id: &str,
        wait: bool,
        processes_gone: bool,
        events: bool,
    ) -> Result<()> {
        if self.opts.rootless {
            return self.release_rootless_network(id);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let Some(s) = self.net.sandbox(id)? else {
                return Ok(());
            };
            let me = i32::try_from(std::process::id()).unwrap_or(0);
            // The container exited (the caller saw it, `processes_gone`, whatever its shim
            // is now: finishing, the exit command, or a zombie whose parent has not reaped
            // it yet, whose cmdline reads empty; or the shim says so): no process is left
            // in the namespace, which dies with its unmount and takes the interfaces with
            // it. Otherwise (a killed shim, a holder that does not finish) the container
            // may still run: its interfaces are deleted, which waits for RCU grace periods
            // (10-50 ms).
            let exited = s.owner > 0
                && (processes_gone
                    || is_exit_command(s.owner, id)
                    || (is_shim_of(s.owner, id) && !protocol::shim_alive(&self.state_dir(id))));
            if s.owner == 0
                || s.owner == me
                || !holder_alive(s.owner)
                || exited
                || Instant::now() >= deadline
            {
                // (The exit command releasing itself runs with the shim's pid: `exited`.)
                let release = match exited {
                    true => hako_net::driver::Release::WithNamespace,
                    false => hako_net::driver::Release::Delete,
                };
                let joined = self.net.attachments(id).unwrap_or_default();
                if !self.net.teardown_if_owner(id, s.owner, release)? {
                    // A start set the network up again since it was read: judge that one.
                    continue;
                }
                for (_, n) in joined.into_iter().filter(|_| events) {
                    self.network_event("disconnect", &n.id, &n.name, &n.driver, Some(id));
                }
                return Ok(());
            }
            if !wait {
                return Ok(());
            }
            // The holder is usually a shim finishing its container (`RUNTIME delete`, a
            // few ms): a short poll.
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Housekeeping at open: networks of containers whose holder died (`kill -9` of a
    /// shim, a CLI killed mid-start) are released. A CLI killed after it spawned the shim
    /// but before it handed the sandbox over may have died before the interfaces were
    /// made (they are made while the shim starts): the container the runtime created
    /// there, which never ran, is ended with its network, and its next start makes both
    /// again. A living shim whose container runs (it restarted it) takes the network over.
    /// The spare namespace a `hako serve` killed with SIGKILL left goes too.
    pub(crate) fn collect_dead_networks(&self) {
        self.net.sweep_dead_spares();
        let Ok(all) = self.net.sandboxes() else {
            return;
        };
        for s in all {
            if s.owner > 0 && !holder_alive(s.owner) {
                let dir = self.state_dir(&s.container);
                if protocol::shim_alive(&dir)
                    && let Some((pid, _)) = protocol::read_shim_pid(&dir)
                {
                    let rec = self.get(&s.container).ok();
                    match rec {
                        Some(rec) if self.live(&rec).status == crate::state::Status::Created => {
                            tracing::info!(container = %s.container, "ending a created container whose start died before its network was handed over");
                            self.end_created(&rec);
                            // It never ran: without its shim's exit record it reads as
                            // created again, and the next start makes everything anew.
                            let _ = std::fs::remove_dir_all(&dir);
                        }
                        _ => {
                            tracing::info!(container = %s.container, pid, "the container's shim takes over its network from a process that is gone");
                            if let Err(e) = self.net.set_owner(&s.container, pid) {
                                tracing::warn!(container = %s.container, "hand the network to the shim: {e}");
                            }
                            continue;
                        }
                    }
                }
                tracing::info!(container = %s.container, "releasing the network of a container whose monitor is gone");
                let release = hako_net::driver::Release::Delete;
                if let Err(e) = self.net.teardown_if_owner(&s.container, s.owner, release) {
                    tracing::warn!(container = %s.container, "release network: {e}");
                }
            }
        }
        let _ = self.net.reconcile();
    }

    /// Docker's `NetworkSettings` of a container.
    pub(crate) fn network_settings(&self, rec: &Record) -> NetworkSettings {
        self.network_settings_of(rec, self.net.container_net(&rec.id))
    }

    /// [`Engine::network_settings`] from records already read (a listing reads every
    /// container's at once: [`hako_net::Net::snapshot`]).
    pub(crate) fn network_settings_of(
        &self,
        rec: &Record,
        cn: hako_net::ContainerNet,
    ) -> NetworkSettings {
        let hako_net::ContainerNet {
            attachments,
            endpoints: eps,
            sandbox,
        } = cn;
        let mut networks = HashMap::new();
        match mode_of(&rec.host_config) {
            Mode::Host => {
                networks.insert("host".to_string(), self.empty_endpoint("host"));
            }
            Mode::None => {
                networks.insert("none".to_string(), self.empty_endpoint("none"));
            }
            Mode::Container(_) => {}
            Mode::Bridge(_) => {
                for (a, n) in attachments {
                    let e = eps.iter().find(|e| e.network == n.id);
                    let v4 = n.v4();
                    let v6 = n.v6();
                    let prefix = |s: Option<&hako_net::Subnet>| {
                        s.map(|s| i64::from(s.subnet.prefix_len())).unwrap_or(0)
                    };
                    let mut dns_names = vec![rec.name.clone(), rec.id[..12].to_string()];
                    dns_names.extend(a.aliases.iter().cloned());
                    networks.insert(
                        n.name.clone(),
                        EndpointSettings {
                            ipam_config: (a.ipv4.is_some() || a.ipv6.is_some()).then(|| {
                                EndpointIpamConfig {
                                    ipv4_address: a.ipv4.map(|i| i.to_string()),
                                    ipv6_address: a.ipv6.map(|i| i.to_string()),
                                    ..Default::default()
                                }
                            }),
                            links: None,
                            mac_address: Some(e.map(|e| e.mac.clone()).unwrap_or_default()),
                            aliases: (!a.aliases.is_empty()).then(|| a.aliases.clone()),
                            driver_opts: None,
                            gw_priority: Some(0),
                            network_id: Some(n.id.clone()),
                            endpoint_id: Some(e.map(|e| e.endpoint_id.clone()).unwrap_or_default()),
                            gateway: Some(
                                e.and(v4.map(|s| s.gateway.to_string())).unwrap_or_default(),
                            ),
                            ip_address: Some(
                                e.and_then(|e| e.ipv4.map(|i| i.to_string()))
                                    .unwrap_or_default(),
                            ),
                            ip_prefix_len: Some(if e.is_some() { prefix(v4) } else { 0 }),
                            ipv6_gateway: Some(
                                e.and(v6.map(|s| s.gateway.to_string())).unwrap_or_default(),
                            ),
                            global_ipv6_address: Some(
                                e.and_then(|e| e.ipv6.map(|i| i.to_string()))
                                    .unwrap_or_default(),
                            ),
                            global_ipv6_prefix_len: Some(if e.is_some() { prefix(v6) } else { 0 }),
                            dns_names: n.resolves_names().then_some(dns_names),
                        },
                    );
                }
            }
        }
        let mut ports: PortMap = HashMap::new();
        // Rootless: no sandbox in the network store, pasta's namespace file while it runs.
        let rootless_netns = (self.opts.rootless && self.net.netns_path(&rec.id).exists())
            .then(|| self.net.netns_path(&rec.id).to_string_lossy().into_owned());
        if sandbox.is_some() || rootless_netns.is_some() {
            for k in rec
                .config
                .exposed_ports
                .as_ref()
                .cloned()
                .unwrap_or_default()
            {
                ports.entry(k).or_insert(None);
            }
            for m in &self.ports(&rec.id) {
                let key = format!("{}/{}", m.container_port, m.proto.as_str());
                ports
                    .entry(key)
                    .or_insert(None)
                    .get_or_insert_with(Vec::new)
                    .push(PortBinding {
                        host_ip: Some(m.host_ip.to_string()),
                        host_port: Some(m.host_port.to_string()),
                    });
            }
        }
        NetworkSettings {
            sandbox_id: Some(if sandbox.is_some() || rootless_netns.is_some() {
                rec.id.clone()
            } else {
                String::new()
            }),
            sandbox_key: Some(
                sandbox
                    .as_ref()
                    .map(|s| s.netns.clone())
                    .or(rootless_netns)
                    .unwrap_or_default(),
            ),
            ports: Some(ports),
            networks: Some(networks),
        }
    }

    fn empty_endpoint(&self, name: &str) -> EndpointSettings {
        EndpointSettings {
            network_id: self.net.network(name).ok().map(|n| n.id),
            endpoint_id: Some(String::new()),
            gateway: Some(String::new()),
            ip_address: Some(String::new()),
            ip_prefix_len: Some(0),
            ipv6_gateway: Some(String::new()),
            global_ipv6_address: Some(String::new()),
            global_ipv6_prefix_len: Some(0),
            mac_address: Some(String::new()),
            ..Default::default()
        }
    }

    // ------------------------------------------------------------ network calls

    /// `network create` (Docker's request body).
    pub fn network_create(&self, req: &NetworkCreateRequest) -> Result<NetworkInspect> {
        let mut subnets = Vec::new();
        for c in req
            .ipam
            .as_ref()
            .and_then(|i| i.config.clone())
            .unwrap_or_default()
        {
            if let Some(s) = c.subnet {
                subnets.push((s, c.gateway, c.ip_range));
            } else if c.gateway.is_some() || c.ip_range.is_some() {
                return Err(Error::InvalidArgument(
                    "a gateway or an ip-range needs a subnet (--subnet)".into(),
                ));
            }
        }
        let n = self.net.create_network(&NetworkCreate {
            name: req.name.clone(),
            driver: req.driver.clone(),
            subnets,
            internal: req.internal == Some(true),
            ipv6: req.enable_ipv6 == Some(true),
            labels: req.labels.clone().unwrap_or_default(),
            options: req.options.clone().unwrap_or_default(),
        })?;
        self.network_event("create", &n.id, &n.name, &n.driver, None);
        self.network_inspect(&n.id)
    }

    /// `network ls`.
    pub fn network_list(&self) -> Result<Vec<NetworkInspect>> {
        let all = self.net.networks()?;
        all.iter().map(|n| self.inspect_of(n, false)).collect()
    }

    /// `network inspect`.
    pub fn network_inspect(&self, what: &str) -> Result<NetworkInspect> {
        let n = self.net.network(what)?;
        self.inspect_of(&n, true)
    }

    fn inspect_of(&self, n: &hako_net::Network, containers: bool) -> Result<NetworkInspect> {
        let mut cs = HashMap::new();
        if containers {
            for (id, e) in self.net.network_containers(&n.id)? {
                let Some(e) = e else { continue };
                let name = self.get(&id).map(|r| r.name).unwrap_or_default();
                let v4 = n.v4().map(|s| s.subnet.prefix_len());
                let v6 = n.v6().map(|s| s.subnet.prefix_len());
                cs.insert(
                    id,
                    EndpointResource {
                        name: Some(name),
                        endpoint_id: Some(e.endpoint_id.clone()),
                        mac_address: Some(e.mac.clone()),
                        ipv4_address: Some(
                            e.ipv4
                                .zip(v4)
                                .map(|(a, p)| format!("{a}/{p}"))
                                .unwrap_or_default(),
                        ),
                        ipv6_address: Some(
                            e.ipv6
                                .zip(v6)
                                .map(|(a, p)| format!("{a}/{p}"))
                                .unwrap_or_default(),
                        ),
                    },
                );
            }
        }
        Ok(NetworkInspect {
            name: Some(n.name.clone()),
            id: Some(n.id.clone()),
            created: Some(n.created.clone()),
            scope: Some("local".into()),
            driver: Some(n.driver.clone()),
            enable_ipv4: Some(n.driver == "bridge"),
            enable_ipv6: Some(n.ipv6),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                // Docker's `{}` (a template's `{{.IPAM.Options}}` is `map[]`).
                options: Some(Default::default()),
                config: Some(
                    n.subnets
                        .iter()
                        .map(|s| IpamConfig {
                            subnet: Some(s.subnet.to_string()),
                            ip_range: s.ip_range.map(|r| r.to_string()),
                            gateway: Some(s.gateway.to_string()),
                            auxiliary_addresses: None,
                        })
                        .collect(),
                ),
            }),
            internal: Some(n.internal),
            attachable: Some(false),
            ingress: Some(false),
            config_from: Some(bollard_stubs::models::ConfigReference {
                network: Some(String::new()),
            }),
            config_only: Some(false),
            options: Some(n.options.clone()),
            labels: Some(n.labels.clone()),
            containers: Some(cs),
            ..Default::default()
        })
    }

    /// `network rm`.
    pub fn network_remove(&self, what: &str) -> Result<()> {
        let n = self.net.remove_network(what)?;
        self.network_event("destroy", &n.id, &n.name, &n.driver, None);
        Ok(())
    }

    /// `network connect NETWORK CONTAINER`: now if it runs, else at its next start.
    pub fn network_connect(
        &self,
        network: &str,
        container: &str,
        endpoint: Option<&EndpointSettings>,
    ) -> Result<()> {
        let rec = self.get(container)?;
        match mode_of(&rec.host_config) {
            Mode::Bridge(_) => {}
            Mode::None => {
                return Err(Error::InvalidArgument(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode".into(),
                ));
            }
            Mode::Host => {
                return Err(Error::InvalidArgument(
                    "container sharing network namespace with another container or host cannot be connected to any other network".into(),
                ));
            }
            Mode::Container(_) => {
                return Err(Error::InvalidArgument(
                    "container sharing network namespace with another container or host cannot be connected to any other network".into(),
                ));
            }
        }
        let n = self.net.network(network)?;
        let running = self.live(&rec).status.is_active();
        let req = attach_request(&n.name, endpoint);
        // A flight: a connect killed halfway leaves an endpoint without attachment, which
        // the next open removes (recovery.rs).
        let flight = self.images.begin_flight(crate::recovery::KIND_ENGINE)?;
        let made = self.net.connect(&rec.id, &req, running);
        // A failed connect rolled back what it made.
        flight.complete();
        let made = made?;
        self.network_event("connect", &n.id, &n.name, &n.driver, Some(&rec.id));
        if let Some(e) = made {
            // Docker appends the new address to the running container's /etc/hosts.
            let path = self.container_dir(&rec.id).join("hosts");
            let mut hosts = std::fs::read_to_string(&path).unwrap_or_default();
            let host = rec.config.hostname.clone().unwrap_or_default();
            for ip in [e.ipv4, e.ipv6].into_iter().flatten() {
                hosts.push_str(&format!("{ip}\t{host}\n"));
            }
            let _ = overwrite(&path, &hosts);
        }
        Ok(())
    }

    /// `network disconnect NETWORK CONTAINER`.
    pub fn network_disconnect(&self, network: &str, container: &str, force: bool) -> Result<()> {
        let rec = match self.get(container) {
            Ok(r) => r,
            Err(e) if !force => return Err(e),
            Err(_) => return Ok(()),
        };
        if matches!(
            mode_of(&rec.host_config),
            Mode::Host | Mode::None | Mode::Container(_)
        ) {
            return Err(Error::InvalidArgument(format!(
                "container {} is not connected to network {network}",
                rec.name
            )));
        }
        let removed: Vec<IpAddr> = {
            let n = self.net.network(network)?;
            self.net
                .endpoints(&rec.id)?
                .into_iter()
                .filter(|e| e.network == n.id)
                .flat_map(|e| [e.ipv4, e.ipv6])
                .flatten()
                .collect()
        };
        let n = self.net.network(network)?;
        let flight = self.images.begin_flight(crate::recovery::KIND_ENGINE)?;
        let r = self.net.disconnect(&rec.id, network);
        flight.complete();
        r?;
        self.network_event("disconnect", &n.id, &n.name, &n.driver, Some(&rec.id));
        if !removed.is_empty() {
            let path = self.container_dir(&rec.id).join("hosts");
            if let Ok(text) = std::fs::read_to_string(&path) {
                let kept: String = text
                    .lines()
                    .filter(|l| !removed.iter().any(|ip| l.starts_with(&format!("{ip}\t"))))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let _ = overwrite(&path, &kept);
            }
        }
        Ok(())
    }

    /// Docker's `Ports` of `/containers/json` (and `ps`): every published mapping, then the
    /// exposed ports without one.
    pub(crate) fn port_summaries(&self, rec: &Record) -> Vec<bollard_stubs::models::PortSummary> {
        use bollard_stubs::models::{PortSummary, PortSummaryTypeEnum};
        let typ = |p: &str| match p {
            "udp" => PortSummaryTypeEnum::UDP,
            "sctp" => PortSummaryTypeEnum::SCTP,
            _ => PortSummaryTypeEnum::TCP,
        };
        let maps = self.ports(&rec.id);
        let mut out: Vec<PortSummary> = maps
            .iter()
            .map(|m| PortSummary {
                ip: Some(m.host_ip.to_string()),
                private_port: m.container_port,
                public_port: Some(m.host_port),
                typ: Some(typ(m.proto.as_str())),
            })
            .collect();
        for k in rec.config.exposed_ports.iter().flatten() {
            let Ok((port, proto)) = hako_net::ports::parse_key(k) else {
                continue;
            };
            if !maps
                .iter()
                .any(|m| m.container_port == port && m.proto == proto)
            {
                out.push(PortSummary {
                    ip: None,
                    private_port: port,
                    public_port: None,
                    typ: Some(typ(proto.as_str())),
                });
            }
        }
        out
    }

    /// The published ports of a container as set up (`hako port`, `ps`).
    pub fn ports(&self, id: &str) -> Vec<hako_net::ports::Mapping> {
        if self.opts.rootless {
            return self.rootless_ports(id);
        }
        self.net
            .sandbox(id)
            .ok()
            .flatten()
            .map(|s| s.ports)
            .unwrap_or_default()
    }
}

/// Whether `pid` is container `id`'s exit command (`hako container cleanup ID`, exec'd
/// by its shim in its place, so it keeps the shim's pid and ownership): the container
/// has stopped and its shim is done, so whoever asks may release the network now
/// rather than wait for that process to start up and do it (teardown is serialized by
/// hako-net's lock; the second finds nothing to do). A foreground `run --rm` holds the
/// removal lock on which the exit command waits, so it must not wait for it here.
fn is_exit_command(pid: i32, id: &str) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv: Vec<&[u8]> = raw.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
    argv.ends_with(&[b"cleanup".as_slice(), id.as_bytes()])
}

/// Whether `pid` is the shim of container `id` (`hako-shim ... --id ID ...`).
fn is_shim_of(pid: i32, id: &str) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv: Vec<&[u8]> = raw.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
    argv.first().is_some_and(|p| p.ends_with(b"hako-shim"))
        && argv
            .windows(2)
            .any(|w| w == [b"--id".as_slice(), id.as_bytes()])
}

/// Whether `pid` runs (a zombie does not: a killed shim whose parent has not reaped it yet
/// holds nothing any more).
fn holder_alive(pid: i32) -> bool {
    matches!(hako_sys::process::proc_stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// Rewrites a file in place (it is bind-mounted into a running container: a rename would
/// leave the container looking at the old inode); one that says `text` already is left
/// alone.
///
/// Not truncated to zero first: on ext4 (`auto_da_alloc`) the close of a file truncated to
/// zero and written again forces its blocks' allocation and starts its writeback, on the
/// way to every container's start (the create wrote `resolv.conf` and `hosts`, the start's
/// network setup writes them again).
fn overwrite(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    let ctx = || format!("write {}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .ctx(ctx)?;
    let mut old = Vec::new();
    f.read_to_end(&mut old).ctx(ctx)?;
    if old == text.as_bytes() {
        return Ok(());
    }
    f.write_all_at(text.as_bytes(), 0).ctx(ctx)?;
    if old.len() > text.len() {
        f.set_len(text.len() as u64).ctx(ctx)?;
    }
    Ok(())
}

/// Dups `fds` without close-on-exec for a child about to be spawned; the dups are closed
/// when dropped (after the spawn). (`dup` never sets close-on-exec.)
pub(crate) fn inheritable(fds: &[OwnedFd]) -> Result<Vec<OwnedFd>> {
    fds.iter()
        .map(|fd| {
            nix::unistd::dup(fd)
                .map_err(std::io::Error::from)
                .ctx(|| "duplicate a port socket".into())
        })
        .collect()
}

/// Adds the top-level `NetworkSettings` fields that Docker API < 1.44 clients and scripts
/// (`inspect -f '{{.NetworkSettings.IPAddress}}'`) read, filled from the default `bridge`
/// network's endpoint as Docker did (empty for other networks).
pub fn add_legacy_network_fields(inspect: &mut serde_json::Value) {
    let Some(ns) = inspect
        .get_mut("NetworkSettings")
        .and_then(|v| v.as_object_mut())
    else {
        return;
    };
    let b = ns
        .get("Networks")
        .and_then(|n| n.get("bridge"))
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let s = |k: &str| b.get(k).cloned().unwrap_or_else(|| serde_json::json!(""));
    let n = |k: &str| b.get(k).cloned().unwrap_or_else(|| serde_json::json!(0));
    for (k, v) in [
        ("Bridge", serde_json::json!("")),
        ("HairpinMode", serde_json::json!(false)),
        ("LinkLocalIPv6Address", serde_json::json!("")),
        ("LinkLocalIPv6PrefixLen", serde_json::json!(0)),
        ("SecondaryIPAddresses", serde_json::Value::Null),
        ("SecondaryIPv6Addresses", serde_json::Value::Null),
    ] {
        ns.entry(k).or_insert(v);
    }
    // Always from the endpoint: a zero value put there before (`shape::container_inspect`
    // fills every field Docker prints) must not hide the address.
    for (k, v) in [
        ("EndpointID", s("EndpointID")),
        ("Gateway", s("Gateway")),
        ("GlobalIPv6Address", s("GlobalIPv6Address")),
        ("GlobalIPv6PrefixLen", n("GlobalIPv6PrefixLen")),
        ("IPAddress", s("IPAddress")),
        ("IPPrefixLen", n("IPPrefixLen")),
        ("IPv6Gateway", s("IPv6Gateway")),
        ("MacAddress", s("MacAddress")),
    ] {
        ns.insert(k.to_string(), v);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    /// The file keeps its inode (a container's bind mount sees the new text), longer,
    /// shorter or the same.
    #[test]
    fn a_file_is_overwritten_in_place() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("hosts");
        super::overwrite(&f, "127.0.0.1 localhost\n").unwrap();
        let ino = std::fs::metadata(&f).unwrap().ino();
        for text in [
            "127.0.0.1 localhost\n172.17.0.2 c1\n",
            "::1 x\n",
            "::1 x\n",
            "",
        ] {
            super::overwrite(&f, text).unwrap();
            assert_eq!(std::fs::read_to_string(&f).unwrap(), text);
            assert_eq!(std::fs::metadata(&f).unwrap().ino(), ino);
        }
    }

    /// The shim's exit command (`... container cleanup ID`, same pid as the shim) is told
    /// apart from any other holder of a network: a remover does not wait for it.
    #[test]
    fn the_exit_command_of_a_container_is_recognised_by_its_arguments() {
        let id = "c".repeat(64);
        let other = "d".repeat(64);
        let mut exit_cmd = std::process::Command::new("sh")
            // `read`, a builtin: no child process outlives the kill.
            .args(["-c", "read x", "container", "cleanup", &id])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut holder = std::process::Command::new("sh")
            // `read`, a builtin: no child process outlives the kill.
            .args(["-c", "read x", "run", &id])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let (a, b) = (
            i32::try_from(exit_cmd.id()).unwrap(),
            i32::try_from(holder.id()).unwrap(),
        );
        assert!(super::is_exit_command(a, &id));
        assert!(!super::is_exit_command(a, &other), "another container's");
        assert!(!super::is_exit_command(b, &id), "not an exit command");
        for c in [&mut exit_cmd, &mut holder] {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        assert!(!super::is_exit_command(a, &id), "gone");
        // The shim of the container (until it execs its exit command), not another's.
        let shim_dir = tempfile::tempdir().unwrap();
        let shim = shim_dir.path().join("hako-shim");
        std::os::unix::fs::symlink("/bin/sh", &shim).unwrap();
        let mut s = std::process::Command::new(&shim)
            .args(["-c", "read x", "sh", "--id", &id, "--bundle", "/x"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let p = i32::try_from(s.id()).unwrap();
        // Its command line shows once the exec is through.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.is_empty())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(super::is_shim_of(p, &id));
        assert!(!super::is_shim_of(p, &other), "another container's shim");
        assert!(!super::is_shim_of(b, &id), "not a shim");
        assert!(!super::is_exit_command(p, &id));
        s.kill().unwrap();
        s.wait().unwrap();
    }

    #[test]
    fn legacy_fields_come_from_the_bridge_endpoint_over_zero_values() {
        let mut v = json!({"NetworkSettings": {"Networks": {"bridge": {
            "IPAddress": "10.77.0.3", "Gateway": "10.77.0.1", "IPPrefixLen": 16,
            "MacAddress": "02:42:0a:4d:00:03"}}}});
        // The CLI and the API fill Docker's zero values first.
        crate::shape::container_inspect(&mut v);
        super::add_legacy_network_fields(&mut v);
        let ns = &v["NetworkSettings"];
        assert_eq!(ns["IPAddress"], "10.77.0.3");
        assert_eq!(ns["Gateway"], "10.77.0.1");
        assert_eq!(ns["IPPrefixLen"], 16);
        assert_eq!(ns["MacAddress"], "02:42:0a:4d:00:03");
        assert_eq!(ns["HairpinMode"], false);
        // Another network only: Docker's empty top-level fields.
        let mut v = json!({"NetworkSettings": {"Networks": {"front": {"IPAddress": "10.1.0.2"}}}});
        crate::shape::container_inspect(&mut v);
        super::add_legacy_network_fields(&mut v);
        assert_eq!(v["NetworkSettings"]["IPAddress"], "");
    }
}
