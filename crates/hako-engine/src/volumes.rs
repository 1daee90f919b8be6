//! Local volumes: `<root>/volumes/<name>/_data`, Docker's layout, recorded in SQLite.
//!
//! Several processes create, use and remove volumes at once, so each step is a claim in
//! one transaction: a container's create records the volume *and* its use together (a
//! concurrent `volume rm` either came first, or sees the user and refuses); a removal marks
//! the row `removing` before it deletes the directory and the row last (a create meanwhile
//! waits for it to finish; a crash in between is finished by the recovery).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard_stubs::models::{Volume, VolumeScopeEnum};
use hako_sys::sqlite::Cached;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, IoContext, Result};
use crate::mounts::check_volume_name;

/// Where volume `name` keeps its files.
pub(crate) fn data_dir(root: &Path, name: &str) -> PathBuf {
    root.join("volumes").join(name).join("_data")
}

fn to_volume(root: &Path, name: String, created: String, labels: &str) -> Volume {
    Volume {
        mountpoint: data_dir(root, &name).display().to_string(),
        name,
        driver: "local".into(),
        created_at: Some(created),
        labels: serde_json::from_str(labels).unwrap_or_default(),
        scope: Some(VolumeScopeEnum::LOCAL),
        options: HashMap::new(),
        ..Default::default()
    }
}

/// Creates volume `name` (a random one when `None`); an existing name is returned as is
/// (Docker's `volume create` is idempotent). With `container`, records in the same
/// transaction that the container uses it. Returns the volume and whether it is new.
pub(crate) fn create(
    conn: &Connection,
    root: &Path,
    name: Option<&str>,
    labels: &HashMap<String, String>,
    container: Option<&str>,
) -> Result<(Volume, bool)> {
    let (name, anonymous) = match name {
        Some(n) => {
            check_volume_name(n)?;
            (n.to_string(), false)
        }
        None => (hako_image_random_hex(), true),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (volume, new) = loop {
        match claim(conn, root, &name, labels, anonymous, container)? {
            Some(v) => break v,
            // Being removed by another process: wait for it to finish, then make it anew.
            None if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            None => {
                return Err(Error::InvalidArgument(format!(
                    "volume {name} is being removed; try again"
                )));
            }
        }
    };
    // Every user makes sure the directory is there: the one who inserted the row may not
    // have made it yet.
    let dir = data_dir(root, &name);
    std::fs::create_dir_all(&dir).ctx(|| format!("create volume directory {}", dir.display()))?;
    Ok((volume, new))
}

/// The row of volume `name` (inserted if missing) and the container's use of it, in one
/// transaction; `None` while the volume is being removed.
fn claim(
    conn: &Connection,
    root: &Path,
    name: &str,
    labels: &HashMap<String, String>,
    anonymous: bool,
    container: Option<&str>,
) -> Result<Option<(Volume, bool)>> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let row: Option<(String, String, bool)> = tx
        .query_row_cached(
            "SELECT created, labels, removing FROM volumes WHERE name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let (created, labels_json, new) = match row {
        Some((_, _, true)) => return Ok(None),
        Some((created, labels_json, false)) => (created, labels_json, false),
        None => {
            let created = crate::now_rfc3339();
            let labels_json = serde_json::to_string(labels).unwrap_or_else(|_| "{}".into());
            tx.execute_cached(
                "INSERT INTO volumes (name, driver, created, labels, anonymous, creator) VALUES (?1, 'local', ?2, ?3, ?4, ?5)",
                params![name, created, labels_json, anonymous, container],
            )?;
            (created, labels_json, true)
        }
    };
    if let Some(c) = container {
        tx.execute_cached(
            "INSERT OR IGNORE INTO container_volumes (container_id, volume) VALUES (?1, ?2)",
            params![c, name],
        )?;
    }
    tx.commit()?;
    Ok(Some((
        to_volume(root, name.to_string(), created, &labels_json),
        new,
    )))
}

fn hako_image_random_hex() -> String {
    crate::random_id()
}

/// One volume.
pub(crate) fn get(conn: &Connection, root: &Path, name: &str) -> Result<Option<Volume>> {
    Ok(conn
        .query_row_cached(
            "SELECT name, created, labels FROM volumes WHERE name = ?1 AND removing = 0",
            [name],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )
        .optional()?
        .map(|(n, c, l)| to_volume(root, n, c, &l)))
}

/// All volumes, by name.
pub(crate) fn list(conn: &Connection, root: &Path) -> Result<Vec<(Volume, bool)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, created, labels, anonymous FROM volumes WHERE removing = 0 ORDER BY name",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, bool>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .map(|(n, c, l, a)| (to_volume(root, n, c, &l), a))
        .collect())
}

