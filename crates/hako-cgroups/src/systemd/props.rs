//! `linux.resources` as systemd unit properties (the ones systemd 244+ has), so that
//! `systemctl show` tells the truth and a `daemon-reload` puts back our values rather than
//! its defaults. The same settings are written to the cgroup files afterwards as well (as
//! runc does), which also covers what has no property (hugetlb, rdma, most `unified` keys).
//! Device rules stay with hako's own eBPF program (attached with BPF_F_ALLOW_MULTI next to
//! any program of systemd's).

use oci_spec::runtime::LinuxResources;

use super::wire::Value;
use crate::error::Error;
use crate::resources::{blkio_weight_to_io_weight, shares_to_weight};

/// systemd's "infinity".
const INFINITY: u64 = u64::MAX;

fn prop(name: &str, v: Value) -> Value {
    Value::Struct(vec![Value::Str(name.into()), Value::Variant(Box::new(v))])
}

/// A v1-style number: 0 unset, -1 unlimited.
fn limit(v: i64) -> Option<u64> {
    match v {
        0 => None,
        v if v < 0 => Some(INFINITY),
        v => u64::try_from(v).ok(),
    }
}

/// CPUQuotaPerSecUSec: runtime per second, which systemd keeps in whole 10 ms steps, so
/// round up as runc does (a quota rounded down would throttle harder than asked).
pub(crate) fn quota_per_sec(quota: i64, period: u64) -> u64 {
    if quota <= 0 || period == 0 {
        return INFINITY;
    }
    let per_sec = u64::try_from(quota).unwrap_or(0).saturating_mul(1_000_000) / period;
    per_sec.div_ceil(10_000) * 10_000
}

/// A cpuset list ("0-2,5") as systemd's bitmask bytes (byte i holds CPUs 8i..8i+7).
pub(crate) fn cpu_mask(list: &str) -> Result<Vec<u8>, Error> {
    let invalid = || Error::InvalidResource {
        setting: "cpu.cpus/cpu.mems",
        value: list.to_owned(),
        reason: "expected a list such as 0-3,6",
    };
    let mut mask = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>(), b.parse::<usize>()),
            None => (part.parse::<usize>(), part.parse::<usize>()),
        };
        let (Ok(lo), Ok(hi)) = (lo, hi) else {
            return Err(invalid());
        };
        if lo > hi || hi >= 8192 {
            return Err(invalid());
        }
        for cpu in lo..=hi {
            if mask.len() <= cpu / 8 {
                mask.resize(cpu / 8 + 1, 0);
            }
            mask[cpu / 8] |= 1 << (cpu % 8);
        }
    }
    Ok(mask)
}

fn bytes(mask: Vec<u8>) -> Value {
    Value::Array("y".into(), mask.into_iter().map(Value::Byte).collect())
}

