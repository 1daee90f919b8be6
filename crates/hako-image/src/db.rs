//! The metadata database (`<root>/hako-image.db`, SQLite in WAL mode).
//!
//! ```text
//! layers           chain_id PK, diff_id, parent -> layers, cache_id (driver dir), size,
//!                  diff_size, blob_digest, blob_media_type, refcount, created,
//!                  tar_split (blob: the layer's tar-split record; NULL: blob_digest is
//!                  kept in the blob store instead, see store.rs)
//! blob_sources     diff_id, digest, media_type, size, repository: where a layer's tar is
//!                  known as a (compressed) blob, Docker's v2metadata (registry/push.rs)
//! images           id PK (config digest), top_layer -> layers, manifest_digest, created, size, added
//! tags             name PK ("docker.io/library/busybox:latest") -> images
//! repo_digests     name PK ("docker.io/library/busybox@sha256:..") -> images
//! container_layers container_id PK, image_id, top_layer, rw_cache_id, created
//! layer_pins       chain_id, owner (a flight's token; see flight.rs)
//! build_cache      key PK, top_layer -> layers, created, empty, size, last_used (build_cache.rs)
//! build_memo       key PK, value: facts about immutable states a build derived (build_cache.rs)
//! damaged_images   image_id PK, reason (marked by `system check --repair`; see check.rs)
//! meta             key PK, value   (schema version, storage driver)
//! ```
//!
//! `layers.refcount` counts the images, containers and build cache entries whose chain
//! contains the layer; a
//! layer at zero is deleted with its directory. Writers use `BEGIN IMMEDIATE` so that
//! several hako processes serialize on the write lock instead of failing on upgrade; the
//! busy timeout covers the wait.

use std::path::Path;

use hako_sys::sqlite::Cached;
use rusqlite::{Connection, OptionalExtension};

