//! `runtime_config`: a bundle's `config.json`, read and validated by hako-runtime
//! (`Config::load`), then the checks `create` makes before any namespace exists
//! (capabilities, mount options, the seccomp filter).
//!
//! Invariants: no panic; a config that loads is what the validation promises (args, an
//! absolute cwd, absolute mount destinations, devices under /dev, each namespace once);
//! written back as JSON it reads as the same spec and loads again (hako-engine writes
//! `config.json` with serde and hako-runtime reads it back: the round trip is the contract).

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use hako_runtime::config::Config;
use hako_runtime::process::security::CapPlan;
use hako_runtime::rootfs::options::Options;
use oci_spec::runtime::Spec;

use crate::scratch;

/// A bundle directory with a `rootfs/`; each input becomes its `config.json`.
fn bundle() -> &'static PathBuf {
    static BUNDLE: OnceLock<PathBuf> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let dir = scratch::dir("config");
        fs::create_dir(dir.join("rootfs")).expect("create the bundle's rootfs");
        dir
    })
}

pub fn runtime_config(data: &[u8]) {
    let bundle = bundle();
    fs::write(bundle.join("config.json"), data).expect("write config.json");
    let cfg = match Config::load(bundle) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let spec = &cfg.spec;
    assert!(
        cfg.rootfs.is_dir(),
        "loaded with a rootfs that is not a directory"
    );
    let process = spec.process().as_ref().expect("loaded without process");
    assert!(
        process.args().as_ref().is_some_and(|a| !a.is_empty()),
        "loaded without process.args"
    );
    assert!(process.cwd().is_absolute(), "loaded with a relative cwd");
    let linux = spec.linux().as_ref().expect("loaded without linux");
    let mut seen = HashSet::new();
    for ns in linux.namespaces().iter().flatten() {
        assert!(
            seen.insert(ns.typ()),
            "loaded with namespace {} twice",
            ns.typ()
        );
    }
    for m in spec.mounts().iter().flatten() {
        assert!(
            m.destination().is_absolute(),
            "loaded with a relative mount destination"
        );
        let _ = Options::parse(m.options().as_deref().unwrap_or_default()).data();
    }
    for d in linux.devices().iter().flatten() {
        assert!(
            d.path().starts_with("/dev"),
            "loaded with a device outside /dev"
        );
    }

    let json = serde_json::to_vec(spec).expect("a loaded spec serializes");
    let again: Spec = serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "a loaded spec, written back, does not parse: {e}\n{}",
            String::from_utf8_lossy(&json)
        )
    });
    assert!(
        &again == spec,
        "a loaded spec, written back, reads as another spec"
    );
    if let Err(e) = Config::from_spec(again, bundle.clone()) {
        panic!("a loaded spec, written back, no longer validates: {e}");
    }

    if let Err(e) = CapPlan::new(process.capabilities().as_ref()) {
        assert!(!e.to_string().is_empty());
    }
    if let Some(profile) = linux.seccomp() {
        match hako_seccomp::compile(profile) {
            Ok(f) => assert!(!f.instructions().is_empty()),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}