/// Containers that use volume `name`.
pub(crate) fn users(conn: &Connection, name: &str) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT container_id FROM container_volumes WHERE volume = ?1")?;
    Ok(stmt
        .query_map([name], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Removes volume `name` and its files; refuses while a container uses it.
pub(crate) fn remove(conn: &Connection, root: &Path, name: &str) -> Result<()> {
    {
        let tx =
            rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
        if get(&tx, root, name)?.is_none() {
            return Err(Error::NoSuchVolume(name.to_string()));
        }
        let users = users(&tx, name)?;
        if !users.is_empty() {
            return Err(Error::VolumeInUse {
                name: name.to_string(),
                containers: users.join(", "),
            });
        }
        tx.execute_cached("UPDATE volumes SET removing = 1 WHERE name = ?1", [name])?;
        tx.commit()?;
    }
    hako_sys::crash::point("volume.claimed");
    finish_removal(conn, root, name)
}

/// Volumes that container `id`'s create made (removed with it when the create did not
/// finish: half copied up, they are nothing the user asked for).
pub(crate) fn made_by(conn: &Connection, id: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT name FROM volumes WHERE creator = ?1")?;
    Ok(stmt
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Volumes whose removal a killed process left unfinished (when no flight is in progress).
pub(crate) fn unfinished(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT name FROM volumes WHERE removing = 1")?;
    Ok(stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Every volume name, including those being removed.
pub(crate) fn all_names(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT name FROM volumes")?;
    Ok(stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// The directory, then the row of a volume marked `removing`.
pub(crate) fn finish_removal(conn: &Connection, root: &Path, name: &str) -> Result<()> {
    let dir = root.join("volumes").join(name);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::Io {
                context: format!("remove {}", dir.display()),
                source: e,
            });
        }
    }
    hako_sys::crash::point("volume.dir-removed");
    conn.execute_cached(
        "DELETE FROM volumes WHERE name = ?1 AND removing = 1",
        [name],
    )?;
    Ok(())
}

/// Claims the anonymous volumes of `container` that no other container uses for removal
/// (`rm -v`, `--rm`), in one transaction: its uses go, the volumes are marked `removing`.
/// The caller removes them with [`finish_removal`].
pub(crate) fn claim_anonymous(conn: &Connection, container: &str) -> Result<Vec<String>> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let mut claimed = Vec::new();
    for v in anonymous_of(&tx, container)? {
        let others = users(&tx, &v)?.into_iter().any(|c| c != container);
        if others {
            continue;
        }
        tx.execute_cached(
            "DELETE FROM container_volumes WHERE container_id = ?1 AND volume = ?2",
            params![container, v],
        )?;
        tx.execute_cached("UPDATE volumes SET removing = 1 WHERE name = ?1", [&v])?;
        claimed.push(v);
    }
    tx.commit()?;
    Ok(claimed)
}

/// Anonymous volumes of a container (removed by `rm -v` and `--rm`).
pub(crate) fn anonymous_of(conn: &Connection, container: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT v.name FROM volumes v JOIN container_volumes cv ON cv.volume = v.name WHERE cv.container_id = ?1 AND v.anonymous = 1",
    )?;
    Ok(stmt
        .query_map([container], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Copies what the image has at a volume's mount point into the new, empty volume (Docker
/// does this so that `-v data:/var/lib/x` starts with the image's files).
pub(crate) fn copy_up(src: &Path, dst: &Path) -> Result<()> {
    if !src.is_dir() {
        return Ok(());
    }
    let mut cp = std::process::Command::new("cp");
    cp.arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dst)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // Killed with us: the recovery of a crashed create removes the half-made volume, and
    // a cp still writing into it would race that.
    hako_sys::process::die_with_parent(&mut cp);
    let child = cp.spawn().ctx(|| "run cp -a".to_string())?;
    hako_sys::crash::point("volume.copying");
    let out = child.wait_with_output().ctx(|| "run cp -a".to_string())?;
    if out.status.success() {
        return Ok(());
    }
    // cp's own words (its last line), e.g. "error writing '...': No space left on device".
    let err = String::from_utf8_lossy(&out.stderr);
    let why = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches("cp: ").to_string())
        .unwrap_or_else(|| out.status.to_string());
    Err(Error::InvalidArgument(format!(
        "copying image files from {} into the volume {}: {why}",
        src.display(),
        dst.display()
    )))
}
