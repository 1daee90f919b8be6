//! What a Docker user trips over in the first hour (issue 10): interactive use in a real
//! terminal, arguments that belong to the container, one clear line per error, help text,
//! and hako without root. Each test drives the built `hako` binary with its own `--root`
//! and `--exec-root` and ends with the leak check.

#[macro_use]
mod common;

use std::process::Command;

use common::pty::Pty;
use common::{Hako, mounted};

/// A temporary directory on the host named `PREFIX...` (removed when dropped).
fn tmp(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("tempdir")
}

fn running(h: &Hako, name: &str) -> bool {
    h.inspect(name)["State"]["Running"] == serde_json::Value::Bool(true)
}

#[test]
fn detach_keeps_the_shell_and_attach_delivers_keys_and_ctrl_c_twice() {
    need_root!();
    let h = Hako::new();
    let mut t = Pty::spawn(&h.cmd(&["run", "-it", "--name", "sh1", "busybox", "sh"]));
    // Arithmetic, so that the typed command echoed back does not match the answer.
    t.send(b"echo one-$((40+2))\n");
    t.expect("one-42");
    t.send(b"\x10\x11");
    let (st, screen) = t.wait();
    assert!(st.success(), "detach ends `run -it` with 0: {screen}");
    assert!(running(&h, "sh1"), "the shell survives the detach");
    for round in 0..2 {
        let mut t = Pty::spawn(&h.cmd(&["attach", "sh1"]));
        t.send(format!("echo round-$(({round}+100))\n").as_bytes());
        t.expect(&format!("round-{}", round + 100));
        // ctrl-c reaches the foreground job through the container's terminal, not hako.
        t.send(b"sleep 1000\n");
        std::thread::sleep(std::time::Duration::from_millis(300));
        t.send(b"\x03");
        t.send(b"echo alive-$((7*6))\n");
        t.expect("alive-42");
        t.send(b"\x10\x11");
        let (st, screen) = t.wait();
        assert!(st.success(), "round {round}: {screen}");
        assert!(running(&h, "sh1"), "round {round}: still running");
    }
    // The same shell still reads its terminal: `exit 3` through a last attach ends it.
    let mut t = Pty::spawn(&h.cmd(&["attach", "sh1"]));
    t.send(b"exit 3\n");
    let (st, screen) = t.wait();
    assert_eq!(st.code(), Some(3), "{screen}");
    h.finish(&["sh1"]);
}

#[test]
fn it_without_a_terminal_fails_like_docker_and_creates_nothing() {
    need_root!();
    let h = Hako::new();
    // h.run gives stdin /dev/null: not a terminal.
    let e = h.fails(1, &["run", "-it", "--rm", "busybox", "true"]);
    assert_eq!(e, "Error: the input device is not a TTY");
    let e = h.fails(1, &["run", "-it", "--name", "kept", "busybox", "true"]);
    assert_eq!(e, "Error: the input device is not a TTY");
    // -d, -i alone and -t alone do not need one.
    let out = h.run_stdin(&["run", "-i", "--rm", "busybox", "cat"], b"piped\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped\n");
    let id = h.start(&["-it", "--name", "bg", "busybox", "sh"], None);
    let e = h.fails(1, &["exec", "-it", "bg", "true"]);
    assert_eq!(e, "Error: the input device is not a TTY");
    let e = h.fails(1, &["attach", "bg"]);
    assert_eq!(e, "Error: the input device is not a TTY");
    let e = h.fails(1, &["start", "-ai", "bg"]);
    assert_eq!(e, "Error: the input device is not a TTY");
    h.ok(&["exec", "-t", "bg", "true"]);
    h.ok(&["exec", "-d", "-it", "bg", "true"]);
    h.finish(&[&id]);
}

#[test]
fn arguments_after_the_image_or_container_are_the_containers() {
    need_root!();
    let h = Hako::new();
    // Flags after the image go to the container, never to hako (`-V` used to print
    // hako's version, `-c` to be --cpu-shares, `-m` --memory).
    let out = h.ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        "busybox",
        "-c",
        "echo hi $0",
    ]);
    assert_eq!(out, "hi sh\n");
    let out = h.ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "echo",
        "busybox",
        "-m",
        "platform",
        "-V",
    ]);
    assert_eq!(out, "-m platform -V\n");
    let e = h.fails(127, &["run", "--rm", "busybox", "-V"]);
    assert!(e.contains("\"-V\": executable file not found"), "{e}");
    let out = h.ok(&["run", "--rm", "busybox", "echo", "--rm", "-d", "--help"]);
    assert_eq!(out, "--rm -d --help\n");
    let id = h.ok(&["create", "--name", "c1", "busybox", "echo", "-t", "-i"]);
    let out = h.ok(&["start", "-a", id.trim()]);
    assert_eq!(out, "-t -i\n");
    let id = h.start(&["--name", "ex", "busybox", "sleep", "1000"], None);
    let out = h.ok(&["exec", "ex", "echo", "-it", "-u", "nobody", "-V"]);
    assert_eq!(out, "-it -u nobody -V\n");
    let out = h.ok(&["exec", "-u", "nobody", "ex", "sh", "-c", "id -u"]);
    assert_eq!(out, "65534\n");
    // A flag hako does not know, before the image, is still an error.
    let e = h.fails(125, &["run", "--bogus", "busybox", "true"]);
    assert!(e.contains("'--bogus'"), "{e}");
    let e = h.fails(1, &["exec", "ex"]);
    assert!(e.contains("requires at least 2 arguments"), "{e}");
    // Missing arguments fail with 1 (Docker's), unknown flags with 125.
    let e = h.fails(1, &["run"]);
    assert!(e.contains("'hako run' requires at least 1 argument"), "{e}");
    h.finish(&["c1", &id]);
}

