//! `hako build` end to end, as root: real Dockerfiles built with the real runtime, the
//! results run and checked from inside; the cache changed one input at a time; bad input
//! failing with one clear message and leaving nothing behind.

mod build_common;
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use build_common::{Ctx, assert_build_clean, marker_processes};
use common::Hako;

fn build(h: &Hako, ctx: &Ctx, extra: &[&str]) -> Output {
    let mut args = vec!["build", "--progress=plain"];
    args.extend_from_slice(extra);
    args.push(ctx.dir());
    h.run(&args)
}

/// Builds, asserts success, returns stderr (the progress).
fn build_ok(h: &Hako, ctx: &Ctx, extra: &[&str]) -> String {
    let o = build(h, ctx, extra);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "build failed ({:?}):\n{err}", o.status);
    err
}

/// Builds, asserts exit 1, returns stderr.
fn build_fails(h: &Hako, ctx: &Ctx, extra: &[&str]) -> String {
    let o = build(h, ctx, extra);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected the build to fail:\n{err}"
    );
    err
}

/// The vertices of plain output that ran (`#N [..] NAME` then `#N DONE`), and the cached
/// ones, by their `[i/n] TEXT` name.
fn steps(out: &str) -> (Vec<String>, Vec<String>) {
    let mut names = std::collections::BTreeMap::new();
    let mut ran = Vec::new();
    let mut cached = Vec::new();
    for l in out.lines() {
        let Some(rest) = l.strip_prefix('#') else {
            continue;
        };
        let Some((id, text)) = rest.split_once(' ') else {
            continue;
        };
        if text.starts_with('[') && !text.starts_with("[internal]") {
            names.insert(id.to_string(), text.to_string());
        } else if text == "CACHED" {
            if let Some(n) = names.get(id) {
                cached.push(n.clone());
            }
        } else if text.starts_with("DONE")
            && let Some(n) = names.get(id)
            && !n.contains(" FROM ")
            && !ran.contains(n)
        {
            ran.push(n.clone());
        }
    }
    (ran, cached)
}

/// The USAGE column of `system df -v`'s build cache table, one number per entry.
fn cache_usage(df: &str) -> Vec<u64> {
    df.split("CACHE ID")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            t.len().checked_sub(2).and_then(|i| t[i].parse().ok())
        })
        .collect()
}

fn run_out(h: &Hako, args: &[&str]) -> String {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(args);
    h.ok(&a)
}

#[test]
fn builds_run_and_look_like_dockers() {
    need_root!();
    let h = Hako::new();
    let ctx = Ctx::new(concat!(
        "# syntax=docker/dockerfile:1\n",
        "FROM busybox\n",
        "ARG VERSION=1.0\n",
        "ENV APP=/app \\\n",
        "    GREETING=\"hello world\"\n",
        "WORKDIR $APP\n",
        "COPY --chown=user:user --chmod=0640 conf.txt ./conf/\n",
        "COPY dir/ ./dir/\n",
        "RUN echo \"$GREETING $VERSION\" > out.txt \\\n",
        "  # a comment inside the continuation\n",
        "  && mkdir -p /data\n",
        "USER user\n",
        "EXPOSE 8080/tcp 53/udp\n",
        "VOLUME /data\n",
        "LABEL org.example.version=$VERSION\n",
        "STOPSIGNAL SIGTERM\n",
        "HEALTHCHECK --interval=5s CMD true\n",
        "ENTRYPOINT [\"/bin/sh\", \"-c\"]\n",
        "CMD [\"cat $APP/out.txt\"]\n",
    ));
    ctx.file("conf.txt", "conf\n")
        .file("dir/a", "A")
        .file("dir/sub/b", "B");
    let out = build_ok(
        &h,
        &ctx,
        &["-t", "app:1", "-t", "app:latest", "--label", "extra=yes"],
    );
    assert!(
        out.contains("#3 [1/5] FROM docker.io/library/busybox:latest"),
        "{out}"
    );
    assert!(
        out.contains("naming to docker.io/library/app:1 done"),
        "{out}"
    );
    assert_eq!(run_out(&h, &["app:1"]), "hello world 1.0\n");
    assert_eq!(
        run_out(
            &h,
            &[
                "--entrypoint",
                "stat",
                "app:latest",
                "-c",
                "%U:%G %a",
                "/app/conf/conf.txt"
            ]
        ),
        "user:user 640\n"
    );
    assert_eq!(
        run_out(&h, &["--entrypoint", "cat", "app:1", "/app/dir/sub/b"]),
        "B"
    );
    assert_eq!(
        run_out(&h, &["--entrypoint", "id", "app:1", "-un"]),
        "user\n"
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&h.ok(&["image", "inspect", "-f", "{{json .Config}}", "app:1"]))
            .expect("json");
    assert_eq!(cfg["WorkingDir"], "/app");
    assert_eq!(cfg["User"], "user");
    assert_eq!(cfg["Env"][1], "APP=/app");
    assert_eq!(cfg["Env"][2], "GREETING=hello world");
    assert_eq!(cfg["Labels"]["org.example.version"], "1.0");
    assert_eq!(cfg["Labels"]["extra"], "yes");
    assert!(cfg["ExposedPorts"]["53/udp"].is_object());
    assert!(cfg["Volumes"]["/data"].is_object());
    assert_eq!(cfg["StopSignal"], "SIGTERM");
    assert_eq!(cfg["Healthcheck"]["Test"][0], "CMD-SHELL");
    let history = h.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "app:1",
    ]);
    assert!(
        history.contains("RUN |1 VERSION=1.0 /bin/sh -c echo"),
        "{history}"
    );
    assert!(
        history.contains("COPY --chown=user:user --chmod=0640 conf.txt ./conf/ # buildkit"),
        "{history}"
    );
    assert!(history.contains("WORKDIR /app"), "{history}");
    // A fully cached rebuild does no container work and gives the same image.
    let id1 = h.ok(&["image", "inspect", "-f", "{{.Id}}", "app:1"]);
    let started = Instant::now();
    let again = build_ok(&h, &ctx, &["-t", "app:2", "--label", "extra=yes"]);
    let (ran, cached) = steps(&again);
    assert!(ran.is_empty(), "a cached rebuild ran {ran:?}:\n{again}");
    assert_eq!(cached.len(), 4, "{again}");
    assert_eq!(h.ok(&["image", "inspect", "-f", "{{.Id}}", "app:2"]), id1);
    eprintln!("cached rebuild: {:?}", started.elapsed());
    assert_build_clean(&h);
}

