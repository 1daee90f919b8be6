//! `POST /build` driven by the stock docker CLI's classic builder (`DOCKER_BUILDKIT=0
//! docker build`) against `hako serve`: the image it builds and tags is one `hako run`
//! runs; a failing RUN gives the docker CLI's message and exit code and leaves nothing.

mod build_common;
mod common;

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use build_common::{Ctx, assert_build_clean, marker_processes};
use common::Hako;
use common::serve::{Server, have_docker};

/// `DOCKER_BUILDKIT=0 docker ARGS` against the server (a build may take a while).
fn docker(s: &Server<'_>, args: &[&str]) -> Output {
    s.run_with(args, &[("DOCKER_BUILDKIT", "0")], Duration::from_secs(120))
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_docker_clis_classic_build_through_hako_serve() {
    need_root!();
    if !have_docker() {
        return;
    }
    let h = Hako::new();
    let s = Server::start(&h);
    let ctx = Ctx::new(concat!(
        "FROM busybox\n",
        "ARG WHO=nobody\n",
        "WORKDIR /app\n",
        "COPY greeting.txt ./\n",
        "RUN echo \"built for $WHO\" && echo \"$(cat greeting.txt), $WHO\" > out.txt\n",
        "LABEL stage=final\n",
        "CMD [\"cat\", \"/app/out.txt\"]\n",
    ));
    ctx.file("greeting.txt", "hello");
    let args = [
        "build",
        "-t",
        "app:1",
        "-t",
        "app:latest",
        "--build-arg",
        "WHO=docker",
        "--label",
        "via=api",
        ctx.dir(),
    ];
    let o = docker(&s, &args);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    for want in [
        "Step 1/7 : FROM busybox",
        "Step 5/7 : RUN echo \"built for $WHO\"",
        " ---> Running in ",
        "built for docker",
        "Successfully built ",
        "Successfully tagged app:1",
        "Successfully tagged app:latest",
    ] {
        assert!(stdout.contains(want), "no {want:?} in\n{out}");
    }
    // The image is an ordinary hako image: hako runs it, tags and labels are there.
    assert_eq!(
        h.ok(&["run", "--rm", "--network", "none", "app:1"]),
        "hello, docker\n"
    );
    let labels = h.ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        "app:latest",
    ]);
    assert!(
        labels.contains("\"via\":\"api\"") && labels.contains("\"stage\":\"final\""),
        "{labels}"
    );
    let ls = h.ok(&["run", "--rm", "--network", "none", "app:1", "ls", "/app"]);
    assert_eq!(ls, "greeting.txt\nout.txt\n");

    // The same build again: every filesystem step from the cache (config-only steps run
    // nothing and have no cache entry to show), nothing run, the same image id.
    let id = h.ok(&["image", "inspect", "--format", "{{.Id}}", "app:1"]);
    let o = docker(&s, &args);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .matches(" ---> Using cache")
            .count(),
        3,
        "{out}"
    );
    assert!(
        !out.contains("built for docker") && !out.contains("Running in"),
        "{out}"
    );
    assert_eq!(
        h.ok(&["image", "inspect", "--format", "{{.Id}}", "app:1"]),
        id
    );
    // -q: only the id on stdout.
    let o = docker(
        &s,
        &[
            "build",
            "-q",
            "--build-arg",
            "WHO=docker",
            "--label",
            "via=api",
            ctx.dir(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), id);

    // A failing RUN: the docker CLI's message, the RUN's exit code, its output shown, no
    // image and no build leftovers.
    let bad = Ctx::new("FROM busybox\nRUN echo before-the-failure && exit 7\nLABEL never=1\n");
    let o = docker(&s, &["build", "-t", "broken:1", bad.dir()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(7), "{out}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(
            "The command '/bin/sh -c echo before-the-failure && exit 7' returned a non-zero code: 7"
        ),
        "{out}"
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("before-the-failure"),
        "{out}"
    );
    let o = h.run(&["image", "inspect", "broken:1"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("No such image"),
        "{}",
        text(&o)
    );

    // A Dockerfile error before any step: an HTTP error, the CLI's exit 1 with the line.
    let syntax = Ctx::new("FROM busybox\nFROBNICATE x\n");
    let o = docker(&s, &["build", syntax.dir()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("unknown instruction: FROBNICATE"), "{out}");

    drop(s);
    assert_build_clean(&h);
}

/// docker-py's `images.build` (the logs it hands back, a BuildError for a failing RUN).
const DOCKER_PY_BUILD: &str = r#"
import sys, docker
c = docker.from_env()
img, logs = c.images.build(path=sys.argv[1], tag="py:1", buildargs={"WHO": "py"})
out = "".join(l.get("stream", "") for l in logs)
assert "Successfully built" in out, out
print(img.id)
try:
    c.images.build(path=sys.argv[2], tag="py:bad")
    sys.exit("a failing RUN built")
except docker.errors.BuildError as e:
    print("BuildError:", e.msg)
"#;

#[test]
fn docker_py_and_compose_build_and_a_client_gone_cancels() {
    need_root!();
    if !have_docker() {
        return;
    }
    let python = hako_test_support::fixtures_dir().join("docker-py/bin/python");
    let compose = PathBuf::from("/usr/bin/docker-compose");
    for (p, what) in [
        (&python, "docker-py 7.x (scripts/lib.sh ensure_docker_py)"),
        (&compose, "docker-compose (Debian)"),
    ] {
        if !p.exists() {
            assert!(!hako_test_support::in_ci(), "{what} is needed");
            eprintln!("SKIP: no {what}");
            return;
        }
    }
    let h = Hako::new();
    let s = Server::start(&h);
    let ctx = Ctx::new(concat!(
        "FROM busybox\n",
        "ARG WHO=nobody\n",
        "RUN echo \"hello, $WHO\" > /out\n",
        "CMD [\"cat\", \"/out\"]\n",
    ));
    let bad = Ctx::new("FROM busybox\nRUN echo py-failing && exit 4\n");
    let script = ctx.path().join("..").join(format!(
        "{}-build.py",
        ctx.path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("t")
    ));
    std::fs::write(&script, DOCKER_PY_BUILD).expect("script");
    let o = s
        .client(python.to_str().expect("utf-8"))
        .arg(&script)
        .args([ctx.dir(), bad.dir()])
        .output()
        .expect("docker-py");
    let _ = std::fs::remove_file(&script);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let id = h.ok(&["image", "inspect", "--format", "{{.Id}}", "py:1"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with(id.trim()), "{out}");
    assert!(
        stdout.contains("BuildError: The command '/bin/sh -c echo py-failing && exit 4' returned a non-zero code: 4"),
        "{out}"
    );
    assert_eq!(
        h.ok(&["run", "--rm", "--network", "none", "py:1"]),
        "hello, py\n"
    );

    // compose's `build:` (docker-compose 1.29 through docker-py 5).
    ctx.file(
        "docker-compose.yml",
        "version: \"3\"\nservices:\n  app:\n    image: composed:1\n    build:\n      context: .\n      args:\n        WHO: compose\n",
    );
    let o = s
        .client(compose.to_str().expect("utf-8"))
        .args(["-p", "hkb", "build"])
        .current_dir(ctx.path())
        .output()
        .expect("docker-compose");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        h.ok(&["run", "--rm", "--network", "none", "composed:1"]),
        "hello, compose\n"
    );

    // The client goes away mid-RUN: the build stops, its RUN is killed, nothing is left.
    // The inner shell keeps "sleep 419" in its command line while it waits (a last
    // command alone would be exec'd as `sleep` `419`).
    let slow = Ctx::new("FROM busybox\nRUN echo running-marker && sh -c 'sleep 419; true'\n");
    let mut child = s
        .docker(&["build", "-t", "gone:1", slow.dir()])
        .env("DOCKER_BUILDKIT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker build");
    let mut r = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut l = String::new();
        let n = std::io::BufRead::read_line(&mut r, &mut l).unwrap_or(0);
        assert!(n > 0 && Instant::now() < deadline, "no RUN output");
        // The RUN's own output (not the `Step 2/2 : RUN echo running-marker` line).
        if l.trim() == "running-marker" {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while marker_processes("sleep 419") == 0 {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the RUN's sleep never started");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill the docker CLI");
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(30);
    while marker_processes("sleep 419") > 0 {
        assert!(
            Instant::now() < deadline,
            "the RUN outlived its client by 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The server finishes the cancelled build's cleanup before it answers again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(h.root.path().join("build/active"))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "the cancelled build never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!h.run(&["image", "inspect", "gone:1"]).status.success());
    drop(s);
    assert_build_clean(&h);
}
