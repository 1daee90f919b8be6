//! `hako system check` for the image store: blob digests, layer directories, reference
//! counts, dangling references, and garbage.
//!
//! ```text
//! blobs        every file's sha256 is its name; every blob an image needs is there
//! layers       every row has its directory, its parent row, the reference count the
//!              images and containers above it give (recomputed with a recursive query)
//! images       top layer, config and manifest exist; tags and digests point at images
//! containers   every container layer row has its directory and its image
//! garbage      directories and blobs nothing references, temporaries, stale pins and
//!              flight markers: what the next collection removes
//! ```
//!
//! Repair (under the exclusive lock, so no flight is in progress) fixes reference counts,
//! deletes dangling tags, marks images whose content is damaged (`damaged_images`: `run`
//! refuses them with the reason; `rmi` and a new pull or load are the cure) and collects
//! the garbage.

use rusqlite::{Connection, params};
use std::collections::{HashMap, HashSet};

use crate::digest::{Digest, Hashing};
use crate::error::Result;
use crate::flight::{Exclusive, KIND_IMAGE};
use crate::store::{ImageStore, column};

/// One thing `check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What it is about (`blob sha256:...`, `layer <cache id>`, `image sha256:...`).
    pub object: String,
    /// What is wrong.
    pub problem: String,
    /// Whether it is garbage that a prune or the next open after a crash removes anyway
    /// (not damage).
    pub garbage: bool,
    /// Whether `--repair` fixed it.
    pub repaired: bool,
}

impl Finding {
    fn damage(object: impl Into<String>, problem: impl Into<String>) -> Finding {
        Finding {
            object: object.into(),
            problem: problem.into(),
            garbage: false,
            repaired: false,
        }
    }

    fn garbage(object: impl Into<String>, problem: impl Into<String>) -> Finding {
        Finding {
            garbage: true,
            ..Finding::damage(object, problem)
        }
    }
}

/// What the image store holds, counted while checking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckCounts {
    /// Images.
    pub images: usize,
    /// Image layers.
    pub layers: usize,
    /// Container layers.
    pub containers: usize,
    /// Blob files.
    pub blobs: usize,
}

