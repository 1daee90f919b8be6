//! `events`: resource statistics and OOM notifications as JSON lines, shaped like runc's
//! (`{"type":"stats","id":..,"data":{..}}`, `{"type":"oom","id":..}`), one object per line,
//! flushed as written so a reader sees each event at once.
//!
//! OOM kills are noticed by polling the cgroup's OOM-kill counter (every 100 ms, or every
//! interval if shorter) rather than by v1 eventfd notifications: one code path for v1 and
//! v2, no thread, and the count cannot miss a kill that happened between two polls.

use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use hako_cgroups::{CgroupManager, Manager, Stats};
use serde::Serialize;

use crate::container::Container;
use crate::error::{Context, Error, Refusal, Result};
use crate::state::Status;

const OOM_POLL: Duration = Duration::from_millis(100);

/// With `stats`, print one stats event; otherwise print a stats event every `interval`
/// (a Go duration such as `5s`) and an oom event per OOM kill, until the container stops.
pub fn events(root: &Path, id: &str, interval: &str, stats: bool) -> Result<()> {
    let every = parse_duration(interval).map_err(|e| Error::Usage(format!("--interval: {e}")))?;
    if every.is_zero() {
        return Err(Error::Usage(format!(
            "--interval {interval}: must be greater than 0"
        )));
    }
    let c = Container::load(root, id)?;
    let status = c.status();
    if status == Status::Stopped {
        return Err(Refusal::EventsStopped(id.to_owned()).into());
    }
    let cg = c.cgroup().ok_or_else(|| {
        Error::Unsupported(format!(
            "cannot get events of container {id}: it has no cgroup"
        ))
    })?;
    let mut out = io::stdout().lock();
    let written = if stats {
        let s = cg.stats()?;
        emit(&mut out, &stats_event(id, &s))
    } else {
        watch(&c, &cg, every, &mut out)
    };
    match written {
        // The reader went away: nobody is left to tell.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context(|| "write events".into()),
    }
}

/// The streaming loop; returns when the container's init is gone.
fn watch(c: &Container, cg: &Manager, every: Duration, out: &mut impl Write) -> io::Result<()> {
    let id = &c.st.id;
    let mut ooms = cg.oom_kill_count().unwrap_or(0);
    let mut next_stats = Instant::now() + every;
    loop {
        let now = Instant::now();
        std::thread::sleep(
            next_stats
                .min(now + OOM_POLL)
                .saturating_duration_since(now),
        );
        let alive = c.st.init_alive();
        // Counted before the liveness verdict: a hog that took the init down is reported.
        if let Ok(n) = cg.oom_kill_count() {
            for _ in ooms..n {
                emit(out, &Event::oom(id))?;
            }
            ooms = ooms.max(n);
        }
        if !alive {
            return Ok(());
        }
        let now = Instant::now();
        if now >= next_stats {
            match cg.stats() {
                Ok(s) => emit(out, &stats_event(id, &s))?,
                // runc logs and keeps going: stats are best effort.
                Err(e) => tracing::warn!(error = %e, "cannot read stats"),
            }
            next_stats += every;
            if next_stats <= now {
                next_stats = now + every;
            }
        }
    }
}

/// runc's event object (`types.Event`), fields in runc's order.
#[derive(Debug, Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Stats>,
}

impl<'a> Event<'a> {
    fn oom(id: &'a str) -> Self {
        Event {
            kind: "oom",
            id,
            data: None,
        }
    }
}

fn stats_event<'a>(id: &'a str, s: &'a Stats) -> Event<'a> {
    Event {
        kind: "stats",
        id,
        data: Some(s),
    }
}

fn emit(out: &mut impl Write, event: &Event) -> io::Result<()> {
    serde_json::to_writer(&mut *out, event)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// A Go duration (`time.ParseDuration`, which runc's `--interval` uses): one or more
/// `<number><unit>` with units ns, us (µs), ms, s, m, h, as in `5s`, `100ms`, `1m30s`; a
/// bare `0` is zero.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {s:?} (expected e.g. 5s, 100ms, 1m30s)");
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (num, tail) = rest.split_at(num_end);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let nanos_per_unit = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        total += num.parse::<f64>().map_err(|_| invalid())? * nanos_per_unit;
        rest = tail;
    }
    if negative && total > 0.0 {
        return Err(format!("duration {s:?} is negative"));
    }
    Duration::try_from_secs_f64(total / 1e9).map_err(|_| format!("duration {s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration(".5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("250µs").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("10ns").unwrap(), Duration::from_nanos(10));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("+2s").unwrap(), Duration::from_secs(2));
    }

    #[test]
    fn bad_durations() {
        for bad in [
            "", "5", "s", "5x", "1.2.3s", "5 s", "-5s", "ms5", "1d", ".", "5S",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn event_shapes() {
        let stats = Stats::default();
        let s = serde_json::to_value(stats_event("c1", &stats)).unwrap();
        assert_eq!(s["type"], "stats");
        assert_eq!(s["id"], "c1");
        assert!(s["data"]["memory"]["usage"].is_object(), "{s}");
        let mut buf = Vec::new();
        emit(&mut buf, &Event::oom("c1")).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "{\"type\":\"oom\",\"id\":\"c1\"}\n"
        );
    }
}
