//! Container and volume records in SQLite: the same database file as the image store
//! (`<root>/hako-image.db`), tables of their own.
//!
//! ```text
//! containers        id PK, name UNIQUE, image (as given), image_id, created (RFC 3339),
//!                   config (JSON, Docker's ContainerConfig), host_config (JSON, HostConfig),
//!                   runtime, rootfs, rootfs_managed, path, args (JSON), paused, removing,
//!                   creating
//! volumes           name PK, driver, created, labels (JSON), anonymous, removing,
//!                   creator (the container whose create made it)
//! container_volumes container_id -> containers, volume -> volumes
//! ```
//!
//! A row is the container's identity and configuration. Its status is not stored here (see
//! [`crate::state`]) except `paused` (only the engine pauses), `creating` (set until
//! `create` has made everything; such a row is listed nowhere, and the recovery after a
//! crash removes it) and `removing` (claimed by the one process that removes it, so that
//! two `rm`s cannot both tear it down). Both are claims of a process in a flight (see
//! hako-image's flight.rs): when no flight is in progress, a row that still has one is
//! what a killed process left, and recovery.rs finishes the job.

use std::path::{Path, PathBuf};

use bollard_stubs::models::{ContainerConfig, HostConfig};
use hako_sys::sqlite::Cached;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS containers (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  image TEXT NOT NULL,
  image_id TEXT NOT NULL,
  created TEXT NOT NULL,
  config TEXT NOT NULL,
  host_config TEXT NOT NULL,
  runtime TEXT NOT NULL,
  rootfs TEXT NOT NULL,
  rootfs_managed INTEGER NOT NULL,
  path TEXT NOT NULL,
  args TEXT NOT NULL,
  paused INTEGER NOT NULL DEFAULT 0,
  removing INTEGER NOT NULL DEFAULT 0,
  creating INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS volumes (
  name TEXT PRIMARY KEY,
  driver TEXT NOT NULL,
  created TEXT NOT NULL,
  labels TEXT NOT NULL,
  anonymous INTEGER NOT NULL,
  removing INTEGER NOT NULL DEFAULT 0,
  creator TEXT
);
CREATE TABLE IF NOT EXISTS container_volumes (
  container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
  volume TEXT NOT NULL REFERENCES volumes(name),
  PRIMARY KEY (container_id, volume)
);
";

/// One container's record.
#[derive(Debug, Clone)]
pub struct Record {
    /// 64 hex digits.
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    /// The image as the user named it (`busybox`), or the `--rootfs` directory.
    pub image: String,
    /// `sha256:...` of the image config; empty for `--rootfs`.
    pub image_id: String,
    /// RFC 3339 with nanoseconds.
    pub created: String,
    /// Docker's container config (cmd, env, tty, labels, ...).
    pub config: ContainerConfig,
    /// Docker's host config (binds, limits, restart policy, ...).
    pub host_config: HostConfig,
    /// Runtime name (`hako-runtime`, `runc`, `crun`) or path.
    pub runtime: String,
    /// The directory the container sees as `/`.
    pub rootfs: PathBuf,
    /// Whether `rootfs` is a storage-driver layer hako made (and removes); false for
    /// `--rootfs DIR`.
    pub rootfs_managed: bool,
    /// `Path` of `docker inspect`: the program.
    pub path: String,
    /// `Args` of `docker inspect`.
    pub args: Vec<String>,
    /// Paused by `hako pause`.
    pub paused: bool,
    /// A process has claimed its removal and not finished it (Docker's
    /// `RemovalInProgress`: `ps -a` says "Removal In Progress").
    pub removing: bool,
}

pub(crate) fn open(path: &Path) -> Result<Connection> {
    let conn = hako_sys::sqlite::open_shared(path)?;
    if !hako_sys::sqlite::has_table(&conn, "container_volumes")? {
        conn.execute_batch(&format!("BEGIN IMMEDIATE;{SCHEMA}COMMIT;"))?;
    }
    // Columns added since the first schema.
    for (table, column, decl) in [
        ("containers", "creating", "INTEGER NOT NULL DEFAULT 0"),
        ("volumes", "removing", "INTEGER NOT NULL DEFAULT 0"),
        ("volumes", "creator", "TEXT"),
    ] {
        if !has_column(&conn, table, column)? {
            let res =
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"));
            // Another process added it meanwhile.
            if res.is_err() && !has_column(&conn, table, column)? {
                res?;
            }
        }
    }
    Ok(conn)
}

fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool> {
    Ok(conn
        .query_row_cached(
            "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |_| Ok(true),
        )
        .optional()?
        .unwrap_or(false))
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn from_json<T: serde::de::DeserializeOwned + Default>(s: &str) -> T {
    serde_json::from_str(s).unwrap_or_default()
}

const COLUMNS: &str = "id, name, image, image_id, created, config, host_config, runtime, rootfs, rootfs_managed, path, args, paused, removing";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record {
        id: r.get(0)?,
        name: r.get(1)?,
        image: r.get(2)?,
        image_id: r.get(3)?,
        created: r.get(4)?,
        config: from_json(&r.get::<_, String>(5)?),
        host_config: from_json(&r.get::<_, String>(6)?),
        runtime: r.get(7)?,
        rootfs: PathBuf::from(r.get::<_, String>(8)?),
        rootfs_managed: r.get(9)?,
        path: r.get(10)?,
        args: from_json(&r.get::<_, String>(11)?),
        paused: r.get(12)?,
        removing: r.get::<_, i64>(13)? > 0,
    })
}

