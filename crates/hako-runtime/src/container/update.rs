//! `update`: change the resource limits of a created, running or paused container.
//!
//! Order of work: read `-r` JSON and the flags into one `LinuxResources` and check every
//! value (nothing written yet), then apply. If the kernel still refuses a value half way
//! (a cpuset the parent does not have, a memory limit below usage), the cgroup files that
//! had already been written are put back, so a failed update changes nothing (runc restores
//! its saved config the same way).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use hako_cgroups::CgroupManager;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use crate::cli::UpdateArgs;
use crate::container::Container;
use crate::error::{Context, Error, Refusal, Result};
use crate::state::Status;

pub fn update(root: &Path, args: &UpdateArgs) -> Result<()> {
    let resources = resources_from(args, read_resources_json)?;
    let c = Container::load(root, &args.id)?;
    let status = c.status();
    if status == Status::Stopped {
        return Err(Refusal::NotRunning.into());
    }
    let cg = c.cgroup().ok_or_else(|| {
        Error::Unsupported(format!(
            "cannot update container {}: it has no cgroup",
            args.id
        ))
    })?;
    let dirs: Vec<PathBuf> = cg.mounts().into_iter().map(|m| m.host_dir).collect();
    let before = Snapshot::take(&dirs);
    if let Err(e) = cg.apply(&resources) {
        before.restore();
        return Err(e.into());
    }
    Ok(())
}

/// The new resources: the `-r` JSON (if any) with the flags on top, every value checked.
/// `read_json` reads the `-r` argument (a file or `-` for stdin).
pub(crate) fn resources_from(
    args: &UpdateArgs,
    read_json: impl FnOnce(&Path) -> Result<String>,
) -> Result<LinuxResources> {
    if args.l3_cache_schema.is_some() || args.mem_bw_schema.is_some() {
        return Err(Error::Unsupported(
            "Intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported: hako-runtime has no resctrl support; drop the flag".into(),
        ));
    }
    let mut r = match &args.resources {
        Some(path) => {
            let text = read_json(path)?;
            let r = serde_json::from_str::<LinuxResources>(&text).map_err(|e| {
                Error::Usage(format!(
                    "--resources {}: not a valid linux.resources JSON object: {e}",
                    path.display()
                ))
            })?;
            zeros_unset(r)
        }
        None => LinuxResources::default(),
    };

    let mem = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref()
            .map(|s| parse_memory(s).map_err(|e| Error::Usage(format!("--{flag}: {e}"))))
            .transpose()
    };
    let limit = mem("memory", &args.memory)?;
    let reservation = mem("memory-reservation", &args.memory_reservation)?;
    let swap = mem("memory-swap", &args.memory_swap)?;
    if limit.is_some() || reservation.is_some() || swap.is_some() {
        let mut m: LinuxMemory = r.memory().unwrap_or_default();
        if limit.is_some() {
            m.set_limit(limit);
        }
        if reservation.is_some() {
            m.set_reservation(reservation);
        }
        if swap.is_some() {
            m.set_swap(swap);
        }
        r.set_memory(Some(m));
    }

    let cpu_flags = args.cpu_period.is_some()
        || args.cpu_quota.is_some()
        || args.cpu_share.is_some()
        || args.cpu_rt_period.is_some()
        || args.cpu_rt_runtime.is_some()
        || args.cpuset_cpus.is_some()
        || args.cpuset_mems.is_some();
    if cpu_flags {
        let mut c: LinuxCpu = r.cpu().clone().unwrap_or_default();
        if args.cpu_period.is_some() {
            c.set_period(args.cpu_period);
        }
        if args.cpu_quota.is_some() {
            c.set_quota(args.cpu_quota);
        }
        if args.cpu_share.is_some() {
            c.set_shares(args.cpu_share);
        }
        if args.cpu_rt_period.is_some() {
            c.set_realtime_period(args.cpu_rt_period);
        }
        if args.cpu_rt_runtime.is_some() {
            c.set_realtime_runtime(args.cpu_rt_runtime);
        }
        if args.cpuset_cpus.is_some() {
            c.set_cpus(args.cpuset_cpus.clone());
        }
        if args.cpuset_mems.is_some() {
            c.set_mems(args.cpuset_mems.clone());
        }
        r.set_cpu(Some(c));
    }

    if let Some(limit) = args.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(limit);
        r.set_pids(Some(p));
    }
    if let Some(w) = args.blkio_weight {
        let mut b: LinuxBlockIo = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    validate(&r)?;
    Ok(r)
}