#[test]
fn cache_reruns_exactly_what_changed() {
    need_root!();
    let h = Hako::new();
    let ctx = Ctx::new(concat!(
        "FROM busybox\n",
        "LABEL stage=one\n",
        "RUN echo base > /base\n",
        "ARG FLAVOR=plain\n",
        "COPY a.txt /a.txt\n",
        "RUN echo \"$FLAVOR\" > /flavor\n",
        "COPY b.txt /b.txt\n",
        "RUN cat /a.txt /b.txt /flavor > /all\n",
    ));
    ctx.file("a.txt", "a1\n")
        .file("b.txt", "b1\n")
        .file("ignored.log", "x");
    ctx.file(".dockerignore", "*.log\n");
    build_ok(&h, &ctx, &["-t", "c:1"]);
    let rerun = |extra: &[&str]| steps(&build_ok(&h, &ctx, extra)).0;
    // Nothing changed: nothing runs, and nothing is written to the database (no
    // transaction, so no checkpoint when the connections close); the hits are counted
    // all the same (`system df -v`'s USAGE), once each, also after a prune folds them in.
    let usage = || cache_usage(&h.ok(&["system", "df", "-v"]));
    let before = usage();
    assert!(
        !before.is_empty() && before.iter().all(|u| *u == 1),
        "{before:?}"
    );
    let db = h.root.path().join("hako-image.db");
    let wal = h.root.path().join("hako-image.db-wal");
    // Where connections close with a checkpoint the last one empties the -wal (else every
    // later command, whatever it does, checkpoints its frames into the database again);
    // where they keep it, an open checkpoints a -wal grown past CHECKPOINT_AT (`hako
    // images` settles it, so the comparisons below see only what the commands themselves
    // write). And the build collected what its steps left (no flight marker for the next
    // command to clean up after).
    let wal_len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    match hako_sys::sqlite::close_mode(&db) {
        hako_sys::sqlite::CloseMode::Checkpoint => {
            assert_eq!(wal_len(), 0, "the -wal is not emptied at the last close");
        }
        hako_sys::sqlite::CloseMode::Keep => {
            h.ok(&["images"]);
            assert!(
                wal_len() <= hako_sys::sqlite::CHECKPOINT_AT,
                "an open left a -wal of {} bytes",
                wal_len()
            );
        }
    }
    let markers: Vec<_> = std::fs::read_dir(h.root.path().join("locks/flight"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        markers.is_empty(),
        "a build left flight markers: {markers:?}"
    );
    let bytes = || {
        let modified = std::fs::metadata(&db)
            .and_then(|m| m.modified())
            .expect("db");
        (std::fs::read(&db).expect("db"), modified, wal_len())
    };
    let was = bytes();
    assert!(rerun(&["-t", "c:1"]).is_empty());
    assert!(
        was == bytes(),
        "a fully cached rebuild wrote to the database"
    );
    h.ok(&["images"]);
    assert!(was == bytes(), "`hako images` wrote to the database");
    assert_eq!(usage(), vec![2; before.len()]);
    h.ok(&["builder", "prune", "-f", "--filter", "until=1h"]);
    assert_eq!(
        usage(),
        vec![2; before.len()],
        "a prune counted the hits again"
    );
    assert!(!h.root.path().join("build-uses").exists());
    // (A container run after the database checks: its --rm cleanup may still be writing.)
    assert_eq!(run_out(&h, &["c:1", "cat", "/all"]), "a1\nb1\nplain\n");
    // Only mtimes changed, and a file .dockerignore hides: still nothing.
    let a = ctx.path().join("a.txt");
    std::fs::File::options()
        .write(true)
        .open(&a)
        .expect("open")
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .expect("touch");
    ctx.file("ignored.log", "changed");
    assert!(rerun(&["-t", "c:1"]).is_empty());
    // The second copied file: its COPY and what follows.
    ctx.file("b.txt", "b2\n");
    assert_eq!(
        rerun(&["-t", "c:1"]),
        [
            "[5/6] COPY b.txt /b.txt",
            "[6/6] RUN cat /a.txt /b.txt /flavor > /all"
        ]
    );
    // A build arg: the first RUN after its ARG (the COPY before it stays cached), and
    // everything on top of it.
    assert_eq!(
        rerun(&["-t", "c:1", "--build-arg", "FLAVOR=spicy"]),
        [
            // Progress shows the instruction expanded, as BuildKit does.
            "[4/6] RUN echo \"spicy\" > /flavor",
            "[5/6] COPY b.txt /b.txt",
            "[6/6] RUN cat /a.txt /b.txt /flavor > /all"
        ]
    );
    assert_eq!(run_out(&h, &["c:1", "cat", "/all"]), "a1\nb2\nspicy\n");
    // A mode is part of a file's identity.
    std::fs::set_permissions(&a, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    assert_eq!(rerun(&["-t", "c:1"]).len(), 4);
    // A label above everything changes no filesystem step.
    let text = std::fs::read_to_string(ctx.path().join("Dockerfile")).expect("read");
    ctx.file("Dockerfile", &text.replace("stage=one", "stage=two"));
    assert!(rerun(&["-t", "c:1"]).is_empty());
    // --no-cache runs everything; proxies given as build args do not count.
    assert_eq!(rerun(&["-t", "c:1", "--no-cache"]).len(), 5);
    assert!(rerun(&["-t", "c:1", "--build-arg", "HTTP_PROXY=http://proxy:3128"]).is_empty());
    assert_build_clean(&h);
}

#[test]
fn copy_from_keys_on_the_files_copied() {
    need_root!();
    let h = Hako::new();
    let ctx = Ctx::new(concat!(
        "FROM busybox AS src\n",
        "ARG PAYLOAD=one\n",
        "COPY unrelated.txt /unrelated.txt\n",
        "RUN mkdir /out && echo \"$PAYLOAD\" > /out/payload && date +%s%N > /stamp\n",
        "FROM busybox\n",
        "COPY --from=src /out/ /app/\n",
        "RUN cat /app/payload > /app/seen\n",
    ));
    ctx.file("unrelated.txt", "u1\n");
    build_ok(&h, &ctx, &["-t", "cf:1"]);
    assert_eq!(run_out(&h, &["cf:1", "cat", "/app/seen"]), "one\n");
    let rerun = |extra: &[&str]| steps(&build_ok(&h, &ctx, extra));
    // An unrelated change in the source stage: that stage re-runs (new mtimes, a new
    // /stamp), the files copied from it are the same, so the COPY --from and the RUN on
    // top of it come from the cache.
    ctx.file("unrelated.txt", "u2\n");
    let (ran, cached) = rerun(&["-t", "cf:1"]);
    assert_eq!(
        ran,
        [
            "[src 2/3] COPY unrelated.txt /unrelated.txt",
            "[src 3/3] RUN mkdir /out && echo \"one\" > /out/payload && date +%s%N > /stamp"
        ]
    );
    assert_eq!(
        cached,
        [
            "[stage-1 2/3] COPY --from=src /out/ /app/",
            "[stage-1 3/3] RUN cat /app/payload > /app/seen"
        ]
    );
    // A change in the copied files: the COPY --from and what follows re-run (with the
    // debug log, which names every build root filesystem mounted).
    let debug_build = |extra: &[&str]| {
        let mut a = vec!["-D", "build", "--progress=plain"];
        a.extend_from_slice(extra);
        a.push(ctx.dir());
        let o = h.run(&a);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        err
    };
    let out = debug_build(&["-t", "cf:1", "--build-arg", "PAYLOAD=two"]);
    assert!(out.contains("build root filesystem"), "{out}");
    let (ran, _) = steps(&out);
    assert_eq!(
        ran,
        [
            "[src 3/3] RUN mkdir /out && echo \"two\" > /out/payload && date +%s%N > /stamp",
            "[stage-1 2/3] COPY --from=src /out/ /app/",
            "[stage-1 3/3] RUN cat /app/payload > /app/seen"
        ]
    );
    assert_eq!(run_out(&h, &["cf:1", "cat", "/app/seen"]), "two\n");
    // Nothing changed: all from the cache, and nothing mounted (the COPY --from's key
    // uses the digest of the copied files recorded when they were first read).
    let out = debug_build(&["-t", "cf:1", "--build-arg", "PAYLOAD=two"]);
    assert_eq!(steps(&out).0, Vec::<String>::new(), "{out}");
    assert!(
        !out.contains("build root filesystem"),
        "a cached rebuild mounted a root filesystem:\n{out}"
    );
    assert_build_clean(&h);
}

#[test]
fn run_is_on_the_bridge_by_default_and_follows_network() {
    need_root!();
    use std::os::unix::fs::MetadataExt;
    let h = Hako::new();
    // A listener on the test's "host" side (its network namespace), on every address: a
    // RUN on the bridge reaches it through its gateway, as on Docker's default bridge.
    let listener = h
        .net
        .run(|| std::net::TcpListener::bind("0.0.0.0:0").expect("bind"));
    let port = listener.local_addr().expect("addr").port().to_string();
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept().expect("accept");
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).expect("read");
        line
    });
    let host_ns = format!(
        "net:[{}]\n",
        std::fs::metadata(h.net.path()).expect("netns").ino()
    );
    let probe =
        "readlink /proc/self/ns/net > /ns && ls /sys/class/net > /ifaces && hostname > /hostname";
    let ctx = Ctx::new(&format!(
        concat!(
            "FROM busybox\n",
            "ARG PORT\n",
            "ARG MODE\n",
            "RUN {probe} && echo $MODE > /mode\n",
            "RUN --network=none ls /sys/class/net > /ifaces-none\n",
        ),
        probe = probe
    ));
    let cat = |tag: &str, f: &str| run_out(&h, &["--network", "none", tag, "cat", f]);
    // Default: an interface of its own on the bridge, a default route, the host reached.
    build_ok(&h, &ctx, &["-t", "n:bridge", "--build-arg", "MODE=bridge"]);
    assert_eq!(cat("n:bridge", "/ifaces"), "eth0\nlo\n");
    assert_ne!(cat("n:bridge", "/ns"), host_ns);
    assert_eq!(cat("n:bridge", "/hostname"), "buildkitsandbox\n");
    assert_eq!(cat("n:bridge", "/ifaces-none"), "lo\n");
    let reach = Ctx::new(concat!(
        "FROM busybox\n",
        "ARG PORT\n",
        "RUN ip -4 route | grep '^default via ' && ",
        "GW=$(ip -4 route | awk '/^default/ {print $3}') && ",
        "echo hello-from-run | nc -w 10 $GW $PORT\n",
    ));
    build_ok(&h, &reach, &["--build-arg", &format!("PORT={port}")]);
    assert_eq!(server.join().expect("server"), "hello-from-run\n");
    // --network none: loopback only, in a namespace of its own.
    build_ok(
        &h,
        &ctx,
        &[
            "-t",
            "n:none",
            "--network",
            "none",
            "--build-arg",
            "MODE=none",
        ],
    );
    assert_eq!(cat("n:none", "/ifaces"), "lo\n");
    assert_ne!(cat("n:none", "/ns"), host_ns);
    // --network host: the build's own namespace (here the test's).
    build_ok(
        &h,
        &ctx,
        &[
            "-t",
            "n:host",
            "--network",
            "host",
            "--build-arg",
            "MODE=host",
        ],
    );
    assert_eq!(cat("n:host", "/ns"), host_ns);
    // The host's interfaces: the default bridge, kept after the RUNs on it (as docker0).
    assert_eq!(cat("n:host", "/ifaces"), "hako0\nlo\n");
    // The same Dockerfile and args on another network is another cache entry.
    let (ran, _) = steps(&build_ok(
        &h,
        &ctx,
        &[
            "-t",
            "n:none2",
            "--network",
            "none",
            "--build-arg",
            "MODE=bridge",
        ],
    ));
    assert!(ran.iter().any(|r| r.contains("RUN readlink")), "{ran:?}");
    assert_build_clean(&h);
}

