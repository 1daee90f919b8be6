//! Networks, attachments, endpoints (the IPAM) and sandboxes in SQLite: the same database
//! file as the image store and the container records (`<root>/hako-image.db`), tables of
//! their own.
//!
//! ```text
//! networks         id PK, name UNIQUE, driver (bridge|host|null), bridge, created, internal,
//!                  ipv6, mtu, subnets (JSON [{subnet, gateway, ip_range}]), labels, options,
//!                  builtin
//! net_cursor       network PK, last4, last6        where the next address search starts
//! net_attachments  container, network → networks   what the container asked for: aliases,
//!                  ipv4/ipv6/mac wanted, order (eth0, eth1, ... at start)
//! net_endpoints    container, network → networks   live while the container runs: ifname,
//!                  host veth, ipv4, ipv6, mac; UNIQUE (network, ipv4), UNIQUE (network, ipv6):
//!                  an address can be handed out once, whatever the processes racing for it
//! net_sandboxes    container PK                    live: netns path, name, hostname, ports
//!                  (JSON), owner pid (the process setting it up; see housekeeping)
//! ```
//!
//! Addresses are allocated when a container starts and released when it stops (Docker's
//! rule), each allocation one `BEGIN IMMEDIATE` transaction.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use hako_sys::sqlite::Cached;
use ipnet::IpNet;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ports::Mapping;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS networks (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  driver TEXT NOT NULL,
  bridge TEXT NOT NULL,
  created TEXT NOT NULL,
  internal INTEGER NOT NULL,
  ipv6 INTEGER NOT NULL,
  mtu INTEGER NOT NULL,
  subnets TEXT NOT NULL,
  labels TEXT NOT NULL,
  options TEXT NOT NULL,
  builtin INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS net_cursor (
  network TEXT PRIMARY KEY,
  last4 TEXT NOT NULL DEFAULT '',
  last6 TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS net_attachments (
  container TEXT NOT NULL,
  network TEXT NOT NULL REFERENCES networks(id),
  aliases TEXT NOT NULL,
  ipv4 TEXT NOT NULL,
  ipv6 TEXT NOT NULL,
  mac TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (container, network)
);
CREATE TABLE IF NOT EXISTS net_endpoints (
  container TEXT NOT NULL,
  network TEXT NOT NULL REFERENCES networks(id),
  endpoint_id TEXT NOT NULL,
  ifname TEXT NOT NULL,
  host_veth TEXT NOT NULL,
  ipv4 TEXT,
  ipv6 TEXT,
  mac TEXT NOT NULL,
  PRIMARY KEY (container, network),
  UNIQUE (network, ipv4),
  UNIQUE (network, ipv6)
);
CREATE TABLE IF NOT EXISTS net_sandboxes (
  container TEXT PRIMARY KEY,
  netns TEXT NOT NULL,
  name TEXT NOT NULL,
  hostname TEXT NOT NULL,
  ports TEXT NOT NULL,
  owner INTEGER NOT NULL
);
";

/// One subnet of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    /// The subnet.
    pub subnet: IpNet,
    /// The bridge's address in it.
    pub gateway: IpAddr,
    /// Addresses are handed out from here only (`--ip-range`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<IpNet>,
}

/// A network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// 64 hex digits.
    pub id: String,
    /// Unique name (`bridge`, `host`, `none`, user names).
    pub name: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    /// The bridge interface (`hako0`, `hk-<id[..12]>`); empty for host/null.
    pub bridge: String,
    /// RFC 3339.
    pub created: String,
    /// `--internal`: no route out, no published ports from outside.
    pub internal: bool,
    /// `--ipv6`.
    pub ipv6: bool,
    /// The bridge's MTU.
    pub mtu: u32,
    /// Its subnets (one IPv4, at most one IPv6).
    pub subnets: Vec<Subnet>,
    /// `--label`.
    pub labels: HashMap<String, String>,
    /// `-o`.
    pub options: HashMap<String, String>,
    /// `bridge`, `host`, `none`: made by hako, cannot be removed.
    pub builtin: bool,
}

