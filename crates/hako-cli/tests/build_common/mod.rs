//! What the build tests share (`build.rs`, `build_api.rs`): contexts in temp dirs and
//! the check that a build left nothing behind.

#![allow(dead_code)]

use std::path::Path;

use crate::common::Hako;

/// A build context in a temp dir.
pub struct Ctx(pub tempfile::TempDir);

impl Ctx {
    pub fn new(dockerfile: &str) -> Ctx {
        let c = Ctx(tempfile::Builder::new()
            .prefix("hako-build-ctx-")
            .tempdir()
            .expect("tempdir"));
        c.file("Dockerfile", dockerfile);
        c
    }
    pub fn file(&self, rel: &str, content: &str) -> &Ctx {
        let p = self.0.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
        self
    }
    pub fn path(&self) -> &Path {
        self.0.path()
    }
    pub fn dir(&self) -> &str {
        self.0.path().to_str().expect("utf-8")
    }
}

/// `hb-<store>`: the start of this store's build container ids (six hex digits of the
/// root path's sha256, see `Engine::build_id_prefix`).
pub fn build_prefix(h: &Hako) -> String {
    use sha2::Digest;
    let hex = format!(
        "{:x}",
        sha2::Sha256::digest(h.root.path().as_os_str().as_encoded_bytes())
    );
    format!("hb-{}", &hex[..6])
}

/// Nothing of a build may remain: build dirs, RUN containers, their root filesystems,
/// mounts, cgroups, network interfaces and rules.
pub fn assert_build_clean(h: &Hako) {
    let root = h.root.path();
    let prefix = build_prefix(h);
    for d in ["build/active", "build/tmp"] {
        let left: Vec<_> = std::fs::read_dir(root.join(d))
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left in {d}: {left:?}");
    }
    let left: Vec<_> = std::fs::read_dir(h.exec.path().join("build"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "bundles left: {left:?}");
    for dir in [
        root.join("overlay2"),
        h.exec.path().join("runtime/hako-runtime"),
    ] {
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("hb-"))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "build containers left in {}: {left:?}",
            dir.display()
        );
        let _ = &prefix;
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let ours: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(root.to_str().unwrap_or("-")))
        .collect();
    assert!(ours.is_empty(), "mounts left: {ours:?}");
    for hier in ["memory", "pids", "cpu,cpuacct", "unified"] {
        let dir = Path::new("/sys/fs/cgroup").join(hier).join("hako");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "cgroups left in {}: {left:?}",
            dir.display()
        );
    }
    // RUN on the bridge: interfaces, nftables elements, processes in the test's netns.
    // A `run --rm` of the test may still be in its exit hook (`container cleanup`) for a
    // moment: processes get a few seconds to end on their own.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut leaks = h.net.leaks();
    while !leaks.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        leaks = h.net.leaks();
    }
    assert!(leaks.is_empty(), "network leaks: {leaks:?}");
}

/// How many processes have `marker` in their command line.
pub fn marker_processes(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .map(|r| {
            r.flatten()
                .filter(|e| {
                    std::fs::read(e.path().join("cmdline"))
                        .map(|c| String::from_utf8_lossy(&c).contains(marker))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}
