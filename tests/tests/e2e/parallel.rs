//! Twenty containers created and started at once, from twenty threads.

use std::time::Duration;

use crate::common::*;

scenario!(twenty_in_parallel);

fn twenty_in_parallel(rt: &Runtime) {
    let bundles: Vec<Bundle> = (0..20)
        .map(|i| bundle(&Config::new().sh(&format!("echo container-{i}"))))
        .collect();
    let ids: Vec<String> = (0..20).map(|i| unique_id(&format!("par{i}"))).collect();
    let _guards: Vec<_> = ids.iter().map(|id| ContainerGuard::new(rt, id)).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .zip(&bundles)
            .enumerate()
            .map(|(i, (id, b))| {
                s.spawn(move || {
                    rt.create(id, b.path()).expect_ok(&format!("create {id}"));
                    rt.start(id).expect_ok(&format!("start {id}"));
                    assert!(
                        rt.wait_status(id, "stopped", Duration::from_secs(20)),
                        "{id} stopped"
                    );
                    assert_eq!(rt.container_stdout(id), format!("container-{i}\n"));
                    rt.delete(id).expect_ok(&format!("delete {id}"));
                })
            })
            .collect();
        for h in handles {
            h.join().expect("container thread");
        }
    });
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let paths: Vec<&std::path::Path> = bundles.iter().map(|b| b.path()).collect();
    rt.assert_no_leaks(&ids, &paths);
}
