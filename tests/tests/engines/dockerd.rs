//! dockerd with `--add-runtime hako=<hako-runtime>`, in its own namespaces and dirs.
//!
//! Everything it owns lives under one temp dir: `data/` (`--data-root`, images and
//! overlay2 layers, its managed containerd's root), `exec/` (`--exec-root`: the managed
//! containerd's socket and state, and the runtime's `--root`, `exec/runtime-runc/moby`),
//! `docker.sock`, `daemon.json` (empty, so the host's `/etc/docker/daemon.json` is never
//! read) and `cli/` (`DOCKER_CONFIG`). It touches no host network or firewall:
//! `--bridge=none --iptables=false --ip6tables=false --ip-masq=false --userland-proxy=false`,
//! and it runs in a fresh netns anyway. Containers go under a cgroup parent of its own
//! (`--cgroup-parent /hako-e2e-dockerd-<pid>-<n>`), removed at teardown.
//!
//! The hybrid cgroup layout needs nothing: dockerd 20.10 reports "Cgroup Version: 1" and
//! uses the v1 controllers with the cgroupfs driver; the empty v2 tree is left to the
//! runtime (runc 1.1 and hako-runtime both also place the init in `unified/<parent>/<id>`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hako_test_support::RuntimeKind;

use super::image;
use super::support::{
    Daemon, Oci, Out, kill_mentioning, mounts_under, processes_mentioning, remove_cgroup_parent,
    remove_tree, run, run_in_pty, unique, which,
};

/// One dockerd for one test; stopped and cleaned up by [`Dockerd::shutdown`] or on Drop.
#[derive(Debug)]
pub struct Dockerd {
    dir: PathBuf,
    daemon: Daemon,
    cli: PathBuf,
    runtime: &'static str,
    cgroup_parent: String,
    torn_down: bool,
}

impl Dockerd {
    /// Start dockerd with `oci` registered, wait for its API, and `docker load` busybox.
    pub fn start(oci: &Oci) -> Self {
        let dir = super::support::harness_dir("dockerd");
        fs::write(dir.join("daemon.json"), "{}\n").expect("daemon.json");
        let cgroup_parent = unique("dockerd");
        let p = |sub: &str| dir.join(sub).to_string_lossy().into_owned();
        let mut argv: Vec<String> = vec![
            "dockerd".into(),
            "--debug".into(),
            format!("--data-root={}", p("data")),
            format!("--exec-root={}", p("exec")),
            format!("--pidfile={}", p("docker.pid")),
            format!("--host=unix://{}", p("docker.sock")),
            format!("--config-file={}", p("daemon.json")),
            "--bridge=none".into(),
            "--iptables=false".into(),
            "--ip6tables=false".into(),
            "--ip-masq=false".into(),
            "--userland-proxy=false".into(),
            format!("--cgroup-parent=/{cgroup_parent}"),
        ];
        // runc is built in (found in $PATH, like hako's tests' oracle); hako is added.
        let runtime = match oci.kind {
            RuntimeKind::Hako => {
                argv.push(format!("--add-runtime=hako={}", oci.path.display()));
                "hako"
            }
            _ => "runc",
        };
        let daemon = Daemon::spawn("dockerd", &argv, dir.join("dockerd.log"));
        // The docker.io CLI matches the daemon's API; the stock CLI negotiates down to it.
        let cli = Some(PathBuf::from("/usr/bin/docker"))
            .filter(|p| p.is_file())
            .or_else(|| which("docker"))
            .expect("docker CLI");
        let mut d = Self {
            dir,
            daemon,
            cli,
            runtime,
            cgroup_parent,
            torn_down: false,
        };
        let sock = d.dir.join("docker.sock");
        let (cli, dir) = (d.cli.clone(), d.dir.clone());
        d.daemon.wait_ready(Duration::from_secs(60), || {
            sock.exists() && docker_cmd(&cli, &dir, &["version"], Duration::from_secs(5)).success()
        });
        let archive = image::busybox_archive(&d.dir);
        d.docker(&["load", "-i", &archive.to_string_lossy()])
            .ok("docker load");
        d
    }

    /// `docker ARGS` against this daemon (60 s deadline).
    pub fn docker(&self, args: &[&str]) -> Out {
        docker_cmd(&self.cli, &self.dir, args, Duration::from_secs(60))
    }

    /// `docker run --runtime <ours> --network none ARGS`.
    pub fn run(&self, args: &[&str]) -> Out {
        let mut all = vec!["run", "--runtime", self.runtime, "--network", "none"];
        all.extend_from_slice(args);
        self.docker(&all)
    }