#[test]
fn copy_link_makes_a_layer_of_its_own() {
    need_root!();
    let h = Hako::new();
    let ctx = Ctx::new(concat!(
        "FROM busybox\n",
        "ARG V=1\n",
        "RUN mkdir /real /app && ln -s /real /target && echo $V > /v && if [ $V = 3 ]; then sed -i 's/^user:x:[0-9]*:/user:x:1234:/' /etc/passwd; fi\n",
        "COPY --link a.txt /target/\n",
        "COPY --link --chown=user:user a.txt /app/owned.txt\n",
        "COPY --link --chown=1000:1000 a.txt /app/num.txt\n",
        "COPY a.txt /real/plain.txt\n",
    ));
    ctx.file("a.txt", "A\n");
    build_ok(&h, &ctx, &["-t", "l:1"]);
    // The symlink in the parent was not followed: /target is now a directory of its own
    // (the layer's), /real got nothing from the --link COPY.
    assert_eq!(
        run_out(
            &h,
            &[
                "--network",
                "none",
                "l:1",
                "sh",
                "-c",
                "test -d /target && ! test -L /target && ls /target && echo -- && ls /real && stat -c %U:%G /app/owned.txt && stat -c %u:%g /app/num.txt && cat /target/a.txt /v",
            ]
        ),
        "a.txt\n--\nplain.txt\nuser:user\n1000:1000\nA\n1\n"
    );
    // Another parent (the RUN before re-runs): the --link copies are cached (their keys
    // do not depend on the parent; a named --chown keys on the ids the parent gives the
    // name, the same here) and their layers are the same layers; the plain COPY runs
    // again. (The plain COPY's layer is not compared: it holds the parent's /real, whose
    // mtime differs only when the two RUNs ran in different seconds.)
    let out = build_ok(&h, &ctx, &["-t", "l:2", "--build-arg", "V=2"]);
    let (ran, cached) = steps(&out);
    assert_eq!(
        cached,
        [
            "[3/6] COPY --link a.txt /target/",
            "[4/6] COPY --link --chown=user:user a.txt /app/owned.txt",
            "[5/6] COPY --link --chown=1000:1000 a.txt /app/num.txt"
        ],
        "{out}"
    );
    let ran: Vec<&str> = ran.iter().map(|n| &n[..5]).collect();
    assert_eq!(ran, ["[2/6]", "[6/6]"], "{out}");
    let layers = |tag: &str| -> Vec<String> {
        serde_json::from_str(&h.ok(&[
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            tag,
        ]))
        .expect("layers")
    };
    let (one, two) = (layers("l:1"), layers("l:2"));
    assert_eq!(one.len(), 6, "{one:?}");
    assert_eq!(one[0], two[0], "the base");
    assert_ne!(one[1], two[1], "the RUN");
    assert_eq!(one[2], two[2], "COPY --link a.txt /target/");
    assert_eq!(one[3], two[3], "COPY --link --chown=user:user");
    assert_eq!(one[4], two[4], "COPY --link --chown=1000:1000");
    assert_eq!(
        run_out(
            &h,
            &["--network", "none", "l:2", "cat", "/target/a.txt", "/v"]
        ),
        "A\n2\n"
    );
    // A parent that gives the name other ids: that copy runs again, with them.
    let out = build_ok(&h, &ctx, &["-t", "l:3", "--build-arg", "V=3"]);
    let (ran, _) = steps(&out);
    let ran: Vec<&str> = ran.iter().map(|n| &n[..5]).collect();
    assert_eq!(ran, ["[2/6]", "[4/6]", "[6/6]"], "{out}");
    assert_eq!(
        run_out(
            &h,
            &[
                "--network",
                "none",
                "l:3",
                "stat",
                "-c",
                "%u",
                "/app/owned.txt"
            ]
        ),
        "1234\n"
    );
    assert_build_clean(&h);
}

