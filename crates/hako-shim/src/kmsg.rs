//! The kernel log as the record of an OOM kill whose cgroup is gone.
//!
//! A systemd scope's cgroup is removed by systemd as soon as its last process exits. When
//! that process (the init, typically) was OOM-killed, the count in the scope's
//! memory.events lives only until then: the kernel's change notification can wait up to
//! 10 ms behind an earlier one (cgroup_file_notify's rate limit) and is dropped with the
//! cgroup, and systemd, woken by the same exit, often removes the cgroup before the shim
//! has reaped the init and read the file. The kernel log keeps it: the OOM killer writes
//! its records before the victim dies.
//!
//! ```text
//!   oom-kill:constraint=CONSTRAINT_MEMCG,...,oom_memcg=/system.slice/hako-x.scope,
//!       task_memcg=/system.slice/hako-x.scope,task=dd,pid=4242,uid=0
//!   Memory cgroup out of memory: Killed process 4242 (dd) total-vm:65768kB, ...
//! ```
//!
//! The shim opens `/dev/kmsg` when it creates the container and seeks to its end: reading
//! that descriptor at the exit yields exactly the records logged since. (The first record
//! is rate limited by the kernel, ten per five seconds machine-wide; the second is not.)

use std::fs;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

/// Records read at most per look (the ring holds a few thousand at most).
const MAX_RECORDS: usize = 100_000;

/// A position in the kernel log.
#[derive(Debug)]
pub(crate) struct KernelLog {
    file: fs::File,
}

impl KernelLog {
    /// From now on; `None` where the log cannot be read (no CAP_SYSLOG, e.g. rootless).
    pub(crate) fn open() -> Option<KernelLog> {
        let mut file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/kmsg")
            .ok()?;
        file.seek(SeekFrom::End(0)).ok()?;
        Some(KernelLog { file })
    }

    /// Whether a record logged since [`KernelLog::open`] (or the last call) tells of an OOM
    /// kill in `cgroup` or below it, or of the OOM kill of process `pid`.
    pub(crate) fn oom_kill_since(&mut self, cgroup: &str, pid: i32) -> bool {
        let mut buf = vec![0u8; 16 * 1024];
        let mut found = false;
        for _ in 0..MAX_RECORDS {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let record = String::from_utf8_lossy(&buf[..n]);
                    found |= tells_oom_kill(message(&record), cgroup, pid);
                }
                // Records overwritten before we read them: the next read goes on with the
                // oldest one left.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        found
    }
}

/// The text of one `/dev/kmsg` record: `PRIO,SEQ,USEC,FLAGS;TEXT\n[ KEY=VALUE\n]...`.
fn message(record: &str) -> &str {
    let text = record.split_once(';').map_or("", |(_, t)| t);
    text.split('\n').next().unwrap_or_default()
}

/// An OOM kill of a task in `cgroup` (or a cgroup below it), or of process `pid`.
fn tells_oom_kill(msg: &str, cgroup: &str, pid: i32) -> bool {
    if let Some(summary) = msg.strip_prefix("oom-kill:") {
        let task_memcg = summary
            .split(',')
            .find_map(|field| field.strip_prefix("task_memcg="));
        return task_memcg.is_some_and(|m| {
            m == cgroup || m.strip_prefix(cgroup).is_some_and(|r| r.starts_with('/'))
        });
    }
    msg.split_once(": Killed process ")
        .and_then(|(_, rest)| rest.split_once(' '))
        .is_some_and(|(n, _)| n.parse() == Ok(pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &str = "6,1541,81542350,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),\
cpuset=hako-ab.scope,mems_allowed=0,oom_memcg=/system.slice/hako-ab.scope,\
task_memcg=/system.slice/hako-ab.scope,task=dd,pid=4242,uid=0\n";
    const KILLED: &str = "3,1542,81542371,-;Memory cgroup out of memory: Killed process 4242 (dd) \
total-vm:65768kB, anon-rss:16012kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:84kB \
oom_score_adj:0\n SUBSYSTEM=memory\n";

    #[test]
    fn the_summary_names_the_cgroup_and_the_kill_names_the_pid() {
        let cg = "/system.slice/hako-ab.scope";
        assert!(tells_oom_kill(message(SUMMARY), cg, 1));
        assert!(tells_oom_kill(message(SUMMARY), "/system.slice", 1));
        assert!(!tells_oom_kill(message(SUMMARY), "/system.slice/hako-a", 1));
        assert!(!tells_oom_kill(
            message(SUMMARY),
            "/system.slice/hako-abc.scope",
            4242
        ));
        assert!(tells_oom_kill(message(KILLED), "/other", 4242));
        assert!(!tells_oom_kill(message(KILLED), cg, 424));
        assert!(!tells_oom_kill(
            message("6,1,2,-;eth0: link up\n"),
            cg,
            4242
        ));
        assert!(!tells_oom_kill(message("garbage"), cg, 4242));
    }

    /// A memory hog OOM-killed in a cgroup of its own, on this kernel: the log read from
    /// before its start tells of it, by its cgroup and by its pid; a log opened after does
    /// not. (The memory cgroup of the host: v1's memory hierarchy, or v2.)
    #[test]
    fn a_real_oom_kill_is_found_in_the_kernel_log() {
        if !hako_test_support::is_root() {
            assert!(!hako_test_support::in_ci(), "CI runs the tests as root");
            eprintln!("SKIP: needs root");
            return;
        }
        let v1 = std::path::Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists();
        let mount = if v1 {
            "/sys/fs/cgroup/memory"
        } else {
            "/sys/fs/cgroup"
        };
        let name = format!("/hako-kmsg-test-{}", std::process::id());
        let dir = format!("{mount}{name}");
        let mut log = KernelLog::open().expect("/dev/kmsg as root");
        fs::create_dir(&dir).expect("memory cgroup");
        let limits: &[(&str, &str)] = if v1 {
            &[
                ("memory.limit_in_bytes", "16777216"),
                ("memory.memsw.limit_in_bytes", "16777216"),
            ]
        } else {
            &[("memory.max", "16777216"), ("memory.swap.max", "0")]
        };
        for (file, value) in limits {
            let path = format!("{dir}/{file}");
            if std::path::Path::new(&path).exists() {
                fs::write(&path, value).unwrap_or_else(|e| panic!("{path}: {e}"));
            }
        }
        let child = std::process::Command::new("sh")
            .args([
                "-c",
                &format!(
                    "echo $$ > {dir}/cgroup.procs && exec dd if=/dev/zero of=/dev/null bs=64M count=1"
                ),
            ])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sh");
        let pid = i32::try_from(child.id()).expect("pid");
        let status = child.wait_with_output().expect("wait").status;
        let mut removed = fs::remove_dir(&dir);
        for _ in 0..50 {
            if removed.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            removed = fs::remove_dir(&dir);
        }
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        assert!(
            log.oom_kill_since(&name, pid),
            "no OOM kill of {name} or {pid} logged"
        );
        let mut after = KernelLog::open().expect("/dev/kmsg");
        assert!(
            !after.oom_kill_since(&name, pid),
            "a log opened after the kill"
        );
        removed.unwrap_or_else(|e| panic!("rmdir {dir}: {e}"));
    }
}
