//! The image commands, driven through the built `hako` binary with a throwaway `--root`.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

#[allow(unused_macros)]
#[macro_use]
mod common;

use common::rootfs_tar;

const HAKO: &str = env!("CARGO_BIN_EXE_hako");

struct Hako {
    root: tempfile::TempDir,
}

impl Hako {
    fn new() -> Hako {
        Hako {
            root: tempfile::Builder::new()
                .prefix("hako-cli-root-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    fn root(&self) -> &Path {
        self.root.path()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(HAKO);
        c.arg("--root").arg(self.root()).args(args);
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run hako")
    }

    /// Runs, asserts success and returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "hako {args:?} failed ({:?}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).expect("utf-8 stdout")
    }

    /// Runs, asserts exit 1 (Docker's for a failing image command) and exactly one
    /// stderr line; returns that line.
    fn fails(&self, args: &[&str]) -> String {
        self.fails_with(1, args)
    }

    /// As [`Hako::fails`], with status `code` (125 for usage errors).
    fn fails_with(&self, code: i32, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.status.code(), Some(code), "hako {args:?}: {o:?}");
        let err = String::from_utf8(o.stderr).expect("utf-8 stderr");
        assert_eq!(
            err.lines().count(),
            1,
            "one stderr line for {args:?}: {err:?}"
        );
        assert!(err.ends_with('\n'));
        err.trim_end().to_string()
    }

    /// Imports the busybox rootfs and returns the new id.
    fn import(&self, extra: &[&str]) -> String {
        let tar = rootfs_tar().to_str().expect("utf-8 path").to_string();
        let mut args = vec!["import", tar.as_str()];
        args.extend_from_slice(extra);
        let out = self.ok(&args);
        let id = out.trim().to_string();
        assert!(
            id.starts_with("sha256:") && id.len() == 71,
            "import printed {out:?}"
        );
        id
    }

    fn inspect(&self, name: &str) -> Value {
        let v: Value =
            serde_json::from_str(&self.ok(&["image", "inspect", name])).expect("inspect JSON");
        assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
        v[0].clone()
    }
}

fn short(id: &str) -> &str {
    &id["sha256:".len().."sha256:".len() + 12]
}

