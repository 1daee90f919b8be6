//! Every fuzz target over its checked-in seeds, corpus and regressions, on the stable toolchain:
//! what the fuzzers once found stays fixed. One test per target, so a failure names it; the
//! failing input's file is in the message (`cargo fuzz run NAME FILE` replays it under
//! libFuzzer, see fuzz/README.md).

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hako_fuzz::{TARGETS, Target, fuzz_dir, inputs};

/// More than any input needs on a loaded CI machine; a hang is what this catches.
const PER_INPUT: Duration = Duration::from_secs(20);

fn target(name: &str) -> Target {
    *TARGETS
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no target {name}"))
}

/// Runs every input of `name` in a worker thread, each with a time limit.
fn replay(name: &str) {
    let t = target(name);
    let files = inputs(name).unwrap_or_else(|e| panic!("read the corpus of {name}: {e}"));
    assert!(!files.is_empty(), "{name}: no inputs");
    let start = Instant::now();
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let (done, wait) = mpsc::channel();
        let shown = file.display().to_string();
        std::thread::Builder::new()
            .name(format!("{name}-input"))
            .spawn(move || {
                let r = std::panic::catch_unwind(|| (t.run)(&data));
                let _ = done.send(r.is_ok());
            })
            .expect("start a worker thread");
        match wait.recv_timeout(PER_INPUT) {
            Ok(true) => {}
            Ok(false) => panic!("{name}: {shown} breaks an invariant (the panic is above)"),
            Err(_) => panic!("{name}: {shown} did not finish within {PER_INPUT:?}"),
        }
    }
    eprintln!("{name}: {} inputs in {:?}", files.len(), start.elapsed());
}

#[test]
fn tar_unpack() {
    replay("tar_unpack");
}

#[test]
fn runtime_config() {
    replay("runtime_config");
}

#[test]
fn seccomp_profile() {
    replay("seccomp_profile");
}

#[test]
fn image_spec() {
    replay("image_spec");
}

#[test]
fn image_reference() {
    replay("image_reference");
}

#[test]
fn go_template() {
    replay("go_template");
}

#[test]
fn dockerfile() {
    replay("dockerfile");
}

#[test]
fn api_request() {
    replay("api_request");
}

/// The pieces that must agree: a target here, a cargo-fuzz binary calling it, seeds.
#[test]
fn every_target_has_a_binary_seeds_and_a_replay_test() {
    let fuzz = fuzz_dir();
    let manifest = read(&fuzz.join("Cargo.toml"));
    let this = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus.rs"))
        .expect("tests/corpus.rs");
    for t in TARGETS {
        let bin = fuzz.join("fuzz_targets").join(format!("{}.rs", t.name));
        let body = read(&bin).unwrap_or_else(|| panic!("{}: no {}", t.name, bin.display()));
        assert!(
            body.contains(&format!("hako_fuzz::targets::{}(", t.name)),
            "{} does not call hako_fuzz::targets::{}",
            bin.display(),
            t.name
        );
        let manifest = manifest.as_deref().expect("fuzz/Cargo.toml");
        assert!(
            manifest.contains(&format!("name = \"{}\"", t.name)),
            "fuzz/Cargo.toml has no [[bin]] {}",
            t.name
        );
        assert!(
            this.contains(&format!("replay(\"{}\")", t.name)),
            "tests/corpus.rs has no replay test for {}",
            t.name
        );
        assert!(
            !inputs(t.name).unwrap_or_default().is_empty(),
            "{}: empty corpus",
            t.name
        );
    }
    for kind in ["seeds", "corpus", "regressions"] {
        for dir in std::fs::read_dir(fuzz.join(kind))
            .into_iter()
            .flatten()
            .flatten()
        {
            if !dir.path().is_dir() {
                continue; // seeds/tar_unpack.py, the generator of the tar seeds
            }
            let name = dir.file_name().to_string_lossy().into_owned();
            assert!(
                TARGETS.iter().any(|t| t.name == name),
                "fuzz/{kind}/{name} belongs to no target"
            );
        }
    }
}

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}
