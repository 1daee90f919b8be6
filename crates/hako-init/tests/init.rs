//! hako-init run for real: exit codes, signal forwarding, reaping as a subreaper on the
//! host, and reaping as PID 1 of a busybox container (hako-runtime and runc as the oracle).
//!
//! Workloads use Debian's static busybox (`/bin/busybox`, needed by the container fixture
//! anyway), so host and container run the same shell.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use hako_test_support::{Bundle, Config, Runtime, RuntimeKind, in_ci, root_or_skip, unique_id};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const INIT: &str = env!("CARGO_BIN_EXE_hako-init");
const BUSYBOX: &str = "/bin/busybox";

fn init(args: &[&str]) -> Command {
    let mut cmd = Command::new(INIT);
    cmd.args(args).stdin(Stdio::null());
    cmd
}

/// Run hako-init to the end with a 20 s limit; its exit code.
fn code_of(args: &[&str]) -> i32 {
    let child = init(args).spawn().expect("spawning hako-init");
    wait(child)
}

fn wait(mut child: Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status
                .code()
                .expect("hako-init itself must exit, not be killed");
        }
        if Instant::now() > deadline {
            // Take hako-init's children (each leads its own process group) down with it.
            let init_pid = i32::try_from(child.id()).expect("pid");
            for (pid, _, ppid) in processes() {
                if ppid == init_pid {
                    let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
                }
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("hako-init did not exit in time");
        }
        sleep(Duration::from_millis(10));
    }
}

/// Spawn hako-init with stdout piped and wait for the child to print `ready...`; the line.
fn spawn_ready(args: &[&str]) -> (Child, String) {
    let mut child = init(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning hako-init");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("reading ready line");
    assert!(line.starts_with("ready"), "unexpected first line {line:?}");
    (child, line)
}

/// `(pid, state, ppid)` of every process, from /proc/*/stat.
fn processes() -> Vec<(i32, char, i32)> {
    let mut all = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // comm may contain spaces and parens: the fields we want follow the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        all.push((pid, state, ppid));
    }
    all
}

fn zombies_of(parent: i32) -> usize {
    processes()
        .iter()
        .filter(|(_, state, ppid)| *state == 'Z' && *ppid == parent)
        .count()
}

fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn exit_codes_pass_through() {
    assert_eq!(code_of(&["-s", "--", BUSYBOX, "sh", "-c", "exit 7"]), 7);
    assert_eq!(code_of(&["-s", BUSYBOX, "true"]), 0);
    // Killed by signal N: 128+N.
    assert_eq!(code_of(&["-s", BUSYBOX, "sh", "-c", "kill -9 $$"]), 137);
    // -e remaps (after the 128+N mapping, as tini does); other codes are untouched.
    assert_eq!(
        code_of(&["-s", "-e", "143", BUSYBOX, "sh", "-c", "kill -TERM $$"]),
        0
    );
    assert_eq!(code_of(&["-s", "-e143", BUSYBOX, "sh", "-c", "exit 3"]), 3);
    // A program that does not exist: 127; bad usage: 1.
    assert_eq!(code_of(&["-s", "/nonexistent/program"]), 127);
    assert_eq!(code_of(&["-s"]), 1);
    assert_eq!(code_of(&["-e", "x", "true"]), 1);
}

#[test]
fn child_starts_with_clean_signal_state() {
    // hako-init blocks nearly every signal and Rust ignores SIGPIPE; neither may leak into
    // the program (an ignored SIGPIPE survives exec).
    let out = init(&[
        "-s",
        BUSYBOX,
        "grep",
        "-E",
        "^Sig(Blk|Ign)",
        "/proc/self/status",
    ])
    .output()
    .expect("running hako-init");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| u64::from_str_radix(v.trim(), 16).expect("hex mask"))
            .unwrap_or_else(|| panic!("{name} missing in {text:?}"))
    };
    assert_eq!(field("SigBlk:"), 0, "child inherited blocked signals");
    assert_eq!(
        field("SigIgn:") & (1 << (13 - 1)),
        0,
        "SIGPIPE ignored in child"
    );
}

