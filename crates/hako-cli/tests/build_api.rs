//! `POST /build` driven by the stock docker CLI's classic builder (`DOCKER_BUILDKIT=0
//! docker build`) against `hako serve`: the image it builds and tags is one `hako run`
//! runs; a failing RUN gives the docker CLI's message and exit code and leaves nothing.

mod build_common;
mod common;

use std::process::Output;
use std::time::Duration;

use build_common::{Ctx, assert_build_clean};
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
