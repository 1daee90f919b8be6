use serde_json::json;

use super::{Fake, res, w};
use crate::{CgroupManager, Error, FreezerState, Layout};

const HIERARCHIES: &[&str] = &[
    "cpu,cpuacct",
    "cpuset",
    "memory",
    "pids",
    "blkio",
    "devices",
    "freezer",
    "systemd",
];

fn fake() -> Fake {
    Fake::new(HIERARCHIES)
}

const MEM: &str = "memory/hako/c1";

fn memory_files(f: &Fake) {
    f.touch(
        MEM,
        &[
            "memory.limit_in_bytes",
            "memory.memsw.limit_in_bytes",
            "memory.soft_limit_in_bytes",
            "memory.swappiness",
            "memory.oom_control",
        ],
    );
}

#[test]
fn memory_grow_writes_memsw_before_limit() {
    let f = fake();
    memory_files(&f);
    f.put(&format!("{MEM}/memory.limit_in_bytes"), "104857600\n");
    let m = f.manager(Layout::V1);
    m.apply(&res(json!({"memory": {
        "limit": 209715200, "swap": 419430400, "reservation": 104857600,
        "swappiness": 10, "disableOOMKiller": true, "kernel": 1000, "kernelTCP": 1000
    }})))
    .unwrap();
    assert_eq!(
        f.writes(),
        w(&[
            ("memory/hako/c1/memory.memsw.limit_in_bytes", "419430400"),
            ("memory/hako/c1/memory.limit_in_bytes", "209715200"),
            ("memory/hako/c1/memory.soft_limit_in_bytes", "104857600"),
            ("memory/hako/c1/memory.swappiness", "10"),
            ("memory/hako/c1/memory.oom_control", "1"),
        ])
    );
}

#[test]
fn memory_shrink_writes_limit_before_memsw() {
    let f = fake();
    memory_files(&f);
    f.put(&format!("{MEM}/memory.limit_in_bytes"), "209715200\n");
    let m = f.manager(Layout::V1);
    m.apply(&res(
        json!({"memory": {"limit": 52428800, "swap": 104857600}}),
    ))
    .unwrap();
    assert_eq!(
        f.writes(),
        w(&[
            ("memory/hako/c1/memory.limit_in_bytes", "52428800"),
            ("memory/hako/c1/memory.memsw.limit_in_bytes", "104857600"),
        ])
    );
}

#[test]
fn memory_unlimited_sets_memsw_unlimited_too() {
    let f = fake();
    memory_files(&f);
    f.put(&format!("{MEM}/memory.limit_in_bytes"), "1048576\n");
    let m = f.manager(Layout::V1);
    m.apply(&res(json!({"memory": {"limit": -1}}))).unwrap();
    assert_eq!(
        f.writes(),
        w(&[
            ("memory/hako/c1/memory.memsw.limit_in_bytes", "-1"),
            ("memory/hako/c1/memory.limit_in_bytes", "-1"),
        ])
    );
}

/// kernelTCP goes to memory.kmem.tcp.limit_in_bytes where the kernel has it; without the
/// file the rest still applies (a warning says it was not).
#[test]
fn kernel_tcp_where_the_kernel_has_it() {
    let f = fake();
    memory_files(&f);
    f.touch(MEM, &["memory.kmem.tcp.limit_in_bytes"]);
    let m = f.manager(Layout::V1);
    m.apply(&res(
        json!({"memory": {"limit": 1048576, "kernelTCP": 524288}}),
    ))
    .unwrap();
    assert_eq!(
        f.writes(),
        w(&[
            ("memory/hako/c1/memory.limit_in_bytes", "1048576"),
            ("memory/hako/c1/memory.kmem.tcp.limit_in_bytes", "524288"),
        ])
    );

    let f = fake();
    memory_files(&f);
    let m = f.manager(Layout::V1);
    m.apply(&res(
        json!({"memory": {"limit": 1048576, "kernelTCP": 524288}}),
    ))
    .unwrap();
    assert_eq!(
        f.writes(),
        w(&[("memory/hako/c1/memory.limit_in_bytes", "1048576")])
    );
    let e = m
        .apply(&res(json!({"memory": {"kernelTCP": -5}})))
        .unwrap_err();
    assert!(e.to_string().contains("kernelTCP"), "{e}");
}