#[test]
fn multi_stage_target_parallel_and_unused() {
    need_root!();
    let h = Hako::new();
    let ctx = Ctx::new(concat!(
        "ARG BASE=busybox\n",
        "FROM ${BASE} AS a\n",
        "RUN cut -d' ' -f1 /proc/uptime > /t && sleep 3\n",
        "FROM ${BASE} AS b\n",
        "RUN cut -d' ' -f1 /proc/uptime > /t && sleep 3\n",
        "FROM busybox AS broken\n",
        "RUN echo this stage is never built && exit 3\n",
        "FROM a AS child\n",
        "RUN cat /t > /from-a\n",
        "FROM scratch\n",
        "COPY --from=child /from-a /a\n",
        "COPY --from=1 /t /b\n",
        "COPY --from=busybox /bin/busybox /bin/busybox\n",
        "CMD [\"/bin/busybox\", \"cat\", \"/a\", \"/b\"]\n",
    ));
    let out = build_ok(&h, &ctx, &["-t", "ms"]);
    assert!(!out.contains("never built"), "{out}");
    let times = run_out(&h, &["ms"]);
    let t: Vec<f64> = times
        .lines()
        .map(|l| l.trim().parse().expect("uptime"))
        .collect();
    // One after the other they would start 3 s apart or more.
    assert!(
        (t[0] - t[1]).abs() < 2.5,
        "stages a and b ran one after the other: {t:?}"
    );
    // --target builds only what that stage needs.
    let out = build_ok(&h, &ctx, &["--target", "child", "-t", "only-child"]);
    assert!(!out.contains("[b "), "{out}");
    assert!(
        run_out(&h, &["only-child", "cat", "/from-a"])
            .trim()
            .parse::<f64>()
            .is_ok()
    );
    let err = build_fails(&h, &ctx, &["--target", "nope"]);
    assert!(
        err.contains("target stage \"nope\" could not be found"),
        "{err}"
    );
    let err = build_fails(&h, &ctx, &["--target", "broken"]);
    assert!(err.contains("exit code: 3"), "{err}");
    assert_build_clean(&h);
}

