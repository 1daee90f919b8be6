//! `hako rmi [-f] IMAGE...`: Docker's `Untagged:` / `Deleted:` lines.

use anyhow::Result;
use clap::Args;

use crate::commands::container::engine_err;
use crate::context::Global;
use crate::error::AlreadyReported;

/// Arguments of `hako rmi`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Force removal of the image (untag it even if a container uses it, remove an id with
    /// several tags)
    #[arg(short, long)]
    pub force: bool,

    /// Do not delete untagged parents (accepted for compatibility; hako images have none)
    #[arg(long = "no-prune")]
    pub no_prune: bool,

    /// Images to remove (names, tags or ids)
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Removes each image in turn; a failure is reported and the others still go.
pub fn run(g: &Global, a: &RemoveArgs) -> Result<()> {
    let engine = g.open_engine()?;
    let mut failed = 0;
    for name in &a.images {
        match engine.image_remove(name, a.force) {
            Ok(items) => {
                let mut out = String::new();
                for it in items {
                    if let Some(t) = it.untagged {
                        out.push_str(&format!("Untagged: {t}\n"));
                    }
                    if let Some(d) = it.deleted {
                        out.push_str(&format!("Deleted: {d}\n"));
                    }
                }
                super::super::print(&out)?;
            }
            Err(e) => {
                failed += 1;
                eprintln!("Error: {}", crate::error::chain_line(&engine_err(e)));
            }
        }
    }
    if failed > 0 {
        return Err(AlreadyReported(failed).into());
    }
    Ok(())
}
