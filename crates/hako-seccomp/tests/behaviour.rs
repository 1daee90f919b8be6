//! The compiled filters loaded into a real kernel.
//!
//! A seccomp filter cannot be removed once loaded, so every scenario runs in a fresh copy of
//! this test binary: the parent test re-executes `current_exe()` with `--exact child` and
//! `HAKO_SECCOMP_CHILD=<scenario>`; the `child` test loads the filter (into its own thread,
//! with `seccompiler::apply_filter`, which also sets no_new_privs) and checks what the syscalls
//! return. Without the variable `child` does nothing, so a normal run passes it trivially.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use hako_seccomp::{DOCKER_DEFAULT_CAPABILITIES, compile, docker_default_profile, parse_profile};
use nix::errno::Errno;

const SCENARIO_VAR: &str = "HAKO_SECCOMP_CHILD";

/// Run `scenario` in a child copy of this binary; returns (status, stdout + stderr).
fn in_child(scenario: &str) -> (std::process::ExitStatus, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(SCENARIO_VAR, scenario)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    (out.status, text.into_owned())
}

fn assert_child_ok(scenario: &str) {
    let (status, output) = in_child(scenario);
    assert!(
        status.success() && output.contains(&format!("CHILD-OK {scenario}")),
        "scenario {scenario} failed ({status}):\n{output}"
    );
}

fn load(json: &str) {
    let filter = compile(&parse_profile(json).unwrap()).unwrap();
    seccompiler::apply_filter(&filter.to_bpf_program()).unwrap();
}

#[test]
fn child() {
    let Ok(scenario) = std::env::var(SCENARIO_VAR) else {
        return;
    };
    match scenario.as_str() {
        "errnos" => errnos(),
        "personality" => personality(),
        "docker-default" => docker_default(),
        "kill-process" => kill_process(),
        other => panic!("unknown scenario {other}"),
    }
    println!("CHILD-OK {scenario}");
}

fn errnos() {
    let dir = tempfile::tempdir().unwrap();
    load(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["getpid"],"action":"SCMP_ACT_ERRNO"},
        {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
        {"names":["uname"],"action":"SCMP_ACT_ERRNO","errnoRet":99}]}"#,
    );
    // glibc's getpid cannot fail, so it returns the kernel's raw `-errno` without setting errno.
    assert_eq!(nix::unistd::getpid().as_raw(), -libc::EPERM);
    let err = std::fs::create_dir(dir.path().join("x")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSYS));
    assert_eq!(nix::sys::utsname::uname().unwrap_err(), Errno::from_raw(99));
    // Everything else still works.
    assert!(std::fs::read_dir(dir.path()).is_ok());
}

fn personality() {
    use nix::sys::personality::{Persona, set};
    load(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["personality"],"action":"SCMP_ACT_ERRNO"},
        {"names":["personality"],"action":"SCMP_ACT_ALLOW",
         "args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    assert!(
        set(Persona::empty()).is_ok(),
        "personality(0) must be allowed"
    );
    assert_eq!(set(Persona::ADDR_NO_RANDOMIZE).unwrap_err(), Errno::EPERM);
}

fn docker_default() {
    use nix::mount::{MsFlags, mount};
    use nix::sched::{CloneFlags, unshare};
    let caps: Vec<String> = DOCKER_DEFAULT_CAPABILITIES
        .iter()
        .map(|c| c.to_string())
        .collect();
    let filter = compile(&docker_default_profile(&caps)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    seccompiler::apply_filter(&filter.to_bpf_program()).unwrap();

    // Blocked with EPERM (we are root with every capability: only the filter can say no).
    assert_eq!(unshare(CloneFlags::CLONE_NEWUTS).unwrap_err(), Errno::EPERM);
    let none: Option<&str> = None;
    let err = mount(
        Some("tmpfs"),
        dir.path(),
        Some("tmpfs"),
        MsFlags::empty(),
        none,
    );
    assert_eq!(err.unwrap_err(), Errno::EPERM);

    // Normal work: files, directories, threads, fork + exec.
    let file = dir.path().join("f");
    std::fs::write(&file, b"hello").unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), b"hello");
    std::fs::create_dir(dir.path().join("d")).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    assert!(std::fs::read_dir("/").unwrap().count() > 0);
    assert_eq!(std::thread::spawn(|| 7).join().unwrap(), 7);
    let status = Command::new("/bin/true").status().unwrap();
    assert!(status.success(), "/bin/true: {status}");
    let ls = Command::new("ls").arg("-l").arg("/").output().unwrap();
    assert!(ls.status.success() && !ls.stdout.is_empty());
}

fn kill_process() {
    load(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["getppid"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#,
    );
    nix::unistd::getppid();
    unreachable!("getppid should have killed the process");
}

#[test]
fn errno_actions_return_the_configured_errno() {
    assert_child_ok("errnos");
}

#[test]
fn personality_is_allowed_only_for_arg0_zero() {
    assert_child_ok("personality");
}

#[test]
fn docker_default_profile_blocks_namespaces_and_allows_normal_work() {
    assert_child_ok("docker-default");
}

#[test]
fn kill_process_action_kills_with_sigsys() {
    let (status, output) = in_child("kill-process");
    assert_eq!(status.signal(), Some(libc::SIGSYS), "{status}\n{output}");
}