#[test]
fn heredocs_mounts_and_secrets() {
    need_root!();
    let h = Hako::new();
    let secret = tempfile::NamedTempFile::new().expect("secret file");
    std::fs::write(secret.path(), "s3cr3t").expect("write secret");
    let ctx = Ctx::new(concat!(
        "FROM busybox\n",
        "ENV WHO=heredoc\n",
        "RUN <<EOF\n",
        "echo one > /h1\n",
        "echo \"two $WHO\" >> /h1\n",
        "EOF\n",
        "RUN <<EOF\n",
        "#!/bin/sh\n",
        "echo \"from a script: $0\" > /h2\n",
        "EOF\n",
        "COPY <<A <<'B' /etc/notes/\n",
        "expanded $WHO\n",
        "A\n",
        "literal $WHO\n",
        "B\n",
        "RUN <<-EOT cat > /h3\n",
        "\t\tindented\n",
        "\tEOT\n",
        "RUN --mount=type=cache,target=/cache sh -c 'date >> /cache/log; wc -l < /cache/log > /runs'\n",
        "RUN --mount=type=bind,source=data,target=/src cp /src/file /from-bind\n",
        "RUN --mount=type=tmpfs,target=/scratch sh -c 'echo t > /scratch/x && cat /scratch/x > /from-tmpfs'\n",
        "RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /secret-size\n",
        "RUN --mount=type=secret,id=tok,env=TOKEN sh -c 'test \"$TOKEN\" = s3cr3t && echo ok > /secret-env'\n",
    ));
    ctx.file("data/file", "bound\n");
    let sec = format!("id=tok,src={}", secret.path().display());
    build_ok(&h, &ctx, &["-t", "hd", "--secret", &sec]);
    assert_eq!(run_out(&h, &["hd", "cat", "/h1"]), "one\ntwo heredoc\n");
    assert_eq!(
        run_out(&h, &["hd", "cat", "/h2"]),
        "from a script: /dev/pipes/EOF\n"
    );
    assert_eq!(
        run_out(&h, &["hd", "cat", "/etc/notes/A", "/etc/notes/B"]),
        "expanded heredoc\nliteral $WHO\n"
    );
    assert_eq!(run_out(&h, &["hd", "cat", "/h3"]), "indented\n");
    assert_eq!(run_out(&h, &["hd", "cat", "/runs"]).trim(), "1");
    assert_eq!(
        run_out(
            &h,
            &["hd", "cat", "/from-bind", "/from-tmpfs", "/secret-env"]
        ),
        "bound\nt\nok\n"
    );
    assert_eq!(run_out(&h, &["hd", "cat", "/secret-size"]).trim(), "6");
    // No trace of the mounts in the image.
    let ls = run_out(
        &h,
        &[
            "hd",
            "sh",
            "-c",
            "ls -d /cache /src /scratch /run/secrets /dev/pipes 2>&1 || true",
        ],
    );
    assert!(
        !ls.lines().any(|l| !l.contains("No such file")),
        "mount points left in the image: {ls}"
    );
    // The cache mount keeps its contents for the next build (its RUN reruns with --no-cache).
    build_ok(&h, &ctx, &["-t", "hd", "--secret", &sec, "--no-cache"]);
    assert_eq!(run_out(&h, &["hd", "cat", "/runs"]).trim(), "2");
    // A required secret that is missing fails clearly; an optional one is skipped.
    let ctx2 = Ctx::new("FROM busybox\nRUN --mount=type=secret,id=nope,required=true true\n");
    let err = build_fails(&h, &ctx2, &[]);
    assert!(err.contains("secret nope not found"), "{err}");
    let ctx3 =
        Ctx::new("FROM busybox\nRUN --mount=type=secret,id=nope test ! -e /run/secrets/nope\n");
    build_ok(&h, &ctx3, &[]);
    // builder prune empties the cache (and the cache mounts).
    let pruned = h.ok(&["builder", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    build_ok(&h, &ctx, &["-t", "hd", "--secret", &sec]);
    assert_eq!(run_out(&h, &["hd", "cat", "/runs"]).trim(), "1");
    assert_build_clean(&h);
}

#[test]
fn arg_scoping_onbuild_and_copy_sources() {
    need_root!();
    let h = Hako::new();
    let base = Ctx::new(concat!(
        "FROM busybox\n",
        "ONBUILD RUN echo triggered > /onbuild\n",
        "ONBUILD COPY marker /marker\n",
    ));
    build_ok(&h, &base, &["-t", "with-onbuild"]);
    let ctx = Ctx::new(concat!(
        "ARG TAG=with-onbuild\n",
        "ARG UNUSED_GLOBAL=x\n",
        "FROM $TAG AS first\n",
        "RUN echo \"[$TAG]\" > /tag-in-stage\n",
        "ARG TAG\n",
        "RUN echo \"[$TAG]\" > /tag-imported\n",
        "ARG LOCAL=default\n",
        "ENV FROM_ENV=$LOCAL\n",
        "FROM first\n",
        "RUN echo \"[$LOCAL][$FROM_ENV]\" > /inherited\n",
        "ADD archive.tar.gz /unpacked/\n",
        "COPY --parents ./deep/./x/y.txt /parents/\n",
        "COPY link-to-dir /via-link/\n",
    ));
    ctx.file("marker", "m").file("deep/x/y.txt", "y");
    ctx.file("realdir/f", "through a link");
    std::os::unix::fs::symlink("realdir", ctx.path().join("link-to-dir")).expect("symlink");
    // A gzipped tar made here, as a user would have one.
    let t = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(t.path().join("in/sub")).expect("mkdir");
    std::fs::write(t.path().join("in/sub/file"), "from the tar").expect("write");
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(ctx.path().join("archive.tar.gz"))
        .arg("-C")
        .arg(t.path().join("in"))
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    let out = build_ok(
        &h,
        &ctx,
        &[
            "-t",
            "args",
            "--build-arg",
            "LOCAL=given",
            "--build-arg",
            "NEVER=1",
        ],
    );
    assert!(
        out.contains("One or more build-args [NEVER] were not consumed"),
        "{out}"
    );
    assert_eq!(
        run_out(&h, &["args", "cat", "/onbuild", "/marker"]),
        "triggered\nm"
    );
    assert_eq!(
        run_out(&h, &["args", "cat", "/tag-in-stage", "/tag-imported"]),
        "[]\n[with-onbuild]\n"
    );
    assert_eq!(
        run_out(&h, &["args", "cat", "/inherited"]),
        "[given][given]\n"
    );
    assert_eq!(
        run_out(&h, &["args", "cat", "/unpacked/sub/file"]),
        "from the tar"
    );
    assert_eq!(
        run_out(&h, &["args", "cat", "/parents/x/y.txt", "/via-link/f"]),
        "ythrough a link"
    );
    assert_build_clean(&h);
}

/// A one-file HTTP server on loopback for `ADD URL`; returns its URL and the request
/// count.
fn http_server(
    h: &Hako,
    body: &'static [u8],
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    // Bound in the test's network namespace, where its hako runs.
    let l = h
        .net
        .run(|| std::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!("http://{}/files/tool.bin", l.local_addr().expect("addr"));
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(body);
        }
    });
    (url, hits)
}

#[test]
fn add_from_a_url_with_checksum() {
    need_root!();
    let h = Hako::new();
    let (url, hits) = http_server(&h, b"remote content\n");
    let sum = {
        use sha2::Digest;
        format!("sha256:{:x}", sha2::Sha256::digest(b"remote content\n"))
    };
    let ctx = Ctx::new(&format!(
        "FROM busybox\nADD --checksum={sum} {url} /opt/\nRUN cat /opt/tool.bin\n"
    ));
    build_ok(&h, &ctx, &["-t", "url"]);
    assert_eq!(
        run_out(&h, &["url", "cat", "/opt/tool.bin"]),
        "remote content\n"
    );
    assert_eq!(
        run_out(&h, &["url", "stat", "-c", "%a %Y", "/opt/tool.bin"]),
        "600 1445412480\n"
    );
    // With a checksum, a cached rebuild does not even fetch it.
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
    assert!(steps(&build_ok(&h, &ctx, &["-t", "url"])).0.is_empty());
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), before);
    let bad = Ctx::new(&format!(
        "FROM busybox\nADD --checksum=sha256:{} {url} /opt/\n",
        "0".repeat(64)
    ));
    let err = build_fails(&h, &bad, &[]);
    assert!(err.contains("digest mismatch"), "{err}");
    assert_build_clean(&h);
}