#[test]
fn images_table_quiet_and_formats() {
    let h = Hako::new();
    let id = h.import(&["busybox:latest", "-c", "CMD [\"sh\"]", "-c", "ENV A=1"]);

    let table = h.ok(&["images"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[0].starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{table}"
    );
    assert!(lines[0].trim_end().ends_with("SIZE"), "{table}");
    let cols: Vec<&str> = lines[1]
        .split("   ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(cols[0], "busybox");
    assert_eq!(cols[1], "latest");
    assert_eq!(cols[2], short(&id));
    assert!(cols[3].ends_with(" ago"), "{table}");
    assert!(cols[4].ends_with("MB"), "size in MB: {table}");
    // Columns line up under their headers.
    assert_eq!(lines[0].find("IMAGE ID"), lines[1].find(short(&id)));

    assert_eq!(h.ok(&["images", "-q"]), format!("{}\n", short(&id)));
    assert_eq!(
        h.ok(&["image", "ls", "-q", "--no-trunc"]),
        format!("{id}\n")
    );
    assert_eq!(
        h.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "busybox:latest\n"
    );
    let t = h.ok(&["images", "--format", r"table {{.ID}}\t{{.Size}}"]);
    let tl: Vec<&str> = t.lines().collect();
    assert_eq!(tl[0], "IMAGE ID       SIZE");
    assert!(tl[1].starts_with(&format!("{}   ", short(&id))), "{t}");
    let j: Value =
        serde_json::from_str(h.ok(&["images", "--format", "{{json .}}"]).trim()).expect("json");
    assert_eq!(j["ID"], short(&id));
    assert_eq!(j["Repository"], "busybox");
    assert_eq!(j["Tag"], "latest");
    assert_eq!(j["Digest"], "<none>");
    let d = h.ok(&["images", "--digests"]);
    assert!(
        d.starts_with("REPOSITORY   TAG       DIGEST    IMAGE ID"),
        "{d}"
    );
    // A repository argument filters.
    assert_eq!(
        h.ok(&["images", "-q", "busybox"]),
        format!("{}\n", short(&id))
    );
    assert_eq!(h.ok(&["images", "-q", "nothere"]), "");
}

#[test]
fn inspect_fields_and_templates() {
    let h = Hako::new();
    let id = h.import(&[
        "busybox",
        "--change",
        "CMD [\"sh\"]",
        "-c",
        "ENV A=1",
        "-m",
        "hello import",
    ]);
    let v = h.inspect("busybox");
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(v["Config"]["Env"], serde_json::json!(["A=1"]));
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Comment"], "hello import");
    assert_eq!(v["RootFS"]["Type"], "layers");
    let layers = v["RootFS"]["Layers"].as_array().expect("layers").clone();
    assert_eq!(layers.len(), 1);
    assert!(v["Size"].as_u64().is_some_and(|s| s > 1_000_000), "{v}");
    let driver = v["GraphDriver"]["Name"]
        .as_str()
        .expect("driver")
        .to_string();
    if driver == "overlay2" {
        let upper = v["GraphDriver"]["Data"]["UpperDir"]
            .as_str()
            .expect("UpperDir");
        assert!(Path::new(upper).join("bin/busybox").exists(), "{upper}");
    }
    // By short id and full id too.
    assert_eq!(h.inspect(short(&id))["Id"], id.as_str());

    let f = |t: &str| h.ok(&["image", "inspect", "-f", t, "busybox"]);
    assert_eq!(f("{{.Id}}"), format!("{id}\n"));
    assert_eq!(f("{{json .Config.Cmd}}"), "[\"sh\"]\n");
    let cfg: Value = serde_json::from_str(f("{{json .Config}}").trim()).expect("json config");
    assert_eq!(cfg["Env"], serde_json::json!(["A=1"]));
    let l0 = layers[0].as_str().expect("layer");
    assert_eq!(f("{{.RootFS.Layers}}"), format!("[{l0}]\n"));
    assert_eq!(f("{{index .RepoTags 0}}"), "busybox:latest\n");
    assert_eq!(
        f("{{range .RootFS.Layers}}{{.}} {{end}}"),
        format!("{l0} \n")
    );
    assert_eq!(
        f("{{upper .Os}}/{{lower .Architecture}}"),
        format!("LINUX/{}\n", v["Architecture"].as_str().unwrap_or(""))
    );
    assert_eq!(f("{{join .RepoTags \",\"}}"), "busybox:latest\n");
    // Go's builtins and variables, as scripts use them.
    assert_eq!(
        f(
            r#"{{if eq .Os "linux"}}L{{else}}?{{end}} {{printf "%.14s" .Id}} {{range $i, $t := .RepoTags}}{{if $i}},{{end}}{{$t}}{{end}}"#
        ),
        format!("L {} busybox:latest\n", &id[..14])
    );
    // What the image leaves out prints as Go's zero value, as on Docker's typed struct.
    assert_eq!(
        f(
            "{{.Config.Entrypoint}}|{{.Config.WorkingDir}}|{{.Config.Labels}}|{{.Config.Tty}}|{{.Parent}}|{{.DockerVersion}}|{{.Variant}}"
        ),
        "[]||map[]|false|||\n"
    );
    // Two images, one template line each.
    h.ok(&["tag", "busybox", "other:2"]);
    assert_eq!(
        h.ok(&[
            "image",
            "inspect",
            "--format",
            "{{index .RepoTags 0}}",
            "busybox",
            "other:2"
        ])
        .lines()
        .count(),
        2
    );
}

#[test]
fn tag_and_history() {
    let h = Hako::new();
    let id = h.import(&["busybox:latest", "-m", "my comment"]);
    assert_eq!(h.ok(&["tag", "busybox", "mybox:v1"]), "");
    assert_eq!(
        h.ok(&["image", "tag", short(&id), "localhost:5000/x/y:z"]),
        ""
    );
    assert_eq!(
        h.ok(&["image", "inspect", "-f", "{{.Id}}", "mybox:v1"]),
        format!("{id}\n")
    );
    let names = h.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["busybox:latest", "localhost:5000/x/y:z", "mybox:v1"]
    );
    // -q lists the image once.
    assert_eq!(h.ok(&["images", "-q"]).lines().count(), 1);

    let hist = h.ok(&["history", "mybox:v1"]);
    let lines: Vec<&str> = hist.lines().collect();
    assert_eq!(lines.len(), 2, "{hist}");
    assert!(lines[0].starts_with("IMAGE          CREATED"), "{hist}");
    assert!(
        lines[0].contains("CREATED BY") && lines[0].trim_end().ends_with("COMMENT"),
        "{hist}"
    );
    assert!(
        lines[1].starts_with(short(&id)) && lines[1].ends_with("my comment"),
        "{hist}"
    );
    assert!(lines[1].contains("MB"), "layer size shown: {hist}");
    assert_eq!(
        h.ok(&["history", "-q", "busybox"]),
        format!("{}\n", short(&id))
    );
    assert_eq!(
        h.ok(&["history", "--no-trunc", "-q", "busybox"]),
        format!("{id}\n")
    );
    assert_eq!(
        h.ok(&["image", "history", "--format", "{{.Comment}}", "busybox"]),
        "my comment\n"
    );
    let raw = h.ok(&[
        "history",
        "--human=false",
        "--format",
        "{{.Size}}",
        "busybox",
    ]);
    assert!(
        raw.trim().parse::<u64>().is_ok_and(|n| n > 1_000_000),
        "{raw}"
    );
    // history's CreatedAt is RFC 3339 (the docker CLI's; ps and images print Go's time).
    let at = h.ok(&["history", "--format", "{{.CreatedAt}}", "busybox"]);
    assert!(at.trim().ends_with('Z') && at.contains('T'), "{at}");
    // The new name is checked first, as the docker CLI checks it: a bad one is the error
    // even when the source does not exist.
    let e = h.fails(&["tag", "nosuch", "Bad:Name"]);
    assert!(e.contains("must be lowercase"), "{e}");
}

#[test]
fn save_load_round_trip_and_interop() {
    let h = Hako::new();
    let id = h.import(&["busybox:latest", "-c", "CMD [\"sh\"]"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("busybox.tar");
    let archive_s = archive.to_str().expect("utf-8");
    assert_eq!(h.ok(&["save", "-o", archive_s, "busybox"]), "");
    assert!(std::fs::metadata(&archive).expect("archive").len() > 1_000_000);
    // No temporary file left next to it.
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);

    let other = Hako::new();
    assert_eq!(
        other.ok(&["load", "-i", archive_s]),
        "Loaded image: busybox:latest\n"
    );
    assert_eq!(other.ok(&["images", "-q", "--no-trunc"]), format!("{id}\n"));
    // Every file of the archive is used or collected: its OCI manifest (read through
    // manifest.json, which does not name it) stayed as garbage when the load unpacked no
    // layer (loaded again: they are all there).
    for _ in 0..2 {
        let check = other.ok(&["system", "check"]);
        assert!(
            check.contains("0 damaged objects, 0 pieces of garbage"),
            "{check}"
        );
        other.ok(&["load", "-q", "-i", archive_s]);
    }
    assert_eq!(
        other.inspect("busybox")["Config"]["Cmd"],
        serde_json::json!(["sh"])
    );

    // save to a pipe, load from a pipe.
    let saved = h.run(&["image", "save", "busybox"]);
    assert!(saved.status.success(), "{saved:?}");
    assert!(saved.stdout.len() > 1_000_000);
    let third = Hako::new();
    let mut load = third
        .cmd(&["load", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn load");
    load.stdin
        .take()
        .expect("stdin")
        .write_all(&saved.stdout)
        .expect("write stdin");
    let out = load.wait_with_output().expect("wait load");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Loaded image: busybox:latest\n"
    );
    assert_eq!(third.ok(&["images", "-q", "--no-trunc"]), format!("{id}\n"));

    skopeo_reads(archive_s, &h.inspect("busybox"));
    docker_loads(archive_s, &id);
}

fn skopeo_reads(archive: &str, inspect: &Value) {
    let out = match Command::new("skopeo")
        .args(["inspect", &format!("docker-archive:{archive}")])
        .output()
    {
        Ok(o) => o,
        Err(e) if !hako_test_support::in_ci() => {
            eprintln!("skipping the skopeo check: {e}");
            return;
        }
        Err(e) => panic!("skopeo: {e}"),
    };
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("skopeo JSON");
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Layers"], inspect["RootFS"]["Layers"], "{v}");
    let raw = Command::new("skopeo")
        .args(["inspect", "--config", &format!("docker-archive:{archive}")])
        .output()
        .expect("skopeo --config");
    let cfg: Value = serde_json::from_slice(&raw.stdout).expect("config JSON");
    assert_eq!(cfg["config"]["Cmd"], serde_json::json!(["sh"]));
}

fn docker_loads(archive: &str, id: &str) {
    let up = Command::new("docker")
        .args(["info", "--format", "{{.ID}}"])
        .output();
    if !up.is_ok_and(|o| o.status.success()) {
        // CI has no host dockerd: there tests/tests/engines/docker_load.rs loads hako's
        // archives into a dockerd of its own.
        eprintln!("skipping the docker load check: no dockerd (engines::docker_load covers it)");
        return;
    }
    let out = Command::new("docker")
        .args(["load", "-i", archive])
        .output()
        .expect("docker load");
    assert!(
        out.status.success(),
        "docker load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Id}}", "busybox:latest"])
        .output()
        .expect("docker inspect");
    // With the containerd image store Docker reports the manifest digest instead.
    let got = String::from_utf8_lossy(&got.stdout).trim().to_string();
    assert!(got.starts_with("sha256:"), "{got}");
    if got != id {
        eprintln!("docker reports {got} (containerd store?), hako {id}");
    }
}

#[test]
fn rmi_messages_and_in_use() {
    let h = Hako::new();
    let id = h.import(&["busybox:latest"]);
    h.ok(&["tag", "busybox", "bb:1"]);
    assert_eq!(h.ok(&["rmi", "bb:1"]), "Untagged: bb:1\n");
    h.ok(&["tag", "busybox", "bb:2"]);
    // By id with two tags: refused without -f.
    let err = h.fails(&["rmi", short(&id)]);
    assert!(
        err.contains("must be forced") && err.contains("multiple repositories"),
        "{err}"
    );

    // Two tags: removing one only untags.
    assert_eq!(h.ok(&["rmi", "busybox"]), "Untagged: busybox:latest\n");
    let expected = if hako_test_support::is_root() {
        /// Releases (unmounts) the container rootfs even when an assertion fails.
        struct Release<'a>(&'a hako_image::ImageStore, bool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                if self.1 {
                    let _ = self.0.release_rootfs("ctr-in-use");
                }
            }
        }
        let store = hako_image::ImageStore::open(h.root()).expect("open store");
        store
            .prepare_rootfs("bb:2", "ctr-in-use")
            .expect("prepare rootfs");
        let mut guard = Release(&store, true);
        let err = h.fails(&["rmi", "bb:2"]);
        assert!(err.contains("being used by container ctr-in-use"), "{err}");
        assert_eq!(h.ok(&["images", "-q"]), format!("{}\n", short(&id)));
        assert_eq!(h.ok(&["rmi", "-f", "bb:2"]), "Untagged: bb:2\n");
        guard.1 = false;
        store.release_rootfs("ctr-in-use").expect("release");
        format!("Deleted: {id}\n")
    } else {
        assert!(!hako_test_support::in_ci(), "the in-use check needs root");
        eprintln!("skipping the in-use check: needs root to mount a container rootfs");
        format!("Untagged: bb:2\nDeleted: {id}\n")
    };
    // Several names: each outcome printed, a failure still exits 1 with one line.
    let o = h.run(&["rmi", short(&id), "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stdout), expected);
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "Error: No such image: nope:latest\n"
    );
    assert_eq!(h.ok(&["images", "-q"]), "");
}

#[test]
fn errors_are_one_docker_line_with_status_1() {
    let h = Hako::new();
    for args in [
        &["image", "inspect", "foo"][..],
        &["rmi", "foo"],
        &["tag", "foo", "bar"],
        &["history", "foo"],
        &["save", "-o", "/dev/null", "foo"],
    ] {
        assert_eq!(
            h.fails(args),
            "Error: No such image: foo:latest",
            "{args:?}"
        );
    }
    h.import(&["busybox"]);
    assert_eq!(
        h.fails(&["images", "--format", "{{.Nope}}"]),
        r#"Error: template: :1:2: executing "" at <.Nope>: can't evaluate field Nope"#
    );
    assert_eq!(
        h.fails(&["image", "inspect", "-f", "{{.Id}} {{.Nope}}", "busybox"]),
        r#"Error: template: :1:10: executing "" at <.Nope>: can't evaluate field Nope"#
    );
    assert!(
        h.fails(&["images", "--format", "{{.ID"])
            .starts_with("Error: template parsing error: template: :1: unclosed action")
    );
    assert_eq!(
        h.fails(&["images", "--format", "{{nope .ID}}"]),
        r#"Error: template parsing error: template: :1: function "nope" not defined"#
    );
    assert!(
        h.fails_with(125, &["images", "--bogus"])
            .contains("'--bogus'")
    );
    assert_eq!(
        h.fails(&["images", "--filter", "foo=bar"]),
        "Error: invalid filter 'foo'"
    );
    assert!(
        h.fails(&["tag", "busybox", "Bad:Name"])
            .contains("invalid reference format")
    );
    assert!(
        h.fails(&["import", "/nonexistent.tar"])
            .contains("/nonexistent.tar")
    );
    assert!(
        h.fails(&["import", "ftp://example.invalid/x.tar"])
            .contains("only files, http(s)://")
    );
    assert!(
        h.fails(&["import", "http://127.0.0.1:1/x.tar"])
            .contains("download http://127.0.0.1:1/x.tar")
    );
    assert!(
        h.fails(&["--storage-driver", "aufs", "images"])
            .contains("aufs is not in this kernel")
    );
    assert!(
        h.fails(&["--storage-driver", "devicemapper", "info"])
            .contains("device-mapper is not in this kernel")
    );
    // Help is not an error.
    let help = h.run(&["images", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--no-trunc"));
}

#[test]
fn filters_and_prune() {
    let h = Hako::new();
    let bb = h.import(&["busybox:latest"]);
    let lab = h.import(&["labelled:1", "-c", "LABEL a=b"]);
    let dangling = h.import(&[]);
    let ids = |args: &[&str]| {
        let mut a = vec!["images", "-q", "--no-trunc"];
        a.extend_from_slice(args);
        let mut v: Vec<String> = h.ok(&a).lines().map(String::from).collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        ids(&[]),
        sorted(vec![bb.clone(), lab.clone(), dangling.clone()])
    );
    assert_eq!(ids(&["--filter", "reference=busy*"]), vec![bb.clone()]);
    assert_eq!(
        ids(&["--filter", "reference=labelled:1"]),
        vec![lab.clone()]
    );
    assert_eq!(ids(&["--filter", "label=a=b"]), vec![lab.clone()]);
    assert_eq!(ids(&["--filter", "label=a"]), vec![lab.clone()]);
    assert_eq!(ids(&["--filter", "dangling=true"]), vec![dangling.clone()]);
    assert_eq!(
        ids(&["--filter", "dangling=false"]),
        sorted(vec![bb.clone(), lab.clone()])
    );
    assert_eq!(
        ids(&["--filter", "since=busybox"]),
        sorted(vec![lab.clone(), dangling.clone()])
    );
    assert_eq!(ids(&["--filter", "before=labelled:1"]), vec![bb.clone()]);
    let none = h.ok(&["images", "--filter", "dangling=true"]);
    assert!(
        none.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("<none>       <none>")),
        "{none}"
    );

    let pruned = h.ok(&["image", "prune", "-f"]);
    assert!(
        pruned.starts_with(&format!(
            "Deleted Images:\ndeleted: {dangling}\n\nTotal reclaimed space: "
        )),
        "{pruned}"
    );
    assert_eq!(ids(&[]), sorted(vec![bb.clone(), lab.clone()]));
    // Without -f and a "no" answer nothing happens.
    let mut c = h.cmd(&["image", "prune", "-a"]);
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"n\n")
        .expect("answer");
    let o = child.wait_with_output().expect("wait");
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Are you sure you want to continue? [y/N]")
    );
    assert_eq!(ids(&[]).len(), 2);
    let all = h.ok(&["image", "prune", "-a", "-f"]);
    assert_eq!(all.matches("deleted: ").count(), 2, "{all}");
    assert_eq!(ids(&[]), Vec::<String>::new());
}

