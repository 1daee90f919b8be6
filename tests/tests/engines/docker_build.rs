//! `hako build` against a real dockerd's builder: the same Dockerfiles and contexts, built
//! by both from the same busybox image, must give images whose configs (Env, Cmd,
//! Entrypoint, WorkingDir, User, ExposedPorts, Volumes, Labels, StopSignal) and file trees
//! (every path with its type, mode, owner, size and link target, as `export | tar -tv`
//! shows them, mtimes aside) are the same.
//!
//! Debian's docker has no buildx, so dockerd builds with the classic builder
//! (`DOCKER_BUILDKIT=0`): the Dockerfiles stay within what both builders do the same way
//! (no heredocs, RUN mounts or `--chmod`, which the classic builder refuses; no WORKDIR
//! after USER, which BuildKit makes owned by the user and the classic builder by root).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hako_test_support::{RuntimeKind, in_ci};
use serde_json::Value;

use super::dockerd::Dockerd;
use super::image;
use super::support::{self, Out, run};

/// The hako CLI: `$HAKO_CLI`, else the one built next to this test binary, else the
/// workspace's.
fn hako_cli() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HAKO_CLI") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let exe = std::env::current_exe().ok()?;
    let target = exe.parent()?.parent()?.parent()?.to_path_buf();
    let workspace = hako_test_support::workspace_root().join("target");
    [target, workspace]
        .iter()
        .flat_map(|t| ["debug", "release"].map(|p| t.join(p).join("hako")))
        .find(|p| p.is_file())
}

struct Hako {
    bin: PathBuf,
    root: tempfile::TempDir,
    exec: tempfile::TempDir,
}

impl Hako {
    fn cmd(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root")
            .arg(self.root.path())
            .arg("--exec-root")
            .arg(self.exec.path())
            .args(args);
        run(cmd, self.root.path(), Duration::from_secs(300))
    }
}

const CONFIG: &str = r#"FROM hako-e2e/busybox:latest
ARG VERSION=1.2.3
ENV APP_HOME=/srv/app \
    GREETING="hello world"
ENV DERIVED=$APP_HOME/bin:$VERSION
LABEL org.example.name="conformance" org.example.version=$VERSION
EXPOSE 8080 53/udp 9000-9002
VOLUME ["/data", "/logs"]
WORKDIR $APP_HOME
STOPSIGNAL SIGQUIT
USER user:user
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo $GREETING"]
"#;

const FILES: &str = r#"FROM hako-e2e/busybox:latest
COPY file.txt /single
COPY file.txt /into/
COPY dir/ /copied/
COPY dir /copied-again
COPY *.md /docs/
COPY --chown=user:user owned.txt /home/user/owned.txt
COPY --chown=1000:1000 dir /numeric/
ADD archive.tar.gz /unpacked/
RUN mkdir -p /made/deep && echo made > /made/deep/f && chmod 0750 /made && ln -s /made/deep/f /made/link \
 && rm /bin/vi && chmod 4755 /made/deep/f && touch /tmp/scratch
RUN echo second > /made/second && rm /made/link
"#;

const STAGES: &str = r#"FROM hako-e2e/busybox:latest AS build
RUN mkdir -p /out/bin && echo '#!/bin/sh' > /out/bin/tool && echo 'echo tool' >> /out/bin/tool && chmod 0755 /out/bin/tool
FROM build AS test
RUN /out/bin/tool > /out/result
FROM hako-e2e/busybox:latest
COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=test /out/result /result
ENV PATH=/usr/local/bin:$PATH
CMD ["tool"]
"#;

fn context(dir: &Path, dockerfile: &str) {
    std::fs::create_dir_all(dir.join("dir/sub")).expect("mkdir");
    std::fs::write(dir.join("Dockerfile"), dockerfile).expect("Dockerfile");
    std::fs::write(dir.join("file.txt"), "file\n").expect("write");
    std::fs::write(dir.join("dir/a"), "a").expect("write");
    std::fs::write(dir.join("dir/sub/b"), "bb").expect("write");
    std::fs::write(dir.join("one.md"), "1").expect("write");
    std::fs::write(dir.join("two.md"), "22").expect("write");
    std::fs::write(dir.join("owned.txt"), "mine").expect("write");
    std::fs::write(dir.join("ignored.log"), "never copied").expect("write");
    std::fs::write(dir.join(".dockerignore"), "*.log\n").expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("dir/a"), std::fs::Permissions::from_mode(0o750))
        .expect("chmod");
    let src = dir.join("tarsrc");
    std::fs::create_dir_all(src.join("x")).expect("mkdir");
    std::fs::write(src.join("x/in-tar"), "from the tar").expect("write");
    let st = Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-czf"])
        .arg(dir.join("archive.tar.gz"))
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    std::fs::remove_dir_all(&src).expect("rm tarsrc");
}

