//! When and how often each build cache entry was used, kept without a database write per
//! cached build: a fully cached rebuild then writes nothing to the database, and its
//! connections close without a WAL checkpoint (two fsyncs).
//!
//! ```text
//! <root>/build-uses           one line per cache hit, "<unix seconds> <key>\n", appended by
//!                             builds in flight (O_APPEND, one write per build, no fsync:
//!                             a power cut may lose a few counts, never an entry)
//! <root>/build-uses.<token>   a journal being folded (renamed away first)
//! meta 'build_uses_folded'    the token of the last journal folded into build_cache, set in
//!                             the fold's own transaction (a fold that died after its commit
//!                             is not counted twice)
//! ```
//!
//! Folding needs the exclusive GC lock: builds append only while in flight, so under it no
//! one appends. `builder prune` folds before it reads `last_used`; a build that finds the
//! journal large folds it when its flight has ended, if no other flight is in progress;
//! `system df -v` adds what is not folded yet to what the table says.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use rusqlite::{OptionalExtension, params};

use crate::error::{IoContext, Result};
use crate::flight::Exclusive;
use crate::store::ImageStore;

const JOURNAL: &str = "build-uses";
/// A build that finds the journal at least this large folds it.
const FOLD_AT: u64 = 64 << 10;

/// Hits per key: how many, and the newest time.
pub(crate) type Uses = HashMap<String, (u64, i64)>;

impl ImageStore {
    fn uses_journal(&self) -> PathBuf {
        self.root.join(JOURNAL)
    }

    /// Notes that a build used the cache entries `keys` now (see the module docs). Best
    /// effort: a count that cannot be written is not worth failing a build for.
    pub fn build_cache_note_uses(&self, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        let now = crate::db::now();
        let mut lines = String::new();
        for k in keys {
            lines.push_str(&format!("{now} {k}\n"));
        }
        let path = self.uses_journal();
        let r = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .and_then(|mut f| f.write_all(lines.as_bytes()));
        if let Err(e) = r {
            tracing::warn!(path = %path.display(), error = %e, "cannot note build cache uses");
        }
    }

    /// Folds the journal into `build_cache` when it has grown large and no flight is in
    /// progress (called by a build once its own flight has ended).
    pub fn build_cache_fold_uses_if_large(&self) {
        let large = std::fs::metadata(self.uses_journal()).is_ok_and(|m| m.len() >= FOLD_AT);
        if !large {
            return;
        }
        match self.try_exclusive() {
            Ok(Some(x)) => {
                if let Err(e) = self.fold_build_uses(&x) {
                    tracing::warn!(error = %e, "fold the build cache uses");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "fold the build cache uses"),
        }
    }

    /// Moves every journal into `build_cache` (`uses`, `last_used`), each exactly once.
    pub(crate) fn fold_build_uses(&self, _x: &Exclusive) -> Result<()> {
        let live = self.uses_journal();
        if live.exists() {
            let moved = self
                .root
                .join(format!("{JOURNAL}.{}", crate::random_hex(8)));
            std::fs::rename(&live, &moved).ctx(|| format!("rename {}", live.display()))?;
        }
        // Only the journal folded last can have outlived its commit (each is removed before
        // the next is folded): that one goes first, uncounted.
        let done = self.folded_token()?;
        let mut todo = Vec::new();
        for (token, path) in self.folding_journals()? {
            if done.as_deref() == Some(token.as_str()) {
                std::fs::remove_file(&path).ctx(|| format!("remove {}", path.display()))?;
            } else {
                todo.push((token, path));
            }
        }
        for (token, path) in todo {
            let uses = read_journal(&path)?;
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for (key, (n, last)) in &uses {
                tx.execute(
                    "UPDATE build_cache SET uses = uses + ?2, last_used = MAX(last_used, ?3) WHERE key = ?1",
                    params![key, i64::try_from(*n).unwrap_or(i64::MAX), last],
                )?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('build_uses_folded', ?1)",
                [&token],
            )?;
            tx.commit()?;
            drop(conn);
            std::fs::remove_file(&path).ctx(|| format!("remove {}", path.display()))?;
        }
        Ok(())
    }

    /// The token of the journal folded last.
    fn folded_token(&self) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT value FROM meta WHERE key = 'build_uses_folded'",
                [],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// What the journals hold that `build_cache` does not have yet.
    pub(crate) fn unfolded_build_uses(&self) -> Result<Uses> {
        let done = self.folded_token()?;
        let mut all = read_journal(&self.uses_journal())?;
        for (token, path) in self.folding_journals()? {
            if done.as_deref() == Some(token.as_str()) {
                continue;
            }
            for (k, (n, last)) in read_journal(&path)? {
                let e = all.entry(k).or_insert((0, 0));
                e.0 += n;
                e.1 = e.1.max(last);
            }
        }
        Ok(all)
    }

    /// Journals renamed away for a fold (by this fold, or one that died): token and path.
    fn folding_journals(&self) -> Result<Vec<(String, PathBuf)>> {
        let prefix = format!("{JOURNAL}.");
        let mut out = Vec::new();
        let rd = std::fs::read_dir(&self.root).ctx(|| format!("list {}", self.root.display()))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(token) = name.strip_prefix(&prefix) {
                out.push((token.to_string(), e.path()));
            }
        }
        Ok(out)
    }
}

/// Hits per key in one journal (missing: none). A torn last line is skipped.
fn read_journal(path: &std::path::Path) -> Result<Uses> {
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Uses::new()),
        Err(e) => return Err(crate::Error::io(format!("read {}", path.display()), e)),
    };
    let mut uses = Uses::new();
    for line in text.lines() {
        let Some((t, key)) = line.split_once(' ') else {
            continue;
        };
        let Ok(t) = t.parse::<i64>() else {
            continue;
        };
        if key.is_empty() || key.contains(' ') {
            continue;
        }
        let e = uses.entry(key.to_string()).or_insert((0, 0));
        e.0 += 1;
        e.1 = e.1.max(t);
    }
    Ok(uses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_lines_are_counted_and_torn_ones_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        std::fs::write(&p, "10 a\n20 b\n30 a\n40 a b\nxx c\n50").unwrap();
        let u = read_journal(&p).unwrap();
        assert_eq!(u.get("a"), Some(&(2, 30)));
        assert_eq!(u.get("b"), Some(&(1, 20)));
        assert_eq!(u.len(), 2);
        assert!(read_journal(&dir.path().join("none")).unwrap().is_empty());
    }
}
