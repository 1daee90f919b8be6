//! `hako top CONTAINER [ps OPTIONS]`: the container's processes as `ps` shows them.

use anyhow::Result;
use clap::Args;

use super::engine_err;
use crate::context::Global;

/// Arguments of `hako top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The container
    pub container: String,
    /// Options for ps (default -ef)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ps OPTIONS"
    )]
    pub ps_args: Vec<String>,
}

/// Go's `tabwriter.NewWriter(out, 20, 1, 3, ' ', 0)`, as `docker top` uses it.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate().take(r.len().saturating_sub(1)) {
            widths[i] = widths[i].max((c.chars().count() + 3).max(20));
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < r.len() {
                out.extend(std::iter::repeat_n(' ', widths[i] - c.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

/// `hako top`.
pub fn run(g: &Global, a: &TopArgs) -> Result<()> {
    let engine = g.open_engine()?;
    let (header, rows) = engine.top(&a.container, &a.ps_args).map_err(engine_err)?;
    let mut all = vec![header];
    all.extend(rows);
    crate::commands::print(&table(&all))
}
