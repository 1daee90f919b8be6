//! The build cache on a real store (as root, overlay mounts): build containers on layer
//! chains, step layers committed with their cache entry, images made from chains, and
//! the references that keep layers alive until `builder prune`.

use std::io::Cursor;

use hako_image::{BuildCacheEntry, Digest, ImageStore, ImportOptions};

mod common;

use common::Root;

fn base(store: &ImageStore) -> Digest {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path("etc/base").unwrap();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    b.append(&h, &b"base"[..]).unwrap();
    let data = b.into_inner().unwrap();
    store
        .import(
            &mut Cursor::new(data),
            &ImportOptions {
                reference: Some("hako-test/bc-base".into()),
                ..Default::default()
            },
        )
        .unwrap()
}

fn config(diff_ids: &[Digest]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
    }))
    .unwrap()
}

#[test]
fn steps_images_references_and_prune() {
    let root = Root::new("hako-test-bc-");
    let store = ImageStore::open(root.path()).unwrap();
    let base_id = base(&store);
    let top = store.image_top_layer(&base_id).unwrap();
    assert!(top.is_some());

    // A step that writes a file gives a layer and an entry, in one go.
    let m = store
        .prepare_rootfs_on_chain(top.as_ref(), "hako-test-bc-1")
        .unwrap();
    assert!(m.rootfs.join("etc/base").exists());
    std::fs::write(m.rootfs.join("etc/new"), "new").unwrap();
    let e1 = store
        .build_commit("hako-test-bc-1", top.as_ref(), "k1")
        .unwrap();
    store.release_rootfs("hako-test-bc-1").unwrap();
    assert!(!e1.empty);
    assert_ne!(e1.top_layer, top);
    assert_eq!(store.build_cache_get("k1").unwrap(), Some(e1.clone()));
    assert_eq!(store.build_cache_get("nope").unwrap(), None);
    let ids = store.chain_diff_ids(e1.top_layer.as_ref()).unwrap();
    assert_eq!(ids.len(), 2);

    // A step that changes nothing gives an empty entry on the parent.
    let m = store
        .prepare_rootfs_on_chain(e1.top_layer.as_ref(), "hako-test-bc-2")
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(m.rootfs.join("etc/new")).unwrap(),
        "new"
    );
    let e2 = store
        .build_commit("hako-test-bc-2", e1.top_layer.as_ref(), "k2")
        .unwrap();
    store.release_rootfs("hako-test-bc-2").unwrap();
    assert!(e2.empty);
    assert_eq!(e2.top_layer, e1.top_layer);

    // An image from the chain; a config that lies about its layers is refused.
    assert!(
        store
            .create_image(&config(&ids[..1]), e1.top_layer.as_ref(), &[])
            .is_err()
    );
    let img = store
        .create_image(
            &config(&ids),
            e1.top_layer.as_ref(),
            &["hako-test/bc-out:1".into()],
        )
        .unwrap();
    assert_eq!(store.resolve("hako-test/bc-out:1").unwrap(), img);

    // Removing the base image keeps what the cache and the new image use.
    store.remove("hako-test/bc-base", false).unwrap();
    let usage = store.build_cache_usage().unwrap();
    assert_eq!(usage.entries, 2);
    assert!(usage.size > 0);
    assert_eq!(
        usage.reclaimable, 0,
        "the built image uses the cached layer"
    );
    store.remove("hako-test/bc-out:1", false).unwrap();
    let m = store
        .prepare_rootfs_on_chain(e1.top_layer.as_ref(), "hako-test-bc-3")
        .unwrap();
    assert!(
        m.rootfs.join("etc/base").exists(),
        "the cache still holds the base layers"
    );
    store.release_rootfs("hako-test-bc-3").unwrap();
    assert!(store.build_cache_usage().unwrap().reclaimable > 0);

    // The same result recorded again keeps the first entry (and its time)...
    let again = store
        .build_cache_put(
            "k1",
            &BuildCacheEntry {
                top_layer: e1.top_layer.clone(),
                created: "later".into(),
                empty: false,
            },
        )
        .unwrap();
    assert_eq!(again, e1);
    assert_eq!(store.build_cache_get("k1").unwrap(), Some(e1.clone()));
    // ...another result (a --no-cache rebuild) replaces it.
    let m = store
        .prepare_rootfs_on_chain(top.as_ref(), "hako-test-bc-4")
        .unwrap();
    std::fs::write(m.rootfs.join("etc/new"), "other").unwrap();
    let e1b = store
        .build_commit("hako-test-bc-4", top.as_ref(), "k1")
        .unwrap();
    store.release_rootfs("hako-test-bc-4").unwrap();
    assert_ne!(e1b.top_layer, e1.top_layer);
    assert_eq!(store.build_cache_get("k1").unwrap(), Some(e1b.clone()));
    // k2 still holds e1's layer.
    let m = store
        .prepare_rootfs_on_chain(e1.top_layer.as_ref(), "hako-test-bc-5")
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(m.rootfs.join("etc/new")).unwrap(),
        "new"
    );
    store.release_rootfs("hako-test-bc-5").unwrap();

    let r = store.build_cache_prune(None).unwrap();
    assert_eq!(r.entries, 2);
    assert_eq!(r.layers_removed, 3, "both step layers and the base layer");
    assert!(r.space_reclaimed > 0);
    assert_eq!(store.build_cache_usage().unwrap().entries, 0);
    let report = store.prune(true).unwrap();
    assert_eq!(report.layers_removed, 0);
    let left: Vec<_> = std::fs::read_dir(root.path().join("overlay2"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "l")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn prune_by_age_keeps_recent_entries() {
    let root = Root::new("hako-test-bc-age-");
    let store = ImageStore::open(root.path()).unwrap();
    let base_id = base(&store);
    let top = store.image_top_layer(&base_id).unwrap();
    store
        .build_cache_put(
            "recent",
            &BuildCacheEntry {
                top_layer: top.clone(),
                created: "2026-01-01T00:00:00Z".into(),
                empty: true,
            },
        )
        .unwrap();
    let r = store.build_cache_prune(Some(3600)).unwrap();
    assert_eq!(r.entries, 0);
    assert!(store.build_cache_get("recent").unwrap().is_some());
    let r = store.build_cache_prune(None).unwrap();
    assert_eq!(r.entries, 1);
    assert_eq!(r.layers_removed, 0, "the base image still uses its layer");
}

#[test]
fn a_layer_of_its_own_is_stacked_on_any_parent() {
    let root = Root::new("hako-test-bcs-");
    let store = ImageStore::open(root.path()).unwrap();
    let base_id = base(&store);
    let top = store.image_top_layer(&base_id).unwrap();
    // Two parents: the base, and the base plus a layer.
    let m = store
        .prepare_rootfs_on_chain(top.as_ref(), "hako-test-bcs-1")
        .unwrap();
    std::fs::write(m.rootfs.join("etc/other"), "other").unwrap();
    let p2 = store
        .build_commit("hako-test-bcs-1", top.as_ref(), "parent2")
        .unwrap();
    store.release_rootfs("hako-test-bcs-1").unwrap();
    // COPY --link's files: committed on nothing, under a key of their own.
    let m = store
        .prepare_rootfs_on_chain(None, "hako-test-bcs-2")
        .unwrap();
    std::fs::create_dir(m.rootfs.join("app")).unwrap();
    std::fs::write(m.rootfs.join("app/linked"), "linked").unwrap();
    let own = store.build_commit("hako-test-bcs-2", None, "own").unwrap();
    store.release_rootfs("hako-test-bcs-2").unwrap();
    let own_top = own.top_layer.clone().expect("a layer");
    assert_eq!(store.chain_diff_ids(Some(&own_top)).unwrap().len(), 1);
    // Stacked on each parent: the same diff id on top of each parent's chain.
    let on1 = store
        .build_stack(&own_top, top.as_ref(), "on1", &own.created)
        .unwrap();
    let on2 = store
        .build_stack(&own_top, p2.top_layer.as_ref(), "on2", &own.created)
        .unwrap();
    assert_eq!(on1.created, own.created);
    let d1 = store.chain_diff_ids(on1.top_layer.as_ref()).unwrap();
    let d2 = store.chain_diff_ids(on2.top_layer.as_ref()).unwrap();
    let own_diff = store.chain_diff_ids(Some(&own_top)).unwrap();
    assert_eq!(d1.len(), 2);
    assert_eq!(d2.len(), 3);
    assert_eq!(d1[1], own_diff[0]);
    assert_eq!(d2[2], own_diff[0]);
    assert_ne!(on1.top_layer, on2.top_layer);
    // The stacked layer holds the files on the parent's.
    let m = store
        .prepare_rootfs_on_chain(on2.top_layer.as_ref(), "hako-test-bcs-3")
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(m.rootfs.join("app/linked")).unwrap(),
        "linked"
    );
    assert_eq!(
        std::fs::read_to_string(m.rootfs.join("etc/other")).unwrap(),
        "other"
    );
    store.release_rootfs("hako-test-bcs-3").unwrap();
    // A chain of more than one layer is not a layer of its own.
    assert!(
        store
            .build_stack(on1.top_layer.as_ref().unwrap(), None, "bad", &own.created)
            .is_err()
    );
    // Prune frees them all; the base image keeps its layer.
    let report = store.build_cache_prune(None).unwrap();
    assert_eq!(report.entries, 4);
    assert_eq!(store.build_cache_usage().unwrap().entries, 0);
    assert!(store.image_top_layer(&base_id).unwrap().is_some());
}

