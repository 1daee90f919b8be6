//! containerd with its own config, driven by `ctr`; containers go through the runc v2 shim
//! (`io.containerd.runc.v2`) with `--runc-binary <runtime>`.
//!
//! `--runc-binary` sets the shim's `runc.v1.Options.BinaryName`, the very field the CRI
//! plugin's `BinaryName = "..."` runtime option sets for Kubernetes; the CRI plugin itself
//! is disabled here (there is no CRI client in Debian 12 to drive it).
//!
//! Under the temp dir: `config.toml`, `root/` and `state/` (containerd's), `containerd.sock`
//! (+ `.ttrpc`), `opt/`, `runc/` (the runtime's `--root`, via `--runc-root`; without it the
//! shim would use the host's `/run/containerd/runc`), `fifo/` (ctr's stdio FIFOs, instead of
//! `/run/containerd/fifo`). Containers go under the cgroup `/<hako-e2e-containerd-*>/<id>`.
//! Hybrid cgroups need nothing: containerd 1.6 and its shim use the v1 controllers.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::dockerd::tail;
use super::image;
use super::support::{
    Daemon, Oci, Out, kill_mentioning, mounts_under, processes_mentioning, remove_cgroup_parent,
    remove_tree, run, run_in_pty, unique, wait_until,
};

/// The ctr namespace the tests use.
const NAMESPACE: &str = "hako-e2e";

/// One containerd for one test; stopped and cleaned up by [`Containerd::shutdown`] or Drop.
#[derive(Debug)]
pub struct Containerd {
    dir: PathBuf,
    daemon: Daemon,
    oci: Oci,
    cgroup_parent: String,
    torn_down: bool,
}

impl Containerd {
    /// Start containerd, wait for its API, and `ctr image import` busybox.
    pub fn start(oci: &Oci) -> Self {
        let dir = super::support::harness_dir("containerd");
        let p = |sub: &str| dir.join(sub).to_string_lossy().into_owned();
        let config = format!(
            "version = 2\n\
             root = \"{root}\"\n\
             state = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n\
             [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [debug]\n  level = \"debug\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{opt}\"\n",
            root = p("root"),
            state = p("state"),
            sock = p("containerd.sock"),
            opt = p("opt"),
        );
        fs::write(dir.join("config.toml"), config).expect("config.toml");
        let argv = vec![
            "containerd".to_string(),
            format!("--config={}", p("config.toml")),
        ];
        let daemon = Daemon::spawn("containerd", &argv, dir.join("containerd.log"));
        let mut c = Self {
            dir,
            daemon,
            oci: oci.clone(),
            cgroup_parent: unique("containerd"),
            torn_down: false,
        };
        let (sock, dir) = (c.dir.join("containerd.sock"), c.dir.clone());
        c.daemon.wait_ready(Duration::from_secs(60), || {
            sock.exists() && ctr_cmd(&dir, &["version"], Duration::from_secs(5)).success()
        });
        let archive = image::busybox_archive(&c.dir);
        c.ctr(&["image", "import", &archive.to_string_lossy()])
            .ok("ctr image import");
        c
    }

    /// `ctr -a <sock> -n hako-e2e ARGS` (60 s deadline).
    pub fn ctr(&self, args: &[&str]) -> Out {
        ctr_cmd(&self.dir, args, Duration::from_secs(60))
    }

    /// The image reference after import.
    pub fn image(&self) -> String {
        format!("docker.io/{}", image::TAG)
    }

    /// `ctr run` flags that route container `id` through the runtime under test.
    pub fn run_flags(&self, id: &str) -> Vec<String> {
        vec![
            "--runc-binary".into(),
            self.oci.path.to_string_lossy().into_owned(),
            "--runc-root".into(),
            self.runc_root().to_string_lossy().into_owned(),
            "--fifo-dir".into(),
            self.dir.join("fifo").to_string_lossy().into_owned(),
            "--cgroup".into(),
            format!("/{}/{id}", self.cgroup_parent),
        ]
    }

