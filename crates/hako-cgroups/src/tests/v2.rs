use serde_json::json;

use super::{Fake, res, w};
use crate::{CgroupManager, Error, FreezerState, Layout};

const DIR: &str = "hako/c1";

fn fake(files: &[&str]) -> Fake {
    let f = Fake::new(&[]);
    f.touch(DIR, files);
    f
}

#[test]
fn memory_swap_is_converted_to_swap_only() {
    let f = fake(&["memory.max", "memory.swap.max", "memory.low"]);
    let m = f.manager(Layout::V2);
    m.apply(&res(json!({"memory": {
        "limit": 536870912, "swap": 1073741824, "reservation": 268435456
    }})))
    .unwrap();
    assert_eq!(
        f.writes(),
        w(&[
            ("hako/c1/memory.swap.max", "536870912"),
            ("hako/c1/memory.max", "536870912"),
            ("hako/c1/memory.low", "268435456"),
        ])
    );
    // swap == limit: no swap at all.
    m.apply(&res(json!({"memory": {"limit": 524288, "swap": 524288}})))
        .unwrap();
    assert_eq!(
        f.writes(),
        w(&[
            ("hako/c1/memory.swap.max", "0"),
            ("hako/c1/memory.max", "524288")
        ])
    );
    // limit -1 and no swap: both unlimited.
    m.apply(&res(json!({"memory": {"limit": -1}}))).unwrap();
    assert_eq!(
        f.writes(),
        w(&[
            ("hako/c1/memory.swap.max", "max"),
            ("hako/c1/memory.max", "max")
        ])
    );
}

#[test]
fn swap_math() {
    use crate::resources::swap_to_v2;
    assert_eq!(swap_to_v2(0, -1).unwrap(), -1);
    assert_eq!(swap_to_v2(-1, 100).unwrap(), -1);
    assert_eq!(swap_to_v2(0, 100).unwrap(), 0);
    assert_eq!(swap_to_v2(300, 100).unwrap(), 200);
    assert!(swap_to_v2(300, 0).is_err(), "swap needs a memory limit");
}

#[test]
fn swap_without_swap_file() {
    let f = fake(&["memory.max"]);
    let m = f.manager(Layout::V2);
    // Unlimited or no swap is fine without swap accounting.
    m.apply(&res(json!({"memory": {"limit": -1}}))).unwrap();
    m.apply(&res(json!({"memory": {"limit": 100, "swap": 100}})))
        .unwrap();
    let e = m
        .apply(&res(json!({"memory": {"limit": 100, "swap": 200}})))
        .unwrap_err();
    assert!(matches!(e, Error::SwapAccountingDisabled { .. }), "{e}");
}

#[test]
fn shares_to_weight_like_runc() {
    use crate::resources::shares_to_weight;
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(shares_to_weight(262_144), 10_000);
    assert_eq!(shares_to_weight(1), 1, "below the v1 minimum clamps");
    assert_eq!(shares_to_weight(1_000_000), 10_000);
}

#[test]
fn cpu_weight_max_and_cpuset() {
    let f = fake(&[
        "cpu.weight",
        "cpu.max",
        "cpuset.cpus",
        "cpuset.mems",
        "cpu.idle",
    ]);
    let m = f.manager(Layout::V2);
    m.apply(&res(json!({"cpu": {
        "shares": 1024, "quota": 50000, "cpus": "1", "mems": "0", "idle": 1
    }})))
    .unwrap();
    assert_eq!(
        f.writes(),
        w(&[
            ("hako/c1/cpu.weight", "39"),
            ("hako/c1/cpu.max", "50000 100000"),
            ("hako/c1/cpu.idle", "1"),
            ("hako/c1/cpuset.cpus", "1"),
            ("hako/c1/cpuset.mems", "0"),
        ])
    );
    m.apply(&res(json!({"cpu": {"quota": -1, "period": 200000}})))
        .unwrap();
    assert_eq!(f.writes(), w(&[("hako/c1/cpu.max", "max 200000")]));
    let e = m
        .apply(&res(json!({"cpu": {"realtimeRuntime": 1000}})))
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
}

