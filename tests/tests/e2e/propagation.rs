//! Mount namespaces and propagation: rootfsPropagation (all four modes and their recursive
//! forms, unbindable on a rootfs that is not a mount point yet), a container without a mount
//! namespace of its own, and volumes that are two-way (`rbind,rshared` under an `rshared`
//! root: a mount made inside shows on the host, Kubernetes' Bidirectional) or one-way.
//!
//! Each scenario first moves its test thread (and so every runtime it starts) into a
//! private mount namespace: runc without a mount namespace makes `/` rslave in the caller's
//! namespace, and the shared mounts the volume tests make must not be the host's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::common::*;

scenario!(
    rootfs_propagation_modes,
    no_mount_namespace,
    no_mount_namespace_refuses_masked_paths,
    bidirectional_volume,
    volume_is_one_way_by_default,
);

/// The optional fields of the mountinfo line of `/` as the container sees it
/// ("shared:N", "master:N", "unbindable" or nothing).
const ROOT_TAGS: &str = "awk '$5 == \"/\" { t = \"\"; for (i = 7; $i != \"-\"; i++) t = t \" \" $i; \
                         print \"root:\" t }' /proc/self/mountinfo";

/// Move the calling thread into a new mount namespace, all private (see the module docs);
/// processes it starts inherit it. Per thread, so other tests are untouched.
fn private_mount_namespace() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare mount namespace");
    let none = None::<&str>;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).expect("make / private");
}

fn rootfs_propagation_modes(rt: &Runtime) {
    private_mount_namespace();
    let hako = rt.kind() == RuntimeKind::Hako;
    for mode in [
        "shared",
        "rshared",
        "slave",
        "rslave",
        "private",
        "rprivate",
        "unbindable",
        "runbindable",
    ] {
        let config = Config::new()
            .edit(|j| j["linux"]["rootfsPropagation"] = mode.into())
            .sh(ROOT_TAGS);
        let b = bundle(&config);
        let id = unique_id("prop");
        let out = rt.run(&id, b.path());
        if !hako && mode.ends_with("unbindable") {
            // runc makes / unbindable before it binds the rootfs onto itself, which then
            // fails; crun and hako set it on the new root last.
            assert!(!out.success(), "{mode}: runc got better?\n{out}");
            rt.assert_no_leaks(&[&id], &[b.path()]);
            continue;
        }
        out.expect_ok(mode);
        let tags = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("root:"))
            .unwrap_or_else(|| panic!("{mode}: no root line\n{out}"));
        let want = match mode {
            // runc leaves its root private whatever the mode (it only sets / beforehand).
            "shared" | "rshared" if hako => "shared:",
            "unbindable" | "runbindable" => "unbindable",
            _ => "",
        };
        if want.is_empty() {
            assert!(
                !tags.contains("shared:") && !tags.contains("unbindable"),
                "{mode}: root is{tags}"
            );
        } else {
            assert!(tags.contains(want), "{mode}: root is{tags}, want {want}");
        }
        rt.assert_no_leaks(&[&id], &[b.path()]);
    }
}