#[test]
fn bad_input_fails_clearly_and_leaves_nothing() {
    need_root!();
    let h = Hako::new();
    let outside = tempfile::NamedTempFile::new().expect("outside file");
    let cases: Vec<(String, &str)> = vec![
        ("FROM busybox\nRUN true\nRUNN oops\n".into(), "Dockerfile:3"),
        (
            "FROM busybox\nRUN true\nRUNN oops\n".into(),
            "unknown instruction: RUNN (did you mean RUN?)",
        ),
        (
            "FROM busybox\nCOPY ../secret /x\n".into(),
            "outside the build context",
        ),
        (
            "FROM busybox\nCOPY missing.txt /x\n".into(),
            "\"missing.txt\": not found",
        ),
        (
            "FROM busybox\nCOPY escape /x\n".into(),
            "points outside the build context",
        ),
        (
            "FROM hako-test/no-such-image:1\n".into(),
            "hako-test/no-such-image:1",
        ),
        (
            "FROM busybox\nRUN echo failing-output && exit 7\n".into(),
            "exit code: 7",
        ),
        (
            "FROM busybox\nRUN echo failing-output && exit 7\n".into(),
            "failing-output",
        ),
        (
            "FROM busybox\nRUN <<EOF\necho unterminated\n".into(),
            "unterminated heredoc",
        ),
        (
            "FROM busybox\nENV\n".into(),
            "ENV requires at least one argument",
        ),
        (
            "FROM busybox\nCOPY a b /not-a-dir\n".into(),
            "must be a directory and end with a /",
        ),
        ("RUN x\n".into(), "no build stage"),
        ("# just a comment\n".into(), "file with no instructions"),
        (
            "FROM busybox\nRUN --network=host true\n".into(),
            "hako build --network=host",
        ),
    ];
    // Layers: no case gets a filesystem step done, so no layer may appear.
    let layers = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(h.root.path().join("overlay2"))
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let before = layers();
    for (df, want) in cases {
        let ctx = Ctx::new(&df);
        ctx.file("a", "").file("b", "");
        std::os::unix::fs::symlink(outside.path(), ctx.path().join("escape")).expect("symlink");
        let err = build_fails(&h, &ctx, &["-t", "bad"]);
        assert!(err.contains(want), "{df:?} should say {want:?}:\n{err}");
        assert!(err.contains("ERROR: failed to solve:"), "{err}");
    }
    assert_eq!(layers(), before, "a failed build left layers");
    // The failing RUN: its output and the Dockerfile lines around it.
    let ctx = Ctx::new("FROM busybox\nRUN true\nRUN echo failing-output && exit 7\nCMD x\n");
    let err = build_fails(&h, &ctx, &[]);
    assert!(
        err.contains(" > [3/3] RUN echo failing-output && exit 7:"),
        "{err}"
    );
    assert!(
        err.contains("   3 | >>> RUN echo failing-output && exit 7"),
        "{err}"
    );
    assert!(
        h.run(&["image", "inspect", "bad"]).status.code() != Some(0),
        "no image was made"
    );
    // `RUN true` changed nothing: the mount points the runtime made for it (/etc/hosts...)
    // and the copy-up of /etc they caused are gone, so it made no layer either.
    assert_eq!(layers(), before, "RUN true left a layer");
    let e = h.fails(125, &["build", "-t", "Bad:Tag", ctx.dir()]);
    assert!(e.contains("invalid reference format"), "{e}");
    // Remote contexts (URLs and git repositories, by Docker's prefixes): one clear line.
    for remote in [
        "https://example.com/ctx.tar.gz",
        "git://example.com/repo",
        "git@example.com:repo.git",
        "github.com/moby/moby",
    ] {
        let o = h.run(&["build", remote]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{remote}: {e}");
        assert!(
            e.contains("remote contexts (URLs, git) are not supported by hako"),
            "{remote}: {e}"
        );
    }
    assert_build_clean(&h);
}

fn spawn_build(h: &Hako, ctx: &Ctx, tag: &str) -> (std::process::Child, Vec<String>) {
    let mut c = h.cmd(&["build", "--progress=plain", "-t", tag, ctx.dir()]);
    c.stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn build");
    let err = child.stderr.take().expect("stderr");
    let mut lines = Vec::new();
    let mut r = BufReader::new(err);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap_or(0) == 0 || Instant::now() > deadline {
            break;
        }
        lines.push(l.clone());
        // The RUN's output (`#5 0.123 running-marker`), not its header line.
        if l.trim_end().ends_with(" running-marker") && !l.contains("RUN") {
            break;
        }
    }
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = r.read_to_string(&mut rest);
    });
    (child, lines)
}

