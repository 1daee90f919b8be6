//! Rootless mode for real: a normal user made for the test (`useradd`, with and without an
//! /etc/subuid range) runs hako through `runuser`, in a network namespace of the test's
//! own (a veth uplink gives pasta a route to copy). Checked from inside the containers
//! (uid 0, the id map) and from outside (the init runs as the user, files belong to the
//! user or its subordinate range, a published port answers on 127.0.0.1), with bad input
//! refused in one line and nothing left: no container, netns file, pasta or pause process.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::HAKO;
use hako_test_support::NetSandbox;

/// A user of the test's own, gone (with its processes and files) at the end.
struct User {
    name: String,
    uid: u32,
    home: PathBuf,
    run_dir: PathBuf,
    net: NetSandbox,
    /// `user@UID.service` was started ([`User::with_user_manager`]).
    user_manager: bool,
}

impl User {
    fn new(subids: bool) -> User {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("hkrl{}x{n}", std::process::id() % 100_000);
        let _ = Command::new("userdel").args(["-r", &name]).output();
        // System users (-r) get no subordinate ids; normal ones get a range (login.defs).
        let mut args = vec!["-m", "-s", "/bin/sh"];
        if !subids {
            args.push("-r");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new("useradd")
                .args(&args)
                .arg(&name)
                .output()
                .expect("useradd");
            if out.status.success() {
                break;
            }
            // Another test holding /etc/passwd's lock: try again.
            assert!(
                Instant::now() < deadline,
                "useradd {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let uid = nix::unistd::User::from_name(&name)
            .unwrap()
            .expect("the new user")
            .uid
            .as_raw();
        let home = PathBuf::from(format!("/home/{name}"));
        let run_dir = PathBuf::from(format!("/tmp/{name}-run"));
        std::fs::create_dir_all(&run_dir).unwrap();
        chown(&run_dir, uid);
        std::fs::set_permissions(
            &run_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let net = NetSandbox::new().expect("a network namespace for the test");
        // Built first, so a failure below still removes the user.
        let u = User {
            name,
            uid,
            home,
            run_dir,
            net,
            user_manager: false,
        };
        // pasta copies the addresses and default route of the host's uplink.
        for cmd in [
            "link add hkup type veth peer name hkup2",
            "addr add 192.0.2.2/24 dev hkup",
            "link set hkup2 up",
            "link set hkup up",
            "route add default via 192.0.2.1",
        ] {
            let args: Vec<&str> = cmd.split(' ').collect();
            let st = Command::new("ip")
                .args(["-n", u.net.name()])
                .args(&args)
                .status()
                .unwrap();
            assert!(st.success(), "ip {cmd}");
        }
        u
    }

    fn cmd(&self, path_env: Option<&str>, args: &[&str]) -> Command {
        let mut c = self.net.command("runuser");
        c.args(["-u", &self.name, "--", "env"])
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("XDG_RUNTIME_DIR={}", self.run_dir.display()))
            .arg(format!(
                "PATH={}",
                path_env.unwrap_or("/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            ));
        if let Some(init) = common::static_init() {
            c.arg(format!("HAKO_INIT={}", init.display()));
        }
        c.arg(HAKO).args(args).stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(None, args).output().expect("runuser hako")
    }

    /// Starts the user's systemd (`user@UID.service`, as a login or `loginctl
    /// enable-linger` would) and uses its `/run/user/UID` as XDG_RUNTIME_DIR.
    fn with_user_manager(mut self) -> User {
        let unit = format!("user@{}.service", self.uid);
        let st = Command::new("systemctl")
            .args(["start", &unit])
            .status()
            .expect("systemctl");
        assert!(st.success(), "systemctl start {unit}");
        let _ = std::fs::remove_dir_all(&self.run_dir);
        self.run_dir = PathBuf::from(format!("/run/user/{}", self.uid));
        self.user_manager = true;
        assert!(
            self.run_dir.join("systemd/private").exists(),
            "{unit} made no {}/systemd/private",
            self.run_dir.display()
        );
        // Started is not idle: under TCG the manager's own start-up jobs keep it from
        // answering for a while.
        let o = Command::new("runuser")
            .args(["-u", &self.name, "--", "env"])
            .arg(format!("XDG_RUNTIME_DIR={}", self.run_dir.display()))
            .args(["systemctl", "--user", "is-system-running", "--wait"])
            .output()
            .expect("systemctl --user");
        let state = String::from_utf8_lossy(&o.stdout);
        assert!(
            matches!(state.trim(), "running" | "degraded"),
            "the user manager: {state} {}",
            String::from_utf8_lossy(&o.stderr)
        );
        self
    }

    /// The cgroup v2 controllers `user@UID.service` was delegated.
    fn delegated(&self) -> Vec<String> {
        let f = format!(
            "/sys/fs/cgroup/user.slice/user-{0}.slice/user@{0}.service/cgroup.controllers",
            self.uid
        );
        std::fs::read_to_string(&f)
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "hako {args:?} as {} failed ({:?}): {}{}",
            self.name,
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Docker's failure status for `args` and one `Error:` line containing `what`.
    fn refused(&self, path_env: Option<&str>, args: &[&str], what: &str) {
        let o = self.cmd(path_env, args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(common::failure_code(args)),
            "hako {args:?}: {err}"
        );
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("Error")).collect();
        assert_eq!(lines.len(), 1, "hako {args:?}: {err}");
        assert!(lines[0].contains(what), "hako {args:?}: {err}");
    }

    fn root(&self) -> PathBuf {
        self.home.join(".local/share/hako")
    }

    fn exec_root(&self) -> PathBuf {
        self.run_dir.join("hako")
    }

    /// The user's processes now (pid, argv[0]).
    fn processes(&self) -> Vec<(i32, String)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if e.metadata().is_ok_and(|m| m.uid() == self.uid) {
                let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                let argv0 = cmd.split(|b| *b == 0).next().unwrap_or_default();
                out.push((pid, String::from_utf8_lossy(argv0).into_owned()));
            }
        }
        out
    }

    /// The user's processes once those finishing (a `--rm` shim's cleanup) are gone.
    fn settled_processes(&self) -> Vec<(i32, String)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let p = self.processes();
            if p.len() <= 1 || Instant::now() > deadline {
                return p;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The busybox image, imported by the user.
    fn import_busybox(&self) {
        let tar = self.home.join("busybox.tar");
        std::fs::copy(common::rootfs_tar(), &tar).unwrap();
        chown(&tar, self.uid);
        self.ok(&[
            "import",
            tar.to_str().unwrap(),
            "busybox",
            "--change",
            "CMD [\"sh\"]",
        ]);
    }
}

impl Drop for User {
    fn drop(&mut self) {
        if self.user_manager {
            let _ = Command::new("systemctl")
                .args(["stop", &format!("user@{}.service", self.uid)])
                .status();
        }
        // Only this user's processes: the pause process and anything a failed test left.
        for (pid, _) in self.processes() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&self.run_dir);
        let _ = Command::new("userdel").args(["-r", &self.name]).output();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::chown(p, Some(uid), None).unwrap();
}

fn require() {
    for tool in ["useradd", "runuser", "newuidmap", "newgidmap", "pasta"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{tool} is needed (packages passwd, util-linux, uidmap, passt)"
        );
    }
    // Distributions make /dev/net/tun 0666 (udev); this host has no udev. pasta needs it.
    let tun = Path::new("/dev/net/tun");
    if std::fs::metadata(tun).is_ok_and(|m| m.mode() & 0o006 != 0o006) {
        std::fs::set_permissions(tun, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .expect("chmod 0666 /dev/net/tun");
    }
}

/// The first uid of the user's subordinate range.
fn subuid_start(name: &str) -> u32 {
    let text = std::fs::read_to_string("/etc/subuid").unwrap();
    text.lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(name)).then(|| f.next().unwrap().parse().unwrap())
        })
        .expect("a subuid range")
}

/// Files under `dir` (not following links) owned by anyone but the user and its range.
fn foreign_files(dir: &Path, uid: u32, sub: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.uid() != uid && !(sub..sub + 65536).contains(&m.uid()) {
                out.push(format!("{} uid {}", e.path().display(), m.uid()));
            }
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

fn get(net: &NetSandbox, port: u16) -> String {
    net.run(|| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let attempt = (|| {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
                let mut body = String::new();
                s.read_to_string(&mut body)?;
                Ok::<_, std::io::Error>(body)
            })();
            match attempt {
                Ok(b) if !b.is_empty() => return b,
                _ if Instant::now() > deadline => {
                    panic!("nothing on 127.0.0.1:{port}: {attempt:?}")
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    })
}

#[test]
fn a_normal_user_runs_containers_with_its_subordinate_ids() {
    need_root!();
    require();
    let u = User::new(true);
    let sub = subuid_start(&u.name);
    u.import_busybox();

    // run --rm: root inside, the user and its range outside.
    let out = u.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map",
    ]);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0"], "{out}");
    assert_eq!(lines[1], ["0", &u.uid.to_string(), "1"], "{out}");
    assert_eq!(lines[2], ["1", &sub.to_string(), "65536"], "{out}");

    // run -d with a volume and a published port, exec, stop, rm.
    let port = 20000 + (std::process::id() % 20000) as u16;
    let publish = format!("127.0.0.1:{port}:80");
    let id = u
        .ok(&[
            "run", "-d", "-p", &publish, "-v", "rlvol:/data", "busybox", "sh", "-c",
            "printf 'HTTP/1.0 200 OK\\r\\n\\r\\nrootless-ok\\n' > /tmp/r; while true; do nc -l -p 80 < /tmp/r; done",
        ])
        .trim()
        .to_owned();
    assert!(get(&u.net, port).contains("rootless-ok"));
    // What pasta forwards, as Docker shows it.
    assert_eq!(
        u.ok(&["port", &id]).trim(),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    assert_eq!(
        u.ok(&["port", &id, "80"]).trim(),
        format!("127.0.0.1:{port}")
    );
    let ports = u.ok(&["inspect", "-f", "{{json .NetworkSettings.Ports}}", &id]);
    assert_eq!(
        ports.trim(),
        format!(r#"{{"80/tcp":[{{"HostIp":"127.0.0.1","HostPort":"{port}"}}]}}"#)
    );
    let ps = u.ok(&["ps", "--format", "{{.Ports}}"]);
    assert_eq!(ps.trim(), format!("127.0.0.1:{port}->80/tcp"));
    assert_eq!(u.ok(&["exec", &id, "id", "-u"]).trim(), "0");
    u.ok(&["exec", "-u", "1000", &id, "sh", "-c", "touch /tmp/x"]);
    u.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo hi > /data/f && chown 1000 /data/f",
    ]);
    // From outside: the init runs as the user; the volume's file belongs to subuid+999.
    let pid = u
        .ok(&["inspect", "-f", "{{.State.Pid}}", &id])
        .trim()
        .to_owned();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().nth(1),
        Some(u.uid.to_string().as_str()),
        "{uid_line}"
    );
    let vol = u.root().join("volumes/rlvol/_data/f");
    assert_eq!(std::fs::metadata(&vol).unwrap().uid(), sub + 999);
    u.ok(&["stop", "-t", "1", &id]);
    u.ok(&["rm", &id]);
    u.ok(&["volume", "rm", "rlvol"]);
    assert_eq!(u.ok(&["ps", "-aq"]).trim(), "");

