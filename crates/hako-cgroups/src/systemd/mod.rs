//! The systemd cgroup driver, as runc and crun have it: the container's cgroup is a
//! transient scope unit that systemd creates (over D-Bus) with the container's init in it,
//! `Delegate=yes` (the subtree below is ours), and the resources as unit properties; the
//! same resources are then written to the scope's cgroup files, and every other operation
//! (freeze, kill, stats) works on those files as on plain cgroup v2.
//!
//! ```text
//! create   connect to systemd (fails early and clearly when it is not running)
//! apply    before the scope exists: kept for the start; afterwards: SetUnitProperties + files
//! add_task first pid: StartTransientUnit(prefix-name.scope, PIDs=[pid], Slice=..., props)
//!          → wait for JobRemoved(job, "done") → write the files, attach the device program
//! destroy  freeze + kill + wait (files) → StopUnit → ResetFailedUnit → remove what is left
//! ```
//!
//! Which systemd: the system manager through `/run/systemd/private` (root), or the
//! caller's user manager through `$XDG_RUNTIME_DIR/systemd/private` (rootless); both are
//! peer-to-peer sockets that need no bus daemon.

mod bus;
mod props;
mod unit;
mod wire;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

pub use unit::{UnitPath, expand_slice};

use crate::error::Error;
use crate::v2::V2;
use bus::{Bus, BusError};
use wire::Value;

const DEST: &str = "org.freedesktop.systemd1";
const OBJECT: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long a job may take (systemd answers in milliseconds; a loaded TCG guest in seconds).
const JOB_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stop waits for the scope to be stopped before the delete goes on without it.
const STOP_PATIENCE: Duration = Duration::from_secs(10);
/// How long a stop waits for its `JobRemoved` before it asks for the unit's state.
const STOP_POLL: Duration = Duration::from_millis(250);

/// Which systemd instance manages the scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instance {
    /// PID 1, for root.
    System,
    /// The caller's `systemd --user`, for rootless containers.
    User,
}

impl Instance {
    fn name(self) -> &'static str {
        match self {
            Instance::System => "system",
            Instance::User => "user",
        }
    }

    /// The default slice when cgroupsPath leaves it empty.
    pub fn default_slice(self) -> &'static str {
        match self {
            Instance::System => "system.slice",
            Instance::User => "user.slice",
        }
    }
}

impl Instance {
    /// The instance for this process: the system manager for root in the initial user
    /// namespace; the user's own manager otherwise (rootless, also when root inside a
    /// user namespace of the user's, as runc's rootless mode decides).
    pub fn for_caller() -> Instance {
        if nix::unistd::geteuid().is_root() && hako_sys::userns::in_initial() {
            Instance::System
        } else {
            Instance::User
        }
    }
}

/// The controllers the caller's user manager can hand to the scopes it makes (those
/// `user@.service` is delegated, from its `cgroup.controllers`), or why there are none:
/// no user manager (`XDG_RUNTIME_DIR/systemd/private`), or not pure cgroup v2.
pub fn user_controllers() -> Result<Vec<String>, Error> {
    // Asked once per process (the engine asks when it picks its driver and again at each
    // create): each answer is a D-Bus round trip to the user's manager.
    static KNOWN: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    if let Some(c) = KNOWN.get() {
        return Ok(c.clone());
    }
    let c = ask_user_controllers()?;
    Ok(KNOWN.get_or_init(|| c).clone())
}

fn ask_user_controllers() -> Result<Vec<String>, Error> {
    let mounts = crate::mounts::host_mounts()?;
    let (crate::Layout::V2, Some((mount, _))) = (mounts.layout()?, mounts.unified) else {
        return Err(Error::SystemdNeedsV2);
    };
    let root = user_manager_root()?;
    let file = mount
        .join(root.trim_start_matches('/'))
        .join("cgroup.controllers");
    let text = std::fs::read_to_string(&file).map_err(|e| Error::SystemdNotRunning {
        what: format!("cannot read {}: {e}", file.display()),
    })?;
    Ok(text.split_whitespace().map(str::to_owned).collect())
}

/// True when systemd runs as PID 1 (sd_booted()'s test).
pub fn booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// True when the caller's user manager has its socket (`$XDG_RUNTIME_DIR/systemd/private`):
/// a rootless caller's scopes can be made by it.
pub fn user_manager_running() -> bool {
    socket(Instance::User).is_ok()
}

