//! The resource flags `run`/`create` and `update` share (Docker declares them once too):
//! one clap struct, flattened into both commands, parsed into Docker's resource fields.

use anyhow::Result;
use clap::Args;
use hako_engine::models::{ContainerUpdateBody, HostConfig};

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
    /// The API's resource fields: `ContainerUpdateBody` is Docker's `Resources` (with a
    /// restart policy, left empty here). The one place the flags become API fields.
    pub fn to_update_body(&self) -> ContainerUpdateBody {
        ContainerUpdateBody {
            blkio_weight: self.blkio_weight,
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpu_shares: self.cpu_shares,
            nano_cpus: self.nano_cpus,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            memory: self.memory,
            memory_reservation: self.memory_reservation,
            memory_swap: self.memory_swap,
            pids_limit: self.pids_limit,
            ..Default::default()
        }
    }

    /// The same fields in a `HostConfig`, which embeds `Resources` in Docker's API: the
    /// JSON names are the same, so the body converts through them.
    pub fn to_host_config(&self) -> HostConfig {
        serde_json::to_value(self.to_update_body())
            .and_then(serde_json::from_value)
            .expect("Resources fields have the same JSON shape in HostConfig")
    }

    /// Whether any flag was given.
    pub fn any(&self) -> bool {
        *self != Resources::default()
    }
}

#[cfg(test)]
mod tests {
    use super::Resources;

    /// Every field reaches both the update body and the HostConfig, under its own name.
    #[test]
    fn every_resource_reaches_the_update_body_and_the_host_config() {
        let r = Resources {
            blkio_weight: Some(300),
            cpu_period: Some(100_000),
            cpu_quota: Some(50_000),
            cpu_shares: Some(512),
            nano_cpus: Some(1_500_000_000),
            cpuset_cpus: Some("0-1".into()),
            cpuset_mems: Some("0".into()),
            memory: Some(64 << 20),
            memory_reservation: Some(32 << 20),
            memory_swap: Some(-1),
            pids_limit: Some(50),
        };
        let b = r.to_update_body();
        let h = r.to_host_config();
        let pairs = [
            (
                b.blkio_weight.map(i64::from),
                h.blkio_weight.map(i64::from),
                300,
            ),
            (b.cpu_period, h.cpu_period, 100_000),
            (b.cpu_quota, h.cpu_quota, 50_000),
            (b.cpu_shares, h.cpu_shares, 512),
            (b.nano_cpus, h.nano_cpus, 1_500_000_000),
            (b.memory, h.memory, 64 << 20),
            (b.memory_reservation, h.memory_reservation, 32 << 20),
            (b.memory_swap, h.memory_swap, -1),
            (b.pids_limit, h.pids_limit, 50),
        ];
        for (body, host, want) in pairs {
            assert_eq!((body, host), (Some(want), Some(want)));
        }
        assert_eq!(h.cpuset_cpus.as_deref(), Some("0-1"));
        assert_eq!(h.cpuset_mems.as_deref(), Some("0"));
        assert_eq!(b.cpuset_mems.as_deref(), Some("0"));
        assert_eq!(
            Resources::default().to_host_config(),
            hako_engine::models::HostConfig::default()
        );
    }
}