    /// `ctr run <runtime flags> FLAGS <image> <id> CMD...`.
    pub fn run(&self, id: &str, flags: &[&str], cmd: &[&str]) -> Out {
        let image = self.image();
        let mut args: Vec<&str> = vec!["run"];
        let ours = self.run_flags(id);
        args.extend(ours.iter().map(String::as_str));
        args.extend_from_slice(flags);
        args.push(&image);
        args.push(id);
        args.extend_from_slice(cmd);
        self.ctr(&args)
    }

    /// `ctr ARGS` under a pty (`script -qec`), typing `input`; ARGS is a shell line.
    pub fn ctr_pty(&self, args: &str, input: &str) -> Out {
        let line = format!(
            "ctr -a {} -n {NAMESPACE} {args}",
            self.dir.join("containerd.sock").display()
        );
        run_in_pty(&line, &[], input, &self.dir, Duration::from_secs(60))
    }

    /// The runtime's `--root` (the shim adds the namespace: `<root>/hako-e2e/<id>`).
    pub fn runc_root(&self) -> PathBuf {
        self.dir.join("runc")
    }

    /// The container's cgroup dir in the v1 `controller` hierarchy.
    pub fn cgroup_dir(&self, controller: &str, id: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(&self.cgroup_parent)
            .join(id)
    }

    /// The task's status as `ctr task ls` prints it (RUNNING, STOPPED, ...).
    pub fn task_status(&self, id: &str) -> Option<String> {
        let out = self.ctr(&["task", "ls"]);
        out.stdout.lines().find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(id)).then(|| f.nth(1).unwrap_or_default().to_string())
        })
    }

    /// Wait until the task reaches `status`.
    pub fn wait_task(&self, id: &str, status: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.task_status(id).as_deref() == Some(status))
    }

    /// Remove every task and container, stop containerd, check nothing is left.
    pub fn shutdown(mut self) {
        let problems = self.teardown();
        assert!(
            problems.is_empty(),
            "containerd teardown left: {problems:#?}"
        );
    }

    fn teardown(&mut self) -> Vec<String> {
        if std::mem::replace(&mut self.torn_down, true) {
            return Vec::new();
        }
        let mut problems = Vec::new();
        if self.daemon.alive() {
            let tasks = self.ctr(&["task", "ls", "-q"]);
            for id in tasks.stdout.split_whitespace() {
                let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
                self.wait_task(id, "STOPPED", Duration::from_secs(10));
                let out = self.ctr(&["task", "delete", id]);
                if !out.success() {
                    problems.push(format!("ctr task delete at teardown:\n{out}"));
                }
            }
            let containers = self.ctr(&["container", "ls", "-q"]);
            for id in containers.stdout.split_whitespace() {
                let _ = self.ctr(&["container", "rm", id]);
            }
        }
        self.daemon.stop();
        let marker = self.dir.to_string_lossy().into_owned();
        let left = processes_mentioning(&marker);
        if !left.is_empty() {
            problems.push(format!("processes after containerd stopped: {left:?}"));
            kill_mentioning(&marker);
        }
        let mounts = mounts_under(&self.dir);
        if !mounts.is_empty() {
            problems.push(format!("mounts in the host namespace: {mounts:?}"));
        }
        let mut leaked = Vec::new();
        wait_until(Duration::from_secs(5), || {
            leaked = remove_cgroup_parent(&self.cgroup_parent);
            super::support::cgroup_dirs(&self.cgroup_parent).is_empty()
        });
        if !leaked.is_empty() {
            problems.push(format!("container cgroups left: {leaked:?}"));
        }
        if !problems.is_empty() {
            problems.push(format!(
                "containerd log tail:\n{}",
                tail(&self.daemon.log(), 40)
            ));
        }
        remove_tree(&self.dir);
        problems
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let problems = self.teardown();
        if !problems.is_empty() {
            eprintln!("containerd teardown (after a failure) left: {problems:#?}");
        }
    }
}

fn ctr_cmd(dir: &Path, args: &[&str], timeout: Duration) -> Out {
    let mut cmd = Command::new("ctr");
    cmd.arg("-a")
        .arg(dir.join("containerd.sock"))
        .args(["-n", NAMESPACE])
        .args(args);
    run(cmd, dir, timeout)
}
