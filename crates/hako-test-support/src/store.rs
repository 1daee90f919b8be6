//! An exact inventory of one hako installation (`--root` + `--exec-root`), for leak checks
//! that compare before and after: every row of every table in the database, every name in
//! the first three levels of both roots, the mounts under them and the processes that name
//! them on their command line.
//!
//! ```text
//!   let before = Inventory::take(root, exec_root, &[]);
//!   ... work that creates and removes containers, volumes, images ...
//!   let after = Inventory::take(root, exec_root, &[]);
//!   assert!(after.diff(&before).is_empty(), "{}", after.diff(&before));
//! ```
//!
//! Being generic (no list of tables or directories), it covers what other parts add later
//! (IPAM leases, networks, exec sessions) without knowing them.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// What one installation holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// `table: row` for every row of every table (values joined with `|`).
    pub rows: BTreeSet<String>,
    /// Paths relative to the roots (`root:containers/<id>`, `exec:locks/<id>`).
    pub files: BTreeSet<String>,
    /// Mount points under either root.
    pub mounts: BTreeSet<String>,
    /// `pid cmdline` of processes that name either root.
    pub processes: BTreeSet<String>,
}

/// Tables whose rows are allowed to change (logs, counters).
const CHURN: &[&str] = &["meta", "events", "sqlite_sequence", "net_cursor"];

/// Files that change in normal operation (the database itself, lock files that stay).
fn churn_file(rel: &str) -> bool {
    rel.starts_with("root:hako-image.db")
        // The space held back for removals on a full disk (freed and made again).
        || rel.starts_with("root:reserved-space")
        || rel == "root:locks/gc.lock"
        || rel == "root:locks/layers.lock"
        || rel == "root:locks/flight"
        || rel == "exec:locks"
        // hako-net's lock and its directories (their entries count: netns/<id>, dns/pid).
        || rel == "exec:network.lock"
        // The firewall work known done at the current nftables ruleset: a cache, rewritten
        // whole by any start (hako-net firewall/generation.rs), its temporary name included.
        || rel == "exec:firewall.verified"
        || rel == "exec:firewall.tmp"
        || rel == "exec:netns"
        || rel == "exec:dns"
        || rel == "exec:dns/lock"
        || rel == "root:volumes"
        // The builder's working directories (their entries count).
        || matches!(rel, "root:build" | "root:build/active" | "root:build/tmp" | "exec:build")
        || rel.starts_with("root:events")
        || rel.starts_with("root:.cache")
        || rel.contains("/.cache")
        // The runtimes' --root directories (their per-container entries count).
        || rel == "exec:runtime"
        || rel
            .strip_prefix("exec:runtime/")
            .is_some_and(|r| !r.contains('/'))
}

impl Inventory {
    /// Takes the inventory. `ignore_tables` adds tables whose rows may differ.
    pub fn take(root: &Path, exec_root: &Path, ignore_tables: &[&str]) -> Inventory {
        let mut inv = Inventory::default();
        if let Ok(conn) = rusqlite::Connection::open_with_flags(
            root.join("hako-image.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        ) {
            let _ = conn.busy_timeout(std::time::Duration::from_secs(30));
            inv.rows = dump_rows(&conn, ignore_tables);
        }
        for (tag, base) in [("root", root), ("exec", exec_root)] {
            walk(base, base, 3, &mut |rel| {
                let r = format!("{tag}:{rel}");
                if !churn_file(&r) {
                    inv.files.insert(r);
                }
            });
        }
        let roots = [root.to_path_buf(), exec_root.to_path_buf()];
        if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
            for l in mi.lines() {
                if let Some(mp) = l.split(' ').nth(4)
                    && roots.iter().any(|r| Path::new(mp).starts_with(r))
                {
                    inv.mounts.insert(mp.to_string());
                }
            }
        }
        let needles: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        let me = std::process::id();
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                if pid == me {
                    continue;
                }
                let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
                    continue;
                };
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                if needles.iter().any(|n| cmd.contains(n.as_str())) {
                    inv.processes.insert(format!("{pid} {}", cmd.trim()));
                }
            }
        }
        inv
    }

    /// What `self` has that `before` did not (leaks), and what it lost (damage).
    pub fn diff(&self, before: &Inventory) -> InventoryDiff {
        let minus = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> Vec<String> {
            a.difference(b).cloned().collect()
        };
        InventoryDiff {
            added: [
                minus(&self.rows, &before.rows),
                minus(&self.files, &before.files),
                minus(&self.mounts, &before.mounts),
                minus(&self.processes, &before.processes),
            ]
            .concat(),
            lost: [
                minus(&before.rows, &self.rows),
                minus(&before.files, &self.files),
            ]
            .concat(),
        }
    }
}

/// The difference of two inventories.
#[derive(Debug, Default)]
pub struct InventoryDiff {
    /// Present now, not before.
    pub added: Vec<String>,
    /// Present before, gone now.
    pub lost: Vec<String>,
}

impl InventoryDiff {
    /// True when both inventories hold the same.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.lost.is_empty()
    }
}

impl fmt::Display for InventoryDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for a in &self.added {
            writeln!(f, "  left behind: {a}")?;
        }
        for l in &self.lost {
            writeln!(f, "  lost: {l}")?;
        }
        Ok(())
    }
}

fn dump_rows(conn: &rusqlite::Connection, ignore: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| {
            s.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .unwrap_or_default();
    for t in tables {
        if CHURN.contains(&t.as_str()) || ignore.contains(&t.as_str()) {
            continue;
        }
        let Ok(mut stmt) = conn.prepare(&format!("SELECT * FROM \"{t}\"")) else {
            continue;
        };
        let n = stmt.column_count();
        let rows = stmt.query_map([], |r| {
            let mut vals = Vec::with_capacity(n);
            for i in 0..n {
                let v: rusqlite::types::Value = r.get(i)?;
                vals.push(match v {
                    rusqlite::types::Value::Null => "NULL".to_string(),
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Real(f) => f.to_string(),
                    rusqlite::types::Value::Text(s) => s.chars().take(120).collect(),
                    rusqlite::types::Value::Blob(b) => format!("<{} bytes>", b.len()),
                });
            }
            Ok(vals.join("|"))
        });
        if let Ok(rows) = rows {
            for r in rows.flatten() {
                out.insert(format!("{t}: {r}"));
            }
        }
    }
    out
}

fn walk(base: &Path, dir: &Path, depth: u32, f: &mut dyn FnMut(String)) {
    if depth == 0 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p: PathBuf = e.path();
        let rel = p
            .strip_prefix(base)
            .map(|r| r.display().to_string())
            .unwrap_or_default();
        f(rel);
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(base, &p, depth - 1, f);
        }
    }
}

/// Runs `sql` on the store's database (tests that damage a store on purpose).
pub fn db_execute(root: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(root.join("hako-image.db")).expect("open database");
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .expect("busy timeout");
    conn.execute_batch(sql).expect("sql");
}