/// The docker CLI's exit statuses (measured with docker 28.2): a failing `run` leaves
/// 125, any other failing command 1; a bad flag is 125 for every command, a missing
/// argument or unknown command 1, a command group alone prints its help and succeeds.
#[test]
fn exit_statuses_are_the_docker_clis() {
    need_root!();
    let h = Hako::new();
    let cases: &[(&[&str], i32)] = &[
        (&["run", "--rm", "--pull", "never", "nosuchimage"], 125),
        (&["run", "-m", "lots", "busybox"], 125),
        (&["run"], 1),
        (&["create", "--pull", "never", "nosuchimage"], 1),
        (&["create", "--memory-swappiness", "101", "busybox"], 125),
        (&["rm", "nosuch"], 1),
        (&["inspect", "nosuch"], 1),
        (&["stop", "nosuch"], 1),
        (&["stop", "-t", "abc", "nosuch"], 125),
        (&["rmi", "nosuch"], 1),
        (&["volume", "rm", "nosuch"], 1),
        (&["network", "rm", "nosuch"], 1),
        (&["images", "--bogus"], 125),
        (&["rename", "a"], 1),
        (&["pss"], 1),
        (&["network"], 0),
    ];
    for (args, code) in cases {
        let o = h.run(args);
        assert_eq!(
            o.status.code(),
            Some(*code),
            "hako {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // The group's help goes to stdout, as docker's.
    let o = h.run(&["network"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Manage networks") && o.stderr.is_empty(),
        "{o:?}"
    );
    h.finish(&[]);
}

#[test]
fn usage_errors_are_one_line_naming_what_is_wrong() {
    need_root!();
    let h = Hako::new();
    let e = h.fails(1, &["stop"]);
    assert!(e.contains("CONTAINER"), "names the missing argument: {e}");
    let e = h.fails(1, &["rename", "a"]);
    assert!(e.contains("NEW_NAME"), "{e}");
    let e = h.fails(1, &["pss"]);
    assert!(e.contains("did you mean 'ps'?"), "{e}");
    let e = h.fails(1, &["image", "lss"]);
    assert!(e.contains("did you mean 'ls'?"), "{e}");
    // hako has no daemon: no "Error response from daemon", one line per failure.
    let o = h.run(&["stop", "nosuch1", "nosuch2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err,
        "Error: No such container: nosuch1\nError: No such container: nosuch2\n"
    );
    assert_eq!(o.status.code(), Some(1));
    let o = h.run(&["volume", "rm", "nosuchvol"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("daemon"), "{err}");
    // exec of a missing program: one line, status 127.
    let id = h.start(&["--name", "ex", "busybox", "sleep", "1000"], None);
    let o = h.run(&["exec", "ex", "nosuchprog"]);
    assert_eq!(o.status.code(), Some(127));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("executable file not found"), "{err}");
    // A cause is said once: the root is a file, so the store cannot be made under it.
    let file = h.root.path().join("afile");
    std::fs::write(&file, "x").expect("write");
    let o = Command::new(common::HAKO)
        .arg("--root")
        .arg(file.join("sub"))
        .arg("images")
        .output()
        .expect("hako");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    let line = err.trim();
    let last = line.rsplit(": ").next().unwrap_or_default();
    assert_eq!(line.matches(last).count(), 1, "cause repeated: {line}");
    h.finish(&[&id]);
}

#[test]
fn help_lists_the_commands_own_flags_and_global_options_once() {
    let help = |args: &[&str]| {
        let o = Command::new(common::HAKO)
            .args(args)
            .output()
            .expect("hako");
        assert!(o.status.success(), "{args:?}");
        String::from_utf8(o.stdout).expect("utf-8")
    };
    // Lines that list an option: `      --root <DIR>` or `  -D, --debug`.
    let listed = |help: &str, flag: &str| {
        help.lines()
            .filter(|l| {
                let l = l.trim_start();
                l.starts_with(&format!("{flag} ")) || l == flag || l.contains(&format!(", {flag}"))
            })
            .count()
    };
    let top = help(&["--help"]);
    for g in [
        "--root",
        "--exec-root",
        "--storage-driver",
        "--log-level",
        "--debug",
    ] {
        assert_eq!(listed(&top, g), 1, "{g} once in hako --help:\n{top}");
    }
    for cmd in [
        &["stop", "--help"][..],
        &["run", "--help"],
        &["image", "ls", "--help"],
    ] {
        let h = help(cmd);
        for g in [
            "--root",
            "--exec-root",
            "--storage-driver",
            "--log-level",
            "--debug",
        ] {
            assert_eq!(listed(&h, g), 0, "{cmd:?} lists the global {g}:\n{h}");
        }
    }
    let stop = help(&["stop", "--help"]);
    assert!(
        stop.contains("--time") && stop.contains("--signal"),
        "{stop}"
    );
    let run = help(&["run", "--help"]);
    assert!(
        run.contains("Usage: hako run [OPTIONS] IMAGE [COMMAND] [ARG...]"),
        "{run}"
    );
    assert!(run.find("--detach").unwrap_or(usize::MAX) < run.find("--memory").unwrap_or(0));
    // Global options still work before the command.
    let o = Command::new(common::HAKO)
        .args([
            "--log-level",
            "error",
            "version",
            "--format",
            "{{.Client.Version}}",
        ])
        .output()
        .expect("hako");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn without_root_an_unwritable_root_is_one_line_and_nothing_is_made() {
    need_root!();
    // A copy nobody can run, in a directory nobody can enter.
    let dir = tmp("hako-nr-");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let exe = dir.path().join("hako");
    std::fs::copy(common::HAKO, &exe).expect("copy hako");
    for args in [
        &["images"][..],
        &["ps"],
        &["run", "--rm", "busybox", "true"],
        &["info"],
    ] {
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .arg("--root")
            .arg(dir.path().join("root"))
            .args(args)
            .output()
            .expect("setpriv (util-linux)");
        // Rootless mode exists now: a user who cannot write the --root given gets one
        // line naming it, and nothing is made.
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(common::failure_code(args)),
            "{args:?}: {err}"
        );
        assert!(
            err.starts_with("Error: ") && err.lines().count() == 1 && err.contains("root"),
            "{args:?}: {err}"
        );
    }
    assert!(!dir.path().join("root").exists(), "nothing was made");
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

#[test]
fn modes_are_set_explicitly_whatever_the_umask() {
    need_root!();
    for umask in ["000", "077"] {
        let h = Hako::new_empty();
        let sh = |args: &str| {
            // In the test's network namespace, as every hako that runs containers here.
            let o = h
                .net
                .command("sh")
                .arg("-c")
                .arg(format!(
                    "umask {umask}; exec {} --root {} --exec-root {} {args}",
                    common::HAKO,
                    h.root.path().display(),
                    h.exec.path().display()
                ))
                .output()
                .expect("sh");
            assert!(
                o.status.success(),
                "umask {umask}: hako {args}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8(o.stdout).expect("utf-8")
        };
        sh(&format!(
            "import {} busybox",
            common::rootfs_tar().display()
        ));
        let id = sh("run -d -t -e SECRET=1 busybox sleep 1000")
            .trim()
            .to_string();
        let root = h.root.path();
        let exec = h.exec.path();
        let ctr = root.join("containers").join(&id);
        let state = exec.join("containers").join(&id);
        let expect = [
            (root.to_path_buf(), 0o710),
            (root.join("hako-image.db"), 0o600),
            (root.join("containers"), 0o700),
            (ctr.clone(), 0o710),
            (ctr.join("config.json"), 0o600),
            (ctr.join("mounts.json"), 0o600),
            (ctr.join("hosts"), 0o644),
            (ctr.join("hostname"), 0o644),
            (ctr.join("resolv.conf"), 0o644),
            (ctr.join(format!("{id}-json.log")), 0o640),
            (exec.to_path_buf(), 0o700),
            (exec.join("containers"), 0o700),
            (state.clone(), 0o700),
            (state.join("attach.sock"), 0o600),
            (state.join("console.sock"), 0o600),
        ];
        for (p, m) in &expect {
            assert_eq!(mode(p), *m, "umask {umask}: {}", p.display());
        }
        // An exec session's files (they hold its Env) while it runs.
        let mut child = h
            .cmd(&["exec", "-e", "TOKEN=2", &id, "sleep", "3"])
            .spawn()
            .expect("exec");
        let mut seen = None;
        h.wait_for("the exec session", || {
            seen = std::fs::read_dir(exec.join("exec"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .find(|p| p.join("process.json").exists() && p.join("attach.sock").exists());
            seen.is_some()
        });
        let session = seen.expect("exec session");
        assert_eq!(mode(&exec.join("exec")), 0o700, "umask {umask}");
        assert_eq!(mode(&session), 0o700, "umask {umask}");
        for name in ["exec.json", "process.json", "attach.sock"] {
            let p = session.join(name);
            assert_eq!(mode(&p), 0o600, "umask {umask}: {}", p.display());
        }
        assert!(child.wait().expect("exec").success());
        // Whatever the umask, a non-root user in the container reads /etc/hosts.
        let out = sh("run --rm -u nobody busybox cat /etc/hosts /etc/resolv.conf /etc/hostname");
        assert!(out.contains("localhost"), "{out}");
        h.finish(&[&id]);
    }
}

#[test]
fn an_exec_root_as_long_as_dockers_paths_works() {
    need_root!();
    let mut h = Hako::new();
    // ~95 characters: `<exec-root>/containers/<id>/attach.sock` is then far past the 107
    // bytes of sun_path (the limit used to be an exec root of 19).
    let long = h
        .exec
        .path()
        .join("var/run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby/hako-exec-root");
    std::fs::create_dir_all(&long).expect("mkdir");
    h.exec_override = Some(long.clone());
    assert!(long.as_os_str().len() > 90, "{}", long.display());
    assert_eq!(h.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi\n");
    // A tty goes through console.sock.
    let out = h.ok(&["run", "--rm", "-t", "busybox", "tty"]);
    assert!(out.starts_with("/dev/pts/"), "{out}");
    let id = h.start(&["--name", "long", "busybox", "sleep", "1000"], None);
    assert_eq!(h.ok(&["exec", "long", "echo", "in"]), "in\n");
    assert!(running(&h, "long"));
    let mut t = Pty::spawn(&h.cmd(&["run", "-it", "--name", "sh2", "busybox", "sh"]));
    t.send(b"echo tty-$((20+1))\n");
    t.expect("tty-21");
    t.send(b"exit 0\n");
    assert!(t.wait().0.success());
    h.ok(&["stop", "-t", "1", "long"]);
    h.finish(&[&id, "sh2"]);
}

#[test]
fn a_shim_pid_taken_by_another_process_is_not_running() {
    need_root!();
    let h = Hako::new();
    let id = h.start(&["--name", "victim", "busybox", "sleep", "1000"], None);
    let state = h.exec.path().join("containers").join(&id);
    let text = std::fs::read_to_string(state.join("shim.pid")).expect("shim.pid");
    let mut words = text.split_whitespace();
    let shim: i32 = words.next().and_then(|p| p.parse().ok()).expect("pid");
    let start = words
        .next()
        .expect("shim.pid has the start time")
        .to_string();
    let init = h.inspect("victim")["State"]["Pid"].as_i64().expect("pid");
    // The shim dies without a word (kill -9), its container too; the kernel then gives
    // the shim's pid to some other process: here a sleep of ours stands in for it.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shim), nix::sys::signal::SIGKILL)
        .expect("kill shim");
    let init = i32::try_from(init).expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(init), nix::sys::signal::SIGKILL)
        .expect("kill init");
    let mut other = Command::new("sleep").arg("1000").spawn().expect("sleep");
    std::fs::write(state.join("shim.pid"), format!("{} {start}\n", other.id())).expect("write");
    let status = h.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.Running}}",
        "victim",
    ]);
    assert_ne!(
        status.trim(),
        "running true",
        "a recycled pid is not our shim"
    );
    let ps = h.ok(&["ps", "-q", "--filter", "name=victim"]);
    assert!(
        ps.trim().is_empty(),
        "ps lists only running containers: {ps}"
    );
    let _ = other.kill();
    let _ = other.wait();
    h.finish(&[&id]);
}

#[test]
fn exec_it_detaches_with_its_detach_keys_and_the_process_runs_on() {
    need_root!();
    let h = Hako::new();
    let id = h.start(&["--name", "host", "busybox", "sleep", "1000"], None);
    for (keys, bytes, file) in [
        (None, &b"\x10\x11"[..], "/tmp/p1"),
        (Some("ctrl-x,y"), &b"\x18y"[..], "/tmp/p2"),
    ] {
        let mut args = vec!["exec", "-it"];
        if let Some(k) = keys {
            args.extend(["--detach-keys", k]);
        }
        args.extend(["host", "sh"]);
        let mut t = Pty::spawn(&h.cmd(&args));
        t.send(format!("echo $$ > {file}; echo ready-$((5*5))\n").as_bytes());
        t.expect("ready-25");
        t.send(bytes);
        let (st, screen) = t.wait();
        assert!(st.success(), "{keys:?}: {screen}");
        // The exec'd shell runs on after the detach.
        let alive = h.run(&[
            "exec",
            "host",
            "sh",
            "-c",
            &format!("kill -0 $(cat {file})"),
        ]);
        assert!(alive.status.success(), "{keys:?}: the exec'd shell is gone");
    }
    let e = h.fails(1, &["exec", "-it", "--detach-keys", "ctrl-", "host", "sh"]);
    assert!(e.contains("detach"), "{e}");
    h.finish(&[&id]);
}

/// True when the ELF file has a program interpreter (needs ld.so and a libc).
fn is_dynamic(path: &std::path::Path) -> bool {
    let o = Command::new("file")
        .arg("-L")
        .arg(path)
        .output()
        .expect("file(1)");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("ELF"), "{out}");
    out.contains("interpreter")
}

#[test]
fn plain_cargo_build_makes_static_init_shim_and_runtime_and_install_sh_installs_a_working_hako() {
    need_root!();
    let build = std::path::Path::new(common::HAKO)
        .parent()
        .expect("build dir")
        .to_path_buf();
    // The binaries cargo built for this test run, with no extra flags.
    for b in ["hako-init", "hako-shim", "hako-runtime"] {
        assert!(!is_dynamic(&build.join(b)), "{b} is dynamically linked");
    }
    assert!(
        is_dynamic(&build.join("hako")),
        "hako stays dynamic (dlopen of libnftables)"
    );
    let stage = tmp("hako-install-");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/install.sh");
    let o = Command::new("bash")
        .arg(script)
        .env("NO_BUILD", "1")
        .env("HAKO_BUILD_DIR", &build)
        .env("PREFIX", "/usr")
        .env("DESTDIR", stage.path())
        .output()
        .expect("install.sh");
    assert!(
        o.status.success(),
        "install.sh: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let usr = stage.path().join("usr");
    for b in ["hako", "hako-runtime", "hako-shim", "hako-init"] {
        assert_eq!(mode(&usr.join("bin").join(b)), 0o755, "{b}");
    }
    // Completions that the shells load.
    let bash = usr.join("share/bash-completion/completions/hako");
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!("source {}; complete -p hako", bash.display()))
        .output()
        .expect("bash");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("hako"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let zsh = std::fs::read_to_string(usr.join("share/zsh/site-functions/_hako")).expect("zsh");
    assert!(
        zsh.starts_with("#compdef hako"),
        "{}",
        &zsh[..40.min(zsh.len())]
    );
    let fish = std::fs::read_to_string(usr.join("share/fish/vendor_completions.d/hako.fish"))
        .expect("fish");
    assert!(fish.contains("complete -c hako"), "fish completion");
    // Man pages: hako(1) and one per command.
    let man = usr.join("share/man/man1");
    for page in [
        "hako.1",
        "hako-run.1",
        "hako-image-ls.1",
        "hako-system-df.1",
    ] {
        let text = std::fs::read_to_string(man.join(page)).expect(page);
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}");
    }
    // The installed hako runs a container with its installed shim, runtime and init.
    let root = tmp("hako-inst-root-");
    let exec = tmp("hki");
    // In a network namespace of its own, as every hako that runs containers in tests.
    let net = hako_test_support::NetSandbox::new().expect("a network namespace for the test");
    let hako = |args: &[&str]| {
        net.command(usr.join("bin/hako"))
            .arg("--root")
            .arg(root.path())
            .arg("--exec-root")
            .arg(exec.path())
            .args(args)
            .env_remove("HAKO_INIT")
            .env_remove("HAKO_SHIM")
            .env_remove("HAKO_RUNTIME")
            .output()
            .expect("installed hako")
    };
    let tar = common::rootfs_tar().to_str().expect("utf-8");
    assert!(hako(&["import", tar, "busybox"]).status.success());
    let o = hako(&["run", "--rm", "--init", "busybox", "cat", "/proc/1/cmdline"]);
    let out = String::from_utf8_lossy(&o.stdout).replace('\0', " ");
    assert!(
        o.status.success() && out.starts_with("/sbin/hako-init"),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let left = hako(&["ps", "-aq"]);
    assert!(left.stdout.is_empty());
}

#[test]
fn ps_shows_the_image_id_once_the_name_means_another_image_and_names_filter_by_regex() {
    need_root!();
    let h = Hako::new();
    let id = h.start(&["--name", "web-1", "busybox", "sleep", "1000"], None);
    let id2 = h.start(&["--name", "db-1", "busybox", "sleep", "1000"], None);
    let image_id = h.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    let image_id = image_id.trim();
    h.ok(&["tag", "busybox", "kept:1"]);
    h.ok(&["rmi", "busybox"]);
    let hex = image_id.trim_start_matches("sha256:");
    let col = h.ok(&["ps", "--filter", "name=web", "--format", "{{.Image}}"]);
    assert_eq!(col.trim(), &hex[..12], "after the untag");
    let col = h.ok(&[
        "ps",
        "--no-trunc",
        "--filter",
        "name=web",
        "--format",
        "{{.Image}}",
    ]);
    assert_eq!(col.trim(), image_id);
    // name= is a regular expression over "/name", as Docker's.
    let names = |f: &str| {
        let mut v: Vec<String> = h
            .ok(&["ps", "--filter", f, "--format", "{{.Names}}"])
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("name=^/web-[0-9]$"), ["web-1"]);
    assert_eq!(names("name=-1$"), ["db-1", "web-1"]);
    assert_eq!(
        names("name=^db"),
        Vec::<String>::new(),
        "the name starts with /"
    );
    let e = h.fails(1, &["ps", "--filter", "name=[unclosed"]);
    assert!(e.contains("name=[unclosed"), "{e}");
    h.finish(&[&id, &id2]);
    h.ok(&["rmi", "kept:1"]);
}

#[test]
fn v_makes_a_missing_host_dir_and_binds_relative_paths() {
    need_root!();
    let h = Hako::new();
    let base = tmp("hako-v-");
    let missing = base.path().join("not/yet/there");
    let spec = format!("{}:/data", missing.display());
    let out = h.ok(&[
        "run",
        "--rm",
        "-v",
        &spec,
        "busybox",
        "sh",
        "-c",
        "echo hi > /data/f; ls /data",
    ]);
    assert_eq!(out, "f\n");
    assert_eq!(mode(&missing), 0o755);
    assert_eq!(
        std::fs::read_to_string(missing.join("f")).expect("f"),
        "hi\n"
    );
    // --mount type=bind keeps refusing a missing source.
    let gone = base.path().join("gone");
    let e = h.fails(
        125,
        &[
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,source={},target=/x", gone.display()),
            "busybox",
            "true",
        ],
    );
    assert!(e.contains("bind source path does not exist"), "{e}");
    assert!(!gone.exists());
    // Relative binds, from the directory hako runs in.
    std::fs::create_dir_all(base.path().join("rel/dir")).expect("mkdir");
    std::fs::write(base.path().join("rel/dir/x"), "rel\n").expect("write");
    for v in ["./rel/dir:/r", "rel/dir:/r", "./rel/../rel/dir:/r:ro"] {
        let o = h
            .cmd(&["run", "--rm", "-v", v, "busybox", "cat", "/r/x"])
            .current_dir(base.path())
            .output()
            .expect("hako");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "rel\n",
            "{v}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = h
        .cmd(&["create", "--name", "relc", "-v", "./rel:/r", "busybox"])
        .current_dir(base.path())
        .output()
        .expect("hako");
    assert!(o.status.success());
    let src = h.ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Source}}{{end}}",
        "relc",
    ]);
    assert_eq!(src.trim(), base.path().join("rel").display().to_string());
    h.finish(&["relc"]);
}

/// Runs `hako ARGS` with at most 1 GB of address space and 30 s, so that a read of
/// `/dev/zero` or a FIFO fails the test instead of the machine.
fn bounded(h: &Hako, args: &[&str]) -> std::process::Output {
    let mut c = h.cmd(args);
    let prog = c.get_program().to_owned();
    let argv: Vec<_> = c.get_args().map(|a| a.to_owned()).collect();
    let mut b = Command::new("timeout");
    b.arg("30")
        .arg("prlimit")
        .arg("--as=1000000000")
        .arg(prog)
        .args(argv);
    c = b;
    c.stdin(std::process::Stdio::null());
    c.output().expect("timeout prlimit hako")
}

#[test]
fn user_lookup_reads_passwd_and_group_inside_the_image_only() {
    need_root!();
    let h = Hako::new();
    // A file on the host that an image's symlink points at.
    let host = tmp("hako-hostonly-");
    std::fs::write(
        host.path().join("passwd"),
        "hostuser:x:4242:4242::/:/bin/sh\n",
    )
    .expect("write");
    let cases = [
        (
            "symlink",
            format!("ln -sf {}/passwd /etc/passwd", host.path().display()),
        ),
        (
            "dotdot",
            format!(
                "ln -sf ../../../../../..{}/passwd /etc/passwd",
                host.path().display()
            ),
        ),
        ("fifo", "rm /etc/group && mkfifo /etc/group".to_string()),
        (
            "chardev",
            "rm /etc/passwd && mknod /etc/passwd c 1 5".to_string(),
        ),
        ("huge", "truncate -s 100M /etc/passwd".to_string()),
    ];
    for (tag, script) in &cases {
        let name = format!("mk-{tag}");
        h.ok(&["run", "--name", &name, "busybox", "sh", "-c", script]);
        h.ok(&["commit", &name, &format!("evil:{tag}")]);
        h.ok(&["rm", &name]);
        let image = format!("evil:{tag}");
        let user = if matches!(*tag, "symlink" | "dotdot") {
            "hostuser"
        } else {
            "nobody"
        };
        let o = bounded(&h, &["run", "--rm", "-u", user, &image, "id", "-u"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_ne!(o.status.code(), Some(124), "{tag}: hako hung");
        assert_eq!(o.status.code(), Some(125), "{tag}: {err}");
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("4242"),
            "{tag}: read the host's file"
        );
        assert_eq!(err.lines().count(), 1, "{tag}: {err}");
        let want = match *tag {
            "symlink" | "dotdot" => "unable to find user hostuser",
            "huge" => "larger than",
            _ => "not a regular file",
        };
        assert!(err.contains(want), "{tag}: {err}");
    }
    // And at exec: a running container whose /etc/passwd became a FIFO.
    let id = h.start(&["--name", "ex", "busybox", "sleep", "1000"], None);
    h.ok(&[
        "exec",
        "ex",
        "sh",
        "-c",
        "rm /etc/passwd && mkfifo /etc/passwd",
    ]);
    let o = bounded(&h, &["exec", "-u", "nobody", "ex", "true"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    h.finish(&[&id]);
    for (tag, _) in &cases {
        h.ok(&["rmi", &format!("evil:{tag}")]);
    }
}

/// The runtime's mount targets are resolved in the rootfs: an image whose `/data` is a
/// symlink to a host directory (absolute, or climbing with `..`), or dangles, gets its
/// mounts inside its own rootfs, and nothing is mounted on or created in the host's.
#[test]
fn mounts_through_the_images_symlinks_land_inside_its_rootfs() {
    need_root!();
    let h = Hako::new();
    let host = tmp("hako-hostonly-");
    std::fs::write(host.path().join("secret"), "host").expect("write");
    let src = tmp("hako-src-");
    std::fs::write(src.path().join("marker"), "bound\n").expect("write");
    let hp = host.path().display().to_string();
    h.ok(&[
        "run",
        "--name",
        "mk",
        "busybox",
        "sh",
        "-c",
        &format!(
            "ln -s {hp} /data && ln -s ../../../../../..{hp}/sub /up && ln -s {hp}/made/log /logsock"
        ),
    ]);
    h.ok(&["commit", "mk", "evil:mounts"]);
    h.ok(&["rm", "mk"]);
    let marker = src.path().join("marker");
    let out = h.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/data", src.path().display()),
        "--tmpfs",
        "/up",
        "-v",
        &format!("{}:/logsock", marker.display()),
        "evil:mounts",
        "sh",
        "-c",
        &format!(
            "cat /data/marker {hp}/marker /logsock {hp}/made/log && grep -q ' {hp}/sub tmpfs ' /proc/mounts && echo tmpfs-in-root"
        ),
    ]);
    assert_eq!(out, "bound\nbound\nbound\nbound\ntmpfs-in-root\n");
    let names: Vec<_> = std::fs::read_dir(host.path())
        .expect("read host dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("secret")]);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(&hp), "{mounts}");
    h.assert_clean(&[]);
    h.ok(&["rmi", "evil:mounts"]);
}

#[test]
fn cp_to_the_host_makes_no_device_nodes_and_drops_setuid_unless_archive() {
    need_root!();
    use std::os::unix::fs::FileTypeExt;
    let h = Hako::new();
    let id = h.start(&["--name", "src", "busybox", "sleep", "1000"], None);
    h.ok(&[
        "exec",
        "src",
        "sh",
        "-c",
        "mkdir /x && cp /bin/busybox /x/su && chmod 6755 /x/su && mknod /x/null c 1 3 && mknod /x/blk b 7 200 && mkfifo /x/fifo && echo f > /x/plain",
    ]);
    let out = tmp("hako-cp-");
    let plain = out.path().join("plain");
    let kept = out.path().join("kept");
    std::fs::create_dir(&plain).expect("mkdir");
    std::fs::create_dir(&kept).expect("mkdir");
    h.ok(&["cp", "src:/x", plain.to_str().expect("utf-8")]);
    let x = plain.join("x");
    assert_eq!(mode(&x.join("su")), 0o755, "set-id bits dropped");
    assert!(!x.join("null").exists() && std::fs::symlink_metadata(x.join("null")).is_err());
    assert!(
        std::fs::symlink_metadata(x.join("blk")).is_err(),
        "no block device on the host"
    );
    assert!(
        std::fs::symlink_metadata(x.join("fifo"))
            .expect("fifo")
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        std::fs::read_to_string(x.join("plain")).expect("plain"),
        "f\n"
    );
    // A single file, too.
    h.ok(&[
        "cp",
        "src:/x/su",
        out.path().join("su1").to_str().expect("utf-8"),
    ]);
    assert_eq!(mode(&out.path().join("su1")), 0o755);
    let e = h.run(&[
        "cp",
        "src:/x/null",
        out.path().join("n1").to_str().expect("utf-8"),
    ]);
    assert!(
        std::fs::symlink_metadata(out.path().join("n1")).is_err(),
        "{e:?}"
    );
    // -a keeps what the container has (Docker's archive mode).
    h.ok(&["cp", "-a", "src:/x", kept.to_str().expect("utf-8")]);
    let k = kept.join("x");
    assert_eq!(mode(&k.join("su")), 0o6755);
    let md = std::fs::symlink_metadata(k.join("null")).expect("null");
    assert!(md.file_type().is_char_device());
    h.finish(&[&id]);
}

/// The one file a `cp ... -` tar holds (`tar -xO`).
fn tar_file(tar: &[u8]) -> String {
    use std::io::Write;
    let mut c = Command::new("tar")
        .args(["-xOf", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("tar");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(tar)
        .expect("write");
    let o = c.wait_with_output().expect("tar");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn cp_from_a_container_returns_what_it_sees_at_mounted_paths() {
    need_root!();
    let h = Hako::new();
    let src = tmp("hako-cpb-");
    std::fs::write(src.path().join("b"), "from the bind\n").expect("write");
    let bind = format!("{}:/data", src.path().display());
    let id = h.start(
        &[
            "--name",
            "seen",
            "-h",
            "myhost",
            "--add-host",
            "db:10.1.2.3",
            "-v",
            &bind,
            "-v",
            "cpvol:/vol",
            "busybox",
            "sh",
            "-c",
            "echo in-vol > /vol/v; touch /ready; sleep 1000",
        ],
        Some("/ready"),
    );
    let cp = |p: &str| {
        let o = h.run(&["cp", &format!("seen:{p}"), "-"]);
        assert!(
            o.status.success(),
            "{p}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        tar_file(&o.stdout)
    };
    for p in [
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/data/b",
        "/vol/v",
    ] {
        let inside = h.ok(&["exec", "seen", "cat", p]);
        assert_eq!(cp(p), inside, "{p}");
    }
    assert_eq!(cp("/etc/hostname"), "myhost\n");
    assert!(cp("/etc/hosts").contains("10.1.2.3\tdb"));
    h.finish(&[&id]);
    let _ = h.run(&["volume", "rm", "cpvol"]);
}

#[test]
fn system_boot_brings_back_always_and_unless_stopped_after_everything_was_killed() {
    need_root!();
    let h = Hako::new();
    let mut ids = Vec::new();
    for (name, policy) in [
        ("always", "always"),
        ("unless", "unless-stopped"),
        ("stopped", "unless-stopped"),
        ("stopped-always", "always"),
        ("never", "no"),
        ("onfail", "on-failure"),
    ] {
        ids.push(h.start(
            &[
                "--name",
                name,
                "--restart",
                policy,
                "busybox",
                "sleep",
                "1000",
            ],
            None,
        ));
    }
    h.ok(&["stop", "-t", "0", "stopped"]);
    h.ok(&["stop", "-t", "0", "stopped-always"]);
    // The crash: every shim and container process of this installation, kill -9.
    for name in ["always", "unless", "never", "onfail"] {
        let id = h.ok(&["inspect", "-f", "{{.Id}}", name]).trim().to_string();
        let init = h.inspect(name)["State"]["Pid"].as_i64().expect("pid");
        let state = h.exec_root().join("containers").join(&id);
        let text = std::fs::read_to_string(state.join("shim.pid")).expect("shim.pid");
        let shim: i32 = text
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("pid");
        for pid in [shim, i32::try_from(init).expect("pid")] {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
    }
    h.wait_for("nothing running", || h.ok(&["ps", "-q"]).trim().is_empty());
    let out = h.ok(&["system", "boot"]);
    assert_eq!(out.lines().count(), 3, "started: {out}");
    let state = |n: &str| {
        h.ok(&["inspect", "-f", "{{.State.Status}}", n])
            .trim()
            .to_string()
    };
    for n in ["always", "unless", "stopped-always"] {
        assert_eq!(state(n), "running", "{n}");
        assert_eq!(h.ok(&["exec", n, "echo", "up"]), "up\n", "{n}");
    }
    for n in ["stopped", "never", "onfail"] {
        assert_ne!(state(n), "running", "{n}");
    }
    // Twice is once.
    assert_eq!(h.ok(&["system", "boot"]), "");
    // A manual start clears the "stopped by hand" mark.
    h.ok(&["start", "stopped"]);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    h.finish(&refs);
}

/// A shim that gets SIGTERM (systemd stopping the unit or session it runs in, as at a
/// shutdown) stops its container with the container's stop signal and ends: no restart,
/// the exit recorded as any other, and no "stopped by hand" mark, so `system boot` (at the
/// next boot) brings an `unless-stopped` container back; one stopped by hand stays down.
#[test]
fn a_shim_told_to_terminate_stops_its_container_and_boot_brings_it_back() {
    need_root!();
    let h = Hako::new();
    let script = "trap 'exit 3' USR1; while :; do sleep 0.1; done";
    let mut ids = Vec::new();
    for name in ["svc", "byhand"] {
        ids.push(h.start(
            &[
                "--name",
                name,
                "--restart",
                "unless-stopped",
                "--stop-signal",
                "SIGUSR1",
                "busybox",
                "sh",
                "-c",
                script,
            ],
            None,
        ));
    }
    h.ok(&["stop", "byhand"]);
    let shim_file = h
        .exec_root()
        .join("containers")
        .join(&ids[0])
        .join("shim.pid");
    let text = std::fs::read_to_string(&shim_file).expect("shim.pid");
    let shim: i32 = text
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shim), nix::sys::signal::SIGTERM)
        .expect("SIGTERM");
    h.wait_for("the shim to end", || !shim_file.exists());
    let state = &h.inspect("svc")["State"];
    assert_eq!(state["Status"], "exited", "{state}");
    assert_eq!(state["ExitCode"], 3, "{state}");
    assert_eq!(h.inspect("svc")["RestartCount"], 0);
    let out = h.ok(&["system", "boot"]);
    assert_eq!(out.trim(), ids[0], "started: {out}");
    assert_eq!(h.ok(&["exec", "svc", "echo", "up"]), "up\n");
    assert_ne!(h.inspect("byhand")["State"]["Status"], "running");
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    h.finish(&refs);
}

#[test]
fn inspect_prints_every_docker_field_with_its_zero_value() {
    need_root!();
    let h = Hako::new();
    h.ok(&["create", "--name", "zero", "busybox"]);
    let out = h.ok(&[
        "inspect",
        "-f",
        "[{{.NetworkSettings.IPAddress}}][{{.HostConfig.MemorySwap}}][{{.Config.User}}][{{.Config.WorkingDir}}][{{.State.Error}}][{{.HostConfig.CpuShares}}][{{.NetworkSettings.MacAddress}}][{{.HostConfig.PidMode}}][{{.Config.Domainname}}]",
        "zero",
    ]);
    assert_eq!(out.trim(), "[][0][][][][0][][][]");
    let v = h.inspect("zero");
    for path in [
        "/HostConfig/OomScoreAdj",
        "/HostConfig/PortBindings",
        "/HostConfig/BlkioWeight",
        "/Config/Labels",
        "/NetworkSettings/Networks",
        "/State/Pid",
        "/GraphDriver/Data",
    ] {
        let f = v.pointer(path).unwrap_or_else(|| panic!("{path} missing"));
        assert!(!f.is_null(), "{path} is null; Docker prints a zero value");
    }
    // Set values are untouched.
    h.ok(&[
        "create", "--name", "set", "-u", "nobody", "-w", "/tmp", "-m", "64m", "busybox",
    ]);
    let out = h.ok(&[
        "inspect",
        "-f",
        "{{.Config.User}} {{.Config.WorkingDir}} {{.HostConfig.Memory}}",
        "set",
    ]);
    assert_eq!(out.trim(), "nobody /tmp 67108864");
    h.finish(&["zero", "set"]);
}

#[test]
fn log_drivers_none_and_local_and_logs_refusing_on_none() {
    need_root!();
    let h = Hako::new();
    let id = h.ok(&[
        "run",
        "-d",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "hi",
    ]);
    let id = id.trim().to_string();
    h.ok(&["wait", "quiet"]);
    let e = h.fails(1, &["logs", "quiet"]);
    assert!(e.contains("does not support reading"), "{e}");
    assert!(
        !h.root
            .path()
            .join("containers")
            .join(&id)
            .join(format!("{id}-json.log"))
            .exists()
    );
    assert_eq!(
        h.ok(&["inspect", "-f", "[{{.LogPath}}]", "quiet"]).trim(),
        "[]"
    );
    let e = h.fails(
        125,
        &[
            "run",
            "--rm",
            "--log-driver",
            "none",
            "--log-opt",
            "max-size=1m",
            "busybox",
            "true",
        ],
    );
    assert!(e.contains("unknown log opt"), "{e}");
    // Refused at create, as dockerd refuses it: nothing was made.
    let before = h.ok(&["ps", "-aq"]);
    let e = h.fails(125, &["run", "--log-opt", "bogus=1", "busybox", "true"]);
    assert!(
        e.contains("unknown log opt 'bogus' for json-file log driver"),
        "{e}"
    );
    assert_eq!(h.ok(&["ps", "-aq"]), before);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "loc",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=1m",
        "busybox",
        "echo",
        "kept",
    ]);
    h.ok(&["wait", "loc"]);
    assert_eq!(h.ok(&["logs", "loc"]), "kept\n");
    let e = h.fails(
        125,
        &["run", "--rm", "--log-driver", "syslog", "busybox", "true"],
    );
    assert!(e.contains("json-file, local or none"), "{e}");
    h.finish(&["quiet", "loc"]);
}

#[test]
fn label_file_platform_and_gpus_like_docker() {
    need_root!();
    let h = Hako::new();
    let dir = tmp("hako-lf-");
    let lf = dir.path().join("labels");
    std::fs::write(&lf, "# comment\napp=web\n\ntier=front\n").expect("write");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let platform = format!("linux/{arch}");
    h.ok(&[
        "create",
        "--name",
        "lab",
        "--label-file",
        lf.to_str().expect("utf-8"),
        "-l",
        "tier=back",
        "--platform",
        &platform,
        "busybox",
    ]);
    let labels = h.ok(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"app\"}} {{index .Config.Labels \"tier\"}}",
        "lab",
    ]);
    assert_eq!(
        labels.trim(),
        "web back",
        "-l wins over the file, as Docker"
    );
    let e = h.fails(
        125,
        &[
            "run",
            "--rm",
            "--platform",
            "linux/s390x",
            "busybox",
            "true",
        ],
    );
    assert!(e.contains("this machine's platform"), "{e}");
    let e = h.fails(125, &["run", "--rm", "--gpus", "all", "busybox", "true"]);
    assert!(e.contains("no GPU support"), "{e}");
    let e = h.fails(
        125,
        &[
            "run",
            "--rm",
            "--label-file",
            "/nonexistent-labels",
            "busybox",
            "true",
        ],
    );
    assert!(e.contains("/nonexistent-labels"), "{e}");
    h.finish(&["lab"]);
}

#[test]
fn pid_ipc_uts_cgroupns_host_share_the_hosts_namespaces() {
    need_root!();
    let h = Hako::new();
    for (flag, ns) in [
        ("--pid", "pid"),
        ("--ipc", "ipc"),
        ("--uts", "uts"),
        ("--cgroupns", "cgroup"),
    ] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).expect("ns");
        let shared = h.ok(&[
            "run",
            "--rm",
            flag,
            "host",
            "busybox",
            "readlink",
            &format!("/proc/self/ns/{ns}"),
        ]);
        assert_eq!(shared.trim(), host.display().to_string(), "{flag} host");
        let own = h.ok(&[
            "run",
            "--rm",
            "busybox",
            "readlink",
            &format!("/proc/self/ns/{ns}"),
        ]);
        assert_ne!(
            own.trim(),
            host.display().to_string(),
            "{ns} of its own by default"
        );
    }
    let e = h.fails(
        125,
        &["run", "--rm", "--uts", "host", "-h", "x", "busybox", "true"],
    );
    assert!(
        e.contains("conflicting options: hostname and the UTS mode"),
        "{e}"
    );
    let e = h.fails(
        125,
        &["run", "--rm", "--pid", "container:x", "busybox", "true"],
    );
    assert!(e.contains("No such container: x"), "{e}");
    let e = h.fails(
        125,
        &["run", "--rm", "--userns", "remap", "busybox", "true"],
    );
    assert!(e.contains("--userns remap"), "{e}");
    h.assert_clean(&[]);
}

/// The primary group is one of the process's supplementary groups too, in `run` and in
/// `exec`, as Docker sets it since CVE-2022-36109 (without it, a process could drop the
/// group with setgroups and pass a file's "group may not" permissions).
#[test]
fn the_primary_group_is_also_a_supplementary_group() {
    need_root!();
    let h = Hako::new();
    let groups = |args: &[&str]| -> Vec<String> {
        let out = h.ok(args);
        let line = out
            .lines()
            .find_map(|l| l.strip_prefix("Groups:"))
            .unwrap_or_else(|| panic!("no Groups: line in {out}"))
            .to_string();
        line.split_whitespace().map(str::to_string).collect()
    };
    let status = ["cat", "/proc/self/status"];
    for (user, gid) in [("nobody", "65534"), ("nobody:1234", "1234"), ("0", "0")] {
        let mut args = vec!["run", "--rm", "-u", user, "busybox"];
        args.extend(status);
        let g = groups(&args);
        assert!(g.iter().any(|x| x == gid), "-u {user}: Groups {g:?}");
    }
    let id = h.start(&["busybox", "sleep", "1000"], None);
    let mut args = vec!["exec", "-u", "nobody", id.as_str()];
    args.extend(status);
    let g = groups(&args);
    assert!(
        g.iter().any(|x| x == "65534"),
        "exec -u nobody: Groups {g:?}"
    );
    h.finish(&[&id]);
}

#[test]
fn group_add_joins_groups_by_number_and_by_the_images_names() {
    need_root!();
    let h = Hako::new();
    let out = h.ok(&[
        "run",
        "--rm",
        "-u",
        "nobody",
        "--group-add",
        "1234",
        "--group-add",
        "user",
        "busybox",
        "id",
        "-G",
    ]);
    let mut gids: Vec<&str> = out.split_whitespace().collect();
    gids.sort_unstable();
    assert_eq!(gids, ["1000", "1234", "65534"], "{out}");
    let e = h.fails(
        125,
        &["run", "--rm", "--group-add", "nosuch", "busybox", "true"],
    );
    assert!(e.contains("Unable to find group nosuch"), "{e}");
    h.assert_clean(&[]);
}

/// A tar entry: (type, link target, device numbers, pax keys).
type TarEntry = (tar::EntryType, String, (u32, u32), Vec<String>);

/// Entries of a tar stream by name.
fn tar_entries(bytes: &[u8]) -> std::collections::HashMap<String, TarEntry> {
    let mut ar = tar::Archive::new(bytes);
    let mut out = std::collections::HashMap::new();
    for e in ar.entries().expect("tar") {
        let mut e = e.expect("entry");
        let h = e.header().clone();
        let mut keys = Vec::new();
        if let Some(exts) = e.pax_extensions().expect("pax") {
            for x in exts {
                keys.push(x.expect("pax").key().expect("key").to_string());
            }
        }
        let link = e
            .link_name()
            .expect("link")
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        let dev = (
            h.device_major().ok().flatten().unwrap_or(0),
            h.device_minor().ok().flatten().unwrap_or(0),
        );
        let name = e.path().expect("path").display().to_string();
        out.insert(
            name.trim_start_matches("./").to_string(),
            (h.entry_type(), link, dev, keys),
        );
    }
    out
}

/// `export` and `cp CONTAINER:PATH -` go through the one tar writer: a device keeps its
/// numbers (a 0/0 character device is a whiteout), hard links are written once, symlinks
/// are not followed, xattrs are kept.
#[test]
fn export_and_cp_keep_devices_links_symlinks_and_xattrs() {
    need_root!();
    let h = Hako::new();
    let id = h.start(&["--name", "tw", "busybox", "sleep", "1000"], None);
    h.ok(&[
        "exec",
        "tw",
        "sh",
        "-c",
        "mkdir /x && mknod /x/null c 1 3 && echo d > /x/f && ln /x/f /x/g && ln -s /etc /x/etc",
    ]);
    let merged = h.inspect("tw")["GraphDriver"]["Data"]["MergedDir"]
        .as_str()
        .expect("MergedDir")
        .to_string();
    xattr_set(&format!("{merged}/x/f"));
    let export = h.cmd(&["export", "tw"]).output().expect("export");
    assert!(export.status.success());
    let cp = h.cmd(&["cp", "tw:/x", "-"]).output().expect("cp");
    assert!(cp.status.success());
    for (what, bytes, prefix) in [("export", &export.stdout, "x/"), ("cp", &cp.stdout, "x/")] {
        let t = tar_entries(bytes);
        let get = |n: &str| {
            t.get(&format!("{prefix}{n}"))
                .unwrap_or_else(|| panic!("{what}: no {n} in {:?}", t.keys()))
        };
        assert_eq!(get("null").0, tar::EntryType::Char, "{what}");
        assert_eq!(get("null").2, (1, 3), "{what}: device numbers");
        let (f, g) = (get("f"), get("g"));
        assert!(
            (f.0 == tar::EntryType::Link) != (g.0 == tar::EntryType::Link),
            "{what}: one of the two names is a link to the other"
        );
        assert_eq!(get("etc").0, tar::EntryType::Symlink, "{what}");
        assert_eq!(get("etc").1, "/etc", "{what}");
        let keys = if f.0 == tar::EntryType::Link {
            &g.3
        } else {
            &f.3
        };
        assert!(
            keys.iter().any(|k| k == "SCHILY.xattr.user.hako"),
            "{what}: {keys:?}"
        );
    }
    h.finish(&[&id]);
}

fn xattr_set(path: &str) {
    xattr::set(path, "user.hako", b"1").expect("set user.hako");
}

/// Docker unmounts a container's rootfs when it stops: `stop`, an exit on its own, and
/// `cp`/`export`/`diff`/`commit` of a stopped container leave it unmounted; `start`
/// mounts it again.
#[test]
fn a_stopped_containers_rootfs_is_unmounted_and_mounted_only_for_operations() {
    need_root!();
    let h = Hako::new();
    let id = h.start(
        &[
            "--name",
            "um",
            "busybox",
            "sh",
            "-c",
            "echo hi > /f; sleep 1000",
        ],
        Some("/f"),
    );
    let merged_of = |c: &str| {
        h.inspect(c)["GraphDriver"]["Data"]["MergedDir"]
            .as_str()
            .expect("MergedDir")
            .to_string()
    };
    let merged = merged_of("um");
    assert!(mounted(&merged), "a running container's rootfs is mounted");
    h.ok(&["stop", "-t", "1", "um"]);
    assert!(!mounted(&merged), "stop unmounts the rootfs");
    let out = h.cmd(&["cp", "um:/f", "-"]).output().expect("cp");
    assert!(out.status.success());
    assert!(tar_entries(&out.stdout).contains_key("f"));
    let host = tmp("hako-um-");
    std::fs::write(host.path().join("g"), "in\n").expect("write");
    h.ok(&[
        "cp",
        host.path().join("g").to_str().expect("utf-8"),
        "um:/g",
    ]);
    let export = h.cmd(&["export", "um"]).output().expect("export");
    assert!(export.status.success());
    let t = tar_entries(&export.stdout);
    assert!(t.contains_key("f") && t.contains_key("g"), "{:?}", t.keys());
    let diff = h.ok(&["diff", "um"]);
    assert!(diff.lines().any(|l| l == "A /g"), "{diff}");
    h.ok(&["commit", "um", "um:img"]);
    assert!(!mounted(&merged), "cp/export/diff/commit left it mounted");
    h.ok(&["start", "um"]);
    assert_eq!(h.ok(&["exec", "um", "cat", "/g"]), "in\n");
    assert!(mounted(&merged), "start mounts it again");
    // A container that exits on its own: its shim's exit command unmounts it.
    h.ok(&["run", "--name", "ex", "busybox", "true"]);
    let merged2 = merged_of("ex");
    h.wait_for("the exit command's unmount", || !mounted(&merged2));
    h.finish(&[&id, "ex"]);
    h.ok(&["rmi", "um:img"]);
}

/// `--device` makes the host's node in the container with the cgroup permissions asked
/// for; `--device-cgroup-rule` allows a node the container makes itself.
#[test]
fn device_and_device_cgroup_rule_reach_the_container() {
    need_root!();
    let h = Hako::new();
    let out = h.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/null:/dev/mynull",
        "busybox",
        "sh",
        "-c",
        "stat -c '%F %t:%T' /dev/mynull && echo x > /dev/mynull && echo written",
    ]);
    assert_eq!(out, "character special file 1:3\nwritten\n");
    // c 1:2 has no driver: allowed, its open says ENXIO; refused, EPERM.
    let script = "mknod /tmp/k c 1 2 && cat /tmp/k";
    let o = h.run(&["run", "--rm", "busybox", "sh", "-c", script]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Operation not permitted"), "{err}");
    let o = h.run(&[
        "run",
        "--rm",
        "--device-cgroup-rule",
        "c 1:2 rwm",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("No such device"), "{err}");
    let e = h.fails(
        125,
        &["run", "--rm", "--device", "/nonexistent", "busybox", "true"],
    );
    assert!(e.contains("/nonexistent"), "{e}");
    let e = h.fails(
        125,
        &[
            "run",
            "--rm",
            "--device-cgroup-rule",
            "c 1",
            "busybox",
            "true",
        ],
    );
    assert!(e.contains("invalid device cgroup rule"), "{e}");
    h.assert_clean(&[]);
}

/// `diff` of a fresh container lists nothing (Docker keeps /etc/hosts and the other mount
/// points in an init layer: hako listed `C /etc`), and what the container changes is
/// listed; `commit` records the container's command as the history's CREATED BY.
#[test]
fn diff_of_a_fresh_container_is_empty_and_commit_records_the_command() {
    need_root!();
    let h = Hako::new();
    let id = h.start(
        &["busybox", "sh", "-c", "touch /ready; sleep 1000"],
        Some("/ready"),
    );
    assert_eq!(h.ok(&["diff", &id]), "A /ready\n");
    h.ok(&["exec", &id, "sh", "-c", "echo x > /etc/app.conf"]);
    assert_eq!(h.ok(&["diff", &id]), "C /etc\nA /etc/app.conf\nA /ready\n");
    h.ok(&["commit", "-m", "msg", &id, "committed:1"]);
    let history = h.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "committed:1",
    ]);
    assert_eq!(
        history.lines().next(),
        Some("sh -c touch /ready; sleep 1000|msg"),
        "{history}"
    );
    // The process's defaults (PATH for an image without one, TERM with a tty) are not the
    // container's Config.Env, nor baked into a commit, as with Docker.
    let t = h.ok(&["create", "-t", "-e", "A=1", "busybox", "sh"]);
    assert_eq!(
        h.ok(&["inspect", "-f", "{{json .Config.Env}}", t.trim()]),
        "[\"A=1\"]\n"
    );
    let env = h.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Env}}",
        "committed:1",
    ]);
    assert!(!env.contains("PATH="), "{env}");
    h.finish(&[&id, t.trim()]);
}

