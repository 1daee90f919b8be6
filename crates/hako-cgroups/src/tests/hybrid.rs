use serde_json::json;

use super::{Fake, res, w};
use crate::{CgroupManager, FreezerState, Layout};

fn fake() -> Fake {
    let f = Fake::new(&["memory", "freezer", "systemd", "unified"]);
    for d in ["memory", "freezer", "systemd", "unified"] {
        f.touch(&format!("{d}/hako/c1"), &["cgroup.procs"]);
    }
    f
}

#[test]
fn add_task_joins_v1_and_unified() {
    let f = fake();
    let m = f.manager(Layout::Hybrid);
    m.add_task(7).unwrap();
    let mut paths: Vec<_> = f.writes().into_iter().map(|(p, _)| p).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "freezer/hako/c1/cgroup.procs",
            "memory/hako/c1/cgroup.procs",
            "systemd/hako/c1/cgroup.procs",
            "unified/hako/c1/cgroup.procs",
        ]
    );
}

#[test]
fn create_makes_the_unified_dir_too() {
    let f = Fake::new(&["memory", "unified"]);
    let m = f.manager(Layout::Hybrid);
    m.create().unwrap();
    assert!(f.path("memory/hako/c1").is_dir());
    assert!(f.path("unified/hako/c1").is_dir());
}

#[test]
fn unified_resources_go_to_the_unified_tree() {
    let f = fake();
    f.touch("unified/hako/c1", &["cgroup.max.depth"]);
    f.touch("memory/hako/c1", &["memory.limit_in_bytes"]);
    let m = f.manager(Layout::Hybrid);
    m.apply(&res(json!({
        "memory": {"limit": 1048576},
        "unified": {"cgroup.max.depth": "3"}
    })))
    .unwrap();
    assert_eq!(
        f.writes(),
        w(&[
            ("memory/hako/c1/memory.limit_in_bytes", "1048576"),
            ("unified/hako/c1/cgroup.max.depth", "3"),
        ])
    );
}

#[test]
fn sigkill_uses_unified_cgroup_kill_and_freeze_uses_v1_freezer() {
    let f = fake();
    f.touch("unified/hako/c1", &["cgroup.kill"]);
    f.put("freezer/hako/c1/freezer.state", "THAWED");
    let m = f.manager(Layout::Hybrid);
    m.kill_all(nix::libc::SIGKILL).unwrap();
    m.freeze().unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Frozen);
    let writes = f.writes();
    assert_eq!(
        writes[0],
        ("unified/hako/c1/cgroup.kill".into(), "1".into())
    );
    assert_eq!(
        writes[1],
        ("freezer/hako/c1/freezer.state".into(), "FROZEN".into())
    );
}

#[test]
fn mounts_include_unified_and_no_v2_dir() {
    let f = fake();
    let m = f.manager(Layout::Hybrid);
    let names: Vec<_> = m.mounts().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["freezer", "memory", "systemd", "unified"]);
    assert_eq!(m.v2_dir(), None);
}

#[test]
fn pids_come_from_the_unified_tree() {
    let f = fake();
    f.put("unified/hako/c1/cgroup.procs", "5\n");
    let m = f.manager(Layout::Hybrid);
    assert_eq!(m.pids().unwrap(), [5]);
}
