//! Seeing that the container was OOM-killed, on cgroup v2, even when its cgroup is gone.
//!
//! The kernel counts an OOM kill in the cgroup's `memory.events` (`oom_kill N`) before the
//! victim dies. Under systemd the count is short-lived: the scope's cgroup is removed as
//! soon as its last process exits, often before the shim has reaped the init, and the
//! change notification (POLLPRI) can wait 10 ms behind an earlier one and is dropped with
//! the cgroup. Three witnesses, the first that knows wins:
//!
//! 1. the container's own `memory.events`, watched while it runs and read at the exit;
//! 2. for a systemd scope, the kernel log from the run's start (see [`crate::kmsg`]), where
//!    the shim may read it (not in a user namespace: rootless);
//! 3. otherwise the count of the cgroup's parent (the slice), which outlives the container
//!    and counts its children's kills too: the shim notes the parent's count each time it
//!    reads the container's own (when either changes), so a parent count grown since then,
//!    at a SIGKILL exit whose own cgroup is gone, is this container's kill. (A sibling
//!    OOM-killed in the same instant as a container dying of another SIGKILL would be
//!    counted for both: the one case it cannot tell apart.)

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use crate::kmsg::KernelLog;

/// How an OOM kill of the run was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// In the container's own memory.events.
    Counted,
    /// In the kernel log (the scope's cgroup was gone).
    KernelLog,
    /// In the parent's count (the cgroup was gone).
    Parent,
}

/// The witnesses of one run of the container.
#[derive(Debug)]
pub(crate) struct OomWatch {
    /// The container's memory.events; `None` once it is gone (kernfs would report POLLPRI
    /// forever).
    own: Option<File>,
    /// The parent cgroup's memory.events.
    parent: Option<File>,
    /// The parent's count read right before the last good read of `own`.
    parent_base: Option<u64>,
    /// `own` counted a kill during this run.
    counted: bool,
    /// The container's cgroup (`/system.slice/hako-x.scope`) and the kernel log since the
    /// run's start, for a systemd scope where the log can be read.
    log: Option<(String, KernelLog)>,
}

impl OomWatch {
    /// For the run whose init is `pid`: its cgroup as `/proc/PID/cgroup` names it (right for
    /// any driver and for a user's manager), else the first of `files` (the shim's guess
    /// from the bundle) that is a v2 memory.events.
    pub(crate) fn open(pid: i32, files: &[PathBuf]) -> Option<OomWatch> {
        let path = events_of_pid(pid)
            .into_iter()
            .chain(
                files
                    .iter()
                    .filter(|p| p.ends_with("memory.events"))
                    .cloned(),
            )
            .find(|p| p.is_file())?;
        let own = File::open(&path).ok()?;
        let dir = path.parent()?;
        let cgroup = format!("/{}", dir.strip_prefix("/sys/fs/cgroup").ok()?.to_str()?);
        // The root cgroup has no memory.events: no parent then.
        let parent = dir
            .parent()
            .filter(|p| p.starts_with("/sys/fs/cgroup"))
            .and_then(|p| File::open(p.join("memory.events")).ok());
        let log = if cgroup.ends_with(".scope") {
            KernelLog::open().map(|l| (cgroup, l))
        } else {
            None
        };
        let mut watch = OomWatch {
            own: Some(own),
            parent,
            parent_base: None,
            counted: false,
            log,
        };
        watch.check();
        Some(watch)
    }

    /// The descriptors to poll for POLLPRI (a change of either count).
    pub(crate) fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.own
            .iter()
            .chain(self.parent.iter())
            .map(AsFd::as_fd)
            .collect()
    }

    /// A count changed (or the run ended): the parent's first, then the container's own.
    pub(crate) fn check(&mut self) {
        let parent = match self.parent.as_mut().map(read_count) {
            Some(Some(n)) => Some(n),
            Some(None) => {
                self.parent = None;
                None
            }
            None => None,
        };
        if let Some(own) = self.own.as_mut() {
            match read_count(own) {
                Some(n) => {
                    self.counted |= n > 0;
                    if parent.is_some() {
                        self.parent_base = parent;
                    }
                }
                None => self.own = None,
            }
        }
    }

    /// At the exit of the init `pid` (killed by `signal`, if any): was the run OOM-killed?
    pub(crate) fn at_exit(&mut self, pid: i32, signal: Option<i32>) -> Option<Seen> {
        self.check();
        if self.counted {
            return Some(Seen::Counted);
        }
        // An OOM kill is a SIGKILL; with the cgroup still there its count said no.
        if signal != Some(libc::SIGKILL) || self.own.is_some() {
            return None;
        }
        if let Some((cgroup, log)) = self.log.as_mut() {
            return log.oom_kill_since(cgroup, pid).then_some(Seen::KernelLog);
        }
        let now = self.parent.as_mut().and_then(read_count)?;
        grew(self.parent_base, now).then_some(Seen::Parent)
    }
}

/// The parent's count `now` is past the one noted with the last good read of our own.
fn grew(base: Option<u64>, now: u64) -> bool {
    base.is_some_and(|b| now > b)
}

