//! The bodies of hako's fuzz targets.
//!
//! Each target takes untrusted bytes the way hako receives them (a layer tar from a
//! registry, a bundle's `config.json`, a seccomp profile, a manifest, an image reference, a
//! `--format` template, a Dockerfile, a request to `hako serve`) and checks an invariant stronger than "does not
//! crash": nothing written outside the layer directory, a compiled seccomp filter that
//! decides what the profile says, references and documents that survive a round trip.
//! A broken invariant is a panic.
//!
//! ```text
//!  fuzz/fuzz_targets/NAME.rs  (cargo-fuzz, libFuzzer)  ─┐
//!                                                        ├─► hako_fuzz::targets::NAME(&[u8])
//!  tests/corpus.rs  (cargo nextest, stable)  ────────────┘
//!     replays fuzz/{seeds,corpus,regressions}/NAME/*
//! ```
//!
//! The fuzz crate in `fuzz/` is its own workspace (libFuzzer and coverage flags would
//! otherwise rebuild everything); this crate is a member of the main one, so the replay runs
//! in every `scripts/test.sh` and a regression fails CI. `fuzz/README.md` says how to fuzz.

mod sandbox;
mod scratch;
pub mod targets;

use std::path::{Path, PathBuf};

/// One fuzz target: the name of its cargo-fuzz binary and corpus directories, and its body.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// `fuzz/fuzz_targets/<name>.rs`, `fuzz/{seeds,corpus,regressions}/<name>/`.
    pub name: &'static str,
    /// Runs one input; panics when an invariant is broken.
    pub run: fn(&[u8]),
}

/// Every target, in the order of `fuzz/Cargo.toml`.
pub const TARGETS: &[Target] = &[
    Target {
        name: "tar_unpack",
        run: targets::tar_unpack,
    },
    Target {
        name: "runtime_config",
        run: targets::runtime_config,
    },
    Target {
        name: "seccomp_profile",
        run: targets::seccomp_profile,
    },
    Target {
        name: "image_spec",
        run: targets::image_spec,
    },
    Target {
        name: "image_reference",
        run: targets::image_reference,
    },
    Target {
        name: "go_template",
        run: targets::go_template,
    },
    Target {
        name: "dockerfile",
        run: targets::dockerfile,
    },
    Target {
        name: "api_request",
        run: targets::api_request,
    },
];

/// The repository's `fuzz/` directory.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The inputs kept for `name`: hand-made seeds (`fuzz/seeds/NAME`, readable, never
/// minimized), the corpus the fuzzers grew (`fuzz/corpus/NAME`, minimized by
/// `fuzz/run.sh merge`) and the regressions (inputs that once broke an invariant).
pub fn inputs(name: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for kind in ["seeds", "corpus", "regressions"] {
        let dir = fuzz_dir().join(kind).join(name);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && kind != "seeds" => continue,
            Err(e) => return Err(e),
        };
        let mut files = entries
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<Vec<_>>>()?;
        files.retain(|p| p.is_file());
        files.sort();
        out.extend(files);
    }
    Ok(out)
}