/// The private socket of `instance`, if it exists.
fn socket(instance: Instance) -> Result<PathBuf, Error> {
    let path = match instance {
        Instance::System => {
            if !booted() {
                return Err(Error::SystemdNotRunning {
                    what: "systemd is not PID 1 on this host (no /run/systemd/system)".into(),
                });
            }
            PathBuf::from("/run/systemd/private")
        }
        Instance::User => {
            let dir = std::env::var_os("XDG_RUNTIME_DIR").ok_or(Error::SystemdNotRunning {
                what: "XDG_RUNTIME_DIR is not set, so there is no user manager to ask".into(),
            })?;
            Path::new(&dir).join("systemd/private")
        }
    };
    if !path.exists() {
        return Err(Error::SystemdNotRunning {
            what: format!(
                "the {} manager's socket {} is missing",
                instance.name(),
                path.display()
            ),
        });
    }
    Ok(path)
}

fn remote(what: &str, e: BusError) -> Error {
    Error::Systemd {
        what: what.to_owned(),
        message: e.to_string(),
    }
}

/// The systemd half of a [`crate::Manager`].
#[derive(Debug)]
pub(crate) struct Systemd {
    pub(crate) instance: Instance,
    pub(crate) unit: String,
    pub(crate) slice: String,
    /// The scope's cgroup, in the unified hierarchy.
    pub(crate) v2: V2,
    /// Resources given before the scope existed, applied when it starts.
    stash: Mutex<Option<LinuxResources>>,
    bus: Mutex<Option<Bus>>,
}

impl Systemd {
    /// For a new container: `cgroups_path` in `slice:prefix:name` form (empty or missing:
    /// `<default slice>:hako:<id>`), placed below the manager's root cgroup `root`.
    pub(crate) fn new(
        mount: PathBuf,
        cgroups_path: Option<&str>,
        id: &str,
        instance: Instance,
    ) -> Result<Systemd, Error> {
        let given = cgroups_path.filter(|p| !p.is_empty()).map_or_else(
            || format!("{}:hako:{id}", instance.default_slice()),
            str::to_owned,
        );
        let unit = UnitPath::parse(&given, instance.default_slice())?;
        let root = match instance {
            Instance::System => String::new(),
            Instance::User => user_manager_root()?,
        };
        let resolved = format!("{root}{}", unit.cgroup());
        Ok(Systemd::build(
            mount, instance, unit.slice, unit.unit, resolved,
        ))
    }

    /// From [`Systemd::saved`]: `systemd:<instance>:<cgroup path>`; the unit is the last
    /// path component, its slice the one before (the root slice if there is none).
    pub(crate) fn from_saved(mount: PathBuf, saved: &str) -> Option<Result<Systemd, Error>> {
        let rest = saved.strip_prefix("systemd:")?;
        let parsed = (|| {
            let (inst, path) = rest.split_once(':')?;
            let instance = match inst {
                "system" => Instance::System,
                "user" => Instance::User,
                _ => return None,
            };
            let mut parts = path.rsplit('/');
            let unit = parts.next().filter(|u| u.ends_with(".scope"))?.to_owned();
            let slice = parts
                .next()
                .filter(|s| s.ends_with(".slice"))
                .unwrap_or("-.slice")
                .to_owned();
            crate::path::validate_resolved(path).ok()?;
            Some(Systemd::build(
                mount,
                instance,
                slice,
                unit,
                path.to_owned(),
            ))
        })();
        Some(parsed.ok_or_else(|| Error::InvalidPath {
            path: saved.to_owned(),
            reason: "not a saved systemd scope (systemd:system|user:/path/name.scope)",
        }))
    }

    fn build(
        mount: PathBuf,
        instance: Instance,
        slice: String,
        unit: String,
        resolved: String,
    ) -> Systemd {
        Systemd {
            instance,
            unit,
            slice,
            v2: V2 { mount, resolved },
            stash: Mutex::new(None),
            bus: Mutex::new(None),
        }
    }

    pub(crate) fn saved(&self) -> String {
        format!("systemd:{}:{}", self.instance.name(), self.v2.resolved)
    }

