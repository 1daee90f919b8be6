//! podman with `--runtime <runtime>`, all of its storage and state in a temp dir.
//!
//! podman has no daemon: each command is its own process and a detached container is kept
//! by a `conmon`. Isolation: `--root`, `--runroot`, `--tmpdir` under the temp dir, an own
//! `containers.conf` (`CONTAINERS_CONF`), containers joined to a netns we create
//! (`--network ns:/run/netns/hako-e2e-*`: no netavark/CNI, no host firewall), and an own
//! cgroup parent (`--cgroup-parent /hako-e2e-podman-*`, with `--cgroup-manager cgroupfs`:
//! there is no systemd here). podman 4.3 sees the hybrid layout as cgroup v1; nothing else
//! is needed for it.
//!
//! Workaround for podman 4.3's default ulimits: as root it asks for `RLIMIT_NOFILE`
//! 1048576/1048576 (and `RLIMIT_NPROC` at its own, lowered, hard limit), which needs
//! CAP_SYS_RESOURCE when the hard limit is lower; the sandbox these tests run in lacks that
//! capability, so every runtime fails at create (runc: "error setting rlimit type 7:
//! operation not permitted", crun: "setrlimit `RLIMIT_NOFILE`: Operation not permitted").
//! `--ulimit host` does not help in 4.3. The fix is `default_ulimits` in our containers.conf:
//! `nofile=1024:1024` and `nproc=1024:1024` (lowering a limit needs no capability).
//!
//! podman does not pass `--runtime-flag`s to the runtime on every call (`podman run --rm`'s
//! final `delete --force` comes without them), so the runtime keeps its default `--root`
//! (`/run/hako/runtime` for hako-runtime, `/run/runc` for runc); container ids are unique
//! 64-hex strings there.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hako_test_support::NetnsGuard;

use super::image;
use super::support::{
    Oci, Out, kill_mentioning, mounts_under, remove_cgroup_parent, remove_tree, run, run_in_pty,
    unique, wait_until,
};

const CONTAINERS_CONF: &str = "[containers]\n\
default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
[engine]\n\
cgroup_manager = \"cgroupfs\"\n\
events_logger = \"file\"\n";

/// One podman setup for one test; cleaned up by [`Podman::shutdown`] or on Drop.
#[derive(Debug)]
pub struct Podman {
    dir: PathBuf,
    oci: Oci,
    netns: NetnsGuard,
    cgroup_parent: String,
    torn_down: bool,
}

impl Podman {
    /// Prepare the dirs, config and netns, and `podman load` busybox.
    pub fn start(oci: &Oci) -> Self {
        let dir = super::support::harness_dir("podman");
        fs::write(dir.join("containers.conf"), CONTAINERS_CONF).expect("containers.conf");
        fs::create_dir_all(dir.join("tmp")).expect("podman tmpdir");
        let p = Self {
            dir,
            oci: oci.clone(),
            netns: NetnsGuard::new().expect("ip netns add"),
            cgroup_parent: unique("podman"),
            torn_down: false,
        };
        let archive = image::busybox_archive(&p.dir);
        p.podman(&["load", "-i", &archive.to_string_lossy()])
            .ok("podman load");
        p
    }

    fn global_args(&self) -> Vec<String> {
        let p = |sub: &str| self.dir.join(sub).to_string_lossy().into_owned();
        vec![
            format!("--root={}", p("root")),
            format!("--runroot={}", p("run")),
            format!("--tmpdir={}", p("tmp")),
            format!("--runtime={}", self.oci.path.display()),
            "--cgroup-manager=cgroupfs".into(),
            "--events-backend=file".into(),
            "--storage-driver=overlay".into(),
        ]
    }

    /// `podman <isolating flags> ARGS` (60 s deadline).
    pub fn podman(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new("podman");
        cmd.args(self.global_args())
            .args(args)
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"));
        run(cmd, &self.dir, Duration::from_secs(60))
    }