#[test]
fn pids_max() {
    let f = fake(&["pids.max"]);
    let m = f.manager(Layout::V2);
    m.apply(&res(json!({"pids": {"limit": -1}}))).unwrap();
    assert_eq!(f.read("hako/c1/pids.max"), "max");
    m.apply(&res(json!({"pids": {"limit": 1}}))).unwrap();
    assert_eq!(f.read("hako/c1/pids.max"), "1");
}

#[test]
fn io_weight_and_max() {
    let f = fake(&["io.weight", "io.max"]);
    let m = f.manager(Layout::V2);
    m.apply(&res(json!({"blockIO": {
        "weight": 500,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 10}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 50}]
    }})))
    .unwrap();
    assert_eq!(
        f.writes(),
        w(&[
            ("hako/c1/io.weight", "4950"),
            ("hako/c1/io.weight", "8:0 1"),
            ("hako/c1/io.max", "8:0 rbps=1048576"),
            ("hako/c1/io.max", "8:0 wiops=50"),
        ])
    );
    // With BFQ the blkio scale is used as is.
    f.touch(DIR, &["io.bfq.weight"]);
    m.apply(&res(json!({"blockIO": {"weight": 500}}))).unwrap();
    assert_eq!(f.writes(), w(&[("hako/c1/io.bfq.weight", "500")]));
}

#[test]
fn io_missing_is_unsupported() {
    let f = fake(&[]);
    let m = f.manager(Layout::V2);
    let e = m
        .apply(&res(json!({"blockIO": {"weight": 500}})))
        .unwrap_err();
    match e {
        Error::Unsupported {
            controller, file, ..
        } => assert_eq!((controller.as_str(), file.as_str()), ("io", "io.weight")),
        other => panic!("{other}"),
    }
}

#[test]
fn hugetlb_v2() {
    let f = fake(&["hugetlb.1GB.max"]);
    let m = f.manager(Layout::V2);
    m.apply(&res(
        json!({"hugepageLimits": [{"pageSize": "1GB", "limit": -1}]}),
    ))
    .unwrap();
    assert_eq!(f.writes(), w(&[("hako/c1/hugetlb.1GB.max", "max")]));
}

#[test]
fn unified_keys_are_written_and_checked() {
    let f = fake(&["memory.high", "pids.max"]);
    let m = f.manager(Layout::V2);
    m.apply(&res(
        json!({"unified": {"pids.max": "10", "memory.high": "1073741824"}}),
    ))
    .unwrap();
    assert_eq!(
        f.writes(),
        w(&[
            ("hako/c1/memory.high", "1073741824"),
            ("hako/c1/pids.max", "10"),
        ])
    );
    let e = m
        .apply(&res(json!({"unified": {"memory.oom.group": "1"}})))
        .unwrap_err();
    match &e {
        Error::Unsupported {
            controller, file, ..
        } => assert_eq!(
            (controller.as_str(), file.as_str()),
            ("memory", "memory.oom.group")
        ),
        other => panic!("{other}"),
    }
    for bad in ["../memory.max", "cgroup.procs", "nodot"] {
        let e = m.apply(&res(json!({"unified": {bad: "1"}}))).unwrap_err();
        assert!(matches!(e, Error::InvalidResource { .. }), "{bad}: {e}");
    }
}

#[test]
fn devices_are_recorded_for_the_ebpf_program() {
    let f = fake(&[]);
    let m = f.manager(Layout::V2);
    m.apply(&res(json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    ]})))
    .unwrap();
    assert!(f.writes().is_empty());
    let rules = m.device_rules();
    assert_eq!(rules.len(), 2);
    assert!(rules[1].allow());
}

#[test]
fn network_is_v1_only() {
    let f = fake(&[]);
    let e = f
        .manager(Layout::V2)
        .apply(&res(json!({"network": {"classID": 1}})))
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
}

#[test]
fn create_delegates_controllers_down_the_path() {
    let f = Fake::new(&[]);
    f.put("cgroup.controllers", "cpuset cpu io memory pids\n");
    f.put("cgroup.subtree_control", "cpu\n");
    f.put("hako/cgroup.controllers", "cpu io memory pids\n");
    f.put("hako/cgroup.subtree_control", "");
    let m = f.manager(Layout::V2);
    m.create().unwrap();
    assert!(f.path("hako/c1").is_dir());
    assert_eq!(
        f.writes(),
        w(&[
            ("cgroup.subtree_control", "+cpuset +io +memory +pids"),
            ("hako/cgroup.subtree_control", "+cpu +io +memory +pids"),
        ])
    );
}

