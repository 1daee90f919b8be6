//! `hako update`: Docker's update of a container's resources and restart policy.
//!
//! Parses the flags into Docker's update body; `Engine::update` merges it (unset fields
//! keep their value), applies the resources to a running container through the runtime
//! and records them for the next start.

use anyhow::Result;
use clap::Args;
use hako_engine::models::ContainerUpdateBody;

use super::create_args::{parse_bytes, parse_cpus, parse_restart};
use super::{engine_err, for_each};
use crate::context::Global;

/// Arguments of `hako update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long = "blkio-weight", value_name = "UINT16")]
    pub blkio_weight: Option<u16>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", value_name = "INT")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", value_name = "INT")]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "INT")]
    pub cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long = "cpus", value_name = "DECIMAL")]
    pub cpus: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "STRING")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "STRING")]
    pub cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long = "memory", value_name = "BYTES")]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "BYTES")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "INT", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
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
        let flags = [
            self.blkio_weight.is_some(),
            self.cpu_period.is_some(),
            self.cpu_quota.is_some(),
            self.cpu_shares.is_some(),
            self.cpus.is_some(),
            self.cpuset_cpus.is_some(),
            self.cpuset_mems.is_some(),
            self.memory.is_some(),
            self.memory_reservation.is_some(),
            self.memory_swap.is_some(),
            self.pids_limit.is_some(),
            self.restart.is_some(),
        ];
        if !flags.contains(&true) {
            anyhow::bail!("you must provide one or more flags when using this command");
        }
        let memory_swap = match self.memory_swap.as_deref() {
            Some("-1") => Some(-1),
            Some(s) => Some(parse_bytes(s)?),
            None => None,
        };
        Ok(ContainerUpdateBody {
            blkio_weight: self.blkio_weight,
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpu_shares: self.cpu_shares,
            nano_cpus: self.cpus.as_deref().map(parse_cpus).transpose()?,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            memory: self.memory.as_deref().map(parse_bytes).transpose()?,
            memory_reservation: self
                .memory_reservation
                .as_deref()
                .map(parse_bytes)
                .transpose()?,
            memory_swap,
            pids_limit: self.pids_limit,
            restart_policy: self.restart.as_deref().map(parse_restart).transpose()?,
            ..Default::default()
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