    /// Runs `f` on the (lazily opened) connection.
    fn with_bus<T>(&self, f: impl FnOnce(&mut Bus) -> Result<T, Error>) -> Result<T, Error> {
        let mut guard = self.bus.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            let path = socket(self.instance)?;
            let b = Bus::connect(&path, false).map_err(|e| {
                remote(
                    &format!("connect to the {} manager", self.instance.name()),
                    e,
                )
            })?;
            *guard = Some(b);
        }
        f(guard.as_mut().expect("connected above"))
    }

    /// Checks that systemd answers, before anything is made.
    pub(crate) fn create(&self) -> Result<(), Error> {
        self.with_bus(|_| Ok(()))
    }

    pub(crate) fn exists(&self) -> bool {
        self.v2.dir().is_dir()
    }

    /// Before the scope exists: remember `r` for its start. Afterwards: unit properties,
    /// then the files.
    pub(crate) fn apply(&self, r: &LinuxResources) -> Result<bool, Error> {
        if !self.exists() {
            let mut stash = self.stash.lock().unwrap_or_else(PoisonError::into_inner);
            *stash = Some(r.clone());
            return Ok(false);
        }
        let props = props::from_resources(r)?;
        if !props.is_empty() {
            let unit = self.unit.clone();
            self.with_bus(|b| {
                b.call(
                    DEST,
                    OBJECT,
                    MANAGER,
                    "SetUnitProperties",
                    &[
                        Value::Str(unit.clone()),
                        Value::Bool(true),
                        Value::Array("(sv)".into(), props),
                    ],
                )
                .map_err(|e| remote(&format!("set properties of {unit}"), e))
            })?;
        }
        Ok(true)
    }

    /// Starts the scope with `pid` in it; returns the resources to write to its files.
    pub(crate) fn start(&self, pid: i32) -> Result<Option<LinuxResources>, Error> {
        let stash = self
            .stash
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut p = vec![
            prop(
                "Description",
                Value::Str(format!("hako container {}", self.unit)),
            ),
            prop("Slice", Value::Str(self.slice.clone())),
            prop("Delegate", Value::Bool(true)),
            prop("DefaultDependencies", Value::Bool(false)),
            prop(
                "PIDs",
                Value::Array(
                    "u".into(),
                    vec![Value::U32(u32::try_from(pid).unwrap_or_default())],
                ),
            ),
            prop("MemoryAccounting", Value::Bool(true)),
            prop("CPUAccounting", Value::Bool(true)),
            prop("IOAccounting", Value::Bool(true)),
            prop("TasksAccounting", Value::Bool(true)),
        ];
        if let Some(r) = &stash {
            p.extend(props::from_resources(r)?);
        }
        let unit = self.unit.clone();
        self.with_bus(|b| {
            let start = |b: &mut Bus| {
                b.call(
                    DEST,
                    OBJECT,
                    MANAGER,
                    "StartTransientUnit",
                    &[
                        Value::Str(unit.clone()),
                        Value::Str("replace".into()),
                        Value::Array("(sv)".into(), p.clone()),
                        Value::Array("(sa(sv))".into(), Vec::new()),
                    ],
                )
            };
            let reply = match start(b) {
                // A failed unit of the same name stays loaded until reset (an earlier
                // container OOM-killed, say): reset it and try once more, as runc does.
                Err(BusError::Remote { name, .. })
                    if name == "org.freedesktop.systemd1.UnitExists" =>
                {
                    reset_failed(b, &unit);
                    start(b)
                }
                r => r,
            }
            .map_err(|e| remote(&format!("start unit {unit}"), e))?;
            let job = reply
                .first()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            wait_job(b, &job, &unit)
        })?;
        Ok(stash)
    }

    /// Stops the scope (systemd kills what is left and removes the cgroup) and forgets a
    /// failed state. A unit that is already gone is fine.
    pub(crate) fn stop(&self) -> Result<(), Error> {
        let unit = self.unit.clone();
        let res = self.with_bus(|b| {
            match b.call(
                DEST,
                OBJECT,
                MANAGER,
                "StopUnit",
                &[Value::Str(unit.clone()), Value::Str("replace".into())],
            ) {
                Ok(reply) => {
                    let job = reply
                        .first()
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    // The job's result does not matter: stopped is stopped.
                    wait_stopped(b, &job, &unit);
                }
                Err(BusError::Remote { name, .. })
                    if name == "org.freedesktop.systemd1.NoSuchUnit" => {}
                Err(e) => return Err(remote(&format!("stop unit {unit}"), e)),
            }
            reset_failed(b, &unit);
            Ok(())
        });
        match res {
            // Without systemd there is no unit to stop; the files are removed anyway.
            Err(Error::SystemdNotRunning { .. }) => Ok(()),
            r => r,
        }
    }
}

fn prop(name: &str, v: Value) -> Value {
    Value::Struct(vec![Value::Str(name.into()), Value::Variant(Box::new(v))])
}

fn reset_failed(b: &mut Bus, unit: &str) {
    let _ = b.call(
        DEST,
        OBJECT,
        MANAGER,
        "ResetFailedUnit",
        &[Value::Str(unit.to_owned())],
    );
}

