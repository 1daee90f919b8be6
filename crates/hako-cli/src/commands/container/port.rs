//! `hako port CONTAINER [PRIVATE_PORT[/PROTO]]`: hako publishes no ports yet (there is no
//! `-p`), so an existing container has no mappings to list.

use anyhow::Result;
use clap::Args;

use super::engine_err;
use crate::context::Global;

/// Arguments of `hako port`.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// The container
    pub container: String,
    /// Only this private port (PORT[/PROTO])
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

/// `hako port`.
pub fn run(g: &Global, a: &PortArgs) -> Result<()> {
    let engine = g.open_engine()?;
    engine.get(&a.container).map_err(engine_err)?;
    if let Some(p) = &a.port {
        let p = if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        };
        anyhow::bail!("No public port '{p}' published for {}", a.container);
    }
    Ok(())
}
