//! CVE-2019-5736: a process inside a container must not be able to overwrite the host's
//! runtime binary through `/proc/<pid>/exe` of a runtime process.
//!
//! The attack, without `exec` (which hako-runtime does not have yet):
//!
//! ```text
//!   container A: created, its init is still the runtime binary, waiting for `start`
//!   container B: joins A's pid namespace; for each /proc/N it tries `exec 3< /proc/N/exe`
//!                and reports "waiting"
//!   test:        start A  (A's init execs the user program: the binary is no longer busy)
//!   container B: `echo PWNED >> /proc/self/fd/3` for two seconds (reopens the binary for write)
//!   test:        the runtime binary must be byte-for-byte unchanged
//! ```
//!
//! The runtime under test is a private copy, so even a vulnerable runtime damages nothing.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;

scenario!(proc_self_exe_is_not_writable);

const ATTACKER: &str = r#"
for p in /proc/[0-9]*; do
  [ "$p" = "/proc/$$" ] && continue
  echo "$p $(readlink $p/exe 2>&1)" >> /m/log
  if (exec 3< "$p/exe") 2>/dev/null; then
    exec 3< "$p/exe"
    echo "opened $p/exe" >> /m/log
    break
  fi
done
echo waiting > /m/b
while [ ! -e /m/go ]; do sleep 0.05; done
if [ -e /proc/self/fd/3 ]; then
  for i in $(seq 1 40); do
    if (echo PWNED >> /proc/self/fd/3) 2>>/m/log; then echo WROTE >> /m/log; break; fi
    sleep 0.05
  done
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

    let a = bundle(&Config::new().bind(&m, "/m", false).args(&["sleep", "30"]));
    let a_id = unique_id("cvea");
    let b_id = unique_id("cveb");
    let _ga = ContainerGuard::new(&rt, &a_id);
    let _gb = ContainerGuard::new(&rt, &b_id);
    rt.create(&a_id, a.path()).expect_ok("create victim");
    let a_pid = rt.state(&a_id).unwrap()["pid"]
        .as_i64()
        .expect("victim pid");

    let b = bundle(
        &Config::new()
            .bind(&m, "/m", false)
            .namespace("pid", Some(&format!("/proc/{a_pid}/ns/pid")))
            .sh(ATTACKER),
    );
    rt.create(&b_id, b.path()).expect_ok("create attacker");
    rt.start(&b_id).expect_ok("start attacker");
    assert!(
        wait_file(&marks.join("b"), Duration::from_secs(10)),
        "attacker never got ready"
    );

    rt.start(&a_id).expect_ok("start victim");
    assert!(rt.wait_status(&a_id, "running", Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(200));
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