/// `--format` as the docker CLI runs it: `{{.Label "key"}}` of ps, volume ls and network
/// ls rows (a method with an argument), `{{.Size}}` in a ps format computes the sizes,
/// Go's builtins and variables in the list commands too.
#[test]
fn list_formats_have_dockers_label_method_and_sizes() {
    need_root!();
    let h = Hako::new();
    let id = h.start(&["-l", "k1=v1", "busybox", "sleep", "1000"], None);
    let ps = h.ok(&[
        "ps",
        "--format",
        r#"{{.Label "k1"}}|{{.Label "none"}}|{{.Size}}|{{if eq .State "running"}}up{{end}}"#,
    ]);
    assert!(ps.starts_with("v1||0B (virtual "), "{ps}");
    assert!(ps.ends_with(")|up\n"), "{ps}");
    h.ok(&["volume", "create", "--label", "a=b", "lv"]);
    assert_eq!(
        h.ok(&["volume", "ls", "--format", r#"{{.Label "a"}}|{{.Name}}"#]),
        "b|lv\n"
    );
    h.ok(&["network", "create", "--label", "x=y", "nl"]);
    assert_eq!(
        h.ok(&[
            "network",
            "ls",
            "--filter",
            "name=nl",
            "--format",
            r#"{{.Label "x"}}|{{.Name}}"#
        ]),
        "y|nl\n"
    );
    h.ok(&["network", "rm", "nl"]);
    h.ok(&["volume", "rm", "lv"]);
    h.finish(&[&id]);
}

/// json-file's `labels`, `labels-regex`, `env`, `env-regex` and `tag` log options: every
/// entry carries them as `attrs` (Docker's json-file format) and `logs --details` prints
/// them first, escaped as Docker escapes them; `local` refuses them, a bad regex is one
/// line, and neither leaves a container.
#[test]
fn log_attrs_from_labels_env_and_tag_show_in_logs_details() {
    need_root!();
    let h = Hako::new();
    h.ok(&[
        "run",
        "--name",
        "la",
        "-l",
        "x=1",
        "-l",
        "app.tier=web",
        "-e",
        "E1=v",
        "-e",
        "OTHER=no",
        "--log-opt",
        "labels=x,nope",
        "--log-opt",
        "labels-regex=^app\\.",
        "--log-opt",
        "env=E1",
        "--log-opt",
        "tag={{.Name}}/{{.ImageName}}",
        "busybox",
        "echo",
        "hi",
    ]);
    assert_eq!(
        h.ok(&["logs", "--details", "la"]),
        "E1=v,app.tier=web,tag=la%2Fbusybox,x=1 hi\n"
    );
    assert_eq!(h.ok(&["logs", "la"]), "hi\n");
    let path = h.inspect("la")["LogPath"]
        .as_str()
        .expect("LogPath")
        .to_string();
    let line = std::fs::read_to_string(&path).expect("log file");
    assert!(
        line.contains(r#""stream":"stdout","attrs":{"E1":"v","app.tier":"web","tag":"la/busybox","x":"1"},"time":"#),
        "{line}"
    );
    let before = h.ok(&["ps", "-aq"]);
    let e = h.fails(
        125,
        &["run", "--log-opt", "labels-regex=[", "busybox", "true"],
    );
    assert!(e.contains("invalid labels-regex"), "{e}");
    let e = h.fails(
        125,
        &[
            "run",
            "--log-driver",
            "local",
            "--log-opt",
            "labels=x",
            "busybox",
            "true",
        ],
    );
    assert!(
        e.contains("unknown log opt 'labels' for log driver local"),
        "{e}"
    );
    assert_eq!(h.ok(&["ps", "-aq"]), before);
    h.finish(&["la"]);
}
