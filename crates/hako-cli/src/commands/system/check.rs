//! `hako system check [--repair]`: the store's consistency (podman has the same command).
//! One line per finding, then a summary; exit 1 when damage is left that `--repair` could
//! not fix (garbage alone is no failure: a prune removes it).

use anyhow::Result;
use clap::Args;

use crate::commands::container::{EngineError, engine_err};
use crate::context::Global;

/// Arguments of `hako system check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Fix what can be fixed: finish interrupted operations, remove what no record owns
    /// (directories, mounts, cgroups, orphan shims, unreferenced layers and blobs), correct
    /// reference counts and mark images whose content is damaged. Waits for the
    /// operations of other hako processes to finish first.
    #[arg(long, short = 'r')]
    pub repair: bool,

    /// Print only the summary line
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Runs the check and prints what it found.
pub fn run(g: &Global, a: &CheckArgs) -> Result<()> {
    let engine = g.open_engine()?;
    let report = engine.system_check(a.repair).map_err(engine_err)?;
    if !a.quiet {
        for f in &report.findings {
            let kind = if f.garbage { "garbage" } else { "damage " };
            let done = if f.repaired { " (repaired)" } else { "" };
            println!("{kind}  {}: {}{done}", f.object, f.problem);
        }
    }
    let garbage = report.findings.iter().filter(|f| f.garbage).count();
    let damage = report.findings.len() - garbage;
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    println!(
        "checked {}, {}, {}, {}, {} in {:.2}s: {}, {} of garbage",
        plural(report.images, "image"),
        plural(report.layers, "layer"),
        plural(report.blobs, "blob"),
        plural(report.containers, "container"),
        plural(report.volumes, "volume"),
        report.elapsed.as_secs_f64(),
        plural(damage, "damaged object"),
        plural(garbage, "piece"),
    );
    if report.damage_left() > 0 {
        if !a.repair {
            eprintln!("run `hako system check --repair` to fix what can be fixed");
        }
        return Err(EngineError::exit(1));
    }
    Ok(())
}