impl Network {
    /// The IPv4 subnet, if any.
    pub fn v4(&self) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.subnet.addr().is_ipv4())
    }

    /// The IPv6 subnet, if any.
    pub fn v6(&self) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.subnet.addr().is_ipv6())
    }

    /// Containers on it find each other by name (user-defined bridge networks only:
    /// Docker's rule, the default bridge has no name resolution).
    pub fn resolves_names(&self) -> bool {
        self.driver == "bridge" && !self.builtin
    }
}

/// What a container asked for on one network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attachment {
    /// The container.
    pub container: String,
    /// Network id.
    pub network: String,
    /// `--network-alias`.
    pub aliases: Vec<String>,
    /// `--ip`.
    pub ipv4: Option<IpAddr>,
    /// `--ip6`.
    pub ipv6: Option<IpAddr>,
    /// `--mac-address`.
    pub mac: Option<String>,
}

/// A container's live interface on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The container.
    pub container: String,
    /// Network id.
    pub network: String,
    /// 64 hex digits (Docker's EndpointID).
    pub endpoint_id: String,
    /// `eth0`, `eth1`...
    pub ifname: String,
    /// The host end of the veth pair.
    pub host_veth: String,
    /// Its IPv4 address.
    pub ipv4: Option<IpAddr>,
    /// Its IPv6 address.
    pub ipv6: Option<IpAddr>,
    /// `02:42:...`.
    pub mac: String,
}

/// A container's live network state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// The container.
    pub container: String,
    /// Its namespace file.
    pub netns: String,
    /// Its name (for DNS).
    pub name: String,
    /// Its host name.
    pub hostname: String,
    /// Published ports as set up.
    pub ports: Vec<Mapping>,
    /// The process that set it up (0 once a shim holds it).
    pub owner: i32,
}

/// Opens the database at `path` (WAL, as the rest of the store) and makes the tables.
pub fn open(path: &Path) -> Result<Connection> {
    let conn = hako_sys::sqlite::open_shared(path)?;
    if !hako_sys::sqlite::has_table(&conn, "net_cursor")? {
        conn.execute_batch(&format!("BEGIN IMMEDIATE;{SCHEMA}COMMIT;"))?;
    }
    Ok(conn)
}

/// A read-only connection (the resolver's): no pragma, no schema, never a write lock.
pub fn open_read_only(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(2))?;
    Ok(conn)
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn from_json<T: serde::de::DeserializeOwned + Default>(s: &str) -> T {
    serde_json::from_str(s).unwrap_or_default()
}

fn ip(s: Option<String>) -> Option<IpAddr> {
    s.and_then(|s| s.parse().ok())
}

fn ip_text(a: Option<IpAddr>) -> String {
    a.map(|a| a.to_string()).unwrap_or_default()
}

const NET_COLUMNS: &str =
    "id, name, driver, bridge, created, internal, ipv6, mtu, subnets, labels, options, builtin";

fn net_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Network> {
    Ok(Network {
        id: r.get(0)?,
        name: r.get(1)?,
        driver: r.get(2)?,
        bridge: r.get(3)?,
        created: r.get(4)?,
        internal: r.get(5)?,
        ipv6: r.get(6)?,
        mtu: r.get(7)?,
        subnets: from_json(&r.get::<_, String>(8)?),
        labels: from_json(&r.get::<_, String>(9)?),
        options: from_json(&r.get::<_, String>(10)?),
        builtin: r.get(11)?,
    })
}

