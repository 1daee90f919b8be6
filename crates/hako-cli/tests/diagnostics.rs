//! Logs for when it breaks: `hako --debug` shows the engine's steps, and the shim's own
//! failure log (restart decisions with timestamps) shows through `--debug inspect`.

#[macro_use]
mod common;

use common::Hako;

#[test]
fn debug_shows_the_engine_steps_of_a_run() {
    need_root!();
    let h = Hako::new();
    let o = h.run(&["--debug", "run", "--rm", "busybox", "true"]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    for step in [
        "create: record inserted",
        "create: root filesystem mounted",
        "create: bundle written",
        "create: complete",
        "start: shim up",
        "start: running",
        "rm: removal claimed",
        "rm: directories and record gone",
    ] {
        assert!(err.contains(step), "no {step:?} in:\n{err}");
    }
    // Without --debug: nothing of it.
    let o = h.run(&["run", "--rm", "busybox", "true"]);
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    h.assert_clean(&[]);
}

#[test]
fn the_shim_logs_its_restart_decisions_with_timestamps() {
    need_root!();
    let h = Hako::new();
    let id = h
        .ok(&["run", "-d", "--restart", "on-failure:2", "busybox", "false"])
        .trim()
        .to_string();
    h.wait_for("two restarts and the end", || {
        h.ok(&["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", &id])
            .trim()
            == "2 exited"
    });
    let o = h.run(&["--debug", "inspect", "-f", "{{.Id}}", &id]);
    let err = String::from_utf8_lossy(&o.stderr);
    let shim: Vec<&str> = err.lines().filter(|l| l.contains("shim: ")).collect();
    assert_eq!(shim.len(), 3, "{err}");
    assert!(
        shim[0].contains("exited with 1") && shim[0].contains("restarting in 100ms (restart 1)"),
        "{err}"
    );
    assert!(shim[2].contains("not restarting"), "{err}");
    // Timestamps: RFC 3339, increasing.
    let stamps: Vec<&str> = shim
        .iter()
        .map(|l| l.split("shim: ").nth(1).unwrap().split(' ').next().unwrap())
        .collect();
    for s in &stamps {
        humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    h.ok(&["rm", &id]);
    h.assert_clean(&[&id]);
}