#[test]
fn import_from_stdin_and_http() {
    let h = Hako::new();
    let tar = std::fs::read(rootfs_tar()).expect("read tar");
    let mut child = h
        .cmd(&["import", "-", "fromstdin:1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&tar)
        .expect("write");
    let o = child.wait_with_output().expect("wait");
    assert!(o.status.success(), "{o:?}");
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();

    // A one-shot HTTP server on loopback.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let body = tar.clone();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut req = [0u8; 4096];
        let _ = s.read(&mut req);
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).expect("head");
        s.write_all(&body).expect("body");
    });
    let url = format!("http://127.0.0.1:{port}/busybox.tar");
    let out = h.ok(&["import", &url, "fromhttp:1"]);
    server.join().expect("server");
    // Same content, same layer; the history comment names the URL.
    let a = h.inspect("fromstdin:1");
    let b = h.inspect("fromhttp:1");
    assert_eq!(a["Id"], id.as_str());
    assert_eq!(a["RootFS"], b["RootFS"]);
    assert_eq!(b["Id"], out.trim());
    assert_eq!(b["Comment"], format!("Imported from {url}"));
    assert_eq!(a["Comment"], "Imported from -");
}

#[test]
fn system_df_info_version() {
    let h = Hako::new();
    h.import(&["busybox"]);
    let df = h.ok(&["system", "df"]);
    let lines: Vec<&str> = df.lines().collect();
    assert_eq!(lines.len(), 5, "{df}");
    assert!(
        lines[0].starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE"),
        "{df}"
    );
    assert!(
        lines[1].starts_with("Images          1         0         "),
        "{df}"
    );
    assert!(lines[1].ends_with("(100%)"), "{df}");
    assert!(
        lines[2].starts_with("Containers      0         0         0B"),
        "{df}"
    );
    assert!(
        lines[3].starts_with("Local Volumes   0         0         0B"),
        "{df}"
    );
    assert!(
        lines[4].starts_with("Build Cache     0         0         0B"),
        "{df}"
    );
    let v = h.ok(&["system", "df", "-v"]);
    assert!(
        v.contains("Images space usage:")
            && v.contains("busybox")
            && v.contains("Build cache usage: 0B"),
        "{v}"
    );
    let j = h.ok(&["system", "df", "--format", "{{json .}}"]);
    assert_eq!(j.lines().count(), 4);

    let info = h.ok(&["info"]);
    let driver = h.ok(&["info", "--format", "{{.Driver}}"]);
    let driver = driver.trim();
    assert!(driver == "overlay2" || driver == "vfs", "{driver}");
    assert!(
        info.contains(&format!(" Storage Driver: {driver}\n")),
        "{info}"
    );
    assert!(
        info.contains(&format!(" Hako Root Dir: {}\n", h.root().display())),
        "{info}"
    );
    assert!(info.contains(" Images: 1\n"), "{info}");
    assert!(info.contains(" Cgroup Version: "), "{info}");
    assert!(info.contains(" Cgroup Driver: cgroupfs"), "{info}");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    assert!(
        info.contains(&format!(" Kernel Version: {}\n", kernel.trim())),
        "{info}"
    );
    assert!(info.contains(" Operating System: "), "{info}");
    assert!(info.contains("  aufs: not in this kernel"), "{info}");
    assert_eq!(h.ok(&["system", "info", "-f", "{{.Images}}"]), "1\n");
    // -v with a template: one run on Docker's {Images, Containers, Volumes, BuildCache}.
    assert_eq!(
        h.ok(&[
            "system",
            "df",
            "-v",
            "--format",
            "{{len .Images}}|{{(index .Images 0).Repository}}|{{len .Containers}}|{{len .Volumes}}"
        ]),
        "1|busybox|0|0\n"
    );
    let v: serde_json::Value =
        serde_json::from_str(&h.ok(&["system", "df", "-v", "--format", "json"])).expect("json");
    assert!(
        v["Images"][0]["ID"]
            .as_str()
            .is_some_and(|i| i.starts_with("sha256:")),
        "{v}"
    );
    assert_eq!(
        h.ok(&["version", "--format", "{{.Client.Version}}"]),
        format!("{}\n", env!("CARGO_PKG_VERSION"))
    );
    assert!(h.ok(&["version"]).contains("API version:"));
    // Go's field name APIVersion (the JSON key is ApiVersion), and the server's block as
    // `GET /version` has it.
    assert_eq!(
        h.ok(&[
            "version",
            "--format",
            "{{.Client.APIVersion}} {{.Server.APIVersion}} {{.Server.MinAPIVersion}} {{(index .Server.Components 0).Name}} {{.Client.Context}}"
        ]),
        "1.50 1.50 1.24 Engine default\n"
    );
}

