//! `hako update`: Docker's update of a container's resources and restart policy.
//!
//! Parses the flags into Docker's update body; `Engine::update` merges it (unset fields
//! keep their value), applies the resources to a running container through the runtime
//! and records them for the next start.

use anyhow::Result;
use clap::Args;
use hako_engine::models::ContainerUpdateBody;

use super::create_args::parse_restart;
use super::resource_args::ResourceArgs;
use super::{engine_err, for_each};
use crate::context::Global;

/// Arguments of `hako update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// Restart policy to apply when a container exits
    #[arg(long = "restart", value_name = "STRING")]
    pub restart: Option<String>,
    /// The containers to update
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

impl UpdateArgs {
    /// Docker's update body; errors name the flag, before any container is touched.
    fn body(&self) -> Result<ContainerUpdateBody> {
        // A bad size or number is a flag error for Docker's CLI (status 125).
        let r = self
            .resources
            .parse()
            .map_err(|e| super::EngineError::with_code(crate::error::chain_line(&e), 125))?;
        if !r.any() && self.restart.is_none() {
            anyhow::bail!("you must provide one or more flags when using this command");
        }
        Ok(ContainerUpdateBody {
            restart_policy: self.restart.as_deref().map(parse_restart).transpose()?,
            ..r.to_update_body()
        })
    }
}

/// `hako update`: prints each container as given once it is updated, as Docker does.
pub fn run(g: &Global, a: &UpdateArgs) -> Result<()> {
    let body = a.body()?;
    let engine = g.open_engine()?;
    for_each(&a.containers, |c| {
        for w in engine.update(c, &body).map_err(engine_err)? {
            eprintln!("WARNING: {w}");
        }
        println!("{c}");
        Ok(())
    })
}