/// Waits for `JobRemoved(id, job, unit, result)` of `job`; anything but "done" fails.
fn wait_job(b: &mut Bus, job: &str, unit: &str) -> Result<(), Error> {
    let body = b
        .wait_signal(MANAGER, "JobRemoved", JOB_TIMEOUT, |body| {
            body.get(1).and_then(Value::as_str) == Some(job)
        })
        .map_err(|e| remote(&format!("wait for the job of {unit}"), e))?;
    let result = body.get(3).and_then(Value::as_str).unwrap_or_default();
    if result == "done" {
        Ok(())
    } else {
        Err(Error::Systemd {
            what: format!("start unit {unit}"),
            message: format!("the job ended with result {result:?} (see journalctl -u {unit})"),
        })
    }
}

/// Waits until the stop `job` of `unit` is over: its `JobRemoved`, or the unit seen
/// inactive, failed or unloaded when asked between short waits (a signal missed for any
/// reason costs a quarter second, not the job timeout). Never fails: a delete goes on
/// after [`STOP_PATIENCE`], and the files are removed after it either way.
fn wait_stopped(b: &mut Bus, job: &str, unit: &str) {
    let deadline = Instant::now() + STOP_PATIENCE;
    loop {
        match b.wait_signal(MANAGER, "JobRemoved", STOP_POLL, |body| {
            body.get(1).and_then(Value::as_str) == Some(job)
        }) {
            Ok(_) => return,
            Err(BusError::Timeout(_)) => {}
            Err(e) => {
                tracing::debug!(unit, error = %e, "waiting for the stop job");
                return;
            }
        }
        match active_state(b, unit) {
            Ok(None) => return,
            Ok(Some(state)) if state == "inactive" || state == "failed" => return,
            Ok(Some(state)) => tracing::debug!(unit, state, "the scope is still stopping"),
            Err(e) => {
                tracing::debug!(unit, error = %e, "asking for the scope's state");
                return;
            }
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                unit,
                "systemd did not finish stopping {unit} within {} s; going on",
                STOP_PATIENCE.as_secs()
            );
            return;
        }
    }
}

/// The `ActiveState` of `unit`, or None when systemd has no such unit loaded.
fn active_state(b: &mut Bus, unit: &str) -> Result<Option<String>, BusError> {
    let path = match b.call(
        DEST,
        OBJECT,
        MANAGER,
        "GetUnit",
        &[Value::Str(unit.to_owned())],
    ) {
        Ok(reply) => reply
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        Err(BusError::Remote { name, .. }) if name == "org.freedesktop.systemd1.NoSuchUnit" => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let reply = b.call(
        DEST,
        &path,
        "org.freedesktop.DBus.Properties",
        "Get",
        &[
            Value::Str("org.freedesktop.systemd1.Unit".into()),
            Value::Str("ActiveState".into()),
        ],
    )?;
    Ok(reply.first().and_then(Value::as_str).map(str::to_owned))
}

/// The cgroup of the caller's user manager (`/user.slice/user-1000.slice/user@1000.service`),
/// which holds the user's slices and scopes.
fn user_manager_root() -> Result<String, Error> {
    let path = socket(Instance::User)?;
    let mut b = Bus::connect(&path, false).map_err(|e| remote("connect to the user manager", e))?;
    let reply = b
        .call(
            DEST,
            OBJECT,
            "org.freedesktop.DBus.Properties",
            "Get",
            &[
                Value::Str(MANAGER.into()),
                Value::Str("ControlGroup".into()),
            ],
        )
        .map_err(|e| remote("ask the user manager for its cgroup", e))?;
    let root = reply
        .first()
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_forms_round_trip() {
        let s = Systemd::new(
            "/sys/fs/cgroup".into(),
            Some("machine-hako.slice:hako:c1"),
            "c1",
            Instance::System,
        )
        .unwrap();
        assert_eq!(
            s.saved(),
            "systemd:system:/machine.slice/machine-hako.slice/hako-c1.scope"
        );
        let back = Systemd::from_saved("/sys/fs/cgroup".into(), &s.saved())
            .unwrap()
            .unwrap();
        assert_eq!(
            (back.unit.as_str(), back.slice.as_str()),
            ("hako-c1.scope", "machine-hako.slice")
        );
        assert!(Systemd::from_saved("/x".into(), "/plain/path").is_none());
        assert!(
            Systemd::from_saved("/x".into(), "systemd:system:/a/../b.scope")
                .unwrap()
                .is_err()
        );
        assert!(
            Systemd::from_saved("/x".into(), "systemd:other:/a.slice/b.scope")
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn default_path_is_the_slice_hako_and_the_id() {
        let s = Systemd::new("/sys/fs/cgroup".into(), None, "abc", Instance::System).unwrap();
        assert_eq!(s.v2.resolved, "/system.slice/hako-abc.scope");
    }
}