#[test]
fn cancelled_and_killed_builds_leave_nothing() {
    need_root!();
    let h = Hako::new();
    // The inner shell keeps "sleep 317" in its command line while it waits.
    let ctx = Ctx::new("FROM busybox\nRUN echo running-marker && sh -c 'sleep 317; true'\n");
    // ctrl-c: the RUN container is killed, no image, no cache entry.
    let (mut child, lines) = spawn_build(&h, &ctx, "cancelled");
    assert!(
        lines.iter().any(|l| l.contains("running-marker")),
        "{lines:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while marker_processes("sleep 317") == 0 {
        assert!(Instant::now() < deadline, "the RUN never started its sleep");
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let st = child.wait().expect("wait");
    assert_eq!(st.code(), Some(1));
    assert!(h.run(&["image", "inspect", "cancelled"]).status.code() != Some(0));
    assert_eq!(marker_processes("sleep 317"), 0, "the RUN process survived");
    assert_build_clean(&h);
    // kill -9 of hako: the next build cleans up what it left.
    let (mut child, lines) = spawn_build(&h, &ctx, "killed");
    assert!(
        lines.iter().any(|l| l.contains("running-marker")),
        "{lines:?}"
    );
    child.kill().expect("kill -9");
    let _ = child.wait();
    let quick = Ctx::new("FROM busybox\nRUN true\n");
    build_ok(&h, &quick, &[]);
    assert_eq!(
        marker_processes("sleep 317"),
        0,
        "the RUN process of the killed build survived"
    );
    assert_build_clean(&h);
}

#[test]
fn contexts_from_stdin_and_dockerfile_options() {
    need_root!();
    let h = Hako::new();
    // A tar on stdin (gzipped), with a Dockerfile.dockerignore next to the Dockerfile.
    let ctx = Ctx::new("FROM busybox\nCOPY . /ctx/\n");
    ctx.file("keep.txt", "k")
        .file("skip.txt", "s")
        .file("other.Dockerfile", "FROM busybox\nCOPY . /o/\n");
    ctx.file(".dockerignore", "keep.txt\n");
    ctx.file("other.Dockerfile.dockerignore", "skip.txt\n");
    let tgz = Command::new("tar")
        .arg("-cz")
        .arg("-C")
        .arg(ctx.path())
        .arg(".")
        .output()
        .expect("tar");
    let o = h.run_stdin(&["build", "-q", "-t", "fromtar", "-"], &tgz.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(id.starts_with("sha256:"), "-q prints the id: {id}");
    let ls = run_out(&h, &["fromtar", "ls", "/ctx"]);
    assert!(ls.contains("skip.txt") && !ls.contains("keep.txt"), "{ls}");
    // -f picks another Dockerfile and its own ignore file.
    let df = ctx.path().join("other.Dockerfile");
    let iid = ctx.path().join("iid");
    build_ok(
        &h,
        &ctx,
        &[
            "-f",
            df.to_str().expect("utf-8"),
            "-t",
            "other",
            "--iidfile",
            iid.to_str().expect("utf-8"),
        ],
    );
    let ls = run_out(&h, &["other", "ls", "/o"]);
    assert!(ls.contains("keep.txt") && !ls.contains("skip.txt"), "{ls}");
    assert!(
        std::fs::read_to_string(&iid)
            .expect("iidfile")
            .starts_with("sha256:")
    );
    // A Dockerfile on stdin has no context: RUN works, COPY says why it cannot.
    let o = h.run_stdin(
        &["build", "-q", "-t", "nocontext", "-"],
        b"FROM busybox\nRUN echo ok > /ok\n",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = h.run_stdin(
        &["build", "-t", "nocontext", "-"],
        b"FROM busybox\nCOPY x /x\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no build context"));
    assert_build_clean(&h);
}

#[test]
fn huge_context_on_stdin_is_streamed() {
    need_root!();
    let h = Hako::new();
    // 512 MiB of context through a pipe; hako's memory must stay far below it.
    let size: u64 = 512 << 20;
    let mut c = h.cmd(&["build", "-q", "-t", "big", "-"]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let pid = child.id();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut b = tar::Builder::new(&mut stdin);
        let df = b"FROM busybox\nCOPY small /small\n";
        let mut hd = tar::Header::new_gnu();
        hd.set_size(df.len() as u64);
        hd.set_mode(0o644);
        hd.set_uid(0);
        hd.set_gid(0);
        hd.set_mtime(1_700_000_000);
        hd.set_cksum();
        b.append_data(&mut hd, "Dockerfile", &df[..])?;
        let mut hs = tar::Header::new_gnu();
        hs.set_size(2);
        hs.set_mode(0o644);
        hs.set_uid(0);
        hs.set_gid(0);
        hs.set_mtime(1_700_000_000);
        hs.set_cksum();
        b.append_data(&mut hs, "small", &b"s\n"[..])?;
        let mut hb = tar::Header::new_gnu();
        hb.set_size(size);
        hb.set_mode(0o644);
        hb.set_uid(0);
        hb.set_gid(0);
        hb.set_mtime(1_700_000_000);
        hb.set_cksum();
        b.append_data(&mut hb, "big.bin", std::io::repeat(7).take(size))?;
        b.finish()
    });
    let mut peak = 0u64;
    while child.try_wait().expect("try_wait").is_none() {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kb * 1024);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().expect("output");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    writer.join().expect("writer").expect("write the context");
    assert!(
        peak < size / 4,
        "hako held the context in memory: peak {peak} bytes"
    );
    assert_build_clean(&h);
}

#[test]
fn layers_are_reproducible_and_images_travel() {
    need_root!();
    let h = Hako::new();
    let ctx = Ctx::new(
        "FROM busybox\nWORKDIR /srv/app\nCOPY files/ ./\nCOPY --chmod=0755 run.sh /usr/local/bin/\n",
    );
    ctx.file("files/a", "a")
        .file("files/sub/b", "b")
        .file("run.sh", "#!/bin/sh\necho run\n");
    build_ok(&h, &ctx, &["-t", "r:1"]);
    let layers = |t: &str| h.ok(&["image", "inspect", "-f", "{{json .RootFS.Layers}}", t]);
    let first = layers("r:1");
    build_ok(&h, &ctx, &["-t", "r:2", "--no-cache"]);
    assert_eq!(
        layers("r:2"),
        first,
        "identical inputs give identical layers"
    );
    // And in a fresh store.
    let h2 = Hako::new();
    build_ok(&h2, &ctx, &["-t", "r:1"]);
    assert_eq!(
        h2.ok(&["image", "inspect", "-f", "{{json .RootFS.Layers}}", "r:1"]),
        first
    );
    // save | load keeps the image whole.
    let saved = h.cmd(&["save", "r:1"]).output().expect("save");
    assert!(saved.status.success());
    let h3 = Hako::new();
    let o = h3.run_stdin(&["load"], &saved.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(run_out(&h3, &["r:1", "run.sh"]), "run\n");
    // system df counts the build cache; system prune removes it.
    let df = h.ok(&["system", "df"]);
    assert!(df.contains("Build Cache"), "{df}");
    h.ok(&["system", "prune", "-f"]);
    let after = build_ok(&h, &ctx, &["-t", "r:3"]);
    assert!(steps(&after).1.is_empty(), "the cache was pruned:\n{after}");
    assert_build_clean(&h);
}

#[test]
fn checks_directives_shell_platform_and_the_terminal_view() {
    need_root!();
    let h = Hako::new();
    let ctx = Ctx::new(concat!(
        "# escape=`\n",
        "ARG NAME\n",
        "FROM --platform=$BUILDPLATFORM busybox as Base\n",
        "MAINTAINER someone\n",
        "ENV WIN=C:\\dir `\n",
        "    GREETING=${NAME:-nobody}\n",
        "SHELL [\"/bin/sh\", \"-c\", \"echo via-shell > /via; eval \\\"$0\\\"\"]\n",
        "RUN echo \"$GREETING\" > /greeting\n",
        "CMD echo from-cmd\n",
    ));
    let out = build_ok(&h, &ctx, &["-t", "chk"]);
    assert!(
        out.contains(concat!(
            " 4 warnings found (use docker --debug to expand):\n",
            " - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 3)\n",
            " - StageNameCasing: Stage name 'Base' should be lowercase (line 3)\n",
            " - MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 4)\n",
            // A global ARG is not in the stage unless declared there again (found as
            // the ENV is dispatched, with the base image's Env known).
            " - UndefinedVar: Usage of undefined variable '$NAME' (line 5)\n",
        )),
        "{out}"
    );
    // `# escape=`: a backslash is an ordinary character, the backtick continues lines.
    let cfg: serde_json::Value =
        serde_json::from_str(&h.ok(&["image", "inspect", "-f", "{{json .Config}}", "chk"]))
            .expect("json");
    let env: Vec<&str> = cfg["Env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(env.contains(&"WIN=C:\\dir"), "{env:?}");
    assert!(env.contains(&"GREETING=nobody"), "{env:?}");
    assert_eq!(cfg["Shell"][2], "echo via-shell > /via; eval \"$0\"");
    // SHELL ran the RUN and runs the shell-form CMD.
    assert_eq!(
        run_out(&h, &["chk", "cat", "/greeting", "/via"]),
        "nobody\nvia-shell\n"
    );
    assert_eq!(run_out(&h, &["chk"]), "from-cmd\n");
    // `# check=error=true`: a violation fails the build before anything runs.
    let strict = Ctx::new("# check=error=true\nFROM busybox\nRUN touch /ran\nCMD echo hi\n");
    let err = build_fails(&h, &strict, &["-t", "strict"]);
    for want in [
        " 1 warning found (use docker --debug to expand):\n - JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 4)\n",
        "   4 | >>> CMD echo hi\n",
        "ERROR: failed to solve: lint violation found for rules: JSONArgsRecommended\n",
    ] {
        assert!(err.contains(want), "{want:?} in:\n{err}");
    }
    assert!(!err.contains("] RUN touch"), "a step ran:\n{err}");
    assert_ne!(
        h.run(&["image", "inspect", "strict"]).status.code(),
        Some(0)
    );
    // UndefinedVar knows the base image's Env (PATH) and suggests a near name; with
    // error=true it fails the build before the first step, as BuildKit's does (the bases
    // are resolved and every needed stage dispatched first).
    let undef = Ctx::new("# check=error=true\nFROM busybox\nRUN touch /ran\nENV P=$PATH:$PAHT\n");
    let err = build_fails(&h, &undef, &["-t", "undef"]);
    for want in [
        "[internal] load metadata for docker.io/library/busybox:latest",
        " - UndefinedVar: Usage of undefined variable '$PAHT' (did you mean $PATH?) (line 4)\n",
        "ERROR: failed to solve: lint violation found for rules: UndefinedVar\n",
    ] {
        assert!(err.contains(want), "{want:?} in:\n{err}");
    }
    assert!(!err.contains("] RUN touch"), "a step ran:\n{err}");
    assert_ne!(h.run(&["image", "inspect", "undef"]).status.code(), Some(0));
    // InvalidBaseImagePlatform: the base's config is for another platform than the
    // stage's --platform (hako uses the local image as it is, and says so).
    let host = h.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Os}}/{{.Architecture}}",
        "busybox",
    ]);
    let wrong = "# check=skip=FromPlatformFlagConstDisallowed\nFROM --platform=linux/s390x busybox\nCMD [\"true\"]\n";
    let plat = Ctx::new(wrong);
    let out = build_ok(&h, &plat, &["-t", "plat"]);
    let want = format!(
        " - InvalidBaseImagePlatform: Base image busybox was pulled with platform \"{}\", expected \"linux/s390x\" for current build (line 2)\n",
        host.trim()
    );
    assert!(out.contains(&want), "{want:?} in:\n{out}");
    let plat = Ctx::new(&format!(
        "{}RUN touch /ran\n",
        wrong.replace("check=", "check=error=true;")
    ));
    let err = build_fails(&h, &plat, &["-t", "plat2"]);
    assert!(err.contains(&want), "{want:?} in:\n{err}");
    assert!(
        err.contains(
            "ERROR: failed to solve: lint violation found for rules: InvalidBaseImagePlatform\n"
        ),
        "{err}"
    );
    assert!(!err.contains("] RUN touch"), "a step ran:\n{err}");
    // The build arg wins over the directive; a skipped rule is not reported.
    let out = build_ok(
        &h,
        &strict,
        &[
            "-t",
            "strict",
            "--build-arg",
            "BUILDKIT_DOCKERFILE_CHECK=skip=JSONArgsRecommended;error=true",
        ],
    );
    assert!(!out.contains("warning"), "{out}");
    let bad = Ctx::new("# check=colour=red\nFROM busybox\n");
    let err = build_fails(&h, &bad, &[]);
    assert!(err.contains("invalid check option \"colour\""), "{err}");
    // On a terminal: the live view, redrawn in place, then the warnings.
    let mut c = h.cmd(&["build", "-t", "chk-tty", ctx.dir()]);
    c.env("TERM", "xterm");
    let t = common::pty::Pty::spawn(&c);
    let (st, screen) = t.wait();
    assert!(st.success(), "{screen}");
    assert!(screen.contains("\x1b[K"), "{screen}");
    assert!(screen.contains("FINISHED"), "{screen}");
    assert!(
        screen.contains(" => CACHED [2/2] RUN echo \"nobody\" > /greeting"),
        "{screen}"
    );
    assert!(screen.contains(" 4 warnings found"), "{screen}");
    assert_build_clean(&h);
}

#[test]
fn pull_takes_the_registrys_base() {
    need_root!();
    let h = Hako::new();
    let Some(reg) = h.net.run(hako_test_support::Registry::start) else {
        return;
    };
    let base = format!("127.0.0.1:{}/build/base:1", reg.port);
    // The registry's base has /marker; the local one with the same name does not.
    let v2 = Ctx::new("FROM busybox\nRUN echo v2 > /marker\n");
    build_ok(&h, &v2, &["-t", &base]);
    h.ok(&["push", &base]);
    h.ok(&["tag", "busybox", &base]);
    let ctx = Ctx::new(&format!(
        "FROM {base}\nRUN cat /marker > /seen 2>/dev/null || echo none > /seen\n"
    ));
    build_ok(&h, &ctx, &["-t", "p:local"]);
    assert_eq!(run_out(&h, &["p:local", "cat", "/seen"]), "none\n");
    let out = build_ok(&h, &ctx, &["--pull", "-t", "p:pulled"]);
    let (ran, _) = steps(&out);
    assert_eq!(ran.len(), 1, "a new base reruns the RUN: {out}");
    assert_eq!(run_out(&h, &["p:pulled", "cat", "/seen"]), "v2\n");
    drop(reg);
    assert_build_clean(&h);
}
