//! The harness checks itself: a leak check that cannot see a live container proves nothing.

use std::time::Duration;

use hako_test_support::find_leaks;

use crate::common::*;

scenario!(leak_check_sees_a_live_container);

fn leak_check_sees_a_live_container(rt: &Runtime) {
    let b = bundle(&Config::new().args(&["sleep", "30"]));
    let id = unique_id("leak");
    let _guard = ContainerGuard::new(rt, &id);
    rt.create(&id, b.path()).expect_ok("create");
    rt.start(&id).expect_ok("start");
    assert!(rt.wait_status(&id, "running", Duration::from_secs(5)));
    let report = find_leaks(rt.root(), &[&id], &[b.path()]);
    assert!(
        !report.state.is_empty(),
        "the state dir entry must be seen:\n{report}"
    );
    assert!(
        !report.processes.is_empty(),
        "the container process must be seen:\n{report}"
    );
    assert!(
        !report.cgroups.is_empty(),
        "the container cgroup must be seen:\n{report}"
    );
    rt.delete_force(&id).expect_ok("delete --force");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}