use crate::error::Result;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS layers (
  chain_id TEXT PRIMARY KEY,
  diff_id TEXT NOT NULL,
  parent TEXT REFERENCES layers(chain_id),
  cache_id TEXT NOT NULL UNIQUE,
  size INTEGER NOT NULL,
  diff_size INTEGER NOT NULL,
  blob_digest TEXT,
  blob_media_type TEXT,
  refcount INTEGER NOT NULL DEFAULT 0,
  created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
  id TEXT PRIMARY KEY,
  top_layer TEXT REFERENCES layers(chain_id),
  manifest_digest TEXT,
  created TEXT,
  size INTEGER NOT NULL,
  added INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
  name TEXT PRIMARY KEY,
  image_id TEXT NOT NULL REFERENCES images(id),
  tagged INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS repo_digests (
  name TEXT PRIMARY KEY,
  image_id TEXT NOT NULL REFERENCES images(id)
);
CREATE TABLE IF NOT EXISTS container_layers (
  container_id TEXT PRIMARY KEY,
  image_id TEXT NOT NULL,
  top_layer TEXT REFERENCES layers(chain_id),
  rw_cache_id TEXT NOT NULL,
  created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS container_layers_by_image ON container_layers(image_id);
CREATE INDEX IF NOT EXISTS tags_by_image ON tags(image_id);
CREATE TABLE IF NOT EXISTS layer_pins (
  chain_id TEXT NOT NULL,
  owner TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS layer_pins_by_chain ON layer_pins(chain_id);
CREATE INDEX IF NOT EXISTS layer_pins_by_owner ON layer_pins(owner);
CREATE TABLE IF NOT EXISTS blob_sources (
  diff_id TEXT NOT NULL,
  digest TEXT NOT NULL,
  media_type TEXT NOT NULL,
  size INTEGER NOT NULL,
  repository TEXT NOT NULL,
  PRIMARY KEY (diff_id, digest, repository)
);
CREATE TABLE IF NOT EXISTS build_cache (
  key TEXT PRIMARY KEY,
  top_layer TEXT REFERENCES layers(chain_id),
  created TEXT NOT NULL,
  empty INTEGER NOT NULL,
  size INTEGER NOT NULL,
  last_used INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS build_memo (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS damaged_images (
  image_id TEXT PRIMARY KEY,
  reason TEXT NOT NULL
);
";

/// The schema `open` brings a store to.
const SCHEMA_VERSION: &str = "5";

/// Opens the database, creating the schema.
pub(crate) fn open(path: &Path) -> Result<Connection> {
    private(path)?;
    let conn = hako_sys::sqlite::open_shared(path)?;
    // A store already at this schema needs no write (a write transaction at every open
    // would wait for every other process's writes, and write the WAL for nothing).
    let current: Option<String> = conn
        .query_row_cached("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
            r.get(0)
        })
        .optional()
        .unwrap_or(None);
    if current.as_deref() == Some(SCHEMA_VERSION) {
        return Ok(conn);
    }
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;{SCHEMA}INSERT OR IGNORE INTO meta VALUES ('schema', '1');"
    ))?;
    // Schema 2: layers.tar_split. Stores made before keep their layer blobs (NULL).
    let has_split: bool = conn.query_row_cached(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('layers') WHERE name = 'tar_split'",
        [],
        |r| r.get(0),
    )?;
    if !has_split {
        conn.execute_batch("ALTER TABLE layers ADD COLUMN tar_split TEXT;")?;
    }
    // Schema 3: build_cache.uses (`system df -v`'s USAGE). Older entries count from 0.
    let has_uses: bool = conn.query_row_cached(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('build_cache') WHERE name = 'uses'",
        [],
        |r| r.get(0),
    )?;
    if !has_uses {
        conn.execute_batch("ALTER TABLE build_cache ADD COLUMN uses INTEGER NOT NULL DEFAULT 0;")?;
    }
    // Schema 4: build_memo; 5: container_layers_by_image (`images` counts each image's
    // containers: without it a scan of every container per image). Both made by SCHEMA above.
    conn.execute_batch(&format!(
        "UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema'; COMMIT;"
    ))?;
    Ok(conn)
}

/// The database holds containers' Env: 0600, set before SQLite opens it (its `-wal` and
/// `-shm` files take the database's mode; ones an older hako left are fixed too).
fn private(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |source| crate::Error::Io {
        context: format!("open {}", path.display()),
        source,
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
    }
    Ok(())
}

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A database error as the user should read it: a full disk says so (SQLite's own words
/// for it are "database or disk is full" and, growing its shared-memory file, "disk I/O
/// error ... xShmMap"), everything else as SQLite says it.
pub fn describe(e: &rusqlite::Error) -> String {
    if let rusqlite::Error::SqliteFailure(f, _) = e
        && (f.code == rusqlite::ErrorCode::DiskFull
            || f.extended_code == rusqlite::ffi::SQLITE_IOERR_SHMSIZE)
    {
        return format!("no space left on device ({e})");
    }
    e.to_string()
}

#[cfg(test)]
mod tests {
    /// The plan SQLite picks for `sql` on a freshly opened store, one step a line.
    fn plan(sql: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::open(&dir.path().join("hako-image.db")).unwrap();
        let mut stmt = conn
            .prepare_cached(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        stmt.query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
            .join("\n")
    }

    #[test]
    fn counting_an_images_containers_is_a_lookup_not_a_scan() {
        // `images` on 1,000 images and 1,000 containers took 1.5 s when each image's
        // count scanned every container_layers row.
        let p = plan(crate::store::LIST_IMAGES);
        assert!(
            p.contains("container_layers_by_image"),
            "the count uses the index:\n{p}"
        );
        assert!(
            !p.lines().any(|l| l.starts_with("SCAN c")),
            "no scan of container_layers:\n{p}"
        );
        // rmi's in-use check too.
        let p = plan("SELECT container_id FROM container_layers WHERE image_id = 'x' LIMIT 1");
        assert!(p.contains("container_layers_by_image"), "{p}");
    }
}