#[test]
fn tiny_memory_limit_is_allowed() {
    let f = fake();
    memory_files(&f);
    let m = f.manager(Layout::V1);
    m.apply(&res(json!({"memory": {"limit": 524288}}))).unwrap();
    assert_eq!(f.read(&format!("{MEM}/memory.limit_in_bytes")), "524288");
}

#[test]
fn swap_without_swap_accounting_is_a_clear_error() {
    let f = fake();
    f.touch(MEM, &["memory.limit_in_bytes"]);
    let m = f.manager(Layout::V1);
    let e = m
        .apply(&res(json!({"memory": {"limit": 1048576, "swap": 2097152}})))
        .unwrap_err();
    assert!(matches!(e, Error::SwapAccountingDisabled { .. }), "{e}");
    assert!(e.to_string().contains("swapaccount=1"), "{e}");
    assert!(f.writes().is_empty());
    // Unlimited swap without accounting is simply what we have.
    m.apply(&res(json!({"memory": {"limit": 1048576, "swap": -1}})))
        .unwrap();
}

#[test]
fn invalid_values_are_refused_before_any_write() {
    let f = fake();
    memory_files(&f);
    f.touch("pids/hako/c1", &["pids.max"]);
    let m = f.manager(Layout::V1);
    let e = m
        .apply(&res(
            json!({"pids": {"limit": 5}, "memory": {"limit": 2097152, "swap": 1048576}}),
        ))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidResource {
                setting: "memory.swap",
                ..
            }
        ),
        "{e}"
    );
    let e = m
        .apply(&res(json!({"memory": {"swappiness": 101}})))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidResource { .. }), "{e}");
    assert!(f.writes().is_empty());
}

#[test]
fn write_error_names_value_file_and_dir() {
    let f = fake();
    // A directory where the file should be makes the write fail.
    std::fs::create_dir_all(f.path(&format!("{MEM}/memory.limit_in_bytes"))).unwrap();
    let m = f.manager(Layout::V1);
    let e = m
        .apply(&res(json!({"memory": {"limit": 512}})))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("cannot write 512 to memory.limit_in_bytes in ")
            && e.contains("memory/hako/c1"),
        "{e}"
    );
}

#[test]
fn cpu_and_cpuset() {
    let f = fake();
    f.touch(
        "cpu,cpuacct/hako/c1",
        &[
            "cpu.shares",
            "cpu.cfs_quota_us",
            "cpu.cfs_period_us",
            "cpu.rt_period_us",
            "cpu.rt_runtime_us",
        ],
    );
    f.touch("cpuset/hako/c1", &["cpuset.cpus", "cpuset.mems"]);
    let m = f.manager(Layout::V1);
    m.apply(&res(json!({"cpu": {
        "shares": 512, "quota": 50000, "period": 100000,
        "realtimeRuntime": 950000, "realtimePeriod": 1000000,
        "cpus": "0-1", "mems": "0"
    }})))
    .unwrap();
    assert_eq!(
        f.writes(),
        w(&[
            ("cpu,cpuacct/hako/c1/cpu.shares", "512"),
            ("cpu,cpuacct/hako/c1/cpu.cfs_period_us", "100000"),
            ("cpu,cpuacct/hako/c1/cpu.cfs_quota_us", "50000"),
            ("cpu,cpuacct/hako/c1/cpu.rt_period_us", "1000000"),
            ("cpu,cpuacct/hako/c1/cpu.rt_runtime_us", "950000"),
            ("cpuset/hako/c1/cpuset.cpus", "0-1"),
            ("cpuset/hako/c1/cpuset.mems", "0"),
        ])
    );
}

#[test]
fn pids_zero_and_negative_mean_max() {
    let f = fake();
    f.touch("pids/hako/c1", &["pids.max"]);
    let m = f.manager(Layout::V1);
    for (limit, want) in [(0, "max"), (-1, "max"), (1, "1"), (100, "100")] {
        m.apply(&res(json!({"pids": {"limit": limit}}))).unwrap();
        assert_eq!(f.read("pids/hako/c1/pids.max"), want, "limit {limit}");
    }
}