#[test]
fn freeze_kill_and_dirs() {
    let f = fake(&["cgroup.freeze", "cgroup.kill", "cgroup.procs"]);
    f.put("hako/c1/cgroup.events", "populated 1\nfrozen 1\n");
    let m = f.manager(Layout::V2);
    m.freeze().unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Frozen);
    f.put("hako/c1/cgroup.events", "populated 1\nfrozen 0\n");
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Freezing);
    m.thaw().unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);
    f.writes();
    m.kill_all(nix::libc::SIGKILL).unwrap();
    assert_eq!(f.writes(), w(&[("hako/c1/cgroup.kill", "1")]));
    assert!(matches!(
        m.kill_all(12345),
        Err(Error::InvalidSignal(12345))
    ));
    assert_eq!(m.v2_dir(), Some(f.path("hako/c1")));
    let mounts = m.mounts();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].name, "");
}

#[test]
fn old_kernel_without_v2_freezer() {
    let f = fake(&["cgroup.procs"]);
    let e = f.manager(Layout::V2).freezer_state().unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
}

#[test]
fn stats_and_oom_kill_v2() {
    let f = fake(&[]);
    f.put("hako/c1/memory.current", "4096\n");
    f.put("hako/c1/memory.max", "max\n");
    f.put("hako/c1/memory.peak", "8192\n");
    f.put("hako/c1/memory.swap.current", "100\n");
    f.put("hako/c1/memory.swap.max", "0\n");
    f.put(
        "hako/c1/memory.events",
        "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\noom_group_kill 0\n",
    );
    f.put("hako/c1/memory.stat", "anon 10\nfile 20\n");
    f.put(
        "hako/c1/cpu.stat",
        "usage_usec 1000\nuser_usec 600\nsystem_usec 400\nnr_periods 3\nnr_throttled 1\nthrottled_usec 7\n",
    );
    f.put("hako/c1/pids.current", "1\n");
    f.put("hako/c1/pids.max", "1\n");
    f.put("hako/c1/io.stat", "8:0 rbytes=1 wbytes=2 rios=3 wios=4\n");
    let m = f.manager(Layout::V2);
    assert_eq!(m.oom_kill_count().unwrap(), 1);
    let s = m.stats().unwrap();
    assert_eq!(s.memory.usage.limit, u64::MAX);
    assert_eq!(s.memory.usage.usage, 4096);
    assert_eq!(s.memory.usage.max, 8192);
    assert_eq!(s.memory.usage.failcnt, 5);
    assert_eq!(s.memory.swap.usage, 4196);
    assert_eq!(s.memory.cache, 20);
    assert_eq!(s.memory.event_count.oom, 2);
    assert_eq!(s.cpu.usage.total, 1_000_000);
    assert_eq!(s.cpu.usage.user, 600_000);
    assert_eq!(s.cpu.usage.kernel, 400_000);
    assert_eq!(s.cpu.throttling.throttled_time, 7000);
    assert_eq!((s.pids.current, s.pids.limit), (1, 1));
    assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
    let missing = fake(&[]);
    assert!(matches!(
        missing.manager(Layout::V2).oom_kill_count(),
        Err(Error::Unsupported { .. })
    ));
}

#[test]
fn a_controller_the_cgroup_lacks_is_named_before_anything_is_written() {
    let f = fake(&["memory.max", "pids.max", "cgroup.controllers"]);
    std::fs::write(f.path(DIR).join("cgroup.controllers"), "memory pids\n").unwrap();
    let m = f.manager(Layout::V2);
    let e = m
        .apply(&res(json!({
            "memory": {"limit": 1048576},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 0}]
        })))
        .unwrap_err();
    assert!(matches!(e, Error::ControllerMissing { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("hugepageLimits needs the hugetlb cgroup controller")
            && msg.contains("memory pids"),
        "{msg}"
    );
    assert!(f.writes().is_empty(), "nothing written before the check");
    // Docker's zeros ask for nothing, so they need no controller.
    m.apply(&res(
        json!({"cpu": {"shares": 0, "quota": 0}, "memory": {"limit": 1048576}}),
    ))
    .unwrap();
}