    // Bad input: one line each, nothing made.
    u.refused(
        None,
        &["run", "--rm", "-m", "64m", "busybox", "true"],
        "memory.limit",
    );
    u.refused(
        None,
        &["run", "--rm", "--pids-limit", "5", "busybox", "true"],
        "pids.limit",
    );
    u.refused(
        None,
        &["run", "--rm", "--network", "mynet", "busybox", "true"],
        "network mynet",
    );
    u.refused(
        Some("/nonexistent"),
        &["run", "--rm", "busybox", "true"],
        "pasta",
    );
    assert_eq!(u.ok(&["ps", "-aq"]).trim(), "");

    // Nothing left: no netns file, no pasta, only the pause process; every file the
    // user's or its range's.
    let netns: Vec<_> = std::fs::read_dir(u.exec_root().join("netns"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(netns.is_empty(), "netns files left: {netns:?}");
    let procs = u.settled_processes();
    assert!(
        procs.iter().all(|(_, a)| a == "hako-rootless-pause") && procs.len() == 1,
        "{procs:?}"
    );
    let foreign = foreign_files(&u.home, u.uid, sub);
    assert!(foreign.is_empty(), "files of others: {foreign:?}");
    let foreign = foreign_files(&u.run_dir, u.uid, sub);
    assert!(foreign.is_empty(), "files of others: {foreign:?}");
}

/// What a rootless user does besides `run`: pull from a registry (Debian's docker-registry
/// on the loopback of the test's netns, the image pushed there by root), build on it
/// (`RUN` in a rootless container), and `run -it` on a real terminal (a shell with a tty,
/// its exit status passed on). Every file the user's or its range's afterwards.
#[test]
fn a_user_pulls_builds_and_runs_a_shell_on_a_terminal() {
    need_root!();
    require();
    let u = User::new(true);
    let sub = subuid_start(&u.name);
    let reg = u
        .net
        .run(hako_test_support::Registry::start)
        .expect("docker-registry (package docker-registry)");
    let image = format!("127.0.0.1:{}/rootless/busybox:1", reg.port);
    // Root pushes it from a store of its own.
    let tmp = tempfile::tempdir().unwrap();
    let root_hako = |args: &[&str]| {
        let o = u
            .net
            .command(HAKO)
            .arg("--root")
            .arg(tmp.path().join("root"))
            .arg("--exec-root")
            .arg(tmp.path().join("run"))
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "root hako {args:?}: {o:?}");
    };
    root_hako(&[
        "import",
        common::rootfs_tar().to_str().unwrap(),
        &image,
        "--change",
        "CMD [\"sh\"]",
    ]);
    root_hako(&["push", &image]);

    let pulled = u.ok(&["pull", &image]);
    assert!(pulled.contains(&image), "{pulled}");
    assert_eq!(
        u.ok(&["run", "--rm", "--network", "none", &image, "echo", "pulled"]),
        "pulled\n"
    );

    let ctx = u.home.join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {image}\nRUN echo built-by-$(id -u) > /built && chown 1000 /built\nCMD [\"cat\", \"/built\"]\n"),
    )
    .unwrap();
    for p in [&ctx, &ctx.join("Dockerfile")] {
        chown(p, u.uid);
    }
    u.ok(&["build", "-q", "-t", "rootless/built", ctx.to_str().unwrap()]);
    assert_eq!(
        u.ok(&["run", "--rm", "--network", "none", "rootless/built"]),
        "built-by-0\n"
    );

