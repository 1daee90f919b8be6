//! The resource flags `run`/`create` and `update` share (Docker declares them once too):
//! one clap struct, flattened into both commands, parsed into Docker's resource fields.

use anyhow::Result;
use clap::Args;

use super::create_args::{parse_bytes, parse_cpus};

/// CPU, memory, pids and block IO limits.
#[derive(Debug, Args, Clone, Default)]
pub struct ResourceArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long = "blkio-weight", value_name = "UINT16")]
    pub blkio_weight: Option<u16>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", value_name = "INT")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", value_name = "INT", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(
        short = 'c',
        long = "cpu-shares",
        value_name = "INT",
        allow_hyphen_values = true
    )]
    pub cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long, value_name = "DECIMAL", allow_hyphen_values = true)]
    pub cpus: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "STRING")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "STRING")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (e.g. 512m, 1g)
    #[arg(short, long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "BYTES")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "INT", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
}

/// [`ResourceArgs`] parsed: Docker's fields of `HostConfig` and of the update body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub blkio_weight: Option<u16>,
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub memory: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub memory_swap: Option<i64>,
    pub pids_limit: Option<i64>,
}

impl ResourceArgs {
    /// Parses the sizes and CPU counts (errors name the value).
    pub fn parse(&self) -> Result<Resources> {
        let memory_swap = match self.memory_swap.as_deref() {
            Some("-1") => Some(-1),
            Some(s) => Some(parse_bytes(s)?),
            None => None,
        };
        Ok(Resources {
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
        })
    }
}

impl Resources {
    /// Whether any flag was given.
    pub fn any(&self) -> bool {
        *self != Resources::default()
    }
}
