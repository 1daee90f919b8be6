//! `image_spec`: registry and archive JSON documents (OCI/Docker manifests, indexes and
//! manifest lists, image configs), each input read as all three.
//!
//! Invariants: no panic; what parses is what hako promises (manifest digests and config
//! diff ids valid); written back (hako stores and pushes re-serialized documents) it parses
//! again to the same document; `Index::pick` finds, for each platform an index lists, an
//! entry of that platform, and for the host either an entry or a clear error.

use hako_image::Platform;
use hako_image::spec::{self, ImageConfig};
use serde::Serialize;
use serde_json::Value;

pub fn image_spec(data: &[u8]) {
    match spec::parse_manifest(data) {
        Ok(m) => {
            hako_image::Digest::parse(&m.config.digest)
                .expect("parse_manifest checked the config digest");
            let again = round_trip(&m, "manifest", |b| {
                spec::parse_manifest(b).map_err(|e| e.to_string())
            });
            assert_eq!(again.layers.len(), m.layers.len());
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    match spec::parse_index(data) {
        Ok(idx) => {
            round_trip(&idx, "index", |b| {
                spec::parse_index(b).map_err(|e| e.to_string())
            });
            match idx.pick(&Platform::host()) {
                Ok(d) => assert!(idx.manifests.contains(d)),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
            for p in idx.manifests.iter().filter_map(|d| d.platform.as_ref()) {
                let got = idx
                    .pick(p)
                    .unwrap_or_else(|e| panic!("the index lists {p} but picking it fails: {e}"));
                let gp = got
                    .platform
                    .as_ref()
                    .expect("picked an entry without platform");
                assert!(
                    gp.os == p.os && gp.architecture == p.architecture,
                    "picked {gp} for {p}"
                );
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    match ImageConfig::parse(data) {
        Ok(c) => {
            let ids = c
                .diff_ids()
                .expect("ImageConfig::parse checked the diff ids");
            assert_eq!(ids.len(), c.rootfs.diff_ids.len());
            round_trip(&c, "config", |b| {
                ImageConfig::parse(b).map_err(|e| e.to_string())
            });
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// Serializes `doc`, parses it with `parse`, and checks both give the same JSON.
fn round_trip<T: Serialize>(doc: &T, what: &str, parse: impl Fn(&[u8]) -> Result<T, String>) -> T {
    let bytes = serde_json::to_vec(doc)
        .unwrap_or_else(|e| panic!("a parsed {what} does not serialize: {e}"));
    let again = parse(&bytes).unwrap_or_else(|e| {
        panic!(
            "a parsed {what}, written back, does not parse: {e}\n{}",
            String::from_utf8_lossy(&bytes)
        )
    });
    let (a, b): (Value, Value) = (
        serde_json::to_value(doc).expect("serializes to a value"),
        serde_json::to_value(&again).expect("serializes to a value"),
    );
    assert_eq!(
        a, b,
        "a parsed {what}, written back, parses as another {what}"
    );
    again
}
