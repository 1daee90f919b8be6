//! Sizes as Docker counts them (issue 10): `system df` counts a layer several images share
//! once, `system df -v` lists images, containers and volumes, and `history`, `images` and
//! `image inspect` agree on a layer's bytes; the build cache is listed entry by entry. The stock docker CLI, pointed at `hako serve`
//! on the same store, prints the same tables from the API's numbers.

#[macro_use]
mod common;

use common::Hako;
use common::serve::{Server, have_docker};
use serde_json::Value;

/// A table's cells, line by line, with the columns that move with the clock ("3 seconds
/// ago", "Up 2 seconds") replaced, so that two printings a second apart compare equal.
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(|c| {
                    if c.ends_with(" ago") {
                        "AGO".to_string()
                    } else if c.starts_with("Up ") {
                        "UP".to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
        .collect()
}

fn size(h: &Hako, image: &str) -> i64 {
    h.ok(&["image", "inspect", "--format", "{{.Size}}", image])
        .trim()
        .parse()
        .expect("a size")
}

#[test]
fn system_df_counts_a_shared_layer_once_and_prints_what_the_docker_cli_prints() {
    need_root!();
    if !have_docker() {
        return;
    }
    let h = Hako::new();
    // Two images on busybox's layer, each with a layer of its own.
    for (name, bytes) in [("img1", "1000000"), ("img2", "2000000")] {
        let script = format!("head -c {bytes} /dev/urandom > /big");
        h.ok(&["run", "--name", name, "busybox", "sh", "-c", &script]);
        h.ok(&["commit", name, name]);
        h.ok(&["rm", name]);
    }
    let (base, s1, s2) = (size(&h, "busybox"), size(&h, "img1"), size(&h, "img2"));
    assert!(
        s1 - base >= 1_000_000 && s2 - base >= 2_000_000,
        "{base} {s1} {s2}"
    );
    // `history` shows the bytes `image inspect` and `images` add up, layer by layer.
    for (img, top) in [("busybox", base), ("img1", s1 - base), ("img2", s2 - base)] {
        let hist = h.ok(&["history", "-H=false", "--format", "{{.Size}}", img]);
        let sizes: Vec<i64> = hist.lines().map(|l| l.parse().expect("bytes")).collect();
        assert_eq!(sizes.iter().sum::<i64>(), size(&h, img), "{img}: {hist}");
        assert_eq!(sizes.first(), Some(&top), "{img}'s top layer: {hist}");
    }
    // Build cache: a built image's steps (their layers held by the image too: shared),
    // built twice (the second run is a cache hit), and a step whose image is gone.
    let ctx = tempfile::tempdir().expect("context");
    let file = |name: &str, text: &str| {
        let p = ctx.path().join(name);
        std::fs::write(&p, text).expect("Dockerfile");
        p.display().to_string()
    };
    let kept = file(
        "kept",
        "FROM busybox\nRUN head -c 100000 /dev/urandom > /r\n",
    );
    let gone = file(
        "gone",
        "FROM busybox\nRUN head -c 200000 /dev/urandom > /s\n",
    );
    let dir = ctx.path().display().to_string();
    for (f, tag) in [(&kept, "built"), (&kept, "built"), (&gone, "gone")] {
        h.ok(&["build", "-q", "--network", "none", "-f", f, "-t", tag, &dir]);
    }
    h.ok(&["rmi", "gone"]);
    let sb = size(&h, "built");
    h.ok(&["volume", "create", "v1"]);
    h.ok(&[
        "run",
        "--rm",
        "-v",
        "v1:/v",
        "busybox",
        "sh",
        "-c",
        "head -c 300000 /dev/urandom > /v/f",
    ]);
    h.ok(&["volume", "create", "v2"]);
    h.ok(&["create", "--name", "idle", "img2", "true"]);
    let up = h.start(
        &[
            "--name",
            "up",
            "-v",
            "v1:/v",
            "img1",
            "sh",
            "-c",
            "head -c 50000 /dev/urandom > /w; sleep 1000",
        ],
        Some("/w"),
    );

    let s = Server::start(&h);
    let (code, body) = s.http("GET", "/system/df", "");
    assert_eq!(code, 200, "{body}");
    let du: Value = serde_json::from_str(&body).expect("json");
    // Every image layer once: busybox's, img1's, img2's and built's own.
    assert_eq!(
        du["LayersSize"].as_i64(),
        Some(s1 + s2 + sb - 2 * base),
        "{body}"
    );
    let cache = du["BuildCache"].as_array().expect("build cache");
    let own: Vec<(i64, bool, i64)> = cache
        .iter()
        .map(|r| {
            (
                r["Size"].as_i64().expect("size"),
                r["Shared"].as_bool().expect("shared"),
                r["UsageCount"].as_i64().expect("uses"),
            )
        })
        .collect();
    assert!(own.contains(&(sb - base, true, 2)), "{own:?}");
    assert!(
        own.iter()
            .any(|(size, shared, uses)| *size >= 200_000 && !shared && *uses == 1),
        "{own:?}"
    );
    for img in du["Images"].as_array().expect("images") {
        assert_eq!(img["SharedSize"].as_i64(), Some(base), "{img}");
    }
    let v1 = du["Volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["Name"] == "v1")
        .expect("v1")
        .clone();
    assert_eq!(v1["UsageData"]["Size"].as_i64(), Some(300_000), "{v1}");
    assert_eq!(v1["UsageData"]["RefCount"].as_i64(), Some(1), "{v1}");

    // The docker CLI formats the API's answer; hako's own tables must say the same.
    for args in [
        &["system", "df"][..],
        &["system", "df", "-v"],
        &["images"],
        &["history", "img1"],
    ] {
        let ours = h.ok(args);
        let theirs = s.ok(args);
        assert_eq!(
            cells(&ours),
            cells(&theirs),
            "hako {args:?}:\n{ours}\ndocker {args:?}:\n{theirs}"
        );
    }
    let table = h.ok(&["system", "df"]);
    let images = table
        .lines()
        .find(|l| l.starts_with("Images"))
        .expect("Images row");
    // 4 images, 2 with containers (created ones count, as Docker's).
    let cols = cells(images).remove(0);
    assert_eq!(&cols[1..3], ["4", "2"], "{table}");
    let verbose = h.ok(&["system", "df", "-v"]);
    for want in [
        "img1",
        "img2",
        "up",
        "idle",
        "v1",
        "v2",
        "Build cache usage",
    ] {
        assert!(verbose.contains(want), "{want} missing:\n{verbose}");
    }
    drop(s);
    h.finish(&[&up, "idle"]);
    h.ok(&["volume", "rm", "v1", "v2"]);
    h.ok(&["rmi", "img1", "img2", "built"]);
    h.ok(&["builder", "prune", "-f"]);
}
