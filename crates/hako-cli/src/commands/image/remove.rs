//! `hako rmi [-f] IMAGE...`: Docker's `Untagged:` / `Deleted:` lines.

use anyhow::Result;
use clap::Args;
use hako_image::RemoveAction;

use crate::context::Global;
use crate::error::{AlreadyReported, image_error};

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
    let store = g.open_store()?;
    let mut failed = 0;
    for name in &a.images {
        match store.remove(name, a.force) {
            Ok(actions) => {
                let mut out = String::new();
                for act in actions {
                    match act {
                        RemoveAction::Untagged(t) => out.push_str(&format!("Untagged: {t}\n")),
                        RemoveAction::Deleted(d) => out.push_str(&format!("Deleted: {d}\n")),
                    }
                }
                super::super::print(&out)?;
            }
            Err(e) => {
                failed += 1;
                eprintln!("Error: {}", crate::error::chain_line(&image_error(e)));
            }
        }
    }
    if failed > 0 {
        return Err(AlreadyReported(failed).into());
    }
    Ok(())
}