use hako_test_support::Registry;

#[test]
fn push_pull_login_logout() {
    let h = Hako::new();
    let id = h.import(&["busybox"]);
    // An unreachable registry: one line, 125.
    h.ok(&["tag", "busybox", "127.0.0.1:1/nowhere:1"]);
    assert!(
        h.fails(&["push", "127.0.0.1:1/nowhere:1"])
            .starts_with("Error: ")
    );
    assert!(
        h.fails(&["pull", "127.0.0.1:1/nowhere:1"])
            .starts_with("Error: ")
    );
    assert_eq!(
        h.fails(&["push", "127.0.0.1:1/unknown:1"]),
        "Error: No such image: 127.0.0.1:1/unknown:1"
    );

    let Some(reg) = Registry::start() else { return };
    let name = format!("127.0.0.1:{}/cli/busybox:1", reg.port);
    h.ok(&["tag", "busybox", &name]);
    let pushed = h.ok(&["push", &name]);
    assert!(
        pushed.starts_with(&format!(
            "The push refers to repository [127.0.0.1:{}/cli/busybox]\n",
            reg.port
        )),
        "{pushed}"
    );
    assert!(
        pushed
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("1: digest: sha256:")),
        "{pushed}"
    );

    let other = Hako::new();
    let pulled = other.ok(&["pull", &name]);
    assert!(
        pulled.starts_with("1: Pulling from cli/busybox\n"),
        "{pulled}"
    );
    assert!(pulled.contains(": Pull complete\n"), "{pulled}");
    // A pull that fails before the registry answered prints no "Pulling from" (as Docker,
    // which prints it after the manifest).
    let o = other.run(&["pull", "127.0.0.1:1/nowhere:1"]);
    assert!(!o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "", "{o:?}");
    assert!(
        pulled.contains(&format!("Status: Downloaded newer image for {name}\n")),
        "{pulled}"
    );
    assert_eq!(other.ok(&["images", "-q", "--no-trunc"]), format!("{id}\n"));
    let again = other.ok(&["image", "pull", "-q", &name]);
    assert_eq!(again, format!("{name}\n"));
    let digests = other.ok(&["images", "--format", "{{.Digest}}"]);
    assert!(digests.starts_with("sha256:"), "{digests}");

    // --all-tags: every local tag pushed, every tag the registry lists pulled, one
    // "Pulling from" and digest each; a tag in the name is Docker's error.
    let repo = format!("127.0.0.1:{}/cli/busybox", reg.port);
    h.ok(&["tag", "busybox", &format!("{repo}:2")]);
    let pushed = h.ok(&["push", "--all-tags", &repo]);
    assert!(
        pushed.contains("\n1: digest: sha256:") && pushed.contains("\n2: digest: sha256:"),
        "{pushed}"
    );
    let third = Hako::new();
    let pulled = third.ok(&["pull", "-a", &repo]);
    // In the registry's order of its tag list, as Docker pulls them.
    for t in ["1", "2"] {
        assert!(
            pulled.starts_with(&format!("{t}: Pulling from cli/busybox\n"))
                || pulled.contains(&format!("\n{t}: Pulling from cli/busybox\n")),
            "{pulled}"
        );
    }
    assert_eq!(pulled.matches("Digest: sha256:").count(), 2, "{pulled}");
    assert!(pulled.ends_with(&format!("\n{repo}\n")), "{pulled}");
    let tags = third.ok(&["images", "--format", "{{.Tag}}", &repo]);
    assert_eq!(tags, "1\n2\n");
    assert!(
        third
            .fails(&["pull", "-a", &name])
            .contains("tag can't be used with --all-tags/-a")
    );

    let cfg = tempfile::tempdir().expect("tempdir");
    let server = format!("127.0.0.1:{}", reg.port);
    let login = h
        .cmd(&["login", "-u", "me", "-p", "secret", &server])
        .env("DOCKER_CONFIG", cfg.path())
        .output()
        .expect("login");
    assert!(login.status.success(), "{login:?}");
    assert_eq!(String::from_utf8_lossy(&login.stdout), "Login Succeeded\n");
    let stored = std::fs::read_to_string(cfg.path().join("config.json")).expect("config.json");
    assert!(stored.contains(&server), "{stored}");
    let logout = |expect: &str| {
        let o = h
            .cmd(&["logout", &server])
            .env("DOCKER_CONFIG", cfg.path())
            .output()
            .expect("logout");
        assert!(o.status.success(), "{o:?}");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!("{expect} {server}\n")
        );
    };
    logout("Removing login credentials for");
    logout("Not logged in to");
}