    /// The flags `run` needs here: our netns and cgroup parent.
    pub fn run_flags(&self) -> Vec<String> {
        vec![
            format!("--network=ns:{}", self.netns.path().display()),
            format!("--cgroup-parent=/{}", self.cgroup_parent),
        ]
    }

    /// `podman run <netns, cgroup parent> ARGS`.
    pub fn run(&self, args: &[&str]) -> Out {
        let flags = self.run_flags();
        let mut all: Vec<&str> = vec!["run"];
        all.extend(flags.iter().map(String::as_str));
        all.extend_from_slice(args);
        self.podman(&all)
    }

    /// `podman ARGS` under a pty (`script -qec`), typing `input`; ARGS is a shell line.
    pub fn podman_pty(&self, args: &str, input: &str) -> Out {
        let line = format!("podman {} {args}", self.global_args().join(" "));
        let conf = self.dir.join("containers.conf");
        run_in_pty(
            &line,
            &[("CONTAINERS_CONF", &conf.to_string_lossy())],
            input,
            &self.dir,
            Duration::from_secs(60),
        )
    }

    /// The image reference after `podman load`.
    pub fn image(&self) -> String {
        format!("localhost/{}", image::TAG)
    }

    /// The runtime binary podman was given.
    pub fn runtime_path(&self) -> &Path {
        &self.oci.path
    }

    /// The full id of container `name`.
    pub fn id(&self, name: &str) -> String {
        let out = self.podman(&["inspect", "-f", "{{.Id}}", name]);
        out.ok("podman inspect");
        out.stdout.trim().to_string()
    }

    /// The container's cgroup dir in the v1 `controller` hierarchy.
    pub fn cgroup_dir(&self, controller: &str, id: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(&self.cgroup_parent)
            .join(format!("libpod-{id}"))
    }

    /// Remove every container, check nothing is left (no conmon, mount or cgroup).
    pub fn shutdown(mut self) {
        let problems = self.teardown();
        assert!(problems.is_empty(), "podman teardown left: {problems:#?}");
    }

    fn teardown(&mut self) -> Vec<String> {
        if std::mem::replace(&mut self.torn_down, true) {
            return Vec::new();
        }
        let mut problems = Vec::new();
        let out = self.podman(&["rm", "-a", "-f", "-t", "0"]);
        if !out.success() {
            problems.push(format!("podman rm -af at teardown:\n{out}"));
        }
        let marker = self.dir.to_string_lossy().into_owned();
        let gone = wait_until(Duration::from_secs(10), || {
            super::support::processes_mentioning(&marker).is_empty()
        });
        if !gone {
            let left = super::support::processes_mentioning(&marker);
            problems.push(format!("processes after podman rm -af: {left:?}"));
            kill_mentioning(&marker);
        }
        // podman keeps the image's storage mounted (`overlay` driver's home); unmount it as
        // podman itself would on `system reset`, but a container rootfs left is a leak.
        let _ = self.podman(&["unmount", "-a"]);
        let mounts: Vec<PathBuf> = mounts_under(&self.dir)
            .into_iter()
            .filter(|m| m.ends_with("merged"))
            .collect();
        if !mounts.is_empty() {
            problems.push(format!("container rootfs mounts left: {mounts:?}"));
        }
        let mut leaked = Vec::new();
        wait_until(Duration::from_secs(5), || {
            leaked = remove_cgroup_parent(&self.cgroup_parent);
            super::support::cgroup_dirs(&self.cgroup_parent).is_empty()
        });
        leaked.retain(|p| !p.ends_with("conmon"));
        if !leaked.is_empty() {
            problems.push(format!("container cgroups left: {leaked:?}"));
        }
        remove_tree(&self.dir);
        problems
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let problems = self.teardown();
        if !problems.is_empty() {
            eprintln!("podman teardown (after a failure) left: {problems:#?}");
        }
    }
}
