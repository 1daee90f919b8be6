//! Local volumes: `<root>/volumes/<name>/_data`, Docker's layout, recorded in SQLite.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard_stubs::models::{Volume, VolumeScopeEnum};
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
/// (Docker's `volume create` is idempotent). Returns the volume and whether it is new.
pub(crate) fn create(
    conn: &Connection,
    root: &Path,
    name: Option<&str>,
    labels: &HashMap<String, String>,
) -> Result<(Volume, bool)> {
    let (name, anonymous) = match name {
        Some(n) => {
            check_volume_name(n)?;
            (n.to_string(), false)
        }
        None => (hako_image_random_hex(), true),
    };
    if let Some(v) = get(conn, root, &name)? {
        return Ok((v, false));
    }
    let dir = data_dir(root, &name);
    std::fs::create_dir_all(&dir).ctx(|| format!("create volume directory {}", dir.display()))?;
    let created = crate::now_rfc3339();
    let labels_json = serde_json::to_string(labels).unwrap_or_else(|_| "{}".into());
    conn.execute(
        "INSERT OR IGNORE INTO volumes (name, driver, created, labels, anonymous) VALUES (?1, 'local', ?2, ?3, ?4)",
        params![name, created, labels_json, anonymous],
    )?;
    Ok((to_volume(root, name, created, &labels_json), true))
}

fn hako_image_random_hex() -> String {
    crate::random_id()
}

/// One volume.
pub(crate) fn get(conn: &Connection, root: &Path, name: &str) -> Result<Option<Volume>> {
    Ok(conn
        .query_row(
            "SELECT name, created, labels FROM volumes WHERE name = ?1",
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
    let mut stmt =
        conn.prepare("SELECT name, created, labels, anonymous FROM volumes ORDER BY name")?;
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
    let mut stmt = conn.prepare("SELECT container_id FROM container_volumes WHERE volume = ?1")?;
    Ok(stmt
        .query_map([name], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Removes volume `name` and its files; refuses while a container uses it.
pub(crate) fn remove(conn: &Connection, root: &Path, name: &str) -> Result<()> {
    if get(conn, root, name)?.is_none() {
        return Err(Error::NoSuchVolume(name.to_string()));
    }
    let users = users(conn, name)?;
    if !users.is_empty() {
        return Err(Error::VolumeInUse {
            name: name.to_string(),
            containers: users.join(", "),
        });
    }
    conn.execute("DELETE FROM volumes WHERE name = ?1", [name])?;
    let dir = root.join("volumes").join(name);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io {
            context: format!("remove {}", dir.display()),
            source: e,
        }),
    }
}

/// Records that `container` uses `volume`.
pub(crate) fn attach(conn: &Connection, container: &str, volume: &str) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO container_volumes (container_id, volume) VALUES (?1, ?2)",
        params![container, volume],
    )?;
    Ok(())
}

/// Anonymous volumes of a container (removed by `rm -v` and `--rm`).
pub(crate) fn anonymous_of(conn: &Connection, container: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
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
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dst)
        .status()
        .ctx(|| "run cp -a".to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "copying image files from {} into the volume failed ({status})",
            src.display()
        )))
    }
}
