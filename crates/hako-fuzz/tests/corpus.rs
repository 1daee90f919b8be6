//! Every input kept for a fuzz target (`fuzz/corpus/<target>/`, the seeds and what fuzzing
//! found interesting; `fuzz/artifacts/<target>/`, crashes found and fixed) runs through
//! the target's body on the stable toolchain: a regression fails here, without a fuzzer.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(target: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for kind in ["corpus", "artifacts"] {
        let dir = fuzz_dir().join(kind).join(target);
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_file()) {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_kept_input_runs_clean() {
    let mut total = 0;
    for (name, body) in hako_fuzz::TARGETS {
        let files = inputs(name);
        assert!(
            !files.is_empty(),
            "fuzz/corpus/{name}/ has no seeds: a target without inputs tests nothing"
        );
        for f in &files {
            let data = std::fs::read(f).expect("read input");
            let r = std::panic::catch_unwind(|| body(&data));
            assert!(r.is_ok(), "{name}: {} panics", f.display());
        }
        total += files.len();
        eprintln!("{name}: {} inputs", files.len());
    }
    assert!(total > 0);
}