/// Zero means "no change" in an update's JSON, as runc reads it: dockerd sends every field
/// of `docker update`, the ones not given as 0 (`docker update -m 32m` came with cpu
/// period 0, which the kernel's bounds refuse).
fn zeros_unset(mut r: LinuxResources) -> LinuxResources {
    let nz = |v: Option<i64>| v.filter(|v| *v != 0);
    let nzu = |v: Option<u64>| v.filter(|v| *v != 0);
    if let Some(mut m) = *r.memory() {
        m.set_limit(nz(m.limit()));
        m.set_reservation(nz(m.reservation()));
        m.set_swap(nz(m.swap()));
        m.set_kernel(nz(m.kernel()));
        m.set_kernel_tcp(nz(m.kernel_tcp()));
        r.set_memory(Some(m));
    }
    if let Some(mut c) = r.cpu().clone() {
        c.set_shares(nzu(c.shares()));
        c.set_quota(nz(c.quota()));
        c.set_period(nzu(c.period()));
        c.set_realtime_runtime(nz(c.realtime_runtime()));
        c.set_realtime_period(nzu(c.realtime_period()));
        c.set_cpus(c.cpus().clone().filter(|s| !s.is_empty()));
        c.set_mems(c.mems().clone().filter(|s| !s.is_empty()));
        r.set_cpu(Some(c));
    }
    if let Some(mut b) = r.block_io().clone() {
        b.set_weight(b.weight().filter(|w| *w != 0));
        b.set_leaf_weight(b.leaf_weight().filter(|w| *w != 0));
        r.set_block_io(Some(b));
    }
    r
}

fn read_resources_json(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context(|| "read resources from stdin".into())?;
        return Ok(s);
    }
    fs::read_to_string(path).context(|| format!("read resources {}", path.display()))
}

/// Checks of what the kernel would refuse, so a bad value fails before any write.
fn validate(r: &LinuxResources) -> Result<()> {
    let bad = |what: &str, v: &dyn std::fmt::Display, why: &str| -> Result<()> {
        Err(Error::Usage(format!("{what} {v}: {why}")))
    };
    if let Some(m) = r.memory() {
        for (what, v) in [
            ("memory limit", m.limit()),
            ("memory reservation", m.reservation()),
            ("memory+swap limit", m.swap()),
        ] {
            if let Some(v) = v
                && v < -1
            {
                return bad(what, &v, "must be a byte count or -1 for unlimited");
            }
        }
        if let (Some(l), Some(s)) = (m.limit(), m.swap())
            && l > 0
            && s > 0
            && s < l
        {
            return bad(
                "memory+swap limit",
                &s,
                "must be at least the memory limit (--memory-swap counts memory plus swap)",
            );
        }
    }
    if let Some(c) = r.cpu() {
        // The kernel's CFS bandwidth bounds: 1 ms to 1 s for the period, at least 1 ms of
        // quota (-1: no quota).
        if let Some(p) = c.period()
            && !(1_000..=1_000_000).contains(&p)
        {
            return bad(
                "cpu period",
                &p,
                "must be between 1000 and 1000000 microseconds",
            );
        }
        if let Some(q) = c.quota()
            && q != -1
            && q < 1_000
        {
            return bad(
                "cpu quota",
                &q,
                "must be at least 1000 microseconds, or -1 for no limit",
            );
        }
        if let Some(rt) = c.realtime_runtime()
            && rt < -1
        {
            return bad("cpu realtime runtime", &rt, "must be >= 0, or -1");
        }
        if let (Some(rt), Some(p)) = (c.realtime_runtime(), c.realtime_period())
            && rt > 0
            && u64::try_from(rt).is_ok_and(|rt| rt > p)
        {
            return bad(
                "cpu realtime runtime",
                &rt,
                "must not exceed the realtime period",
            );
        }
        for (what, list) in [("cpuset cpus", c.cpus()), ("cpuset mems", c.mems())] {
            if let Some(list) = list
                && !valid_cpu_list(list)
            {
                return bad(what, &format!("{list:?}"), "expected a list such as 0-3,5");
            }
        }
    }
    if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight())
        && !(10..=1000).contains(&w)
    {
        return bad("blkio weight", &w, "must be between 10 and 1000");
    }
    Ok(())
}