/// No mount namespace: the container runs in ours (runc and crun allow that), chrooted into
/// its rootfs, with the config's mounts made under the rootfs; exec lands in the same root.
/// hako's delete detaches those mounts; runc's leaves them (the test removes them).
fn no_mount_namespace(rt: &Runtime) {
    private_mount_namespace();
    let config = Config::new()
        .without_namespace("mount")
        .masked_paths(&[])
        .readonly_paths(&[])
        .args(&["sleep", "1000"]);
    let b = bundle(&config);
    std::fs::write(b.rootfs().join("marker"), "in the rootfs\n").unwrap();
    let id = unique_id("nomnt");
    let guard = ContainerGuard::new(rt, &id);
    rt.create(&id, b.path()).expect_ok("create");
    rt.start(&id).expect_ok("start");
    let pid = rt.state(&id).expect("state")["pid"].as_i64().expect("pid");
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/mnt")).expect("mnt ns");
    assert_eq!(
        ns(&pid.to_string()),
        ns("thread-self"),
        "not in our mount namespace"
    );
    let root = std::fs::read_link(format!("/proc/{pid}/root")).expect("root");
    assert_eq!(
        std::fs::canonicalize(&root).unwrap(),
        std::fs::canonicalize(b.rootfs()).unwrap(),
        "init is not chrooted into the rootfs"
    );
    // /proc of the config is mounted under the rootfs, in our namespace.
    let proc_under_rootfs = std::fs::canonicalize(b.rootfs()).unwrap().join("proc");
    assert!(
        our_mounts().contains(&proc_under_rootfs),
        "no /proc under the rootfs"
    );
    let out = rt.cmd(&["exec", &id, "cat", "/marker"]);
    if rt.kind() == RuntimeKind::Hako {
        out.expect_ok("exec");
        assert_eq!(out.stdout, "in the rootfs\n", "{out}");
    } else {
        // runc's exec runs in our root, not the container's.
        assert!(!out.success(), "{out}");
    }
    drop(guard);
    if rt.kind() != RuntimeKind::Hako {
        for m in mounts_under(b.path()) {
            let _ = umount2(&m, MntFlags::MNT_DETACH);
        }
    }
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

/// Masked and read-only paths would mask our own /proc and /sys: refused (runc's words).
fn no_mount_namespace_refuses_masked_paths(rt: &Runtime) {
    private_mount_namespace();
    let config = Config::new()
        .without_namespace("mount")
        .masked_paths(&["/proc/kcore"]);
    let b = bundle(&config);
    let id = unique_id("nomnt");
    let out = rt.create(&id, b.path());
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains("unable to restrict sys entries without a private MNT namespace"),
        "{out}"
    );
    if rt.kind() != RuntimeKind::Hako {
        for m in mounts_under(b.path()) {
            let _ = umount2(&m, MntFlags::MNT_DETACH);
        }
    }
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

/// `rbind,rshared` volume, `rootfsPropagation: rshared`: inside, the volume is in our peer
/// group (the same `shared:N`), so a mount made in the container shows up here.
fn bidirectional_volume(rt: &Runtime) {
    private_mount_namespace();
    let host = HostMounts::shared_dir(rt);
    let group = host.peer_group();
    let (tags, seen) = mount_inside(rt, &host, Some("rshared"), &["rbind", "rshared"]);
    assert!(
        tags.split_whitespace().any(|t| t == group),
        "volume inside is{tags}, ours is {group}"
    );
    assert!(seen, "the mount made inside did not reach the host");
}

/// A plain `rbind` volume under the default root: the container gets a slave copy at most,
/// and nothing it mounts reaches the host.
fn volume_is_one_way_by_default(rt: &Runtime) {
    private_mount_namespace();
    let host = HostMounts::shared_dir(rt);
    let (tags, seen) = mount_inside(rt, &host, None, &["rbind"]);
    assert!(!tags.contains("shared:"), "volume inside is{tags}");
    assert!(!seen, "a mount made inside reached the host");
}

/// Run a container with `host.dir` at `/vol`, mount a tmpfs at `/vol/inner` inside, report
/// the volume's propagation tags; returns them and whether the host saw `inner` mounted
/// while the container ran.
fn mount_inside(
    rt: &Runtime,
    host: &HostMounts,
    root: Option<&str>,
    options: &[&str],
) -> (String, bool) {
    let script = "awk '$5 == \"/vol\" { t = \"\"; for (i = 7; $i != \"-\"; i++) t = t \" \" $i; \
                  print \"vol:\" t }' /proc/self/mountinfo; \
                  mount -t tmpfs inner /vol/inner && echo mounted; \
                  while [ ! -e /vol/done ]; do sleep 0.05; done";
    let mut config = Config::new()
        .all_caps(&["CAP_SYS_ADMIN"])
        .mount("/vol", "bind", host.dir.to_str().unwrap(), options)
        .sh(script);
    if let Some(r) = root {
        config = config.edit(|j| j["linux"]["rootfsPropagation"] = r.into());
    }
    let b = bundle(&config);
    let id = unique_id("vol");
    let guard = ContainerGuard::new(rt, &id);
    rt.create(&id, b.path()).expect_ok("create");
    rt.start(&id).expect_ok("start");
    let mut out = String::new();
    for _ in 0..250 {
        out = rt.container_stdout(&id);
        if out.contains("mounted") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        out.contains("mounted"),
        "no mount inside: {out}\n{}",
        std::fs::read_to_string(rt.container_stdio(&id).1).unwrap_or_default()
    );
    let seen = our_mounts().contains(&host.dir.join("inner"));
    std::fs::write(host.dir.join("done"), "").unwrap();
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(10)));
    rt.delete(&id).expect_ok("delete");
    drop(guard);
    rt.assert_no_leaks(&[&id], &[b.path()]);
    let tags = out
        .lines()
        .find_map(|l| l.strip_prefix("vol:"))
        .unwrap_or_default()
        .to_string();
    (tags, seen)
}

/// A directory of ours, bind-mounted onto itself and made shared in our (private) mount
/// namespace, so it has a peer group; detached with whatever propagated into it on drop.
struct HostMounts {
    dir: PathBuf,
}

impl HostMounts {
    fn shared_dir(rt: &Runtime) -> HostMounts {
        let dir = rt.work_dir().join(unique_id("shared"));
        std::fs::create_dir_all(&dir).unwrap();
        let none = None::<&str>;
        mount(Some(&dir), &dir, none, MsFlags::MS_BIND, none).expect("bind");
        let h = HostMounts { dir };
        mount(none, &h.dir, none, MsFlags::MS_SHARED, none).expect("make shared");
        std::fs::create_dir_all(h.dir.join("inner")).unwrap();
        h
    }

    /// "shared:N" of our mount of `dir`.
    fn peer_group(&self) -> String {
        let text = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
        text.lines()
            .filter(|l| l.split(' ').nth(4) == Some(self.dir.to_str().unwrap()))
            .flat_map(|l| l.split(' ').skip(6).take_while(|f| *f != "-"))
            .find(|f| f.starts_with("shared:"))
            .unwrap_or_else(|| panic!("{} is not shared", self.dir.display()))
            .to_string()
    }
}

impl Drop for HostMounts {
    fn drop(&mut self) {
        for m in mounts_under(&self.dir) {
            let _ = umount2(&m, MntFlags::MNT_DETACH);
        }
    }
}

/// Mount points in our thread's mount namespace.
fn our_mounts() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/thread-self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .collect()
}

/// Mount points at or under `dir` (canonical), deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut v: Vec<PathBuf> = our_mounts()
        .into_iter()
        .filter(|p| p.starts_with(&dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v
}
