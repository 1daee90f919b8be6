//! The engine on the hosts most users have, in the VM stage's guests (`scripts/vm`): limits
//! seen from inside, `stats`, `pause`, OOMKilled, a private cgroup namespace by default on
//! pure cgroup v2; with systemd as PID 1, every container in a scope of its own by default
//! (`--cgroup-manager` to choose). nextest's default filter leaves this binary out on the
//! cgroup v1 host.

mod common;

use std::path::Path;
use std::process::Command;

use common::Hako;

fn require_vm() {
    assert!(
        hako_test_support::cgroups::host_is_v2(),
        "these tests need pure cgroup v2: run them with `bash scripts/vm/test.sh`"
    );
    assert!(common::is_root(), "the VM tests run as root");
}

fn systemd() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn show(unit: &str, prop: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "-p", prop, "--value", unit])
        .output()
        .expect("systemctl");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The init's cgroup as the host sees it (`/system.slice/hako-<id>.scope`, `/hako/<id>`).
fn host_cgroup(h: &Hako, id: &str) -> String {
    let pid = h.inspect(id)["State"]["Pid"].as_i64().expect("pid");
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    text.trim().strip_prefix("0::").expect("v2 line").to_owned()
}

fn events(h: &Hako, id: &str) -> String {
    let dir = Path::new("/sys/fs/cgroup").join(host_cgroup(h, id).trim_start_matches('/'));
    std::fs::read_to_string(dir.join("cgroup.events")).expect("cgroup.events")
}