#[test]
fn not_pid1_without_subreaper_warns_once() {
    let out = init(&[BUSYBOX, "true"])
        .output()
        .expect("running hako-init");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("warning").count(), 1, "stderr: {err}");
    let out = init(&["-s", BUSYBOX, "true"])
        .output()
        .expect("running hako-init");
    assert!(
        out.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigterm_is_forwarded_to_the_child() {
    let (child, _out) = spawn_ready(&[
        "-s",
        BUSYBOX,
        "sh",
        "-c",
        "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    kill(pid, Signal::SIGTERM).expect("signalling hako-init");
    assert_eq!(wait(child), 42);
}

/// The child starts `sleep 30` in the background and prints its pid; SIGTERM goes to init.
fn term_with_grandchild(extra: &[&str]) -> (i32, i32) {
    let mut args = vec!["-s"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[BUSYBOX, "sh", "-c", "sleep 30 & echo ready $!; wait"]);
    let (child, line) = spawn_ready(&args);
    let grandchild: i32 = line["ready ".len()..]
        .trim()
        .parse()
        .expect("grandchild pid");
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    kill(pid, Signal::SIGTERM).expect("signalling hako-init");
    (wait(child), grandchild)
}

fn gone_within(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn kill_group_reaches_grandchildren() {
    // With -g the whole group gets SIGTERM: the shell dies (143) and so does its sleep.
    let (code, grandchild) = term_with_grandchild(&["-g"]);
    assert_eq!(code, 143);
    assert!(
        gone_within(grandchild, Duration::from_secs(3)),
        "grandchild {grandchild} survived -g"
    );

    // Without -g only the child gets it: the sleep lives on (then we clean it up).
    let (code, grandchild) = term_with_grandchild(&[]);
    assert_eq!(code, 143);
    let survived = !gone_within(grandchild, Duration::from_millis(300));
    let _ = kill(Pid::from_raw(grandchild), Signal::SIGKILL);
    assert!(
        survived,
        "without -g the grandchild should not get the signal"
    );
}

#[test]
fn subreaper_reaps_orphans_a_plain_parent_does_not() {
    // Three grandchildren are orphaned at once (their subshells exit) and exit 100 ms
    // later; the child itself stays alive (it becomes `sleep 2`) so hako-init keeps running.
    let workload = "(sleep 0.1 &); (sleep 0.1 &); (sleep 0.1 &); echo ready; exec sleep 2";
    let (child, _out) = spawn_ready(&["-s", BUSYBOX, "sh", "-c", workload]);
    let init_pid = i32::try_from(child.id()).expect("pid");
    // The orphans really reach hako-init (else "no zombies" would prove nothing).
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut adopted = 0;
    let mut zombies_seen_late = usize::MAX;
    while Instant::now() < deadline {
        let kids = processes().iter().filter(|p| p.2 == init_pid).count();
        adopted = adopted.max(kids);
        if adopted >= 4 {
            break;
        }
        sleep(Duration::from_millis(5));
    }
    if adopted >= 4 {
        sleep(Duration::from_millis(600));
        zombies_seen_late = zombies_of(init_pid);
    }
    // SIGTERM is forwarded to the child (`sleep 2`), which dies, and hako-init with it.
    let _ = kill(Pid::from_raw(init_pid), Signal::SIGTERM);
    assert_eq!(wait(child), 143);
    assert!(
        adopted >= 4,
        "orphans were not re-parented to hako-init -s (max children seen {adopted})"
    );
    assert_eq!(zombies_seen_late, 0, "hako-init left zombies");

    // The contrast: the same quickly exiting processes under a parent that never reaps
    // (a shell that execs `sleep`) stay zombies.
    let mut plain = Command::new(BUSYBOX)
        .args([
            "sh",
            "-c",
            "sleep 0.1 & sleep 0.1 & sleep 0.1 & exec sleep 2",
        ])
        .spawn()
        .expect("spawning plain sh");
    let plain_pid = i32::try_from(plain.id()).expect("pid");
    sleep(Duration::from_millis(700));
    let zombies = zombies_of(plain_pid);
    let _ = plain.kill();
    let _ = plain.wait();
    assert_eq!(zombies, 3, "a non-reaping parent should show its 3 zombies");
}

// ---------------------------------------------------------------- as PID 1 in a container

/// Orphans three processes that exit after 100 ms, then keeps PID 1's shell busy for a
/// second in the `read` builtin on a fifo (no fork, so no waitpid: busybox sh reaps any
/// child when it waits for a command). Meanwhile a background scanner lists zombies with
/// builtins only at 0.5 s.
const ORPHANING: &str = "\
(sleep 0.1 &); (sleep 0.1 &); (sleep 0.1 &)
(sleep 0.5
 for f in /proc/[0-9]*/stat; do
   read -r l < \"$f\" 2>/dev/null || continue
   case \"$l\" in *') Z '*) echo \"ZOMBIE $l\";; esac
 done
 echo scanned) &
mkfifo /tmp/fifo; exec 3<>/tmp/fifo; read -t 1 x <&3
echo pid1=$(cat /proc/1/comm)";

/// The hako-init cargo built for this test run: static-pie in every profile
/// (`.cargo/config.toml`, `scripts/cc-static-bins`); a dynamic one is a broken build.
fn static_init() -> &'static Path {
    assert!(
        !is_dynamic(Path::new(INIT)),
        "{INIT} needs ld.so: a plain cargo build must link it static (scripts/cc-static-bins)"
    );
    Path::new(INIT)
}

/// True when the ELF file asks for a program interpreter (PT_INTERP): it needs ld.so and
/// a libc from whatever filesystem it runs in.
fn is_dynamic(path: &Path) -> bool {
    let elf = fs::read(path).expect("reading binary");
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    let u16_at = |o: usize| usize::from(u16::from_le_bytes([elf[o], elf[o + 1]]));
    let phoff =
        usize::try_from(u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap())).expect("phoff");
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) == 3
    })
}

