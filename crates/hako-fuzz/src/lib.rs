//! The fuzz targets' bodies, one function per target, shared by the cargo-fuzz binaries
//! (`fuzz/fuzz_targets/*.rs`, nightly features through `RUSTC_BOOTSTRAP`) and by this
//! crate's test, which runs every input kept under `fuzz/corpus/<target>/` and
//! `fuzz/artifacts/<target>/` (crashes found and fixed) on the stable toolchain, so a
//! regression fails the ordinary test suite.
//!
//! ```text
//! target           what it feeds                                      beyond "no panic"
//! reference        image references (Docker's normalization)          print → parse round trip
//! image_json       manifests, indexes, image configs                  index platform pick
//! seccomp_profile  seccomp profiles (Docker's JSON)                   compile to BPF
//! runtime_config   OCI config.json                                    validation
//! layer_unpack     layer tars (plain, gzip, zstd), overlay whiteouts  nothing outside the layer
//! go_template      `--format` Go templates                            run on a sample
//! dockerfile       Dockerfiles                                        -
//! ```
//!
//! Every body returns quietly on bad input: what the fuzzer hunts is a panic, a hang, a
//! leak or a file written outside its place.

use hako_format as format;

use std::io::Read;

/// A target's body.
pub type Body = fn(&[u8]);

/// The targets by name, for the corpus test and `fuzz/`.
pub const TARGETS: &[(&str, Body)] = &[
    ("reference", reference),
    ("image_json", image_json),
    ("seccomp_profile", seccomp_profile),
    ("runtime_config", runtime_config),
    ("layer_unpack", layer_unpack),
    ("go_template", go_template),
    ("dockerfile", dockerfile),
];

/// Image references: whatever parses prints as something that parses to the same.
pub fn reference(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(r) = hako_image::Reference::parse(s) else {
        return;
    };
    let printed = r.to_string();
    let again = hako_image::Reference::parse(&printed)
        .unwrap_or_else(|e| panic!("{s:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(again.to_string(), printed, "round trip of {s:?}");
    let _ = r.familiar();
    let _ = r.with_default_tag().to_string();
}

/// Manifests, indexes and configs as a registry or an archive would hand them over.
pub fn image_json(data: &[u8]) {
    let _ = hako_image::spec::parse_manifest(data);
    let _ = hako_image::spec::ImageConfig::parse(data);
    if let Ok(index) = hako_image::spec::parse_index(data) {
        let _ = index.pick(&hako_image::Platform::host());
    }
}

/// Seccomp profiles: parsed, and compiled to BPF when they parse.
pub fn seccomp_profile(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = hako_seccomp::parse_profile(s) {
        let _ = hako_seccomp::compile(&p);
    }
}

/// OCI runtime configs: parsed and validated as `create` does (nothing is made).
pub fn runtime_config(data: &[u8]) {
    let Ok(spec) = serde_json::from_slice::<oci_spec::runtime::Spec>(data) else {
        return;
    };
    let _ = hako_runtime::config::Config::from_spec(spec, "/nonexistent-fuzz-bundle".into());
}

/// Layer tars into a fresh directory: whatever they say, nothing appears beside it.
pub fn layer_unpack(data: &[u8]) {
    let Ok(outer) = tempfile::Builder::new().prefix("hako-fuzz-").tempdir() else {
        return;
    };
    let dest = outer.path().join("layer");
    if std::fs::create_dir(&dest).is_err() {
        return;
    }
    let mut input = std::io::BufReader::new(data);
    let stream: Box<dyn Read> = match hako_storage::unpack::detect_compression(&mut input)
        .and_then(|c| hako_storage::unpack::decoder(Box::new(input), c))
    {
        Ok(s) => s,
        Err(_) => return,
    };
    let mut stream = stream.take(64 << 20);
    let _ = hako_storage::unpack::apply(&mut stream, &dest, hako_storage::WhiteoutMode::Overlay);
    let beside: Vec<_> = std::fs::read_dir(outer.path())
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(
        beside,
        vec![std::ffi::OsString::from("layer")],
        "the layer wrote beside its directory"
    );
}

/// `--format` templates: parsed, and run on a sample row when they parse.
pub fn go_template(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(t) = format::Template::parse(s) else {
        return;
    };
    let sample = serde_json::json!({
        "ID": "0123456789ab", "Names": "web", "Image": "busybox", "Labels": {"a": "b"},
        "Ports": [{"PrivatePort": 80, "Type": "tcp"}], "Size": 1234, "State": "running",
        "Config": {"Env": ["A=1"], "Cmd": ["sh", "-c", "x"]}, "Nested": [[1, 2], [3]],
    });
    let _ = t.execute(&sample);
}

/// Dockerfiles: parsed with directives, continuations and heredocs.
pub fn dockerfile(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = hako_build::parser::parse(s);
}
