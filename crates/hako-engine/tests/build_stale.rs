//! A cached build defers its layer pins while it only reads (so a fully cached rebuild
//! writes nothing to the database). Here another writer replaces a cache entry the build
//! has just used, which deletes the layer the build relied on: the build must notice,
//! build again pinning as it goes, and end with an image made of layers that exist.

use std::io::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};

use hako_build::progress::{Cancel, Event, Progress};
use hako_engine::{BuildContext, BuildRequest, Engine, EngineOptions};
use hako_image::{BuildCacheEntry, Digest, ImportOptions};

/// Replaces, at the first cache hit it sees, the entry whose layer is the COPY's with one
/// on the base's layer: the COPY's layer then has no reference left and is deleted.
struct Saboteur<'a> {
    engine: &'a Engine,
    base_top: Digest,
    done: AtomicBool,
    events: std::sync::Mutex<Vec<Event>>,
}

impl Progress for Saboteur<'_> {
    fn event(&self, e: Event) {
        if matches!(e, Event::Cached { .. }) && !self.done.swap(true, Ordering::SeqCst) {
            let store = self.engine.images();
            for r in store.build_cache_records().expect("records") {
                let entry = store.build_cache_get(&r.key).expect("get").expect("entry");
                if entry.top_layer.as_ref() != Some(&self.base_top) {
                    let replaced = BuildCacheEntry {
                        top_layer: Some(self.base_top.clone()),
                        created: entry.created.clone(),
                        empty: true,
                    };
                    store.build_cache_put(&r.key, &replaced).expect("replace");
                    let gone = entry.top_layer.expect("a layer");
                    assert!(
                        store.chain_diff_ids(Some(&gone)).is_err(),
                        "the replaced entry's layer is deleted"
                    );
                }
            }
        }
        self.events.lock().expect("events").push(e);
    }
}

fn base_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path("etc/base").expect("path");
    h.set_size(4);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    b.append(&h, &b"base"[..]).expect("append");
    b.into_inner().expect("tar")
}

#[test]
fn a_layer_gone_under_a_deferred_pin_makes_the_build_start_again() {
    if !nix::unistd::geteuid().is_root() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "this test needs root"
        );
        eprintln!("SKIP: needs root");
        return;
    }
    let root = tempfile::Builder::new()
        .prefix("hako-test-stale-")
        .tempdir_in("/var/tmp")
        .expect("root");
    let exec = tempfile::Builder::new()
        .prefix("hkst")
        .tempdir_in("/tmp")
        .expect("exec root");
    let ctx = tempfile::tempdir().expect("context");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM hako-test/stale-base\nCOPY f /f\n",
    )
    .expect("Dockerfile");
    std::fs::write(ctx.path().join("f"), "copied\n").expect("f");
    let mut opts = EngineOptions::new(root.path());
    opts.exec_root = exec.path().to_path_buf();
    opts.driver = Some("vfs".into());
    let engine = Engine::open(opts).expect("open");
    let base = engine
        .images()
        .import(
            &mut Cursor::new(base_tar()),
            &ImportOptions {
                reference: Some("hako-test/stale-base".into()),
                ..Default::default()
            },
        )
        .expect("import");
    let base_top = engine
        .images()
        .image_top_layer(&base)
        .expect("top")
        .expect("a layer");
    let request = |tag: &str| BuildRequest {
        context: BuildContext::Dir(ctx.path().to_path_buf()),
        tags: vec![tag.to_string()],
        ..Default::default()
    };
    let first = hako_build::progress::Recorder::default();
    engine
        .build(request("hako-test/stale:1"), &first, &Cancel::new())
        .expect("first build");
    // The COPY's layer is now held by its cache entry only.
    engine
        .images()
        .remove("hako-test/stale:1", false)
        .expect("rmi");

    let p = Saboteur {
        engine: &engine,
        base_top: base_top.clone(),
        done: AtomicBool::new(false),
        events: std::sync::Mutex::default(),
    };
    let out = engine
        .build(request("hako-test/stale:2"), &p, &Cancel::new())
        .expect("the build recovers");
    assert!(p.done.load(Ordering::SeqCst), "the entry was replaced");
    let events = p.events.lock().expect("events");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Warning { message } if message.contains("building again"))),
        "{events:?}"
    );
    // Built again on the entry as it is now (the base's layer): every layer exists.
    let id = Digest::parse(&out.id).expect("id");
    assert_eq!(
        engine.images().image_top_layer(&id).expect("image"),
        Some(base_top)
    );
    drop(events);
    drop(engine);
}