#[test]
fn hits_are_journaled_and_folded_once_and_deferred_pins_are_all_or_none() {
    let root = Root::new("hako-test-bcu-");
    let store = ImageStore::open(root.path()).unwrap();
    let base_id = base(&store);
    let top = store.image_top_layer(&base_id).unwrap();
    let entry = BuildCacheEntry {
        top_layer: top.clone(),
        created: "2026-01-01T00:00:00Z".into(),
        empty: true,
    };
    store.build_cache_put("e", &entry).unwrap();
    let db = rusqlite::Connection::open(root.path().join("hako-image.db")).unwrap();
    // Last used long ago: a prune by age would take it, were the new hit not counted.
    db.execute("UPDATE build_cache SET last_used = 0 WHERE key = 'e'", [])
        .unwrap();
    let record = |store: &ImageStore| {
        let r = store.build_cache_records().unwrap();
        assert_eq!(r.len(), 1);
        (r[0].uses, r[0].last_used)
    };
    assert_eq!(record(&store), (1, 0));
    // A hit is a line in the journal, not a write to the database.
    store.build_cache_note_uses(&["e".into()]);
    let journal = root.path().join("build-uses");
    assert!(journal.exists());
    let (uses, last) = record(&store);
    assert_eq!(uses, 2);
    assert!(last > 1_700_000_000);
    // A prune folds it in first: the entry is recent, kept; counted once.
    assert_eq!(store.build_cache_prune(Some(3600)).unwrap().entries, 0);
    assert!(!journal.exists());
    assert_eq!(record(&store).0, 2);
    // A fold that died after its commit left its journal: not counted again. One that died
    // before its commit: counted once.
    db.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('build_uses_folded', 'done1')",
        [],
    )
    .unwrap();
    std::fs::write(root.path().join("build-uses.done1"), "100 e\n").unwrap();
    std::fs::write(root.path().join("build-uses.half2"), "100 e\n").unwrap();
    assert_eq!(record(&store).0, 3);
    assert_eq!(store.build_cache_prune(Some(3600)).unwrap().entries, 0);
    assert_eq!(record(&store).0, 3);
    for n in ["build-uses.done1", "build-uses.half2"] {
        assert!(!root.path().join(n).exists(), "{n}");
    }

    // An image already there under its tags: a rebuild has nothing to write.
    let ids = store.chain_diff_ids(top.as_ref()).unwrap();
    let cfg = config(&ids);
    let tag = ["hako-test/bcu-out:1".to_string()];
    assert_eq!(store.image_in_place(&cfg, &tag).unwrap(), None);
    let img = store.create_image(&cfg, top.as_ref(), &tag).unwrap();
    assert_eq!(store.image_in_place(&cfg, &tag).unwrap(), Some(img.clone()));
    assert_eq!(store.image_in_place(&cfg, &[]).unwrap(), Some(img));
    assert_eq!(
        store
            .image_in_place(&cfg, &["hako-test/bcu-out:2".into()])
            .unwrap(),
        None,
        "a new tag is a write"
    );
    assert_eq!(store.image_in_place(&config(&[]), &[]).unwrap(), None);

    // Deferred pins: all in one transaction, or none when one layer is gone.
    let pins = || -> i64 {
        db.query_row("SELECT COUNT(*) FROM layer_pins", [], |r| r.get(0))
            .unwrap()
    };
    let top = top.unwrap();
    let gone = Digest::of(b"no such layer");
    let flight = store.begin_flight("tst").unwrap();
    assert_eq!(
        flight.pin_layers(&[top.clone(), gone.clone()]).unwrap(),
        Some(gone)
    );
    assert_eq!(pins(), 0);
    assert_eq!(flight.pin_layers(&[top]).unwrap(), None);
    assert_eq!(pins(), 1);
    flight.complete();
    assert_eq!(pins(), 0);
}
