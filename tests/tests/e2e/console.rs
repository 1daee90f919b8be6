//! `terminal: true` with `--console-socket`: the runtime sends the pty master over
//! SCM_RIGHTS; we type into it and read the shell's answer.

use std::time::Duration;

use hako_test_support::{ConsoleSocket, pty_roundtrip};

use crate::common::*;

scenario!(console_socket);

fn console_socket(rt: &Runtime) {
    let config = Config::new().terminal(true).args(&["sh"]);
    let b = bundle(&config);
    let id = unique_id("tty");
    let _guard = ContainerGuard::new(rt, &id);
    let sock = ConsoleSocket::bind(&rt.work_dir().join("console.sock")).expect("bind socket");
    let sock_path = sock.path().display().to_string();
    rt.create_with(&id, b.path(), &["--console-socket", &sock_path])
        .expect_ok("create");
    let mut master = sock.receive(Duration::from_secs(5)).expect("pty master");
    rt.start(&id).expect_ok("start");
    // The shell echoes "echo $((6*7))"; only the shell's answer contains 42.
    let seen = pty_roundtrip(
        &mut master,
        "echo $((6*7))\n",
        "42",
        Duration::from_secs(10),
    );
    assert!(seen.contains("42"), "shell answer over the pty: {seen:?}");
    let seen = pty_roundtrip(&mut master, "tty\n", "/dev/pts/", Duration::from_secs(10));
    assert!(seen.contains("/dev/pts/"), "stdin is a pty: {seen:?}");
    let _ = pty_roundtrip(&mut master, "exit\n", "\u{0}", Duration::from_secs(2));
    assert!(
        rt.wait_status(&id, "stopped", Duration::from_secs(10)),
        "exit ends the shell"
    );
    drop(master);
    rt.delete(&id).expect_ok("delete");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}
