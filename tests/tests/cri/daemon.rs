//! Debian's containerd with its CRI plugin on, boxed like the engine tests' daemons (new
//! net, mount and pid namespaces; see `engines/support.rs`), with one runtime handler whose
//! `BinaryName` is the runtime under test: what a Kubernetes node runs.
//!
//! Under the temp dir: `config.toml`, `root/` and `state/` (containerd's; pod network
//! namespaces go under `state/` too), `containerd.sock`, `runc/` (the runtime's `--root`),
//! `cni/` (a bridge network from Debian's containernetworking-plugins, with its IPAM data),
//! `logs/` (container logs, as the kubelet's log directory). The pause image is the busybox
//! fixture running `sleep` (nothing is pulled); both images are imported with `ctr` into
//! the `k8s.io` namespace the CRI plugin uses. Pod cgroups go under a cgroup parent of the
//! test's own. `restrict_oom_score_adj` because this machine lacks CAP_SYS_RESOURCE (the
//! pause container would ask for -998).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::client::Cri;
use super::image;
use super::support::{
    Daemon, Oci, Out, cgroup_dirs, kill_mentioning, mounts_under, processes_mentioning,
    remove_cgroup_parent, remove_tree, run, unique, wait_until,
};

/// The runtime handler name pods ask for.
pub const HANDLER: &str = "oci";
/// The pause image (`sandbox_image`).
pub const PAUSE: &str = "docker.io/hako-e2e/pause:latest";
/// The workload image.
pub const BUSYBOX: &str = "docker.io/hako-e2e/busybox:latest";

/// One containerd with CRI for one test; torn down by [`CriDaemon::shutdown`] or Drop.
pub struct CriDaemon {
    pub dir: PathBuf,
    daemon: Daemon,
    pub cgroup_parent: String,
    torn_down: bool,
}

impl CriDaemon {
    /// Start containerd, import the images, return it with a connected client.
    pub fn start(oci: &Oci) -> (CriDaemon, Cri) {
        let dir = super::support::harness_dir("cri");
        let p = |sub: &str| dir.join(sub).to_string_lossy().into_owned();
        for sub in ["cni/net.d", "logs", "runc"] {
            fs::create_dir_all(dir.join(sub)).expect("harness dirs");
        }
        let cni = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": "hako-e2e-cri",
            "plugins": [
                {
                    "type": "bridge", "bridge": "hakocri0", "isGateway": true, "ipMasq": false,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": "10.88.77.0/24"}]],
                        "dataDir": p("cni/ipam")
                    }
                },
                {"type": "loopback"}
            ]
        });
        fs::write(dir.join("cni/net.d/10-hako-e2e.conflist"), cni.to_string()).expect("cni");
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  level = "debug"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "{handler}"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{handler}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{handler}.options]
        BinaryName = "{binary}"
        Root = "{runc}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
    max_conf_num = 1
"#,
            root = p("root"),
            state = p("state"),
            sock = p("containerd.sock"),
            opt = p("opt"),
            pause = PAUSE,
            handler = HANDLER,
            binary = oci.path.display(),
            runc = p("runc"),
            cni = p("cni/net.d"),
        );
        fs::write(dir.join("config.toml"), config).expect("config.toml");
        let argv = vec![
            "containerd".to_string(),
            format!("--config={}", p("config.toml")),
        ];
        let daemon = Daemon::spawn("containerd", &argv, dir.join("containerd.log"));
        let mut d = CriDaemon {
            dir,
            daemon,
            cgroup_parent: unique("cri"),
            torn_down: false,
        };
        let (sock, dir) = (d.dir.join("containerd.sock"), d.dir.clone());
        d.daemon.wait_ready(Duration::from_secs(60), || {
            sock.exists() && ctr(&dir, &["version"]).success()
        });
        for (tag, cmd) in [
            ("hako-e2e/pause:latest", &["sleep", "1000000000"][..]),
            ("hako-e2e/busybox:latest", &["sh"]),
        ] {
            let archive = image::archive(&d.dir, tag, cmd);
            ctr(&d.dir, &["image", "import", &archive.to_string_lossy()]).ok("ctr image import");
        }
        let mut cri = None;
        let ready = wait_until(Duration::from_secs(30), || {
            let Ok(mut c) = Cri::connect(&sock) else {
                return false;
            };
            let ok = c
                .image_names()
                .is_ok_and(|n| n.iter().any(|i| i == PAUSE) && n.iter().any(|i| i == BUSYBOX));
            if ok {
                cri = Some(c);
            }
            ok
        });
        assert!(
            ready,
            "the CRI plugin did not come up with both images; containerd log:\n{}",
            super::tail(&d.daemon.log(), 40)
        );
        (d, cri.expect("connected"))
    }

    /// containerd's pid (its mount namespace holds the pods' mounts).
    pub fn pid(&self) -> i32 {
        self.daemon.pid().expect("containerd pid")
    }

    /// containerd's log so far.
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// Run `sh -c script` in containerd's mount namespace (where the CRI plugin checks
    /// that a Bidirectional volume's host path is a shared mount).
    pub fn in_mount_ns(&self, script: &str) -> Out {
        let mut cmd = Command::new("nsenter");
        // --pid too: the /proc mounted there is that pid namespace's (umount reads it).
        let pid = self.pid().to_string();
        cmd.args(["--target", &pid, "--mount", "--pid", "sh", "-c", script]);
        run(cmd, &self.dir, Duration::from_secs(30))
    }

    /// containerd's mountinfo.
    pub fn mountinfo(&self) -> String {
        fs::read_to_string(format!("/proc/{}/mountinfo", self.pid())).unwrap_or_default()
    }

    /// The runtime's state dirs left for the CRI plugin's namespace.
    pub fn runtime_state(&self) -> Vec<String> {
        fs::read_dir(self.dir.join("runc").join("k8s.io"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stop containerd and check nothing is left: processes, mounts, cgroups.
    pub fn shutdown(mut self) {
        let problems = self.teardown();
        assert!(problems.is_empty(), "CRI teardown left: {problems:#?}");
    }

    fn teardown(&mut self) -> Vec<String> {
        if std::mem::replace(&mut self.torn_down, true) {
            return Vec::new();
        }
        let mut problems = Vec::new();
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
            cgroup_dirs(&self.cgroup_parent).is_empty()
        });
        if !leaked.is_empty() {
            problems.push(format!("container cgroups left: {leaked:?}"));
        }
        if !problems.is_empty() {
            problems.push(format!(
                "containerd log tail:\n{}",
                super::tail(&self.daemon.log(), 60)
            ));
        }
        remove_tree(&self.dir);
        problems
    }
}

impl Drop for CriDaemon {
    fn drop(&mut self) {
        let problems = self.teardown();
        if !problems.is_empty() {
            eprintln!("CRI teardown (after a failure) left: {problems:#?}");
        }
    }
}

/// `ctr -a <sock> -n k8s.io ARGS` (60 s deadline).
fn ctr(dir: &Path, args: &[&str]) -> Out {
    let mut cmd = Command::new("ctr");
    cmd.arg("-a")
        .arg(dir.join("containerd.sock"))
        .args(["-n", "k8s.io"])
        .args(args);
    run(cmd, dir, Duration::from_secs(60))
}