#[test]
fn static_build_has_no_interpreter() {
    assert!(!is_dynamic(static_init()), "static hako-init needs ld.so");
    // And the check itself can fail: the test binary is dynamic.
    assert!(is_dynamic(&std::env::current_exe().unwrap()));
}

/// Run the orphaning workload in a busybox container, with or without hako-init as PID 1;
/// the container's stdout.
fn run_in_container(rt: &Runtime, with_init: bool) -> String {
    // The default root is read-only (as `runc spec`); the fifo needs a writable /tmp.
    let mut config = Config::new().mount("/tmp", "tmpfs", "tmpfs", &["nosuid", "nodev"]);
    config = if with_init {
        let bin = static_init().display().to_string();
        config.bind(&bin, "/sbin/hako-init", true).args(&[
            "/sbin/hako-init",
            "--",
            "sh",
            "-c",
            ORPHANING,
        ])
    } else {
        config.sh(ORPHANING)
    };
    let bundle = Bundle::new(&config).expect("busybox bundle");
    let id = unique_id(&format!("init-{}", rt.kind().name()));
    let out = rt.run(&id, bundle.path());
    let _ = rt.delete_force(&id);
    out.expect_ok("container run");
    rt.assert_no_leaks(&[&id], &[bundle.path()]);
    out.stdout
}

fn container_contrast(kind: RuntimeKind) {
    if !root_or_skip(&format!("container test [{kind}]")) {
        return;
    }
    let rt = match Runtime::new(kind) {
        Ok(rt) => rt,
        Err(e) if in_ci() => panic!("[{kind}] {e:#}"),
        Err(e) => {
            eprintln!("SKIP container test [{kind}]: {e:#}");
            return;
        }
    };
    let with = run_in_container(&rt, true);
    assert!(
        with.contains("pid1=hako-init"),
        "hako-init not PID 1:\n{with}"
    );
    assert!(
        with.contains("scanned"),
        "the zombie scan did not run:\n{with}"
    );
    assert!(!with.contains("ZOMBIE"), "zombies under hako-init:\n{with}");

    let without = run_in_container(&rt, false);
    assert!(without.contains("pid1=sh"), "sh not PID 1:\n{without}");
    assert_eq!(
        without.matches("ZOMBIE").count(),
        3,
        "a plain sh as PID 1 should leave the 3 orphans as zombies:\n{without}"
    );
}

#[test]
fn pid1_in_container_hako_runtime() {
    container_contrast(RuntimeKind::Hako);
}

#[test]
fn pid1_in_container_runc() {
    container_contrast(RuntimeKind::Runc);
}
