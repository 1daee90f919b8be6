//! What the container sees, checked from inside with busybox.

use std::os::unix::fs::MetadataExt;

use crate::common::*;

scenario!(
    hostname,
    domainname,
    pid_one,
    mounts,
    capabilities_root,
    capabilities_user,
    user_and_groups,
    umask,
    rlimits,
    devices,
    masked_paths,
    readonly_paths,
    readonly_root,
    sysctl,
    no_new_privileges,
    oom_score_adj,
    env_and_cwd,
    missing_cwd_is_made_inside,
    user_namespace,
    join_netns_by_path,
    time_namespace,
);

fn hostname(rt: &Runtime) {
    let out = inside(
        rt,
        Config::new()
            .hostname("e2e-box")
            .sh("hostname; cat /etc/hostname"),
    );
    assert_eq!(
        out, "e2e-box\nhako\n",
        "uts hostname set, the rootfs file untouched"
    );
}

/// `domainname` (runtime spec 1.1). runc 1.1 ignores the field, so the oracle is skipped.
fn domainname(rt: &Runtime) {
    if rt.kind() == RuntimeKind::Runc {
        eprintln!("SKIP domainname [runc]: runc 1.1 does not implement `domainname`");
        return;
    }
    let out = inside(
        rt,
        Config::new()
            .domainname("e2e.test")
            .sh("cat /proc/sys/kernel/domainname"),
    );
    assert_eq!(out, "e2e.test\n");
}

fn pid_one(rt: &Runtime) {
    assert_eq!(inside(rt, Config::new().sh("echo $$")), "1\n");
}

fn mounts(rt: &Runtime) {
    let out = inside(rt, Config::new().args(&["cat", "/proc/self/mounts"]));
    // (mount point, fs type, options) per line.
    let table: Vec<(&str, &str, Vec<&str>)> = out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() >= 4).then(|| (f[1], f[2], f[3].split(',').collect()))
        })
        .collect();
    let find = |mp: &str| table.iter().rev().find(|(m, _, _)| *m == mp);
    let expect = |mp: &str, fs: &str| {
        let m = find(mp).unwrap_or_else(|| panic!("{mp} not mounted:\n{out}"));
        assert_eq!(m.1, fs, "{mp} type:\n{out}");
        m
    };
    expect("/proc", "proc");
    expect("/dev", "tmpfs");
    expect("/dev/pts", "devpts");
    expect("/dev/shm", "tmpfs");
    expect("/dev/mqueue", "mqueue");
    let sys = expect("/sys", "sysfs");
    assert!(sys.2.contains(&"ro"), "/sys must be read-only:\n{out}");
    assert!(
        table
            .iter()
            .any(|(m, fs, _)| m.starts_with("/sys/fs/cgroup")
                && (*fs == "cgroup" || *fs == "cgroup2")),
        "a cgroup filesystem under /sys/fs/cgroup:\n{out}"
    );
    // Each mount of the cgroup view (v1: the tmpfs and a bind per hierarchy; v2: cgroup2)
    // has the flags of the spec's entry (runc leaves v1's tmpfs writable, empty as it is).
    for (m, fs, o) in table
        .iter()
        .filter(|(m, _, _)| m.starts_with("/sys/fs/cgroup"))
    {
        let want: &[&str] = match *fs {
            "tmpfs" => &["nosuid", "nodev", "noexec"],
            _ => &["ro", "nosuid", "nodev", "noexec"],
        };
        for f in want {
            assert!(o.contains(f), "{m} is not {f}:\n{out}");
        }
    }
    let root = find("/").expect("/ is a mount");
    assert!(
        root.2.contains(&"ro"),
        "root.readonly=true makes / read-only:\n{out}"
    );
}

/// The bit mask of a list of capability numbers.
fn mask(caps: &[u32]) -> u64 {
    caps.iter().fold(0, |m, c| m | (1u64 << c))
}

fn cap_line(status: &str, key: &str) -> u64 {
    let v = field(status, key).unwrap_or_else(|| panic!("{key} missing:\n{status}"));
    u64::from_str_radix(v, 16).unwrap()
}