#[test]
fn devices_deny_all_then_rules_in_order() {
    let f = fake();
    f.touch("devices/hako/c1", &["devices.allow", "devices.deny"]);
    let m = f.manager(Layout::V1);
    m.apply(&res(json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "access": "m"},
        {"allow": true, "type": "b", "major": 8, "access": "r"},
        {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}
    ]})))
    .unwrap();
    assert_eq!(
        f.writes(),
        w(&[
            ("devices/hako/c1/devices.deny", "a"),
            ("devices/hako/c1/devices.allow", "c 1:3 rwm"),
            ("devices/hako/c1/devices.allow", "c *:* m"),
            ("devices/hako/c1/devices.allow", "b 8:* r"),
            ("devices/hako/c1/devices.deny", "c 1:3 w"),
        ])
    );
}

#[test]
fn devices_deny_all_in_the_middle_is_kept() {
    let rules: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_value(json!([
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": false, "access": "rwm"}
    ]))
    .unwrap();
    let plan = crate::resources::devices_plan(&rules);
    assert_eq!(
        plan,
        vec![
            ("devices.deny", "a".to_owned()),
            ("devices.allow", "c 1:3 rwm".to_owned()),
            ("devices.deny", "a *:* rwm".to_owned()),
        ]
    );
}

#[test]
fn blkio_weight_and_throttles() {
    let f = fake();
    f.touch(
        "blkio/hako/c1",
        &[
            "blkio.weight",
            "blkio.weight_device",
            "blkio.throttle.read_bps_device",
            "blkio.throttle.write_bps_device",
            "blkio.throttle.read_iops_device",
            "blkio.throttle.write_iops_device",
        ],
    );
    let m = f.manager(Layout::V1);
    m.apply(&res(json!({"blockIO": {
        "weight": 500,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 300}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2097152}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 200}]
    }})))
    .unwrap();
    assert_eq!(
        f.writes(),
        w(&[
            ("blkio/hako/c1/blkio.weight", "500"),
            ("blkio/hako/c1/blkio.weight_device", "8:0 300"),
            (
                "blkio/hako/c1/blkio.throttle.read_bps_device",
                "8:0 1048576"
            ),
            (
                "blkio/hako/c1/blkio.throttle.write_bps_device",
                "8:0 2097152"
            ),
            ("blkio/hako/c1/blkio.throttle.read_iops_device", "8:0 100"),
            ("blkio/hako/c1/blkio.throttle.write_iops_device", "8:16 200"),
        ])
    );
}

#[test]
fn blkio_weight_falls_back_to_bfq_or_reports_unsupported() {
    let f = fake();
    f.touch("blkio/hako/c1", &["blkio.bfq.weight"]);
    let m = f.manager(Layout::V1);
    m.apply(&res(json!({"blockIO": {"weight": 100}}))).unwrap();
    assert_eq!(f.read("blkio/hako/c1/blkio.bfq.weight"), "100");
    std::fs::remove_file(f.path("blkio/hako/c1/blkio.bfq.weight")).unwrap();
    let e = m
        .apply(&res(json!({"blockIO": {"weight": 100}})))
        .unwrap_err();
    match &e {
        Error::Unsupported {
            controller, file, ..
        } => assert_eq!(
            (controller.as_str(), file.as_str()),
            ("blkio", "blkio.weight")
        ),
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("blkio.weight does not exist"), "{e}");
}

/// dockerd sends `"blockIO": {"weight": 0}` for "not set"; the kernel rejects 0 (ERANGE),
/// so it must not be written, even where no weight file exists at all.
#[test]
fn blkio_weight_zero_means_unset() {
    let f = fake();
    f.touch("blkio/hako/c1", &["blkio.bfq.weight"]);
    let m = f.manager(Layout::V1);
    m.apply(&res(json!({"blockIO": {"weight": 0, "leafWeight": 0}})))
        .unwrap();
    assert_eq!(f.read("blkio/hako/c1/blkio.bfq.weight"), "");
    std::fs::remove_file(f.path("blkio/hako/c1/blkio.bfq.weight")).unwrap();
    m.apply(&res(json!({"blockIO": {"weight": 0}}))).unwrap();
}

