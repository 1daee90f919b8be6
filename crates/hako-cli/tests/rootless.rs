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

    /// Exit 125 and one `Error:` line containing `what`.
    fn refused(&self, path_env: Option<&str>, args: &[&str], what: &str) {
        let o = self.cmd(path_env, args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(125), "hako {args:?}: {err}");
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