/// `/sys/fs/cgroup/<path>/memory.events` for the v2 line (`0::/path`) of `/proc/PID/cgroup`.
fn events_of_pid(pid: i32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    events_of(&text)
}

fn events_of(proc_cgroup: &str) -> Option<PathBuf> {
    let path = proc_cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let rel = path.trim().trim_start_matches('/');
    // A cgroup outside our namespace's root shows as "/../..": not ours to read.
    if rel.split('/').any(|c| c == "..") {
        return None;
    }
    Some(Path::new("/sys/fs/cgroup").join(rel).join("memory.events"))
}

/// The `oom_kill N` value of the file, read again from the start; `None` on a read error
/// (the cgroup is gone).
fn read_count(f: &mut File) -> Option<u64> {
    let mut text = String::new();
    f.seek(SeekFrom::Start(0)).ok()?;
    f.read_to_string(&mut text).ok()?;
    Some(oom_kills(&text))
}

/// The `oom_kill N` line's N (v2 memory.events, v1 memory.oom_control); 0 without one.
pub(crate) fn oom_kills(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v2_line_names_the_events_file() {
        assert_eq!(
            events_of(
                "0::/user.slice/user-1000.slice/user@1000.service/user.slice/hako-ab.scope\n"
            ),
            Some(PathBuf::from(
                "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/user.slice/hako-ab.scope/memory.events"
            ))
        );
        assert_eq!(
            events_of("12:memory:/hako/ab\n0::/hako/ab\n"),
            Some(PathBuf::from("/sys/fs/cgroup/hako/ab/memory.events"))
        );
        assert_eq!(events_of("0::/../../elsewhere\n"), None);
        assert_eq!(events_of("4:pids:/x\n"), None);
    }

    /// The parent's count alone decides, for real: the run's cgroup (no systemd scope, so no
    /// kernel log witness) is removed before its exit is looked at, as systemd removes an
    /// emptied scope before the shim reaps. An OOM-killed run is `Seen::Parent`; a run
    /// killed by hand, with the parent's count unchanged, is no OOM. Needs root and cgroup
    /// v2's memory controller: the VM guests (`vm_`: the host run leaves it out).
    #[test]
    fn vm_the_parents_count_decides_once_the_cgroup_is_gone() {
        use std::io::Write;
        use std::os::unix::process::ExitStatusExt;
        let root = Path::new("/sys/fs/cgroup");
        let controllers = std::fs::read_to_string(root.join("cgroup.subtree_control"));
        assert!(
            controllers.is_ok_and(|c| c.split_whitespace().any(|x| x == "memory")),
            "needs cgroup v2 with the memory controller (scripts/vm/test.sh v2)"
        );
        let parent = root.join(format!("hako-oom-parent-{}", std::process::id()));
        std::fs::create_dir(&parent).expect("parent cgroup");
        std::fs::write(parent.join("cgroup.subtree_control"), "+memory").expect("+memory");
        let mut seen = Vec::new();
        for (case, oom) in [("killed", false), ("oom", true)] {
            let dir = parent.join(case);
            std::fs::create_dir(&dir).expect("cgroup");
            for (file, value) in [("memory.max", "16777216"), ("memory.swap.max", "0")] {
                let path = dir.join(file);
                if path.exists() {
                    std::fs::write(&path, value).expect(file);
                }
            }
            // The run's init joins the cgroup, then waits for a line before the memory hog.
            let mut child = std::process::Command::new("sh")
                .args([
                    "-c",
                    &format!(
                        "echo $$ > {}/cgroup.procs && read go && exec dd if=/dev/zero of=/dev/null bs=64M count=1",
                        dir.display()
                    ),
                ])
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("sh");
            let pid = i32::try_from(child.id()).expect("pid");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while events_of_pid(pid) != Some(dir.join("memory.events")) {
                assert!(std::time::Instant::now() < deadline, "{case}: never joined");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let mut watch = OomWatch::open(pid, &[]).expect("the watch");
            assert!(watch.log.is_none(), "no kernel log witness for a non-scope");
            if oom {
                writeln!(child.stdin.take().expect("stdin")).expect("go");
            } else {
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .expect("kill");
            }
            let status = child.wait().expect("wait");
            assert_eq!(status.signal(), Some(libc::SIGKILL), "{case}: {status:?}");
            let mut removed = std::fs::remove_dir(&dir);
            for _ in 0..100 {
                if removed.is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
                removed = std::fs::remove_dir(&dir);
            }
            removed.unwrap_or_else(|e| panic!("rmdir {}: {e}", dir.display()));
            seen.push(watch.at_exit(pid, Some(libc::SIGKILL)));
            assert!(
                watch.own.is_none(),
                "{case}: the own count was still readable"
            );
        }
        std::fs::remove_dir(&parent).expect("rmdir the parent");
        assert_eq!(seen, [None, Some(Seen::Parent)]);
    }

    #[test]
    fn counts_and_the_parents_growth() {
        let events = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(oom_kills(events), 1);
        assert_eq!(oom_kills("max 3\n"), 0);
        assert!(grew(Some(4), 5));
        assert!(!grew(Some(5), 5));
        // Never read together with our own count: no base, no guess.
        assert!(!grew(None, 9));
    }
}