/// The config fields both builders set, nulls and empties made equal.
fn config(inspect: &Value) -> BTreeMap<&'static str, Value> {
    let c = &inspect["Config"];
    let mut out = BTreeMap::new();
    for k in ["Env", "Cmd", "Entrypoint", "OnBuild"] {
        let v = match &c[k] {
            Value::Array(a) if a.is_empty() => Value::Null,
            v => v.clone(),
        };
        out.insert(k, v);
    }
    for k in ["WorkingDir", "User", "StopSignal"] {
        out.insert(k, Value::String(c[k].as_str().unwrap_or("").to_string()));
    }
    for k in ["ExposedPorts", "Volumes"] {
        let keys: Vec<Value> = c[k]
            .as_object()
            .map(|m| m.keys().map(|k| Value::String(k.clone())).collect())
            .unwrap_or_default();
        out.insert(k, Value::Array(keys));
    }
    out.insert(
        "Labels",
        match &c["Labels"] {
            Value::Object(m) if m.is_empty() => Value::Null,
            v => v.clone(),
        },
    );
    out
}

/// What `export | tar -tv` shows of each path, mtimes left out; the paths an engine
/// makes for a container (its init layer, mount points) are left out too.
fn tree(tar: &[u8]) -> Vec<String> {
    const RUNTIME: &[&str] = &[
        ".dockerenv",
        "etc/hostname",
        "etc/hosts",
        "etc/resolv.conf",
        "etc/mtab",
        "dev/console",
        "dev/pts",
        "dev/shm",
    ];
    let mut a = tar::Archive::new(tar);
    let mut out = Vec::new();
    for e in a.entries().expect("tar entries") {
        let mut e = e.expect("tar entry");
        let h = e.header().clone();
        let path = e
            .path()
            .expect("path")
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        if path.is_empty() || RUNTIME.contains(&path.as_str()) {
            continue;
        }
        let link = e
            .link_name()
            .ok()
            .flatten()
            .map(|l| format!(" -> {}", l.to_string_lossy()))
            .unwrap_or_default();
        let size = if h.entry_type().is_file() {
            let mut n = 0u64;
            let mut buf = [0u8; 8192];
            while let Ok(k) = e.read(&mut buf) {
                if k == 0 {
                    break;
                }
                n += k as u64;
            }
            n
        } else {
            0
        };
        out.push(format!(
            "{:?} {:o} {}:{} {size} {path}{link}",
            h.entry_type(),
            h.mode().unwrap_or(0) & 0o7777,
            h.uid().unwrap_or(0),
            h.gid().unwrap_or(0),
        ));
    }
    out.sort();
    out
}