// CAP_CHOWN=0 CAP_DAC_OVERRIDE=1 CAP_KILL=5 CAP_NET_BIND_SERVICE=10 CAP_AUDIT_WRITE=29
const CHOWN: u32 = 0;
const KILL: u32 = 5;
const NET_BIND: u32 = 10;
const AUDIT_WRITE: u32 = 29;

fn capabilities_root(rt: &Runtime) {
    let caps = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_AUDIT_WRITE",
    ];
    let status = inside(
        rt,
        Config::new()
            .all_caps(&caps)
            .sh("grep Cap /proc/self/status"),
    );
    let want = mask(&[CHOWN, KILL, NET_BIND, AUDIT_WRITE]);
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(cap_line(&status, key), want, "{key}:\n{status}");
    }
}

/// As a non-root user the kernel's execve rules make the sets differ: permitted and
/// effective become the ambient set, inheritable and bounding stay as configured.
fn capabilities_user(rt: &Runtime) {
    let config = Config::new()
        .user(1000, 1000, &[])
        .caps(
            "bounding",
            &["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        )
        .caps("permitted", &["CAP_KILL", "CAP_NET_BIND_SERVICE"])
        .caps("effective", &["CAP_KILL", "CAP_NET_BIND_SERVICE"])
        .caps("inheritable", &["CAP_KILL", "CAP_NET_BIND_SERVICE"])
        .caps("ambient", &["CAP_NET_BIND_SERVICE"])
        .sh("grep Cap /proc/self/status");
    let status = inside(rt, config);
    assert_eq!(
        cap_line(&status, "CapBnd"),
        mask(&[CHOWN, KILL, NET_BIND]),
        "{status}"
    );
    assert_eq!(
        cap_line(&status, "CapInh"),
        mask(&[KILL, NET_BIND]),
        "{status}"
    );
    assert_eq!(cap_line(&status, "CapAmb"), mask(&[NET_BIND]), "{status}");
    assert_eq!(cap_line(&status, "CapPrm"), mask(&[NET_BIND]), "{status}");
    assert_eq!(cap_line(&status, "CapEff"), mask(&[NET_BIND]), "{status}");
}

fn user_and_groups(rt: &Runtime) {
    let out = inside(
        rt,
        Config::new()
            .user(1000, 1000, &[5, 65534])
            .sh("id -u; id -g; grep -E '^(Uid|Gid|Groups)' /proc/self/status"),
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1000"), "{out}");
    assert_eq!(lines.next(), Some("1000"), "{out}");
    let uid: Vec<&str> = field(&out, "Uid").unwrap().split_whitespace().collect();
    assert_eq!(uid, ["1000"; 4], "real, effective, saved, fs uid:\n{out}");
    let gid: Vec<&str> = field(&out, "Gid").unwrap().split_whitespace().collect();
    assert_eq!(gid, ["1000"; 4], "{out}");
    let mut groups: Vec<&str> = field(&out, "Groups").unwrap().split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["5", "65534"], "additionalGids:\n{out}");
}

fn umask(rt: &Runtime) {
    let out = inside(
        rt,
        Config::new()
            .umask(0o027)
            .sh("umask; grep Umask /proc/self/status"),
    );
    assert!(out.starts_with("0027\n"), "{out}");
    assert_eq!(field(&out, "Umask"), Some("0027"), "{out}");
}

fn rlimits(rt: &Runtime) {
    let config = Config::new()
        .rlimit("RLIMIT_NOFILE", 512, 1000)
        .rlimit("RLIMIT_NPROC", 3000, 4000)
        .sh("ulimit -n; ulimit -Hn; grep -E 'open files|processes' /proc/self/limits");
    let out = inside(rt, config);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("512"), "{out}");
    assert_eq!(lines.next(), Some("1000"), "{out}");
    let nproc = out
        .lines()
        .find(|l| l.starts_with("Max processes"))
        .unwrap_or_default();
    let nums: Vec<&str> = nproc.split_whitespace().skip(2).take(2).collect();
    assert_eq!(nums, ["3000", "4000"], "{out}");
}

fn devices(rt: &Runtime) {
    let script = "for d in null zero full random urandom tty /dev/hako-null; do \
                    d=${d#/dev/}; [ -c /dev/$d ] && echo \"$d char\" || echo \"$d MISSING\"; done; \
                  stat -c '%t:%T %a' /dev/hako-null; \
                  echo x > /dev/hako-null && echo write-ok; \
                  head -c 4 /dev/zero | od -An -tx1; \
                  for l in fd stdin stdout stderr; do [ -L /dev/$l ] && echo \"$l link\"; done; \
                  [ -e /dev/ptmx ] && echo ptmx";
    let out = inside(
        rt,
        Config::new()
            .device("/dev/hako-null", "c", 1, 3, 0o666)
            .sh(script),
    );
    for d in [
        "null",
        "zero",
        "full",
        "random",
        "urandom",
        "tty",
        "hako-null",
    ] {
        assert!(out.contains(&format!("{d} char\n")), "/dev/{d}:\n{out}");
    }
    assert!(
        out.contains("1:3 666\n"),
        "linux.devices entry major:minor and mode:\n{out}"
    );
    assert!(out.contains("write-ok\n"), "{out}");
    assert!(out.contains(" 00 00 00 00"), "{out}");
    for l in ["fd", "stdin", "stdout", "stderr"] {
        assert!(
            out.contains(&format!("{l} link\n")),
            "/dev/{l} symlink:\n{out}"
        );
    }
    assert!(out.contains("ptmx\n"), "{out}");
}

fn masked_paths(rt: &Runtime) {
    let script = "wc -c < /proc/kcore 2>/dev/null || echo unreadable; \
                  cat /proc/keys 2>/dev/null | wc -l; \
                  ls -A /sys/firmware | wc -l";
    let out = inside(rt, Config::new().sh(script));
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(
        lines[0] == "0" || lines[0] == "unreadable",
        "/proc/kcore masked:\n{out}"
    );
    assert_eq!(lines[1], "0", "/proc/keys masked:\n{out}");
    assert_eq!(lines[2], "0", "/sys/firmware masked (empty dir):\n{out}");
}

fn readonly_paths(rt: &Runtime) {
    let script = "echo x 2>/dev/null > /proc/sys/kernel/hostname && echo WROTE || echo denied; \
                  echo c 2>/dev/null > /proc/sysrq-trigger && echo WROTE || echo denied; \
                  grep ' /proc/sys ' /proc/self/mounts";
    let out = inside(rt, Config::new().sh(script));
    assert!(out.starts_with("denied\ndenied\n"), "{out}");
    assert!(
        out.lines().nth(2).is_some_and(|l| l
            .split(' ')
            .nth(3)
            .unwrap_or("")
            .split(',')
            .any(|o| o == "ro")),
        "{out}"
    );
}

fn readonly_root(rt: &Runtime) {
    let script = "touch /newfile 2>/dev/null && echo WROTE || echo denied; \
                  touch /tmp/newfile 2>/dev/null && echo WROTE || echo denied";
    let out = inside(rt, Config::new().readonly_root(true).sh(script));
    assert_eq!(out, "denied\ndenied\n");
    let out = inside(rt, Config::new().readonly_root(false).sh(script));
    assert_eq!(out, "WROTE\nWROTE\n", "control: a writable root");
}

fn sysctl(rt: &Runtime) {
    let host_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let flipped = if host_forward.trim() == "1" { "0" } else { "1" };
    let config = Config::new()
        .sysctl("net.ipv4.ip_forward", flipped)
        .sysctl("kernel.domainname", "sysctl.test")
        .sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/domainname");
    assert_eq!(inside(rt, config), format!("{flipped}\nsysctl.test\n"));
    let after = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    assert_eq!(after, host_forward, "the host's sysctl must not change");
}

fn no_new_privileges(rt: &Runtime) {
    let out = inside(
        rt,
        Config::new()
            .no_new_privileges(true)
            .sh("grep NoNewPrivs /proc/self/status"),
    );
    assert_eq!(field(&out, "NoNewPrivs"), Some("1"), "{out}");
    let out = inside(
        rt,
        Config::new()
            .no_new_privileges(false)
            .sh("grep NoNewPrivs /proc/self/status"),
    );
    assert_eq!(field(&out, "NoNewPrivs"), Some("0"), "{out}");
}

fn oom_score_adj(rt: &Runtime) {
    assert_eq!(
        inside(
            rt,
            Config::new()
                .oom_score_adj(423)
                .sh("cat /proc/self/oom_score_adj")
        ),
        "423\n"
    );
}

fn env_and_cwd(rt: &Runtime) {
    let config = Config::new()
        .env("HAKO_GREETING", "hello world")
        .cwd("/home/user")
        .sh("echo \"$HAKO_GREETING\"; pwd; echo \"$PATH\"");
    let out = inside(rt, config);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hello world", "{out}");
    assert_eq!(lines[1], "/home/user", "{out}");
    assert!(lines[2].contains("/bin"), "{out}");
}

/// A missing cwd is made (root's, 0755) before a read-only root is remounted, and a
/// symlink on its way resolves inside the container's root, never onto the host.
fn missing_cwd_is_made_inside(rt: &Runtime) {
    let host = std::path::PathBuf::from(format!("/tmp/hako-e2e-cwd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&host);
    let config = Config::new()
        .readonly_root(true)
        .user(1000, 1000, &[])
        .cwd("/escape/new/deep")
        .sh("pwd; ls -lnd /escape/new/deep | cut -c1-10; stat -c '%u %g' .");
    let b = bundle(&config);
    // An absolute symlink to a directory that exists in the root (a dangling one is
    // "file exists" to both runtimes' mkdir -p).
    std::fs::create_dir_all(b.rootfs().join(host.strip_prefix("/").unwrap())).unwrap();
    std::os::unix::fs::symlink(&host, b.rootfs().join("escape")).unwrap();
    let id = unique_id(rt.kind().name());
    let out = rt.run(&id, b.path());
    out.expect_ok("container run");
    rt.assert_no_leaks(&[&id], &[b.path()]);
    // pwd names the directory the symlink led to: inside the root, at the host's path.
    assert_eq!(
        out.stdout,
        format!("{}/new/deep\ndrwxr-xr-x\n0 0\n", host.display()),
        "{}",
        rt.kind()
    );
    assert!(
        !host.exists(),
        "{}: the cwd was made on the host",
        rt.kind()
    );
    assert!(
        b.rootfs()
            .join(host.strip_prefix("/").unwrap())
            .join("new/deep")
            .is_dir(),
        "{}: made inside the root",
        rt.kind()
    );
}

fn user_namespace(rt: &Runtime) {
    let config = Config::new()
        .userns(100_000, 100_000, 65_536)
        .sh("cat /proc/self/uid_map /proc/self/gid_map; id -u");
    let out = inside(rt, config);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["0", "100000", "65536"], "uid_map:\n{out}");
    assert_eq!(rows[1], ["0", "100000", "65536"], "gid_map:\n{out}");
    assert_eq!(rows[2], ["0"], "root inside:\n{out}");
}

fn join_netns_by_path(rt: &Runtime) {
    let netns = hako_test_support::NetnsGuard::new().expect("ip netns add");
    let want = std::fs::metadata(netns.path()).unwrap().ino();
    let config = Config::new()
        .namespace("network", Some(&netns.path().display().to_string()))
        .sh("readlink /proc/self/ns/net");
    let out = inside(rt, config);
    assert_eq!(
        out.trim(),
        format!("net:[{want}]"),
        "joined the named netns"
    );
}

fn time_namespace(rt: &Runtime) {
    let features = rt.cmd(&["features"]);
    let supported = serde_json::from_str::<serde_json::Value>(&features.stdout)
        .ok()
        .and_then(|f| f["linux"]["namespaces"].as_array().cloned())
        .is_some_and(|ns| ns.iter().any(|n| n == "time"));
    if !supported {
        eprintln!(
            "SKIP time_namespace [{}]: `features` lists no time namespace",
            rt.kind()
        );
        return;
    }
    let config = Config::new()
        .namespace("time", None)
        .edit(|j| {
            j["linux"]["timeOffsets"] = serde_json::json!({
                "monotonic": {"secs": 864_000, "nanosecs": 0},
                "boottime": {"secs": 864_000, "nanosecs": 0},
            });
        })
        // /proc/uptime is CLOCK_BOOTTIME as seen through the time namespace.
        .sh("cut -d. -f1 /proc/uptime");
    let host_uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let inside_uptime: f64 = inside(rt, config).trim().parse().unwrap();
    assert!(
        inside_uptime >= host_uptime + 863_000.0,
        "uptime {inside_uptime} vs host {host_uptime}"
    );
}