impl ImageStore {
    /// Checks the store; with `repair` (the exclusive lock) also fixes what it can.
    pub fn check(&self, repair: Option<&Exclusive>) -> Result<(Vec<Finding>, CheckCounts)> {
        let mut out = Vec::new();
        let mut counts = CheckCounts::default();
        let mut damaged: HashMap<String, String> = HashMap::new();

        // Blobs: contents against names.
        let mut bad_blobs = HashSet::new();
        let blobs = self.blobs.list()?;
        counts.blobs = blobs.len();
        for (d, _) in &blobs {
            let ok = self
                .blobs
                .open_blob(d)
                .and_then(|f| {
                    let mut h = Hashing::new(std::io::sink());
                    let mut r = std::io::BufReader::with_capacity(256 * 1024, f);
                    std::io::copy(&mut r, &mut h)
                        .map_err(|e| crate::Error::io(format!("read blob {d}"), e))?;
                    Ok(h.digest() == *d)
                })
                .unwrap_or(false);
            if !ok {
                bad_blobs.insert(d.to_string());
                let mut f =
                    Finding::damage(format!("blob {d}"), "content does not match its digest");
                if repair.is_some() {
                    self.blobs.remove(d)?;
                    f.repaired = true;
                }
                out.push(f);
            }
        }
        let present: HashSet<String> = blobs
            .iter()
            .map(|(d, _)| d.to_string())
            .filter(|d| !bad_blobs.contains(d))
            .collect();

        let conn = self.conn();
        let images = rows3(&conn, "SELECT id, top_layer, manifest_digest FROM images")?;
        counts.images = images.len();
        let layers: Vec<LayerRow> = {
            let mut stmt = conn
                // The blob a layer needs: its tar-split record, or else the tar it came as.
                .prepare(
                    "SELECT chain_id, parent, cache_id, COALESCE(tar_split, blob_digest), refcount
                     FROM layers",
                )?;
            stmt.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?
        };
        counts.layers = layers.len();
        let layer_ids: HashSet<&str> = layers.iter().map(|l| l.0.as_str()).collect();
        let containers: Vec<(String, String, Option<String>)> = rows3(
            &conn,
            "SELECT container_id, image_id, top_layer FROM container_layers",
        )?
        .into_iter()
        .map(|(c, i, t)| (c, i.unwrap_or_default(), t))
        .collect();
        counts.containers = containers.len();

        // Layers: directory, parent, blob.
        let mut bad_layers: HashMap<String, String> = HashMap::new();
        for (chain, parent, cache, blob, _) in &layers {
            let name = short(chain);
            if !self.driver.exists(cache) {
                bad_layers.insert(chain.clone(), format!("layer {name} has no directory"));
                out.push(Finding::damage(
                    format!("layer {name}"),
                    format!("directory {cache} is missing"),
                ));
            }
            if let Some(p) = parent
                && !layer_ids.contains(p.as_str())
            {
                bad_layers.insert(chain.clone(), format!("layer {name} has no parent"));
                out.push(Finding::damage(
                    format!("layer {name}"),
                    format!("parent layer {} is missing", short(p)),
                ));
            }
            if let Some(b) = blob
                && !present.contains(b)
            {
                bad_layers.insert(chain.clone(), format!("blob of layer {name} is damaged"));
                out.push(Finding::damage(
                    format!("layer {name}"),
                    format!(
                        "its blob {b} (its tar or tar-split record) is missing or damaged (save and push need it)"
                    ),
                ));
            }
        }

        // Reference counts, recomputed.
        let want = expected_refcounts(&conn)?;
        let mut fix_refs = Vec::new();
        for (chain, _, _, _, have) in &layers {
            let w = want.get(chain).copied().unwrap_or(0);
            if w != *have {
                fix_refs.push((chain.clone(), w));
                out.push(Finding {
                    repaired: repair.is_some(),
                    ..Finding::damage(
                        format!("layer {}", short(chain)),
                        format!("reference count is {have}, images and containers make it {w}"),
                    )
                });
            }
        }

        // Images: their chain, config, manifest.
        let parents: HashMap<&str, Option<&str>> = layers
            .iter()
            .map(|l| (l.0.as_str(), l.1.as_deref()))
            .collect();
        let chain_problem = |top: Option<&str>| -> Option<String> {
            let mut cur = top;
            while let Some(c) = cur {
                if let Some(why) = bad_layers.get(c) {
                    return Some(why.clone());
                }
                match parents.get(c) {
                    Some(p) => cur = *p,
                    None => return Some(format!("layer {} is missing", short(c))),
                }
            }
            None
        };
        for (id, top, manifest) in &images {
            let why = chain_problem(top.as_deref())
                .or_else(|| {
                    (!present.contains(id)).then(|| "its config blob is missing or damaged".into())
                })
                .or_else(|| {
                    manifest
                        .as_ref()
                        .filter(|m| !present.contains(m.as_str()))
                        .map(|m| format!("its manifest blob {m} is missing or damaged"))
                });
            if let Some(why) = why {
                damaged.insert(id.clone(), why);
            }
        }
        let marked: HashSet<String> = column(&conn, "SELECT image_id FROM damaged_images")?;
        // Damaged images stay damage after a repair too: only the user can replace them.
        for (id, why) in &damaged {
            let how = if repair.is_some() || marked.contains(id) {
                "marked damaged, `run` refuses it"
            } else {
                "`--repair` marks it damaged"
            };
            out.push(Finding::damage(
                format!("image {}", short(id)),
                format!("{why}; {how}: remove it (hako rmi) and pull or load it again"),
            ));
        }
        let image_ids: HashSet<&str> = images.iter().map(|i| i.0.as_str()).collect();
        let mut dangling_names = Vec::new();
        for table in ["tags", "repo_digests"] {
            let mut stmt = conn.prepare(&format!("SELECT name, image_id FROM {table}"))?;
            let rows: Vec<(String, String)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (name, image) in rows {
                if !image_ids.contains(image.as_str()) {
                    out.push(Finding {
                        repaired: repair.is_some(),
                        ..Finding::damage(
                            format!("{} {name}", &table[..table.len() - 1]),
                            format!("points at image {} that does not exist", short(&image)),
                        )
                    });
                    dangling_names.push((table, name));
                }
            }
        }

        // Container layers.
        for (cid, image, top) in &containers {
            if !self.driver.exists(cid) {
                out.push(Finding::damage(
                    format!("container {}", short(cid)),
                    "its root filesystem directory is missing",
                ));
            }
            if !image_ids.contains(image.as_str()) {
                out.push(Finding::damage(
                    format!("container {}", short(cid)),
                    format!("its image {} does not exist", short(image)),
                ));
            } else if let Some(why) = chain_problem(top.as_deref()) {
                out.push(Finding::damage(format!("container {}", short(cid)), why));
            }
        }

        // Garbage.
        let live_dirs: HashSet<String> = layers
            .iter()
            .map(|l| l.2.clone())
            .chain(containers.iter().map(|c| c.0.clone()))
            .collect();
        let live_blobs: HashSet<String> = images
            .iter()
            .flat_map(|(id, _, m)| std::iter::once(id.clone()).chain(m.clone()))
            .chain(layers.iter().filter_map(|l| l.3.clone()))
            .collect();
        let pins: usize = conn.query_row("SELECT COUNT(*) FROM layer_pins", [], |r| r.get(0))?;
        drop(conn);
        for id in self.driver.list()? {
            if !live_dirs.contains(&id) {
                out.push(Finding::garbage(
                    format!("layer directory {id}"),
                    "no layer or container references it",
                ));
            }
        }
        for (d, _) in &blobs {
            if !live_blobs.contains(d.as_str()) && !bad_blobs.contains(d.as_str()) {
                out.push(Finding::garbage(
                    format!("blob {d}"),
                    "no image references it",
                ));
            }
        }
        let home = self.root.join(self.driver.name());
        for (dir, what) in [
            (self.root.join("blobs").join("tmp"), "half-written blob"),
            (home, "temporary layer directory"),
        ] {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if what.starts_with("half") || name.starts_with("tmp-") {
                    out.push(Finding::garbage(e.path().display().to_string(), what));
                }
            }
        }
        if repair.is_some() && pins > 0 {
            out.push(Finding::garbage(
                format!("{pins} layer pins"),
                "left by operations that ended without releasing them",
            ));
        }
        if self.crashed_flights(&[KIND_IMAGE])? {
            out.push(Finding::garbage(
                "flight markers",
                "an image operation was interrupted or failed; its leftovers are collected next",
            ));
        }