#[test]
fn dockerfiles_build_the_same_as_dockerds_builder() {
    let name = "dockerfiles_build_the_same_as_dockerds_builder";
    let Some(_oci) = support::gate(
        name,
        RuntimeKind::Runc,
        &["dockerd", "docker", "containerd", "unshare", "tar"],
    ) else {
        return;
    };
    let Some(bin) = hako_cli() else {
        assert!(!in_ci(), "{name}: the hako CLI is not built");
        eprintln!("SKIP {name}: build the hako CLI (cargo build -p hako-cli)");
        return;
    };
    let d = Dockerd::start(&_oci);
    let h = Hako {
        bin,
        root: tempfile::Builder::new()
            .prefix("hako-e2e-build-")
            .tempdir()
            .expect("tmp"),
        exec: tempfile::Builder::new()
            .prefix("hkb")
            .tempdir_in("/tmp")
            .expect("tmp"),
    };
    let archive = image::busybox_archive(h.root.path());
    h.cmd(&["load", "-i", &archive.to_string_lossy()])
        .ok("hako load");
    for (i, dockerfile) in [CONFIG, FILES, STAGES].iter().enumerate() {
        let ctx = tempfile::Builder::new()
            .prefix("hako-e2e-ctx-")
            .tempdir()
            .expect("ctx");
        context(ctx.path(), dockerfile);
        let tag = format!("conformance-{i}");
        let c = ctx.path().to_string_lossy().into_owned();
        let mut docker = Command::new("/usr/bin/docker");
        docker
            .env("DOCKER_BUILDKIT", "0")
            .env("DOCKER_HOST", format!("unix://{}", d.socket().display()))
            .env("DOCKER_CONFIG", d.cli_config())
            .args(["build", "--network", "none", "-t", &tag, &c]);
        run(docker, ctx.path(), Duration::from_secs(300)).ok("docker build");
        // `--network none` as docker's: this test runs in the host's network namespace,
        // where hako's default bridge (and its nftables table) must not be made.
        h.cmd(&[
            "build",
            "--network",
            "none",
            "--progress=plain",
            "-t",
            &tag,
            &c,
        ])
        .ok("hako build");

        let dv: Value =
            serde_json::from_str(&d.docker(&["image", "inspect", &tag]).stdout).expect("json");
        let hv: Value =
            serde_json::from_str(&h.cmd(&["image", "inspect", &tag]).stdout).expect("json");
        let hc_ = config(&hv[0]);
        assert_eq!(
            hc_,
            config(&dv[0]),
            "config of Dockerfile #{i}:\n{dockerfile}"
        );
        if i == 0 {
            // The comparison is of something: the instructions took effect.
            assert_eq!(hc_["WorkingDir"], "/srv/app");
            assert_eq!(hc_["ExposedPorts"].as_array().map(Vec::len), Some(5));
        }

        let dc = d.docker(&["create", &tag]);
        dc.ok("docker create");
        let dexp = d.docker_bytes(&["export", dc.stdout.trim()]);
        let hc = h.cmd(&["create", "--network", "none", &tag]);
        hc.ok("hako create");
        let hexp = {
            let mut cmd = Command::new(&h.bin);
            cmd.arg("--root")
                .arg(h.root.path())
                .arg("--exec-root")
                .arg(h.exec.path())
                .args(["export", hc.stdout.trim()]);
            let o = cmd.output().expect("hako export");
            assert!(
                o.status.success(),
                "hako export: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            o.stdout
        };
        let (dt, ht) = (tree(&dexp), tree(&hexp));
        assert!(
            dt.len() > 100,
            "docker export listed only {} paths",
            dt.len()
        );
        if i == 1 {
            for want in [
                "/made/deep/f",
                "unpacked/x/in-tar",
                "home/user/owned.txt",
                "copied/sub/b",
            ] {
                assert!(
                    ht.iter().any(|l| l.contains(want.trim_start_matches('/'))),
                    "{want} missing from hako's tree"
                );
            }
        }
        let only_docker: Vec<&String> = dt.iter().filter(|l| !ht.contains(l)).collect();
        let only_hako: Vec<&String> = ht.iter().filter(|l| !dt.contains(l)).collect();
        assert!(
            only_docker.is_empty() && only_hako.is_empty(),
            "file trees of Dockerfile #{i} differ:\n only dockerd: {only_docker:#?}\n only hako: {only_hako:#?}"
        );
        h.cmd(&["rm", hc.stdout.trim()]).ok("hako rm");
        if i == 1 {
            // hako's image travels: `hako save` | `docker load` gives dockerd the same
            // image (id = config digest, the same layers).
            let saved = ctx.path().join("saved.tar");
            h.cmd(&["save", "-o", &saved.to_string_lossy(), &tag])
                .ok("hako save");
            d.docker(&["rmi", "-f", &tag]).ok("docker rmi");
            d.docker(&["load", "-i", &saved.to_string_lossy()])
                .ok("docker load");
            let lv: Value =
                serde_json::from_str(&d.docker(&["image", "inspect", &tag]).stdout).expect("json");
            assert_eq!(lv[0]["Id"], hv[0]["Id"], "docker load of hako's image");
            assert_eq!(lv[0]["RootFS"]["Layers"], hv[0]["RootFS"]["Layers"]);
        }
    }
    d.shutdown();
}