/// `0-3,5,7-8` (the kernel's cpu/node list syntax); empty means "no change".
fn valid_cpu_list(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    let num = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    s.split(',').all(|part| match part.split_once('-') {
        Some((a, b)) => num(a) && num(b) && a.parse::<u32>().ok() <= b.parse::<u32>().ok(),
        None => num(part),
    })
}

/// Bytes from a size as runc reads `--memory` (docker/go-units `RAMInBytes`): `100`, `512k`,
/// `64m`, `1.5g`, `2 GiB`, `10mb` (case-insensitive, multiples of 1024), or `-1` for
/// unlimited.
pub(crate) fn parse_memory(s: &str) -> Result<i64, String> {
    if s == "-1" {
        return Ok(-1);
    }
    // go-units' grammar: ^(\d+(\.\d+)?) ?([kmgtp])?i?b?$, case-insensitive.
    let invalid = || format!("invalid size {s:?} (expected bytes such as 512k, 64m, 1g, or -1)");
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, rest) = s.split_at(num_end);
    let (int, frac) = num.split_once('.').unwrap_or((num, "0"));
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) {
        return Err(invalid());
    }
    let unit = rest.strip_prefix(' ').unwrap_or(rest).to_ascii_lowercase();
    let (shift, unit) = match unit.chars().next().and_then(|c| "kmgtp".find(c)) {
        Some(i) => (10 * (i + 1), &unit[1..]),
        None => (0, unit.as_str()),
    };
    let unit = unit.strip_prefix('i').unwrap_or(unit);
    if !(unit.is_empty() || unit == "b") {
        return Err(invalid());
    }
    // Integer arithmetic (Go goes through float64 and truncates; same result for sizes
    // that matter): int * 2^shift + frac * 2^shift / 10^digits.
    let too_large = || format!("size {s:?} is too large");
    let frac = &frac[..frac.len().min(18)];
    let mult = 1u128 << shift;
    let whole = int.parse::<u128>().map_err(|_| too_large())?;
    let part = frac.parse::<u128>().map_err(|_| invalid())? * mult
        / 10u128.pow(u32::try_from(frac.len()).expect("at most 18 digits"));
    whole
        .checked_mul(mult)
        .and_then(|b| b.checked_add(part))
        .and_then(|b| i64::try_from(b).ok())
        .filter(|&b| b < i64::MAX)
        .ok_or_else(too_large)
}

/// The resource files `update` may write, read before it writes anything.
///
/// hako-cgroups validates before it writes, but the kernel can still refuse a value after
/// another controller was already changed; this puts the earlier writes back.
struct Snapshot(Vec<(PathBuf, String)>);

/// v1 and v2 files that `apply` writes for the fields `update` can carry.
const FILES: &[&str] = &[
    "memory.limit_in_bytes",
    "memory.memsw.limit_in_bytes",
    "memory.soft_limit_in_bytes",
    "memory.swappiness",
    "memory.max",
    "memory.swap.max",
    "memory.low",
    "cpu.shares",
    "cpu.cfs_period_us",
    "cpu.cfs_quota_us",
    "cpu.rt_period_us",
    "cpu.rt_runtime_us",
    "cpu.weight",
    "cpu.max",
    "cpuset.cpus",
    "cpuset.mems",
    "pids.max",
    "blkio.weight",
    "io.weight",
];

impl Snapshot {
    fn take(dirs: &[PathBuf]) -> Snapshot {
        let mut saved = Vec::new();
        for dir in dirs {
            for f in FILES {
                let path = dir.join(f);
                if let Ok(v) = fs::read_to_string(&path) {
                    saved.push((path, v.trim_end().to_owned()));
                }
            }
        }
        Snapshot(saved)
    }