        if let Some(lock) = repair {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for (chain, n) in &fix_refs {
                tx.execute(
                    "UPDATE layers SET refcount = ?2 WHERE chain_id = ?1",
                    params![chain, n],
                )?;
            }
            for (table, name) in &dangling_names {
                tx.execute(&format!("DELETE FROM {table} WHERE name = ?1"), [name])?;
            }
            for (id, why) in &damaged {
                tx.execute(
                    "INSERT OR REPLACE INTO damaged_images (image_id, reason) VALUES (?1, ?2)",
                    params![id, why],
                )?;
            }
            tx.commit()?;
            drop(conn);
            self.collect_garbage(lock)?;
            self.clear_crashed_flights(lock, &[KIND_IMAGE])?;
            for f in out.iter_mut().filter(|f| f.garbage) {
                f.repaired = true;
            }
        }
        Ok((out, counts))
    }

    /// Why image `id` is marked damaged, if it is.
    pub fn damage(&self, id: &Digest) -> Result<Option<String>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn()
            .query_row(
                "SELECT reason FROM damaged_images WHERE image_id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }
}

/// For every layer, the number of images, containers and build cache entries whose chain
/// contains it.
fn expected_refcounts(conn: &Connection) -> Result<HashMap<String, i64>> {
    let mut stmt = conn.prepare(
        "WITH RECURSIVE
           tops(top) AS (SELECT top_layer FROM images WHERE top_layer IS NOT NULL
                         UNION ALL
                         SELECT top_layer FROM container_layers WHERE top_layer IS NOT NULL
                         UNION ALL
                         SELECT top_layer FROM build_cache WHERE top_layer IS NOT NULL),
           chain(id) AS (SELECT top FROM tops
                         UNION ALL
                         SELECT l.parent FROM layers l JOIN chain c ON l.chain_id = c.id
                         WHERE l.parent IS NOT NULL)
         SELECT id, COUNT(*) FROM chain GROUP BY id",
    )?;
    let v = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

type Row3 = (String, Option<String>, Option<String>);

/// chain id, parent, cache id, blob digest, reference count.
type LayerRow = (String, Option<String>, String, Option<String>, i64);

fn rows3(conn: &Connection, sql: &str) -> Result<Vec<Row3>> {
    let mut stmt = conn.prepare(sql)?;
    let v = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}
