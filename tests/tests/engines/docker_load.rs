//! Image archives between hako and a real dockerd, both ways:
//!
//! ```text
//!   docker commit (2 layers, one whiteout) ── docker save ──► hako load
//!                                                              │ same Id, RootFS.Layers
//!   docker load ◄── hako save ◄────────────────────────────────┘
//!     └─ docker run: the second layer's file is there, the deleted one is gone
//!   hako import (a layer hako wrote) ── hako save ──► docker load ──► docker run
//! ```
//!
//! The dockerd is the engine tests' own (its own data root, namespaces and socket, see
//! `dockerd.rs`); containers run on runc, which is not what is tested here. The `hako` CLI
//! is `$HAKO_CLI`, else the one built next to this test binary, else the workspace's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hako_test_support::{RuntimeKind, in_ci};
use serde_json::Value;

use super::dockerd::Dockerd;
use super::support::{self, Out, run};

/// The hako CLI: `$HAKO_CLI`, `hako` in this test's target dir (debug or release), or in
/// the workspace's `target/`.
fn hako_cli() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HAKO_CLI") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let exe = std::env::current_exe().ok()?;
    // <target>/<profile>/deps/engines-<hash>
    let target = exe.parent()?.parent()?.parent()?.to_path_buf();
    let workspace = hako_test_support::workspace_root().join("target");
    [target, workspace]
        .iter()
        .flat_map(|t| ["debug", "release"].map(|p| t.join(p).join("hako")))
        .find(|p| p.is_file())
}

/// A throwaway hako `--root`.
struct Hako {
    bin: PathBuf,
    root: tempfile::TempDir,
}

impl Hako {
    fn cmd(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(self.root.path()).args(args);
        run(cmd, self.root.path(), Duration::from_secs(120))
    }

    fn inspect(&self, image: &str) -> Value {
        let out = self.cmd(&["image", "inspect", image]);
        out.ok("hako image inspect");
        let v: Value = serde_json::from_str(&out.stdout).expect("hako inspect JSON");
        v[0].clone()
    }
}

fn docker_inspect(d: &Dockerd, image: &str) -> Value {
    let out = d.docker(&["image", "inspect", image]);
    out.ok("docker image inspect");
    let v: Value = serde_json::from_str(&out.stdout).expect("docker inspect JSON");
    v[0].clone()
}

#[test]
fn docker_save_hako_load_hako_save_docker_load() {
    let name = "docker_save_hako_load_hako_save_docker_load";
    // The containers in here run on runc: the runtime is not under test.
    let Some(oci) = support::gate(
        name,
        RuntimeKind::Runc,
        &["dockerd", "docker", "containerd", "unshare"],
    ) else {
        return;
    };
    let Some(bin) = hako_cli() else {
        let why = "no hako CLI (cargo build -p hako-cli, or set HAKO_CLI)";
        assert!(!in_ci(), "{name}: {why}");
        eprintln!("SKIP {name}: {why}");
        return;
    };
    let d = Dockerd::start(&oci);
    let work = tempfile::Builder::new()
        .prefix("hako-docker-load-")
        .tempdir()
        .expect("work dir");
    let hako = Hako {
        bin,
        root: tempfile::Builder::new()
            .prefix("hako-root-")
            .tempdir()
            .expect("hako root"),
    };

    // A two-layer image in docker: busybox plus a layer that adds files and deletes one.
    let two = "hako-e2e/two:1";
    d.run(&[
        "--name",
        "mk",
        d.image(),
        "sh",
        "-c",
        "echo second > /layer2; mkdir -p /d/e && echo f > /d/e/f; rm /bin/ls",
    ])
    .ok("docker run (making the second layer)");
    d.docker(&["commit", "-c", "CMD [\"sh\"]", "mk", two])
        .ok("docker commit");
    d.docker(&["rm", "mk"]).ok("docker rm");
    let from_docker = docker_inspect(&d, two);
    assert_eq!(
        from_docker["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(2),
        "{from_docker}"
    );

    // docker save -> hako load: the same image id (config digest) and diff ids.
    let docker_tar = path_str(&work.path().join("docker-save.tar"));
    d.docker(&["save", "-o", &docker_tar, two])
        .ok("docker save");
    let out = hako.cmd(&["load", "-i", &docker_tar]);
    out.ok("hako load of docker save");
    assert!(
        out.stdout.contains(&format!("Loaded image: {two}")),
        "{out}"
    );
    let in_hako = hako.inspect(two);
    assert_eq!(in_hako["Id"], from_docker["Id"], "image id");
    assert_eq!(
        in_hako["RootFS"]["Layers"], from_docker["RootFS"]["Layers"],
        "diff ids"
    );
    assert_eq!(in_hako["Config"]["Cmd"], serde_json::json!(["sh"]));

    // hako save -> docker load, after docker forgot the image (its top layer goes too).
    let hako_tar = path_str(&work.path().join("hako-save.tar"));
    hako.cmd(&["save", "-o", &hako_tar, two]).ok("hako save");
    d.docker(&["rmi", two]).ok("docker rmi");
    let out = d.docker(&["load", "-i", &hako_tar]);
    out.ok("docker load of hako save");
    assert!(
        out.stdout.contains(&format!("Loaded image: {two}")),
        "{out}"
    );
    let back = docker_inspect(&d, two);
    assert_eq!(
        back["Id"], from_docker["Id"],
        "image id after the round trip"
    );
    assert_eq!(back["RootFS"]["Layers"], from_docker["RootFS"]["Layers"]);
    let out = d.run(&[
        "--rm",
        two,
        "sh",
        "-c",
        "cat /layer2 /d/e/f; test -e /bin/ls || echo ls-gone",
    ]);
    out.ok("docker run of the reloaded image");
    assert_eq!(out.stdout, "second\nf\nls-gone\n", "{out}");

    // A layer hako wrote itself (import), read by docker.
    let rootfs = hako_test_support::busybox_rootfs().expect("busybox rootfs fixture");
    let marker = work.path().join("extra");
    std::fs::create_dir_all(marker.join("opt")).expect("extra dir");
    std::fs::write(marker.join("opt/from-hako"), "imported by hako\n").expect("marker");
    let rootfs_tar = path_str(&work.path().join("rootfs.tar"));
    tar(
        work.path(),
        &["-C", &path_str(rootfs), "-cf", &rootfs_tar, "."],
    );
    tar(
        work.path(),
        &["-C", &path_str(&marker), "-rf", &rootfs_tar, "./opt"],
    );
    let imported = "hako-e2e/imported:1";
    hako.cmd(&["import", "-c", "CMD [\"sh\"]", &rootfs_tar, imported])
        .ok("hako import");
    let in_hako = hako.inspect(imported);
    let import_tar = path_str(&work.path().join("hako-import.tar"));
    hako.cmd(&["save", "-o", &import_tar, imported])
        .ok("hako save");
    d.docker(&["load", "-i", &import_tar])
        .ok("docker load of a hako-made layer");
    let in_docker = docker_inspect(&d, imported);
    assert_eq!(in_docker["Id"], in_hako["Id"]);
    assert_eq!(in_docker["RootFS"]["Layers"], in_hako["RootFS"]["Layers"]);
    let out = d.run(&["--rm", imported, "cat", "/opt/from-hako"]);
    out.ok("docker run of the imported image");
    assert_eq!(out.stdout, "imported by hako\n", "{out}");

    d.shutdown();
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

fn tar(dir: &Path, args: &[&str]) {
    let mut cmd = Command::new("tar");
    cmd.args(["--numeric-owner"]).args(args);
    run(cmd, dir, Duration::from_secs(60)).ok("tar");
}