    /// `docker ARGS` under a pty (`script -qec`), typing `input`; ARGS is a shell line.
    pub fn docker_pty(&self, args: &str, input: &str) -> Out {
        let line = format!("{} {args}", self.cli.display());
        let host = format!("unix://{}", self.dir.join("docker.sock").display());
        let config = self.dir.join("cli").to_string_lossy().into_owned();
        run_in_pty(
            &line,
            &[("DOCKER_HOST", &host), ("DOCKER_CONFIG", &config)],
            input,
            &self.dir,
            Duration::from_secs(60),
        )
    }

    /// The daemon's API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// `DOCKER_CONFIG` of its CLI.
    pub fn cli_config(&self) -> PathBuf {
        self.dir.join("cli")
    }

    /// `docker ARGS`, stdout as bytes (`export`, `save`).
    pub fn docker_bytes(&self, args: &[&str]) -> Vec<u8> {
        let o = Command::new(&self.cli)
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .env("DOCKER_CONFIG", self.cli_config())
            .output()
            .expect("run docker");
        assert!(
            o.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    }

    /// The `--runtime` name containers use (`hako` or `runc`).
    pub fn runtime(&self) -> &'static str {
        self.runtime
    }

    /// The image tag loaded at start.
    pub fn image(&self) -> &'static str {
        image::TAG
    }

    /// The full id of container `name`.
    pub fn id(&self, name: &str) -> String {
        let out = self.docker(&["inspect", "-f", "{{.Id}}", name]);
        out.ok("docker inspect");
        out.stdout.trim().to_string()
    }

    /// The container's cgroup dir in the v1 `controller` hierarchy (cgroupfs driver).
    pub fn cgroup_dir(&self, controller: &str, id: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(&self.cgroup_parent)
            .join(id)
    }

    /// The runtime's state dir for container `id` (dockerd passes `--root exec/runtime-runc/moby`).
    pub fn runtime_state(&self, id: &str) -> PathBuf {
        self.dir.join("exec/runtime-runc/moby").join(id)
    }

    /// Remove every container through dockerd, stop it, and check nothing is left: no
    /// process mentioning the harness dir, no mount under it, no container cgroup.
    pub fn shutdown(mut self) {
        let problems = self.teardown();
        assert!(problems.is_empty(), "dockerd teardown left: {problems:#?}");
    }

    fn teardown(&mut self) -> Vec<String> {
        if std::mem::replace(&mut self.torn_down, true) {
            return Vec::new();
        }
        let mut problems = Vec::new();
        if self.daemon.alive() {
            let ps = self.docker(&["ps", "-aq"]);
            let ids: Vec<&str> = ps.stdout.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                let out = self.docker(&args);
                if !out.success() {
                    problems.push(format!("docker rm -f at teardown:\n{out}"));
                }
            }
        }
        self.daemon.stop();
        let marker = self.dir.to_string_lossy().into_owned();
        let left = processes_mentioning(&marker);
        if !left.is_empty() {
            problems.push(format!("processes after dockerd stopped: {left:?}"));
            kill_mentioning(&marker);
        }
        let mounts = mounts_under(&self.dir);
        if !mounts.is_empty() {
            problems.push(format!("mounts in the host namespace: {mounts:?}"));
        }
        // Processes of the pid namespace may take a moment to be reaped.
        let mut leaked = Vec::new();
        super::support::wait_until(Duration::from_secs(5), || {
            leaked = remove_cgroup_parent(&self.cgroup_parent);
            super::support::cgroup_dirs(&self.cgroup_parent).is_empty()
        });
        if !leaked.is_empty() {
            problems.push(format!("container cgroups left: {leaked:?}"));
        }
        if !problems.is_empty() {
            problems.push(format!(
                "dockerd log tail:\n{}",
                tail(&self.daemon.log(), 40)
            ));
        }
        remove_tree(&self.dir);
        problems
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let problems = self.teardown();
        if !problems.is_empty() {
            eprintln!("dockerd teardown (after a failure) left: {problems:#?}");
        }
    }
}

fn docker_cmd(cli: &Path, dir: &Path, args: &[&str], timeout: Duration) -> Out {
    let mut cmd = Command::new(cli);
    cmd.args(args)
        .env(
            "DOCKER_HOST",
            format!("unix://{}", dir.join("docker.sock").display()),
        )
        .env("DOCKER_CONFIG", dir.join("cli"));
    run(cmd, dir, timeout)
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