/// The properties for `r`. Invalid values were refused by `resources::validate` already;
/// what cannot be expressed is left to the files.
pub(crate) fn from_resources(r: &LinuxResources) -> Result<Vec<Value>, Error> {
    let mut p = Vec::new();
    if let Some(m) = r.memory() {
        let lim = m.limit().unwrap_or(0);
        if let Some(v) = limit(lim) {
            p.push(prop("MemoryMax", Value::U64(v)));
        }
        if let Some(v) = m.reservation().and_then(limit) {
            p.push(prop("MemoryLow", Value::U64(v)));
        }
        if let Some(swap) = m.swap().filter(|&s| s != 0) {
            let v2 = crate::resources::swap_to_v2(swap, lim)?;
            let value = if v2 < 0 {
                INFINITY
            } else {
                u64::try_from(v2).unwrap_or(0)
            };
            p.push(prop("MemorySwapMax", Value::U64(value)));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|&s| s != 0) {
            p.push(prop("CPUWeight", Value::U64(shares_to_weight(s))));
        }
        let quota = c.quota().filter(|&q| q != 0);
        let period = c.period().filter(|&p| p != 0);
        if let Some(per) = period {
            p.push(prop("CPUQuotaPeriodUSec", Value::U64(per)));
        }
        if quota.is_some() || period.is_some() {
            let q = quota.unwrap_or(-1);
            p.push(prop(
                "CPUQuotaPerSecUSec",
                Value::U64(quota_per_sec(q, period.unwrap_or(100_000))),
            ));
        }
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            p.push(prop("AllowedCPUs", bytes(cpu_mask(cpus)?)));
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            p.push(prop("AllowedMemoryNodes", bytes(cpu_mask(mems)?)));
        }
    }
    if let Some(pids) = r.pids() {
        let v = if pids.limit() > 0 {
            u64::try_from(pids.limit()).unwrap_or(INFINITY)
        } else {
            INFINITY
        };
        p.push(prop("TasksMax", Value::U64(v)));
    }
    if let Some(w) = r
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|&w| w != 0)
    {
        p.push(prop("IOWeight", Value::U64(blkio_weight_to_io_weight(w))));
    }
    if let Some(u) = r.unified() {
        let mut keys: Vec<&String> = u.keys().collect();
        keys.sort();
        for key in keys {
            let value = u[key].trim();
            let num = |v: &str| {
                if v == "max" {
                    Some(INFINITY)
                } else {
                    v.parse::<u64>().ok()
                }
            };
            let name = match key.as_str() {
                "memory.high" => "MemoryHigh",
                "memory.max" => "MemoryMax",
                "memory.low" => "MemoryLow",
                "memory.min" => "MemoryMin",
                "memory.swap.max" => "MemorySwapMax",
                "pids.max" => "TasksMax",
                "cpu.weight" => "CPUWeight",
                _ => continue,
            };
            if let Some(v) = num(value) {
                p.push(prop(name, Value::U64(v)));
            }
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(p: &[Value]) -> Vec<(String, Value)> {
        p.iter()
            .map(|v| match v {
                Value::Struct(f) => match (&f[0], &f[1]) {
                    (Value::Str(n), Value::Variant(v)) => (n.clone(), (**v).clone()),
                    _ => panic!("{v:?}"),
                },
                _ => panic!("{v:?}"),
            })
            .collect()
    }

    #[test]
    fn resources_become_properties() {
        let r: LinuxResources = serde_json::from_value(json!({
            "memory": {"limit": 67108864, "reservation": 33554432, "swap": 100663296},
            "cpu": {"shares": 512, "quota": 25000, "period": 100000, "cpus": "0-2,9"},
            "pids": {"limit": 42},
            "blockIO": {"weight": 300},
            "unified": {"memory.high": "50331648", "io.max": "8:0 rbps=1"}
        }))
        .unwrap();
        let p = names(&from_resources(&r).unwrap());
        let get = |n: &str| p.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get("MemoryMax"), Some(Value::U64(67108864)));
        assert_eq!(get("MemoryLow"), Some(Value::U64(33554432)));
        assert_eq!(get("MemorySwapMax"), Some(Value::U64(33554432)));
        assert_eq!(get("CPUWeight"), Some(Value::U64(20)));
        assert_eq!(get("CPUQuotaPerSecUSec"), Some(Value::U64(250_000)));
        assert_eq!(get("CPUQuotaPeriodUSec"), Some(Value::U64(100_000)));
        assert_eq!(
            get("AllowedCPUs"),
            Some(Value::Array(
                "y".into(),
                vec![Value::Byte(0b0000_0111), Value::Byte(0b0000_0010)]
            ))
        );
        assert_eq!(get("TasksMax"), Some(Value::U64(42)));
        assert_eq!(get("IOWeight"), Some(Value::U64(2930)));
        assert_eq!(get("MemoryHigh"), Some(Value::U64(50331648)));
        assert!(get("io.max").is_none());
    }

    #[test]
    fn unset_and_unlimited() {
        let r: LinuxResources = serde_json::from_value(json!({
            "memory": {"limit": -1}, "pids": {"limit": 0}, "cpu": {"shares": 0, "quota": -1}
        }))
        .unwrap();
        let p = names(&from_resources(&r).unwrap());
        assert!(p.contains(&("MemoryMax".into(), Value::U64(INFINITY))));
        assert!(p.contains(&("TasksMax".into(), Value::U64(INFINITY))));
        assert!(p.contains(&("CPUQuotaPerSecUSec".into(), Value::U64(INFINITY))));
        assert!(!p.iter().any(|(k, _)| k == "CPUWeight"));
    }

    #[test]
    fn quota_rounds_up_to_ten_milliseconds() {
        assert_eq!(quota_per_sec(1234, 100_000), 20_000);
        assert_eq!(quota_per_sec(50_000, 100_000), 500_000);
        assert_eq!(quota_per_sec(-1, 100_000), INFINITY);
        assert!(cpu_mask("3-1").is_err());
        assert!(cpu_mask("x").is_err());
        assert_eq!(cpu_mask("").unwrap(), Vec::<u8>::new());
    }
}