    let mut term = common::pty::Pty::spawn(&u.cmd(
        None,
        &[
            "run",
            "-it",
            "--rm",
            "--network",
            "none",
            "rootless/built",
            "sh",
        ],
    ));
    term.expect("# ");
    term.send(b"echo uid=$(id -u) tty=$(tty)\n");
    term.expect("uid=0 tty=/dev/pts/0");
    term.send(b"exit 3\n");
    let (status, screen) = term.wait();
    assert_eq!(status.code(), Some(3), "{screen}");

    u.ok(&["rmi", "rootless/built", &image]);
    assert_eq!(u.ok(&["ps", "-aq"]).trim(), "");
    let procs = u.settled_processes();
    assert!(
        procs.iter().all(|(_, a)| a == "hako-rootless-pause") && procs.len() == 1,
        "{procs:?}"
    );
    let foreign = foreign_files(&u.home, u.uid, sub);
    assert!(foreign.is_empty(), "files of others: {foreign:?}");
}

#[test]
fn a_user_without_subordinate_ids_gets_itself_mapped_alone() {
    need_root!();
    require();
    let u = User::new(false);
    u.import_busybox();
    let o = u.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "cat",
        "/proc/self/uid_map",
    ]);
    // The import above made the namespace (and said why it is a single id, once).
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let map: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(map, ["0", &u.uid.to_string(), "1"], "{out}");
    // newuidmap is not needed for that: a PATH without it still works.
    u.ok(&["run", "--rm", "--network", "none", "busybox", "true"]);
    let procs = u.settled_processes();
    assert_eq!(procs.len(), 1, "{procs:?}");
}