#[test]
fn hugetlb_needs_the_controller_and_a_valid_size() {
    let f = fake();
    let m = f.manager(Layout::V1);
    let e = m
        .apply(&res(
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1073741824}]}),
        ))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::ControllerNotMounted {
                controller: "hugetlb",
                ..
            }
        ),
        "{e}"
    );
    let f = Fake::new(&["hugetlb"]);
    f.touch(
        "hugetlb/hako/c1",
        &[
            "hugetlb.2MB.limit_in_bytes",
            "hugetlb.2MB.rsvd.limit_in_bytes",
        ],
    );
    let m = f.manager(Layout::V1);
    m.apply(&res(
        json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1073741824}]}),
    ))
    .unwrap();
    assert_eq!(
        f.writes(),
        w(&[
            ("hugetlb/hako/c1/hugetlb.2MB.limit_in_bytes", "1073741824"),
            (
                "hugetlb/hako/c1/hugetlb.2MB.rsvd.limit_in_bytes",
                "1073741824"
            ),
        ])
    );
    let e = m
        .apply(&res(
            json!({"hugepageLimits": [{"pageSize": "../2MB", "limit": 1}]}),
        ))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidResource { .. }), "{e}");
}

#[test]
fn network_classid_and_priorities() {
    let f = Fake::new(&["net_cls,net_prio"]);
    f.touch(
        "net_cls,net_prio/hako/c1",
        &["net_cls.classid", "net_prio.ifpriomap"],
    );
    let m = f.manager(Layout::V1);
    m.apply(&res(json!({"network": {
        "classID": 1048577,
        "priorities": [{"name": "eth0", "priority": 5}, {"name": "lo", "priority": 1}]
    }})))
    .unwrap();
    assert_eq!(
        f.writes(),
        w(&[
            ("net_cls,net_prio/hako/c1/net_cls.classid", "1048577"),
            ("net_cls,net_prio/hako/c1/net_prio.ifpriomap", "eth0 5"),
            ("net_cls,net_prio/hako/c1/net_prio.ifpriomap", "lo 1"),
        ])
    );
}

#[test]
fn unified_on_v1_is_refused() {
    let f = fake();
    let m = f.manager(Layout::V1);
    let e = m
        .apply(&res(json!({"unified": {"memory.high": "1G"}})))
        .unwrap_err();
    assert!(matches!(e, Error::UnifiedOnV1 { .. }), "{e}");
}

#[test]
fn create_makes_every_hierarchy_and_inherits_cpuset() {
    let f = fake();
    f.put("cpuset/cpuset.cpus", "0-1\n");
    f.put("cpuset/cpuset.mems", "0\n");
    // The kernel creates these files empty in a new cpuset cgroup.
    f.touch("cpuset/hako", &["cpuset.cpus", "cpuset.mems"]);
    f.touch("cpuset/hako/c1", &["cpuset.cpus", "cpuset.mems"]);
    f.put("cpuset/hako/c1/cpuset.mems", "0");
    let m = f.manager(Layout::V1);
    m.create().unwrap();
    for h in HIERARCHIES {
        assert!(f.path(&format!("{h}/hako/c1")).is_dir(), "{h}");
    }
    assert_eq!(f.read("cpuset/hako/cpuset.cpus"), "0-1");
    assert_eq!(f.read("cpuset/hako/c1/cpuset.cpus"), "0-1");
    assert_eq!(
        f.writes(),
        w(&[
            ("cpuset/hako/cpuset.cpus", "0-1"),
            ("cpuset/hako/cpuset.mems", "0"),
            ("cpuset/hako/c1/cpuset.cpus", "0-1"),
        ]),
        "c1's mems was not empty and must be left alone"
    );
    m.create().unwrap();
    assert!(f.writes().is_empty(), "create is idempotent");
}

#[test]
fn add_task_joins_every_hierarchy() {
    let f = fake();
    for h in HIERARCHIES {
        f.touch(&format!("{h}/hako/c1"), &["cgroup.procs"]);
    }
    let m = f.manager(Layout::V1);
    m.add_task(4242).unwrap();
    let mut written: Vec<String> = f
        .writes()
        .into_iter()
        .map(|(p, v)| {
            assert_eq!(v, "4242");
            p
        })
        .collect();
    written.sort();
    let mut want: Vec<String> = HIERARCHIES
        .iter()
        .map(|h| format!("{h}/hako/c1/cgroup.procs"))
        .collect();
    want.sort();
    assert_eq!(written, want);
}