    /// Write back every file whose value changed. Two passes, because the kernel keeps
    /// pairs ordered (memory limit <= memory+swap limit; cpu quota within the parent's),
    /// so one write may only succeed after the other.
    fn restore(&self) {
        let mut pending: Vec<&(PathBuf, String)> = self
            .0
            .iter()
            .filter(|(path, old)| fs::read_to_string(path).is_ok_and(|now| now.trim_end() != old))
            .collect();
        for _ in 0..2 {
            pending.retain(|(path, old)| fs::write(path, old).is_err());
        }
        for (path, old) in pending {
            tracing::warn!(file = %path.display(), value = %old, "could not restore after a failed update");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(flags: &[&str]) -> UpdateArgs {
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            u: UpdateArgs,
        }
        let mut argv = vec!["update"];
        argv.extend_from_slice(flags);
        argv.push("c1");
        T::try_parse_from(argv).expect("flags parse").u
    }

    fn no_json(_: &Path) -> Result<String> {
        panic!("no -r given")
    }

    #[test]
    fn memory_sizes_like_go_units() {
        assert_eq!(parse_memory("100").unwrap(), 100);
        assert_eq!(parse_memory("512k").unwrap(), 512 * 1024);
        assert_eq!(parse_memory("512K").unwrap(), 512 * 1024);
        assert_eq!(parse_memory("64m").unwrap(), 64 << 20);
        assert_eq!(parse_memory("64MB").unwrap(), 64 << 20);
        assert_eq!(parse_memory("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_memory("64 m").unwrap(), 64 << 20);
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_memory("2t").unwrap(), 2 << 40);
        assert_eq!(parse_memory("10b").unwrap(), 10);
        assert_eq!(parse_memory("-1").unwrap(), -1);
    }

    #[test]
    fn bad_memory_sizes() {
        for bad in [
            "",
            "m",
            "abc",
            "-2",
            "-1m",
            "1.",
            ".5m",
            "1.2.3m",
            "1x",
            "1 mb x",
            "1  m",
            "1mm",
            "1bb",
            "99999999999p",
        ] {
            assert!(parse_memory(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn flags_map_to_resources() {
        let r = resources_from(
            &args(&[
                "--memory",
                "64m",
                // clap needs `=` for a negative value (see report: cli.rs lacks
                // allow_negative_numbers), runc takes `--memory-swap -1` too.
                "--memory-swap=-1",
                "--memory-reservation",
                "32m",
                "--pids-limit",
                "20",
                "--cpu-quota",
                "50000",
                "--cpu-period",
                "100000",
                "--cpu-share",
                "512",
                "--cpuset-cpus",
                "0-1",
                "--cpuset-mems",
                "0",
                "--blkio-weight",
                "300",
            ]),
            no_json,
        )
        .unwrap();
        let m = r.memory().unwrap();
        assert_eq!(m.limit(), Some(64 << 20));
        assert_eq!(m.swap(), Some(-1));
        assert_eq!(m.reservation(), Some(32 << 20));
        assert_eq!(r.pids().unwrap().limit(), 20);
        let c = r.cpu().as_ref().unwrap();
        assert_eq!(c.quota(), Some(50_000));
        assert_eq!(c.period(), Some(100_000));
        assert_eq!(c.shares(), Some(512));
        assert_eq!(c.cpus().as_deref(), Some("0-1"));
        assert_eq!(c.mems().as_deref(), Some("0"));
        assert_eq!(r.block_io().as_ref().unwrap().weight(), Some(300));
        // Nothing else is touched: devices in particular must stay absent.
        assert!(r.devices().is_none());
        assert!(r.hugepage_limits().is_none());
    }

    #[test]
    fn only_given_flags_are_set() {
        let r = resources_from(&args(&["--pids-limit=-1"]), no_json).unwrap();
        assert_eq!(r.pids().unwrap().limit(), -1);
        assert!(r.memory().is_none());
        assert!(r.cpu().is_none());
        assert!(r.block_io().is_none());
        let r = resources_from(&args(&["--memory", "1g"]), no_json).unwrap();
        let m = r.memory().unwrap();
        assert_eq!(m.limit(), Some(1 << 30));
        assert_eq!(m.swap(), None);
        assert!(r.pids().is_none());
    }

    #[test]
    fn json_then_flags_on_top() {
        let json = r#"{"memory":{"limit":1048576,"reservation":524288},"pids":{"limit":5},
                       "cpu":{"shares":100}}"#;
        let r = resources_from(
            &args(&["-r", "/x.json", "--memory", "2m", "--cpu-quota", "20000"]),
            |p| {
                assert_eq!(p, Path::new("/x.json"));
                Ok(json.into())
            },
        )
        .unwrap();
        let m = r.memory().unwrap();
        assert_eq!(m.limit(), Some(2 << 20), "flag overrides the file");
        assert_eq!(m.reservation(), Some(524_288), "file value kept");
        assert_eq!(r.pids().unwrap().limit(), 5);
        let c = r.cpu().as_ref().unwrap();
        assert_eq!(c.shares(), Some(100));
        assert_eq!(c.quota(), Some(20_000));
    }

    #[test]
    fn zeros_in_the_json_mean_no_change_as_dockerd_sends_them() {
        // What dockerd sent for `docker update -m 32m --memory-swap 64m` (systemd guest).
        let json = r#"{"memory":{"limit":33554432,"reservation":0,"swap":67108864},
                       "cpu":{"shares":0,"quota":0,"period":0,"realtimeRuntime":0,
                              "realtimePeriod":0,"cpus":"","mems":""},
                       "blockIO":{"weight":0}}"#;
        let r = resources_from(&args(&["-r", "-"]), |_| Ok(json.into())).unwrap();
        let m = r.memory().unwrap();
        assert_eq!(
            (m.limit(), m.reservation(), m.swap()),
            (Some(32 << 20), None, Some(64 << 20))
        );
        let c = r.cpu().as_ref().unwrap();
        assert_eq!((c.shares(), c.quota(), c.period()), (None, None, None));
        assert_eq!((c.cpus().as_deref(), c.mems().as_deref()), (None, None));
        assert_eq!(r.block_io().as_ref().unwrap().weight(), None);
    }

    #[test]
    fn bad_values_are_one_clear_error() {
        let err = |flags: &[&str]| resources_from(&args(flags), no_json).unwrap_err();
        let e = err(&["--memory", "lots"]);
        assert!(matches!(e, Error::Usage(_)), "{e}");
        assert!(e.to_string().contains("--memory"), "{e}");
        assert!(matches!(err(&["--memory-swap", "1x"]), Error::Usage(_)));
        assert!(matches!(
            err(&["--memory", "64m", "--memory-swap", "32m"]),
            Error::Usage(_)
        ));
        assert!(matches!(err(&["--cpu-quota", "10"]), Error::Usage(_)));
        assert!(matches!(err(&["--cpu-period", "100"]), Error::Usage(_)));
        assert!(matches!(err(&["--cpuset-cpus", "0-a"]), Error::Usage(_)));
        assert!(matches!(err(&["--cpuset-cpus", "3-1"]), Error::Usage(_)));
        assert!(matches!(err(&["--blkio-weight", "5"]), Error::Usage(_)));
        assert!(matches!(
            err(&["--cpu-rt-period", "1000", "--cpu-rt-runtime", "2000"]),
            Error::Usage(_)
        ));
        let e = err(&["--l3-cache-schema", "L3:0=f"]);
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("not supported"), "{e}");
        let e = resources_from(&args(&["-r", "x"]), |_| Ok("{not json".into())).unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e}");
    }

    #[test]
    fn cpu_lists() {
        for ok in ["", "0", "0-3", "0,2,4-7", "12"] {
            assert!(valid_cpu_list(ok), "{ok:?}");
        }
        for bad in ["-", "0-", "a", "0,,1", "1-0", " 1", "0-1-2"] {
            assert!(!valid_cpu_list(bad), "{bad:?}");
        }
    }
}