/// Inserts the record of a container being created (`creating` set until [`update`]); a
/// taken name is [`Error::NameInUse`].
pub(crate) fn insert(conn: &Connection, rec: &Record) -> Result<()> {
    let res = conn.execute_cached(
        &format!("INSERT INTO containers ({COLUMNS}, creating) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 1)"),
        params![
            rec.id,
            rec.name,
            rec.image,
            rec.image_id,
            rec.created,
            json(&rec.config),
            json(&rec.host_config),
            rec.runtime,
            rec.rootfs.to_string_lossy(),
            rec.rootfs_managed,
            rec.path,
            json(&rec.args),
            rec.paused,
            i64::from(rec.removing),
        ],
    );
    match res {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            let id = by_name(conn, &rec.name)?.map(|r| r.id).unwrap_or_default();
            Err(Error::NameInUse {
                name: rec.name.clone(),
                id,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Completes a record inserted early by `create` (config, rootfs, command): from now on
/// the container is listed.
pub(crate) fn update(conn: &Connection, rec: &Record) -> Result<()> {
    conn.execute_cached(
        "UPDATE containers SET image = ?2, config = ?3, host_config = ?4, rootfs = ?5, path = ?6, args = ?7, created = ?8, creating = 0 WHERE id = ?1",
        params![
            rec.id,
            rec.image,
            json(&rec.config),
            json(&rec.host_config),
            rec.rootfs.to_string_lossy(),
            rec.path,
            json(&rec.args),
            rec.created,
        ],
    )?;
    Ok(())
}

fn creating(conn: &Connection, name: &str) -> bool {
    conn.query_row_cached(
        "SELECT creating FROM containers WHERE name = ?1",
        [name],
        |r| r.get::<_, bool>(0),
    )
    .unwrap_or(false)
}

fn by_name(conn: &Connection, name: &str) -> Result<Option<Record>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM containers WHERE name = ?1"))?
        .query_row([name], row)
        .optional()?)
}

/// Finds a container by full id, name (with or without `/`), or unique id prefix, as
/// Docker does (an exact id wins over a name, a name over a prefix). A container still
/// being created does not exist yet.
pub(crate) fn find(conn: &Connection, what: &str) -> Result<Record> {
    // Cached: a server (and a waiter looking every 5 ms) finds containers all the time;
    // preparing the statement was most of a lookup's cost.
    if let Some(r) = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM containers WHERE id = ?1 AND creating = 0"
        ))?
        .query_row([what], row)
        .optional()?
    {
        return Ok(r);
    }
    let name = what.strip_prefix('/').unwrap_or(what);
    if let Some(r) = by_name(conn, name)?.filter(|_| !creating(conn, name)) {
        return Ok(r);
    }
    if what.is_empty() || !what.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::NoSuchContainer(what.to_string()));
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM containers WHERE substr(id, 1, ?2) = ?1 AND creating = 0 LIMIT 2"
    ))?;
    let mut found: Vec<Record> = stmt
        .query_map(params![what, what.len()], row)?
        .collect::<rusqlite::Result<_>>()?;
    match found.len() {
        0 => Err(Error::NoSuchContainer(what.to_string())),
        1 => Ok(found.remove(0)),
        _ => Err(Error::Ambiguous(what.to_string())),
    }
}

/// Every record, newest first; with `removing`, those whose removal is claimed too.
pub(crate) fn all(conn: &Connection, removing: bool) -> Result<Vec<Record>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM containers WHERE (removing = 0 OR ?1) AND creating = 0 ORDER BY created DESC"
    ))?;
    Ok(stmt
        .query_map([removing], row)?
        .collect::<rusqlite::Result<_>>()?)
}

/// Records claimed by a create or a removal that has not finished (after a crash: when
/// no flight is in progress).
/// With each: whether it is a create (else a removal), and whether its anonymous volumes
/// go too.
pub(crate) fn unfinished(conn: &Connection) -> Result<Vec<(Record, bool, bool)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS}, creating FROM containers WHERE removing > 0 OR creating = 1"
    ))?;
    // `removing` (a column of the record) is 2 when the anonymous volumes go too.
    Ok(stmt
        .query_map([], |r| Ok((row(r)?, r.get(14)?, r.get::<_, i64>(13)? == 2)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Every id, including containers being created or removed.
pub(crate) fn all_ids(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM containers")?;
    Ok(stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn set_paused(conn: &Connection, id: &str, paused: bool) -> Result<()> {
    conn.execute_cached(
        "UPDATE containers SET paused = ?2 WHERE id = ?1",
        params![id, paused],
    )?;
    Ok(())
}

pub(crate) fn rename(conn: &Connection, id: &str, name: &str) -> Result<()> {
    match conn.execute_cached(
        "UPDATE containers SET name = ?2 WHERE id = ?1",
        params![id, name],
    ) {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            let other = by_name(conn, name)?.map(|r| r.id).unwrap_or_default();
            Err(Error::NameInUse {
                name: name.to_string(),
                id: other,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Claims the right to remove `id` (`removing` = 1, or 2 with its anonymous volumes, so
/// that the recovery finishes it as asked); false if another process already did.
pub(crate) fn claim_removal(conn: &Connection, id: &str, with_volumes: bool) -> Result<bool> {
    Ok(conn.execute_cached(
        "UPDATE containers SET removing = ?2 WHERE id = ?1 AND removing = 0",
        params![id, if with_volumes { 2 } else { 1 }],
    )? == 1)
}

pub(crate) fn unclaim_removal(conn: &Connection, id: &str) -> Result<()> {
    conn.execute_cached("UPDATE containers SET removing = 0 WHERE id = ?1", [id])?;
    Ok(())
}

pub(crate) fn delete(conn: &Connection, id: &str) -> Result<()> {
    conn.execute_cached(
        "DELETE FROM container_volumes WHERE container_id = ?1",
        [id],
    )?;
    conn.execute_cached("DELETE FROM containers WHERE id = ?1", [id])?;
    Ok(())
}