#[test]
fn mounts_and_no_v2_dir() {
    let f = fake();
    let m = f.manager(Layout::V1);
    let mut names: Vec<_> = m
        .mounts()
        .into_iter()
        .map(|c| {
            assert!(c.host_dir.ends_with("hako/c1"));
            assert!(c.host_dir.starts_with(f.root()));
            c.name
        })
        .collect();
    names.sort();
    let mut want: Vec<String> = HIERARCHIES.iter().map(|h| (*h).to_owned()).collect();
    want.sort();
    assert_eq!(names, want);
    assert_eq!(m.v2_dir(), None);
    assert_eq!(m.layout(), Layout::V1);
    assert_eq!(m.resolved_path(), "/hako/c1");
}

#[test]
fn freezer_v1() {
    let f = fake();
    f.put("freezer/hako/c1/freezer.state", "THAWED\n");
    let m = f.manager(Layout::V1);
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);
    m.freeze().unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Frozen);
    m.thaw().unwrap();
    assert_eq!(f.read("freezer/hako/c1/freezer.state"), "THAWED");
    let no_freezer = Fake::new(&["memory"]);
    let e = no_freezer.manager(Layout::V1).freeze().unwrap_err();
    assert!(
        matches!(
            e,
            Error::ControllerNotMounted {
                controller: "freezer",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn pids_include_nested_cgroups() {
    let f = fake();
    f.put("freezer/hako/c1/cgroup.procs", "10\n11\n");
    f.put("freezer/hako/c1/sub/cgroup.procs", "12\n");
    let m = f.manager(Layout::V1);
    let mut pids = m.pids().unwrap();
    pids.sort();
    assert_eq!(pids, [10, 11, 12]);
    let gone = Fake::new(&["freezer"]).manager(Layout::V1);
    assert!(gone.pids().unwrap().is_empty());
}

#[test]
fn oom_kill_count_and_stats() {
    let f = fake();
    f.put(
        "memory/hako/c1/memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
    );
    f.put("memory/hako/c1/memory.usage_in_bytes", "4096\n");
    f.put("memory/hako/c1/memory.limit_in_bytes", "524288\n");
    f.put("memory/hako/c1/memory.max_usage_in_bytes", "8192\n");
    f.put("memory/hako/c1/memory.failcnt", "7\n");
    f.put(
        "memory/hako/c1/memory.stat",
        "cache 100\nrss 200\ntotal_cache 150\n",
    );
    f.put("cpu,cpuacct/hako/c1/cpuacct.usage", "123456789\n");
    f.put("cpu,cpuacct/hako/c1/cpuacct.usage_percpu", "100 200 \n");
    f.put("cpu,cpuacct/hako/c1/cpuacct.stat", "user 3\nsystem 2\n");
    f.put(
        "cpu,cpuacct/hako/c1/cpu.stat",
        "nr_periods 10\nnr_throttled 4\nthrottled_time 5000\n",
    );
    f.put("pids/hako/c1/pids.current", "2\n");
    f.put("pids/hako/c1/pids.max", "max\n");
    let m = f.manager(Layout::V1);
    assert_eq!(m.oom_kill_count().unwrap(), 3);
    let s = m.stats().unwrap();
    assert_eq!(s.memory.usage.usage, 4096);
    assert_eq!(s.memory.usage.limit, 524288);
    assert_eq!(s.memory.usage.max, 8192);
    assert_eq!(s.memory.usage.failcnt, 7);
    assert_eq!(s.memory.cache, 150);
    assert_eq!(s.memory.event_count.oom_kill, 3);
    assert_eq!(s.cpu.usage.total, 123456789);
    assert_eq!(s.cpu.usage.percpu, [100, 200]);
    assert_eq!(s.cpu.usage.user, 30_000_000);
    assert_eq!(s.cpu.usage.kernel, 20_000_000);
    assert_eq!(s.cpu.throttling.throttled_periods, 4);
    assert_eq!((s.pids.current, s.pids.limit), (2, 0));
    let j = serde_json::to_value(&s).unwrap();
    assert_eq!(j["cpu"]["throttling"]["throttledPeriods"], 4);
    assert_eq!(j["memory"]["usage"]["limit"], 524288);
    assert_eq!(j["memory"]["event_count"]["oom_kill"], 3);
    assert!(
        j["pids"].get("limit").is_none(),
        "unlimited pids omit limit"
    );
}

#[test]
fn destroy_of_missing_cgroup_is_fine() {
    let f = fake();
    f.manager(Layout::V1).destroy().unwrap();
}
