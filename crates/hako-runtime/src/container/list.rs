//! `list`: every container under the state root, as a table or JSON.

use std::path::Path;

use crate::container::Container;
use crate::container::state::StateJson;
use crate::error::{Context, Result};

/// All containers, sorted by id; unreadable entries are skipped.
pub fn collect(root: &Path) -> Result<Vec<StateJson>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).context(|| format!("read {}", root.display())),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name.to_str() else { continue };
        if id.starts_with('.') {
            continue;
        }
        if let Ok(c) = Container::load(root, id) {
            out.push(StateJson::of(&c));
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// runc's table: columns padded to the widest cell (tabwriter, min width 12, padding 1).
pub fn table(rows: &[StateJson]) -> String {
    let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.pid.to_string(),
                r.status.as_str().to_owned(),
                r.bundle.clone(),
                r.created.clone(),
                r.owner.clone(),
            ]
        })
        .collect();
    let mut width = header.map(|h| h.len().max(11));
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |cols: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cols.iter().enumerate() {
            if i + 1 == cols.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$} ", w = width[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &cells {
        line(row.iter().map(String::as_str).collect());
    }
    out
}