/// Inserts a network; a taken name is a [`Error::Conflict`] with Docker's message.
pub fn insert_network(conn: &Connection, n: &Network) -> Result<()> {
    let res = conn.execute_cached(
        &format!("INSERT INTO networks ({NET_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
        params![
            n.id,
            n.name,
            n.driver,
            n.bridge,
            n.created,
            n.internal,
            n.ipv6,
            n.mtu,
            json(&n.subnets),
            json(&n.labels),
            json(&n.options),
            n.builtin
        ],
    );
    match res {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(Error::Conflict(format!(
                "network with name {} already exists",
                n.name
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// All networks, by name.
pub fn networks(conn: &Connection) -> Result<Vec<Network>> {
    let mut st =
        conn.prepare_cached(&format!("SELECT {NET_COLUMNS} FROM networks ORDER BY name"))?;
    let rows = st.query_map([], net_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A network by exact name, full id, or unique id prefix (Docker's lookup order).
pub fn find_network(conn: &Connection, what: &str) -> Result<Network> {
    let by = |sql: &str, arg: &str| -> Result<Vec<Network>> {
        let mut st =
            conn.prepare_cached(&format!("SELECT {NET_COLUMNS} FROM networks WHERE {sql}"))?;
        let rows = st.query_map([arg], net_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    };
    if let Some(n) = by("name = ?1", what)?.pop() {
        return Ok(n);
    }
    if let Some(n) = by("id = ?1", what)?.pop() {
        return Ok(n);
    }
    if !what.is_empty() && what.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut m = by("id LIKE ?1 || '%'", what)?;
        if m.len() == 1 {
            return Ok(m.remove(0));
        }
        if m.len() > 1 {
            return Err(Error::InvalidArgument(format!(
                "network {what} is ambiguous ({} matches found based on ID prefix)",
                m.len()
            )));
        }
    }
    Err(Error::NoSuchNetwork(what.to_string()))
}

/// Deletes a network record (its attachments must be gone).
pub fn delete_network(conn: &Connection, id: &str) -> Result<()> {
    conn.execute_cached("DELETE FROM net_cursor WHERE network = ?1", [id])?;
    conn.execute_cached("DELETE FROM networks WHERE id = ?1", [id])?;
    Ok(())
}

/// Adds (or replaces) what `a.container` asked for on `a.network`; `seq` orders eth0, eth1.
pub fn attach(conn: &Connection, a: &Attachment) -> Result<()> {
    conn.execute_cached(
        "INSERT INTO net_attachments (container, network, aliases, ipv4, ipv6, mac, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6,
                 (SELECT COALESCE(MAX(seq), -1) + 1 FROM net_attachments WHERE container = ?1))
         ON CONFLICT (container, network) DO UPDATE SET aliases = ?3, ipv4 = ?4, ipv6 = ?5, mac = ?6",
        params![
            a.container,
            a.network,
            json(&a.aliases),
            ip_text(a.ipv4),
            ip_text(a.ipv6),
            a.mac.clone().unwrap_or_default()
        ],
    )?;
    Ok(())
}

/// Removes one attachment.
pub fn detach(conn: &Connection, container: &str, network: &str) -> Result<()> {
    conn.execute_cached(
        "DELETE FROM net_attachments WHERE container = ?1 AND network = ?2",
        [container, network],
    )?;
    Ok(())
}

/// A container's attachments, in order.
pub fn attachments(conn: &Connection, container: &str) -> Result<Vec<Attachment>> {
    let mut st = conn.prepare_cached(
        "SELECT container, network, aliases, ipv4, ipv6, mac FROM net_attachments
         WHERE container = ?1 ORDER BY seq",
    )?;
    let rows = st.query_map([container], attachment_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn attachment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Attachment> {
    Ok(Attachment {
        container: r.get(0)?,
        network: r.get(1)?,
        aliases: from_json(&r.get::<_, String>(2)?),
        ipv4: ip(r.get(3)?),
        ipv6: ip(r.get(4)?),
        mac: Some(r.get::<_, String>(5)?).filter(|m| !m.is_empty()),
    })
}

/// Every attachment of every container, in order.
pub fn all_attachments(conn: &Connection) -> Result<Vec<Attachment>> {
    let mut st = conn.prepare_cached(
        "SELECT container, network, aliases, ipv4, ipv6, mac FROM net_attachments
         ORDER BY container, seq",
    )?;
    let rows = st.query_map([], attachment_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every live endpoint.
pub fn all_endpoints(conn: &Connection) -> Result<Vec<Endpoint>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {EP_COLUMNS} FROM net_endpoints ORDER BY container, ifname"
    ))?;
    let rows = st.query_map([], ep_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every container attached to a network (configured, running or not).
pub fn attached_to(conn: &Connection, network: &str) -> Result<Vec<String>> {
    let mut st = conn.prepare_cached("SELECT container FROM net_attachments WHERE network = ?1")?;
    let rows = st.query_map([network], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every container with network state: attachments, endpoints or a sandbox.
pub fn containers(conn: &Connection) -> Result<Vec<String>> {
    let mut st = conn.prepare_cached(
        "SELECT container FROM net_attachments UNION SELECT container FROM net_endpoints UNION SELECT container FROM net_sandboxes",
    )?;
    let rows = st.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Endpoints (container, network id) without an attachment to their network: what a
/// `network connect` killed before recording its attachment, or a `disconnect` killed
/// after removing it, left behind.
pub fn stale_endpoints(conn: &Connection) -> Result<Vec<(String, String)>> {
    let mut st = conn.prepare_cached(
        "SELECT e.container, e.network FROM net_endpoints e
         LEFT JOIN net_attachments a ON a.container = e.container AND a.network = e.network
         WHERE a.container IS NULL ORDER BY e.container, e.network",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Forgets everything about a container (it is being removed).
pub fn forget(conn: &Connection, container: &str) -> Result<()> {
    conn.execute_cached(
        "DELETE FROM net_attachments WHERE container = ?1",
        [container],
    )?;
    Ok(())
}

const EP_COLUMNS: &str = "container, network, endpoint_id, ifname, host_veth, ipv4, ipv6, mac";

fn ep_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Endpoint> {
    Ok(Endpoint {
        container: r.get(0)?,
        network: r.get(1)?,
        endpoint_id: r.get(2)?,
        ifname: r.get(3)?,
        host_veth: r.get(4)?,
        ipv4: ip(r.get(5)?),
        ipv6: ip(r.get(6)?),
        mac: r.get(7)?,
    })
}

/// Records an endpoint; an address taken in the meantime is a [`Error::Conflict`].
pub fn insert_endpoint(conn: &Connection, e: &Endpoint) -> Result<()> {
    let res = conn.execute_cached(
        &format!(
            "INSERT INTO net_endpoints ({EP_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ),
        params![
            e.container,
            e.network,
            e.endpoint_id,
            e.ifname,
            e.host_veth,
            e.ipv4.map(|a| a.to_string()),
            e.ipv6.map(|a| a.to_string()),
            e.mac
        ],
    );
    match res {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(err, _))
            if err.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(Error::Conflict(format!(
                "Address already in use: {}",
                ip_text(e.ipv4.or(e.ipv6))
            )))
        }
        Err(err) => Err(err.into()),
    }
}

/// A container's live endpoints.
pub fn endpoints(conn: &Connection, container: &str) -> Result<Vec<Endpoint>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {EP_COLUMNS} FROM net_endpoints WHERE container = ?1 ORDER BY ifname"
    ))?;
    let rows = st.query_map([container], ep_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A network's live endpoints.
pub fn network_endpoints(conn: &Connection, network: &str) -> Result<Vec<Endpoint>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {EP_COLUMNS} FROM net_endpoints WHERE network = ?1 ORDER BY container"
    ))?;
    let rows = st.query_map([network], ep_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Addresses in use on a network.
pub fn used_addresses(conn: &Connection, network: &str) -> Result<Vec<IpAddr>> {
    let mut st = conn.prepare_cached("SELECT ipv4, ipv6 FROM net_endpoints WHERE network = ?1")?;
    let rows = st.query_map([network], |r| {
        Ok((
            r.get::<_, Option<String>>(0)?,
            r.get::<_, Option<String>>(1)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (a, b) = row?;
        out.extend(ip(a));
        out.extend(ip(b));
    }
    Ok(out)
}

/// Deletes one endpoint.
pub fn delete_endpoint(conn: &Connection, container: &str, network: &str) -> Result<()> {
    conn.execute_cached(
        "DELETE FROM net_endpoints WHERE container = ?1 AND network = ?2",
        [container, network],
    )?;
    Ok(())
}

/// Where the next address search of a network starts (`last4`/`last6`).
pub fn last(conn: &Connection, network: &str, v6: bool) -> Result<Option<IpAddr>> {
    let col = if v6 { "last6" } else { "last4" };
    let s: Option<String> = conn
        .query_row_cached(
            &format!("SELECT {col} FROM net_cursor WHERE network = ?1"),
            [network],
            |r| r.get(0),
        )
        .optional()?;
    Ok(ip(s))
}

/// Remembers the last address handed out.
pub fn set_last(conn: &Connection, network: &str, addr: IpAddr) -> Result<()> {
    let col = if addr.is_ipv6() { "last6" } else { "last4" };
    conn.execute_cached(
        &format!(
            "INSERT INTO net_cursor (network, {col}) VALUES (?1, ?2)
             ON CONFLICT (network) DO UPDATE SET {col} = ?2"
        ),
        params![network, addr.to_string()],
    )?;
    Ok(())
}

/// Records a sandbox.
pub fn insert_sandbox(conn: &Connection, s: &Sandbox) -> Result<()> {
    conn.execute_cached(
        "INSERT OR REPLACE INTO net_sandboxes (container, netns, name, hostname, ports, owner)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            s.container,
            s.netns,
            s.name,
            s.hostname,
            json(&s.ports),
            s.owner
        ],
    )?;
    Ok(())
}

fn sandbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Sandbox> {
    Ok(Sandbox {
        container: r.get(0)?,
        netns: r.get(1)?,
        name: r.get(2)?,
        hostname: r.get(3)?,
        ports: from_json(&r.get::<_, String>(4)?),
        owner: r.get(5)?,
    })
}

/// A container's sandbox, if it has one.
pub fn sandbox(conn: &Connection, container: &str) -> Result<Option<Sandbox>> {
    Ok(conn
        .query_row_cached(
            "SELECT container, netns, name, hostname, ports, owner FROM net_sandboxes WHERE container = ?1",
            [container],
            sandbox_row,
        )
        .optional()?)
}

/// Every sandbox.
pub fn sandboxes(conn: &Connection) -> Result<Vec<Sandbox>> {
    let mut st = conn.prepare_cached(
        "SELECT container, netns, name, hostname, ports, owner FROM net_sandboxes",
    )?;
    let rows = st.query_map([], sandbox_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Updates the ports and owner of a sandbox.
pub fn update_sandbox(
    conn: &Connection,
    container: &str,
    ports: &[Mapping],
    owner: i32,
) -> Result<()> {
    conn.execute_cached(
        "UPDATE net_sandboxes SET ports = ?2, owner = ?3 WHERE container = ?1",
        params![container, json(&ports), owner],
    )?;
    Ok(())
}

/// Renames a container's sandbox (DNS answers the new name).
pub fn rename(conn: &Connection, container: &str, name: &str) -> Result<()> {
    conn.execute_cached(
        "UPDATE net_sandboxes SET name = ?2 WHERE container = ?1",
        [container, name],
    )?;
    Ok(())
}

/// Deletes a sandbox.
pub fn delete_sandbox(conn: &Connection, container: &str) -> Result<()> {
    conn.execute_cached(
        "DELETE FROM net_sandboxes WHERE container = ?1",
        [container],
    )?;
    Ok(())
}