#[test]
fn without_newuidmap_a_user_with_subordinate_ids_is_told_what_to_install() {
    need_root!();
    require();
    let u = User::new(true);
    // No pause process yet: the first hako needs newuidmap, which this PATH lacks.
    u.refused(Some("/nonexistent"), &["ps"], "newuidmap is not installed");
    assert!(u.processes().is_empty(), "{:?}", u.processes());
}

/// Rootless limits through the user's systemd (the default driver there), where it
/// exists: pure cgroup v2 with `user@UID.service` delegated controllers (the VM stage's systemd guest runs this:
/// `bash scripts/vm/test.sh systemd`). Each container is a scope of the user's manager
/// under `user@UID.service/user.slice`, its limits in the files (seen from inside through
/// a private cgroupns) and holding (OOM kill, OOMKilled every time, not for a SIGKILL by hand); a limit whose controller is not delegated,
/// and any limit with `--cgroup-manager cgroupfs`, is one line; nothing is left.
/// Named `vm_*`: nextest's default filter leaves it out on the host (.config/nextest.toml).
#[test]
fn vm_rootless_limits_through_the_users_delegated_systemd_scope() {
    need_root!();
    require();
    assert!(
        Path::new("/run/systemd/system").is_dir() && hako_test_support::cgroups::host_is_v2(),
        "needs systemd as PID 1 on pure cgroup v2"
    );
    let u = User::new(true).with_user_manager();
    let delegated = u.delegated();
    for c in ["memory", "pids"] {
        assert!(
            delegated.iter().any(|d| d == c),
            "{c} not delegated: {delegated:?}"
        );
    }
    u.import_busybox();
    let cpu = delegated.iter().any(|d| d == "cpu");
    let mut args = vec![
        "--cgroup-manager",
        "systemd",
        "run",
        "--rm",
        "--network",
        "none",
        "-m",
        "64m",
        "--pids-limit",
        "50",
    ];
    if cpu {
        args.extend(["--cpus", "0.5"]);
    }
    args.extend([
        "busybox",
        "cat",
        "/proc/self/cgroup",
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/pids.max",
    ]);
    if cpu {
        args.push("/sys/fs/cgroup/cpu.max");
    }
    let inside = u.ok(&args);
    let mut want = vec!["0::/", "67108864", "50"];
    if cpu {
        want.push("50000 100000");
    }
    assert_eq!(inside.lines().collect::<Vec<_>>(), want, "limits inside");

    // From outside: the scope of the user's manager (the default driver where the user's
    // systemd runs), owned by the user.
    let id = u
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "-m",
            "32m",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_owned();
    let pid = u.ok(&["inspect", "-f", "{{.State.Pid}}", &id]);
    let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
    let want = format!(
        "0::/user.slice/user-{0}.slice/user@{0}.service/user.slice/hako-{id}.scope",
        u.uid
    );
    assert_eq!(cg.trim(), want);
    let dir = Path::new("/sys/fs/cgroup").join(want.trim_start_matches("0::/"));
    assert_eq!(
        std::fs::read_to_string(dir.join("memory.max"))
            .unwrap()
            .trim(),
        "33554432"
    );
    assert_eq!(
        std::fs::metadata(&dir).unwrap().uid(),
        u.uid,
        "the user's cgroup"
    );
    let usage = u.ok(&["stats", "--no-stream", "--format", "{{.MemUsage}}", &id]);
    assert!(usage.trim().ends_with("/ 32MiB"), "{usage}");

    // The limit holds.
    let hog = u.run(&[
        "--cgroup-manager",
        "systemd",
        "run",
        "--rm",
        "--network",
        "none",
        "-m",
        "16m",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_eq!(hog.status.code(), Some(137), "{hog:?}");
    // OOMKilled every time: no kernel log in a user namespace, and the user's systemd often
    // removes the scope before the shim reads its count: then the slice's count tells.
    for n in 0..3 {
        let name = format!("hog{n}");
        let hog = u.run(&[
            "run",
            "--name",
            &name,
            "--network",
            "none",
            "-m",
            "16m",
            "busybox",
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=64M",
            "count=1",
        ]);
        assert_eq!(hog.status.code(), Some(137), "{hog:?}");
        let state = u.ok(&["inspect", "-f", "{{.State.OOMKilled}}", &name]);
        assert_eq!(state.trim(), "true", "run {n}");
        u.ok(&["rm", &name]);
    }
    // A container of the same slice, running while those were OOM-killed, killed by hand:
    // no OOM kill of its own.
    u.ok(&["kill", &id]);
    assert_eq!(u.ok(&["wait", &id]).trim(), "137");
    let state = u.ok(&["inspect", "-f", "{{.State.OOMKilled}}", &id]);
    assert_eq!(state.trim(), "false", "killed by hand");

    // What the user's systemd was not delegated, in one line.
    for (flag, value, controller) in [
        ("--cpuset-cpus", "0", "cpuset"),
        ("--blkio-weight", "100", "io"),
    ] {
        if delegated.iter().any(|d| d == controller) {
            continue;
        }
        u.refused(
            None,
            &[
                "--cgroup-manager",
                "systemd",
                "run",
                "--rm",
                "--network",
                "none",
                flag,
                value,
                "busybox",
                "true",
            ],
            &format!("not delegated the {controller} controller"),
        );
    }
    // The cgroupfs driver of rootless hako has no delegated cgroup at all.
    u.refused(
        None,
        &[
            "--cgroup-manager",
            "cgroupfs",
            "run",
            "--rm",
            "-m",
            "8m",
            "busybox",
            "true",
        ],
        "no cgroup is delegated",
    );

    u.ok(&["rm", "-f", &id]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while dir.exists() {
        assert!(Instant::now() < deadline, "{} left", dir.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(u.ok(&["ps", "-aq"]).trim(), "");
    let user_slice = dir.parent().unwrap();
    let left: Vec<_> = std::fs::read_dir(user_slice)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("hako-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "scopes left: {left:?}");
}
