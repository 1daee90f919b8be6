//! A busybox image as a docker-archive tar (what `docker save` writes and `docker load`,
//! `ctr image import` and `podman load` read), built offline from the cached busybox rootfs:
//!
//! ```text
//!   manifest.json               [{"Config": "<config sha>.json", "RepoTags": [TAG], "Layers": ["<diff id>/layer.tar"]}]
//!   <config sha>.json           image config; rootfs.diff_ids = [sha256 of layer.tar]
//!   <diff id>/layer.tar         the rootfs, uncompressed, owned by root
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use super::support::run;

/// The tag every harness loads the image under (engines add `docker.io/` or `localhost/`).
pub const TAG: &str = "hako-e2e/busybox:latest";

/// Write the archive into `dir` and return its path.
pub fn busybox_archive(dir: &Path) -> PathBuf {
    archive(dir, TAG, &["sh"])
}

/// The busybox rootfs as image `tag` whose command is `cmd` (the CRI test's pause image is
/// one of these), written into `dir`; returns the archive's path.
pub fn archive(dir: &Path, tag: &str, cmd: &[&str]) -> PathBuf {
    let rootfs = hako_test_support::busybox_rootfs().expect("busybox rootfs fixture");
    let name: String = tag
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let work = dir.join(format!("image-{name}"));
    fs::create_dir_all(&work).expect("image work dir");

    let layer = work.join("layer.tar");
    tar(
        &work,
        &[
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "-C",
            &rootfs.to_string_lossy(),
            "-cf",
            &layer.to_string_lossy(),
            ".",
        ],
    );
    let diff_id = sha256(&work, &layer);
    let layer_dir = work.join(&diff_id);
    fs::create_dir_all(&layer_dir).expect("layer dir");
    fs::rename(&layer, layer_dir.join("layer.tar")).expect("placing layer.tar");

    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": cmd
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "hako-e2e busybox-static"}]
    });
    let config_tmp = work.join("config.tmp");
    fs::write(&config_tmp, config.to_string()).expect("writing image config");
    let config_name = format!("{}.json", sha256(&work, &config_tmp));
    fs::rename(&config_tmp, work.join(&config_name)).expect("placing image config");

    let manifest = json!([{
        "Config": config_name,
        "RepoTags": [tag],
        "Layers": [format!("{diff_id}/layer.tar")]
    }]);
    fs::write(work.join("manifest.json"), manifest.to_string()).expect("writing manifest");

    let archive = dir.join(format!("{name}.tar"));
    tar(
        &work,
        &[
            "-C",
            &work.to_string_lossy(),
            "-cf",
            &archive.to_string_lossy(),
            "manifest.json",
            &config_name,
            &diff_id,
        ],
    );
    archive
}

fn tar(dir: &Path, args: &[&str]) {
    let mut cmd = Command::new("tar");
    cmd.args(args);
    run(cmd, dir, Duration::from_secs(60)).ok("tar");
}

fn sha256(dir: &Path, file: &Path) -> String {
    let mut cmd = Command::new("sha256sum");
    cmd.arg(file);
    let out = run(cmd, dir, Duration::from_secs(60));
    out.ok("sha256sum");
    out.stdout
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_string()
}
