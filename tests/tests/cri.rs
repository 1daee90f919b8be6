//! hako-runtime under containerd's CRI plugin, driven the way the kubelet drives it: a CRI
//! gRPC client (`k8s-cri` + tonic) against Debian's containerd whose runtime handler has
//! `BinaryName = <runtime>`. The same scenario runs with runc as the oracle
//! (`cri_pod::hako`, `cri_pod::runc`).
//!
//! One pod, as a node would run it: sandbox (pause image, CNI bridge network), a long
//! running container with a Bidirectional (`rshared`) volume, exec, logs, a container that
//! exits by itself and must be seen EXITED, then stop and remove of both containers and the
//! pod. Every CRI call has a deadline (`cri/client.rs`): before hako-runtime answered `kill
//! --all` of a stopped container as runc does, containerd retried forever and stop/remove
//! hung. Teardown checks no process, mount, cgroup or runtime state is left.
//!
//! ```sh
//! cargo build --release -p hako-runtime
//! cargo nextest run -p hako-e2e --test cri
//! ```

#[path = "cri/client.rs"]
mod client;
#[path = "cri/daemon.rs"]
mod daemon;
#[path = "engines/image.rs"]
#[allow(dead_code)]
mod image;
#[path = "engines/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hako_test_support::RuntimeKind;
use k8s_cri::v1::{
    Capability, ContainerConfig, ContainerMetadata, ContainerState, ImageSpec, KeyValue,
    LinuxContainerConfig, LinuxContainerSecurityContext, LinuxPodSandboxConfig, Mount,
    MountPropagation, PodSandboxConfig, PodSandboxMetadata,
};

use client::Cri;
use daemon::{BUSYBOX, CriDaemon, HANDLER};

mod cri_pod {
    use hako_test_support::RuntimeKind;

    #[test]
    fn hako() {
        super::cri_pod(RuntimeKind::Hako);
    }