#[test]
fn limits_stats_pause_and_oom_on_v2() {
    require_vm();
    let h = Hako::new();
    let id = h
        .ok(&[
            "run",
            "-d",
            "-m",
            "64m",
            "--pids-limit",
            "50",
            "--cpus",
            "0.5",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_owned();
    let inside = h.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max",
    ]);
    let lines: Vec<&str> = inside.lines().collect();
    assert_eq!(
        lines,
        ["0::/", "67108864", "50", "50000 100000"],
        "private cgroupns rooted at the container, limits in its files"
    );
    assert_eq!(h.inspect(&id)["HostConfig"]["CgroupnsMode"], "private");

    let cg = host_cgroup(&h, &id);
    if systemd() {
        let unit = format!("hako-{id}.scope");
        assert_eq!(
            cg,
            format!("/system.slice/{unit}"),
            "systemd is the default driver"
        );
        assert_eq!(show(&unit, "ActiveState"), "active");
        assert_eq!(show(&unit, "MemoryMax"), "67108864");
        assert_eq!(show(&unit, "TasksMax"), "50");
    } else {
        assert_eq!(cg, format!("/hako/{id}"));
    }

    let usage = h.ok(&["stats", "--no-stream", "--format", "{{.MemUsage}}", &id]);
    assert!(usage.trim().ends_with("/ 64MiB"), "{usage}");

    h.ok(&["pause", &id]);
    assert_eq!(h.inspect(&id)["State"]["Status"], "paused");
    assert!(events(&h, &id).contains("frozen 1"), "{}", events(&h, &id));
    h.ok(&["unpause", &id]);
    assert!(events(&h, &id).contains("frozen 0"), "{}", events(&h, &id));

    // dd's 64 MiB buffer under 16 MiB: the kernel kills it, Docker says OOMKilled.
    let out = h.run(&[
        "run",
        "--name",
        "hog",
        "-m",
        "16m",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    let hog = h.inspect("hog");
    assert_eq!(hog["State"]["OOMKilled"], true, "{:#}", hog["State"]);
    let hog_id = hog["Id"].as_str().expect("id").to_owned();

    h.finish(&[&id, &hog_id]);
    if systemd() {
        for c in [&id, &hog_id] {
            let unit = format!("hako-{c}.scope");
            h.wait_for(&format!("{unit} to go"), || {
                show(&unit, "LoadState") == "not-found"
            });
        }
    }
}

/// Under systemd the scope's cgroup goes with its last process: an init OOM-killed takes
/// the cgroup's count with it, often before the shim has reaped it. The shim then reads the
/// kernel log from the run's start (hako-shim's kmsg): OOMKilled every time, not by luck.
#[test]
fn oom_is_reported_every_time_under_systemd() {
    require_vm();
    assert!(
        systemd(),
        "run in the systemd guest: HAKO_VM_ONLY=vm_engine"
    );
    let h = Hako::new();
    let mut ids = Vec::new();
    for n in 0..4 {
        let name = format!("hog{n}");
        let out = h.run(&[
            "run",
            "--name",
            &name,
            "-m",
            "16m",
            "busybox",
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=64M",
            "count=1",
        ]);
        assert_eq!(out.status.code(), Some(137), "run {n}: {out:?}");
        let hog = h.inspect(&name);
        assert_eq!(
            hog["State"]["OOMKilled"], true,
            "run {n}: {:#}",
            hog["State"]
        );
        ids.push(hog["Id"].as_str().expect("id").to_owned());
    }
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    h.finish(&ids);
    for c in ids {
        let unit = format!("hako-{c}.scope");
        h.wait_for(&format!("{unit} to go"), || {
            show(&unit, "LoadState") == "not-found"
        });
    }
}

#[test]
fn cgroup_manager_and_cgroupns_choices() {
    require_vm();
    let h = Hako::new();
    let own = h.ok(&[
        "run",
        "--rm",
        "--cgroupns",
        "host",
        "busybox",
        "cat",
        "/proc/self/cgroup",
    ]);
    assert_ne!(own.trim(), "0::/", "--cgroupns host shows the host's path");
    if systemd() {
        let id = h
            .ok(&[
                "--cgroup-manager",
                "cgroupfs",
                "run",
                "-d",
                "busybox",
                "sleep",
                "1000",
            ])
            .trim()
            .to_owned();
        assert_eq!(host_cgroup(&h, &id), format!("/hako/{id}"));
        let line = h.fails(
            125,
            &["run", "--cgroup-parent", "/custom", "busybox", "true"],
        );
        assert!(line.contains("should be a valid slice"), "{line}");
        let own = h.ok(&[
            "run",
            "--rm",
            "--cgroupns",
            "host",
            "--cgroup-parent",
            "hakotest.slice",
            "busybox",
            "cat",
            "/proc/self/cgroup",
        ]);
        assert!(
            own.trim().starts_with("0::/hakotest.slice/hako-"),
            "a slice as --cgroup-parent: {own}"
        );
        h.finish(&[&id]);
    } else {
        let line = h.fails(
            125,
            &["--cgroup-manager", "systemd", "run", "busybox", "true"],
        );
        assert!(line.contains("needs systemd as PID 1"), "{line}");
        h.assert_clean(&[]);
    }
}

/// `hako ARGS` on the default root and exec root (`/var/lib/hako`, `/run/hako`), which the
/// shipped unit uses: in the guest both start empty, nothing of the host's.
fn hako_default(args: &[&str]) -> String {
    let out = Command::new(common::HAKO)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run hako");
    assert!(
        out.status.success(),
        "hako {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `systemctl ARGS`, which must succeed.
fn sc(args: &[&str]) {
    let o = Command::new("systemctl")
        .args(args)
        .output()
        .expect("systemctl");
    assert!(o.status.success(), "systemctl {args:?}: {o:?}");
}

/// `scripts/hako-boot.service` as `scripts/install.sh` installs it (`@BINDIR@` = where this
/// test's `hako` is) at `unit`, then `daemon-reload` and `enable ENABLE..`.
fn install_boot_unit(unit: &Path, enable: &[&str]) {
    let bindir = Path::new(common::HAKO).parent().expect("bin dir");
    let unit_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/hako-boot.service"),
    )
    .expect("scripts/hako-boot.service");
    std::fs::write(
        unit,
        unit_text.replace("@BINDIR@", &bindir.to_string_lossy()),
    )
    .expect("install the unit");
    sc(&["daemon-reload"]);
    sc(&[&["enable"][..], enable, &["hako-boot.service"]].concat());
}

/// The containers of the hako-boot tests, by name and restart policy; `stopped` is stopped
/// by hand before the power cut or reboot.
const POLICIES: [(&str, &str); 4] = [
    ("always", "always"),
    ("unless", "unless-stopped"),
    ("stopped", "unless-stopped"),
    ("never", "no"),
];

/// `--name NAME --restart POLICY` for each of [`POLICIES`] (after `extra`), `stopped`
/// stopped by hand; their ids. The init exits on SIGTERM, as a service would: at a
/// shutdown, systemd's last SIGTERM to every process ends it at once.
fn run_policies(extra: &[&str]) -> Vec<String> {
    hako_default(&[
        "import",
        common::rootfs_tar().to_str().expect("utf-8"),
        "busybox",
    ]);
    let ids: Vec<String> = POLICIES
        .iter()
        .map(|(name, policy)| {
            hako_default(
                &[
                    &["run", "-d", "--network", "none", "--name", name][..],
                    extra,
                    &[
                        "--restart",
                        policy,
                        "busybox",
                        "sh",
                        "-c",
                        "trap 'exit 0' TERM; while :; do sleep 1; done",
                    ],
                ]
                .concat(),
            )
        })
        .collect();
    hako_default(&["stop", "-t", "1", "stopped"]);
    ids
}

/// hako-boot.service ran and succeeded; `always` and `unless` run again, each in a scope of
/// its own (not the unit's: stopping the unit leaves them), `stopped` and `never` do not.
fn policies_came_back(ids: &[String]) {
    assert_eq!(show("hako-boot.service", "ActiveState"), "active");
    assert_eq!(show("hako-boot.service", "Result"), "success");
    let state = |n: &str| hako_default(&["inspect", "-f", "{{.State.Status}}", n]);
    for n in ["always", "unless"] {
        assert_eq!(state(n), "running", "{n} after hako-boot.service");
    }
    for n in ["stopped", "never"] {
        assert_ne!(state(n), "running", "{n} after hako-boot.service");
    }
    sc(&["stop", "hako-boot.service"]);
    for (n, id) in [("always", &ids[0]), ("unless", &ids[1])] {
        assert_eq!(state(n), "running", "{n} after stopping hako-boot.service");
        let pid = hako_default(&["inspect", "-f", "{{.State.Pid}}", n]);
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
        assert_eq!(
            cg.trim(),
            format!("0::/system.slice/hako-{id}.scope"),
            "{n}"
        );
    }
    assert_eq!(hako_default(&["exec", "always", "echo", "up"]), "up");
}

/// Removes the containers; their scopes go, nothing is left; the unit is disabled and
/// removed.
fn remove_policies(ids: &[String], unit: &Path, disable: &[&str]) {
    for id in ids {
        hako_default(&["rm", "-f", "-v", id]);
    }
    for id in ids {
        let unit = format!("hako-{id}.scope");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while show(&unit, "LoadState") != "not-found" {
            assert!(std::time::Instant::now() < deadline, "{unit} left");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    assert_eq!(hako_default(&["ps", "-aq"]), "", "containers left");
    let report = hako_test_support::find_leaks(
        Path::new("/run/hako/runtime/hako-runtime"),
        &ids.iter().map(String::as_str).collect::<Vec<_>>(),
        // (/var/lib/hako itself is the guest's mount: the layers' mounts are below.)
        &[
            Path::new("/var/lib/hako/overlay2"),
            Path::new("/var/lib/hako/containers"),
        ],
    );
    assert!(report.is_empty(), "leaks:\n{report}");
    sc(&[&["disable"][..], disable, &["hako-boot.service"]].concat());
    std::fs::remove_file(unit).expect("remove the unit");
    sc(&["daemon-reload"]);
}

fn require_systemd() {
    require_vm();
    assert!(
        systemd(),
        "needs systemd as PID 1: `bash scripts/vm/test.sh systemd`"
    );
}

/// `scripts/hako-boot.service` as `scripts/install.sh` installs it, run by systemd: after
/// every container process and shim was killed (what a power cut leaves), starting the
/// unit brings back `always` and `unless-stopped` (not one stopped by hand, not `no`); the
/// containers it started live in scopes of their own, so the oneshot's end and a `stop` of
/// the unit leave them running.
#[test]
fn hako_boot_service_restarts_policies_under_systemd() {
    require_systemd();
    let unit = Path::new("/run/systemd/system/hako-boot.service");
    install_boot_unit(unit, &["--runtime"]);
    assert!(
        Path::new("/run/systemd/system/multi-user.target.wants/hako-boot.service").exists(),
        "enable links it into multi-user.target"
    );
    let ids = run_policies(&[]);
    // The power cut: every shim and container process, kill -9.
    for (name, id) in ["always", "unless", "never"]
        .iter()
        .zip([&ids[0], &ids[1], &ids[3]])
    {
        let init: i32 = hako_default(&["inspect", "-f", "{{.State.Pid}}", name])
            .parse()
            .expect("pid");
        let text = std::fs::read_to_string(format!("/run/hako/containers/{id}/shim.pid"))
            .expect("shim.pid");
        let shim: i32 = text
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("shim pid");
        for pid in [shim, init] {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !hako_default(&["ps", "-q"]).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "containers still up after kill -9"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    sc(&["start", "hako-boot.service"]);
    policies_came_back(&ids);
    remove_policies(&ids, unit, &["--runtime"]);
}

/// Where the reboot tests install the unit: `/etc/systemd/system`, which the systemd
/// guest keeps on its disk across the reboot (with `/var/lib/hako`).
const REBOOT_UNIT: &str = "/etc/systemd/system/hako-boot.service";
/// The label that carries the first boot's id over the reboot.
const BOOT_LABEL: &str = "hako.test.boot";

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("boot_id")
        .trim()
        .to_owned()
}

/// A REAL reboot, first half (the systemd guest runs it last, then reboots with
/// `systemctl reboot`: scripts/vm/batches/systemd.reboot.tests has the second half):
/// hako-boot.service enabled for good, containers of every restart policy left running.
#[test]
fn reboot_1_containers_with_restart_policies_are_left_running() {
    require_systemd();
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    assert!(
        mounts
            .lines()
            .any(|l| l.starts_with("/dev/vda /var/lib/hako ")),
        "/var/lib/hako must be on the guest's disk (scripts/vm/test.sh makes one for a batch with a reboot)"
    );
    install_boot_unit(Path::new(REBOOT_UNIT), &[]);
    let label = format!("{BOOT_LABEL}={}", boot_id());
    let ids = run_policies(&["--label", &label]);
    for ((n, _), id) in POLICIES.iter().zip(&ids).take(2) {
        assert_eq!(
            hako_default(&["inspect", "-f", "{{.State.Status}}", n]),
            "running"
        );
        assert_eq!(show(&format!("hako-{id}.scope"), "ActiveState"), "active");
    }
}

/// A REAL reboot, second half (the systemd guest's second boot): systemd started
/// hako-boot.service at boot (multi-user.target wants it), which brought back `always` and
/// `unless-stopped` from the store on disk, with no shim, runtime state or mount of the first
/// boot left (/run is new); the one stopped by hand and `no` stay down. Then everything goes.
#[test]
fn reboot_2_hako_boot_service_brings_them_back_after_the_reboot() {
    require_systemd();
    let ids: Vec<String> = POLICIES
        .iter()
        .map(|(n, _)| hako_default(&["inspect", "-f", "{{.Id}}", n]))
        .collect();
    let before = hako_default(&[
        "inspect",
        "-f",
        &format!("{{{{index .Config.Labels \"{BOOT_LABEL}\"}}}}"),
        "always",
    ]);
    assert!(!before.is_empty(), "the first boot's label");
    assert_ne!(before, boot_id(), "this must run after a reboot");
    stopped_by_their_shims_at_the_shutdown(&ids[..2]);
    policies_came_back(&ids);
    remove_policies(&ids, Path::new(REBOOT_UNIT), &[]);
}

/// At the first boot's shutdown systemd sent SIGTERM to the job service's processes, the
/// shims of `always` and `unless` among them: each shim stopped its container (its stop
/// signal, SIGTERM; the init traps it and exits 0) and recorded the exit, so each has a
/// `kill` 15 then a `die` 0 event before the `start` of this boot's hako-boot.service (the
/// last `start` in the log). (A shim that ignored SIGTERM was killed with everything else
/// after systemd's stop timeout: no `die` at all.) Not cut at the boot time: /proc/stat's
/// `btime` has whole seconds, and the guest reboots within the second of its shutdown.
fn stopped_by_their_shims_at_the_shutdown(ids: &[String]) {
    let mut text = String::new();
    for f in ["/var/lib/hako/events.log.1", "/var/lib/hako/events.log"] {
        text.push_str(&std::fs::read_to_string(f).unwrap_or_default());
    }
    for id in ids {
        let mut seen: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["Actor"]["ID"] == id.as_str())
            .filter_map(|e| {
                let attrs = &e["Actor"]["Attributes"];
                match e["Action"].as_str()? {
                    "kill" => Some(format!("kill {}", attrs["signal"].as_str()?)),
                    "die" => Some(format!("die {}", attrs["exitCode"].as_str()?)),
                    "start" => Some("start".to_string()),
                    _ => None,
                }
            })
            .collect();
        let this_boot = seen.iter().rposition(|e| e == "start");
        assert!(
            this_boot.is_some_and(|i| i == seen.len() - 1),
            "{id}: hako-boot.service's start must be the last event: {seen:?}"
        );
        seen.truncate(this_boot.unwrap_or(0));
        assert!(
            seen.ends_with(&["kill 15".to_string(), "die 0".to_string()]),
            "{id}: events before this boot's start: {seen:?}"
        );
    }
}

/// A loop-mounted XFS image with project quotas (the guest's Debian kernel has
/// `CONFIG_XFS_QUOTA`; this host's does not). Drop unmounts it.
struct Xfs {
    dir: tempfile::TempDir,
}

impl Xfs {
    fn new(opts: &str) -> Xfs {
        let dir = tempfile::Builder::new()
            .prefix("hako-vm-xfs-")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let img = dir.path().join("img");
        std::fs::create_dir(dir.path().join("mnt")).expect("mnt");
        for argv in [
            vec!["truncate", "-s", "300M", img.to_str().expect("utf-8")],
            vec!["mkfs.xfs", "-q", img.to_str().expect("utf-8")],
            vec![
                "mount",
                "-o",
                &format!("loop,{opts}"),
                img.to_str().expect("utf-8"),
                dir.path().join("mnt").to_str().expect("utf-8"),
            ],
        ] {
            let o = Command::new(argv[0])
                .args(&argv[1..])
                .output()
                .expect(argv[0]);
            assert!(o.status.success(), "{argv:?}: {o:?}");
        }
        Xfs { dir }
    }

    fn mnt(&self) -> std::path::PathBuf {
        self.dir.path().join("mnt")
    }
}

impl Drop for Xfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.mnt()).status();
    }
}

/// `hako` with its --root on `dir` (a fresh directory there).
fn hako_on(dir: &Path) -> Hako {
    let h = Hako {
        root: tempfile::Builder::new()
            .prefix("hako-ctr-")
            .tempdir_in(dir)
            .expect("tempdir"),
        exec: tempfile::Builder::new()
            .prefix("hk")
            .tempdir_in("/tmp")
            .expect("tempdir"),
        exec_override: None,
        net: hako_test_support::NetSandbox::new().expect("netns"),
    };
    h.ok(&[
        "import",
        common::rootfs_tar().to_str().expect("utf-8"),
        "busybox",
    ]);
    h
}

/// `--storage-opt size=` on overlay2 over XFS mounted with `prjquota`: the container's
/// writable layer holds 10 MiB and a write past 20 MiB ends in ENOSPC inside; `inspect`
/// keeps the option. On XFS without the option (and on tmpfs) it is Docker's one line and
/// nothing is created.
#[test]
fn storage_opt_size_is_a_project_quota_on_xfs() {
    require_vm();
    let xfs = Xfs::new("prjquota");
    {
        let h = hako_on(&xfs.mnt());
        let id = h
            .ok(&[
                "run",
                "-d",
                "--storage-opt",
                "size=20m",
                "busybox",
                "sleep",
                "1000",
            ])
            .trim()
            .to_owned();
        assert_eq!(
            h.inspect(&id)["HostConfig"]["StorageOpt"]["size"],
            "20m",
            "inspect shows the option"
        );
        let fits = h.run(&[
            "exec",
            &id,
            "dd",
            "if=/dev/zero",
            "of=/ten",
            "bs=1M",
            "count=10",
        ]);
        assert!(fits.status.success(), "10 MiB in 20: {fits:?}");
        let past = h.run(&[
            "exec",
            &id,
            "dd",
            "if=/dev/zero",
            "of=/thirty",
            "bs=1M",
            "count=30",
        ]);
        let err = String::from_utf8_lossy(&past.stderr);
        assert!(!past.status.success(), "30 MiB more must not fit: {past:?}");
        assert!(err.contains("No space left on device"), "{err}");
        h.finish(&[&id]);
    }
    let plain = Xfs::new("noquota");
    for dir in [plain.mnt(), std::path::PathBuf::from("/tmp")] {
        let h = hako_on(&dir);
        let line = h.fails(
            125,
            &[
                "run",
                "--rm",
                "--storage-opt",
                "size=20m",
                "busybox",
                "true",
            ],
        );
        assert!(
            line.contains(
                "--storage-opt size is only supported for overlay over xfs with 'pquota' mount option"
            ),
            "{}: {line}",
            dir.display()
        );
        h.assert_clean(&[]);
    }
}
