//! Freezing: v1 freezer.state and v2 cgroup.freeze / cgroup.events.
//!
//! Freezing is asynchronous in both versions: the write starts it, and the state says
//! when every task has stopped. A task forking at the wrong moment can keep a v1
//! cgroup in FREEZING, so like runc we write FROZEN again while we wait.

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::FreezerState;
use crate::error::Error;
use crate::fs;

const TIMEOUT: Duration = Duration::from_secs(2);

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Polls `done` with a growing pause (1 ms up to 50 ms) until it is true or time is up.
fn poll(mut done: impl FnMut() -> Result<bool, Error>) -> Result<bool, Error> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if done()? {
            return Ok(true);
        }
        if start.elapsed() >= TIMEOUT {
            return Ok(false);
        }
        sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

pub(crate) fn v1_state(dir: &Path) -> Result<FreezerState, Error> {
    let s = fs::read(dir, "freezer.state")?;
    match s.as_str() {
        "THAWED" => Ok(FreezerState::Thawed),
        "FREEZING" => Ok(FreezerState::Freezing),
        "FROZEN" => Ok(FreezerState::Frozen),
        _ => Err(Error::Parse {
            file: "freezer.state".into(),
            dir: dir.to_owned(),
            content: s,
        }),
    }
}

pub(crate) fn v1_freeze(dir: &Path) -> Result<(), Error> {
    let frozen = poll(|| {
        fs::write(dir, "freezer.state", "FROZEN")?;
        Ok(v1_state(dir)? == FreezerState::Frozen)
    })?;
    if frozen {
        return Ok(());
    }
    fs::write(dir, "freezer.state", "THAWED")?;
    Err(Error::FreezeTimeout {
        dir: dir.to_owned(),
        millis: millis(TIMEOUT),
    })
}

pub(crate) fn v1_thaw(dir: &Path) -> Result<(), Error> {
    fs::write(dir, "freezer.state", "THAWED")
}

pub(crate) fn v2_state(dir: &Path) -> Result<FreezerState, Error> {
    let Some(want) = fs::read_optional(dir, "cgroup.freeze")? else {
        // Either the cgroup is gone or the kernel predates the v2 freezer (5.2).
        if dir.exists() {
            return Err(fs::unsupported(dir, "freezer", "cgroup.freeze"));
        }
        return fs::read(dir, "cgroup.freeze").map(|_| FreezerState::Thawed);
    };
    if want.trim() != "1" {
        return Ok(FreezerState::Thawed);
    }
    let events = fs::read_flat_keyed(dir, "cgroup.events")?;
    Ok(if events.get("frozen") == Some(&1) {
        FreezerState::Frozen
    } else {
        FreezerState::Freezing
    })
}

pub(crate) fn v2_set(dir: &Path, freeze: bool) -> Result<(), Error> {
    fs::write_setting(
        dir,
        "freezer",
        "cgroup.freeze",
        if freeze { "1" } else { "0" },
    )?;
    let reached = poll(|| {
        let frozen = fs::read_flat_keyed(dir, "cgroup.events")?.get("frozen") == Some(&1);
        Ok(frozen == freeze)
    })?;
    if reached {
        return Ok(());
    }
    if freeze {
        fs::write(dir, "cgroup.freeze", "0")?;
    }
    Err(Error::FreezeTimeout {
        dir: dir.to_owned(),
        millis: millis(TIMEOUT),
    })
}