    #[test]
    fn runc() {
        super::cri_pod(RuntimeKind::Runc);
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn cri_pod(kind: RuntimeKind) {
    let Some(oci) = support::gate(
        "cri_pod",
        kind,
        &[
            "containerd",
            "containerd-shim-runc-v2",
            "ctr",
            "nsenter",
            "unshare",
        ],
    ) else {
        return;
    };
    if !std::path::Path::new("/usr/lib/cni/bridge").exists() {
        let why = "missing /usr/lib/cni/bridge (Debian package containernetworking-plugins)";
        assert!(!hako_test_support::in_ci(), "cri_pod: {why}");
        eprintln!("SKIP cri_pod [{kind}]: {why}");
        return;
    }
    let (d, mut cri) = CriDaemon::start(&oci);
    let (name, _) = cri.version().expect("CRI Version");
    assert_eq!(name, "containerd");
    pod_lifecycle(&d, &mut cri);
    assert!(
        d.runtime_state().is_empty(),
        "runtime state left: {:?}",
        d.runtime_state()
    );
    drop(cri);
    d.shutdown();
}

/// A host directory bind-mounted onto itself and made shared in containerd's mount
/// namespace (the CRI plugin refuses a Bidirectional volume whose host path is not on a
/// shared mount, as the kubelet arranges it on a node); returns its path and peer group.
fn shared_volume(d: &CriDaemon) -> (String, String) {
    let vol = d.dir.join("bidir");
    std::fs::create_dir_all(vol.join("inner")).unwrap();
    let v = vol.display().to_string();
    d.in_mount_ns(&format!("mount --bind {v} {v} && mount --make-shared {v}"))
        .ok("make the volume a shared mount");
    let group = peer_group(&d.mountinfo(), &v)
        .unwrap_or_else(|| panic!("{v} is not shared in containerd's namespace"));
    (v, group)
}

/// "shared:N" of the mount at `point` in a mountinfo text.
fn peer_group(mountinfo: &str, point: &str) -> Option<String> {
    mountinfo
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(point))
        .flat_map(|l| l.split(' ').skip(6).take_while(|f| *f != "-"))
        .find(|f| f.starts_with("shared:"))
        .map(str::to_string)
}

fn pod_lifecycle(d: &CriDaemon, cri: &mut Cri) {
    let uid = support::unique("pod");
    let logs = d.dir.join("logs").join(&uid);
    std::fs::create_dir_all(&logs).unwrap();
    let pod_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "hako-e2e".into(),
            uid: uid.clone(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "cri-pod".into(),
        log_directory: logs.display().to_string(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: format!("/{}", d.cgroup_parent),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = cri
        .run_pod(&pod_config, HANDLER)
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", tail(&d.log(), 40)));

    // A long-running container with a Bidirectional volume and CAP_SYS_ADMIN to mount in it.
    let (vol, host_group) = shared_volume(d);
    let container = |name: &str, script: &str, mounts: Vec<Mount>| ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: BUSYBOX.into(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), script.into()],
        envs: vec![KeyValue {
            key: "HAKO_E2E".into(),
            value: "cri".into(),
        }],
        log_path: format!("{name}.log"),
        mounts,
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                capabilities: Some(Capability {
                    add_capabilities: vec!["SYS_ADMIN".into()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        labels: HashMap::new(),
        ..Default::default()
    };
    let bidir = Mount {
        container_path: "/vol".into(),
        host_path: vol.clone(),
        propagation: MountPropagation::PropagationBidirectional as i32,
        ..Default::default()
    };
    let sleeper = cri
        .create_container(
            &pod,
            container(
                "sleeper",
                "echo hello-from-cri $HAKO_E2E; echo to-stderr >&2; exec sleep 1000",
                vec![bidir],
            ),
            &pod_config,
        )
        .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", tail(&d.log(), 40)));
    cri.start_container(&sleeper)
        .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", tail(&d.log(), 40)));
    wait_state(cri, &sleeper, ContainerState::ContainerRunning, 30);

    // exec: output and exit code come back.
    let r = cri
        .exec_sync(
            &sleeper,
            &["sh", "-c", "echo exec-out $HAKO_E2E; exit 3"],
            30,
        )
        .expect("ExecSync");
    assert_eq!(String::from_utf8_lossy(&r.stdout), "exec-out cri\n");
    assert_eq!(r.exit_code, 3);

    // Bidirectional: the volume inside is in containerd's peer group, and a mount made in
    // the container shows up in containerd's namespace.
    let r = cri
        .exec_sync(
            &sleeper,
            &[
                "sh",
                "-c",
                "mount -t tmpfs inner /vol/inner && cat /proc/self/mountinfo",
            ],
            30,
        )
        .expect("ExecSync mount");
    let inside = String::from_utf8_lossy(&r.stdout).into_owned();
    assert_eq!(
        r.exit_code,
        0,
        "mount inside: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(
        peer_group(&inside, "/vol").as_deref(),
        Some(host_group.as_str()),
        "the volume is not in the host's peer group:\n{inside}"
    );
    let inner = format!("{vol}/inner");
    assert!(
        d.mountinfo()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(inner.as_str())),
        "the mount made inside did not reach containerd's namespace"
    );

    // Logs, in the CRI format the kubelet reads.
    let log = wait_for_text(&logs.join("sleeper.log"), "to-stderr", 10);
    assert!(log.contains(" stdout F hello-from-cri cri"), "{log}");
    assert!(log.contains(" stderr F to-stderr"), "{log}");

    // A container that exits by itself is seen EXITED with its code (containerd's shim
    // runs `kill --all ID 9` after it exits: the pod shares one pid namespace).
    let quitter = cri
        .create_container(
            &pod,
            container("quitter", "echo bye; exit 7", Vec::new()),
            &pod_config,
        )
        .expect("CreateContainer quitter");
    cri.start_container(&quitter)
        .expect("StartContainer quitter");
    let st = wait_state(cri, &quitter, ContainerState::ContainerExited, 30);
    assert_eq!(st.exit_code, 7, "{st:?}");

    // Stop and remove everything, each within the deadline.
    cri.stop_container(&sleeper, 5).expect("StopContainer");
    wait_state(cri, &sleeper, ContainerState::ContainerExited, 30);
    cri.stop_container(&quitter, 5)
        .expect("StopContainer of an exited container");
    cri.remove_container(&sleeper).expect("RemoveContainer");
    cri.remove_container(&quitter)
        .expect("RemoveContainer quitter");
    cri.stop_pod(&pod).expect("StopPodSandbox");
    cri.remove_pod(&pod).expect("RemovePodSandbox");
    assert_eq!(
        cri.container_ids().expect("ListContainers"),
        Vec::<String>::new()
    );
    assert_eq!(cri.pod_ids().expect("ListPodSandbox"), Vec::<String>::new());
    d.in_mount_ns(&format!("umount -R {vol}"))
        .ok("detach the volume");
}

/// Poll ContainerStatus until `want` (or fail after `secs`).
fn wait_state(
    cri: &mut Cri,
    id: &str,
    want: ContainerState,
    secs: u64,
) -> k8s_cri::v1::ContainerStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let st = cri.status(id).expect("ContainerStatus");
        if st.state == want as i32 {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} is not {} after {secs}s: {st:?}",
            want.as_str_name()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Poll a file until it contains `needle`; returns its text.
fn wait_for_text(path: &std::path::Path, needle: &str, secs: u64) -> String {
    let mut text = String::new();
    support::wait_until(Duration::from_secs(secs), || {
        text = std::fs::read_to_string(path).unwrap_or_default();
        text.contains(needle)
    });
    text
}
