use std::fs;
use std::os::unix::fs::MetadataExt;

use super::{cache_path, compile_cached_for};
use crate::compile::compile_for;
use crate::syscalls::Arch;
use crate::{Error, parse_profile};

const PROFILE: &str = r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
    "architectures":["SCMP_ARCH_X86_64"],
    "syscalls":[{"names":["read","write","exit_group"],"action":"SCMP_ACT_ALLOW"},
                {"names":["personality"],"action":"SCMP_ACT_ALLOW",
                 "args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}"#;

const ARCH: Arch = Arch::X86_64;

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn hit_returns_identical_filter_without_rewriting() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("seccomp"); // created on demand
    let profile = parse_profile(PROFILE).unwrap();
    let first = compile_cached_for(&profile, &cache, ARCH).unwrap();
    assert_eq!(first, compile_for(&profile, ARCH).unwrap());
    let path = cache_path(&profile, &cache, ARCH);
    assert!(
        path.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with(".bpf")
    );
    assert_eq!(path.file_stem().unwrap().len(), 64, "sha256 hex");
    let inode = fs::metadata(&path).unwrap().ino();

    let second = compile_cached_for(&profile, &cache, ARCH).unwrap();
    assert_eq!(first, second);
    assert_eq!(
        fs::metadata(&path).unwrap().ino(),
        inode,
        "a hit must not rewrite the file"
    );
    assert_eq!(files(&cache).len(), 1);
}

#[test]
fn a_hit_really_comes_from_the_file() {
    // Plant a valid file for profile A under profile B's key: B must then load A's program.
    let dir = tempfile::tempdir().unwrap();
    let a = parse_profile(PROFILE).unwrap();
    let b = parse_profile(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
    let a_filter = compile_cached_for(&a, dir.path(), ARCH).unwrap();
    let a_bytes = fs::read(cache_path(&a, dir.path(), ARCH)).unwrap();
    let b_key = super::cache_key(&b, ARCH).unwrap();
    let a_key = super::cache_key(&a, ARCH).unwrap();
    let mut forged = a_bytes[..a_bytes.len() - 32].to_vec();
    forged[8..40].copy_from_slice(&b_key);
    let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&forged).into();
    forged.extend_from_slice(&digest);
    fs::write(cache_path(&b, dir.path(), ARCH), &forged).unwrap();
    assert_ne!(a_key, b_key);
    assert_eq!(compile_cached_for(&b, dir.path(), ARCH).unwrap(), a_filter);
}

#[test]
fn key_ignores_field_order_but_not_content() {
    let dir = tempfile::tempdir().unwrap();
    let one = parse_profile(PROFILE).unwrap();
    let reordered = parse_profile(
        r#"{"syscalls":[{"action":"SCMP_ACT_ALLOW","names":["read","write","exit_group"]},
            {"args":[{"op":"SCMP_CMP_EQ","value":8,"index":0}],"action":"SCMP_ACT_ALLOW",
             "names":["personality"]}],
            "architectures":["SCMP_ARCH_X86_64"],"defaultErrnoRet":1,
            "defaultAction":"SCMP_ACT_ERRNO"}"#,
    )
    .unwrap();
    let other = parse_profile(&PROFILE.replace("\"value\":8", "\"value\":9")).unwrap();
    assert_eq!(
        cache_path(&one, dir.path(), ARCH),
        cache_path(&reordered, dir.path(), ARCH)
    );
    assert_ne!(
        cache_path(&one, dir.path(), ARCH),
        cache_path(&other, dir.path(), ARCH)
    );
    assert_ne!(
        cache_path(&one, dir.path(), Arch::X86_64),
        cache_path(&one, dir.path(), Arch::Aarch64)
    );
}

#[test]
fn truncated_or_corrupt_file_is_ignored_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let profile = parse_profile(PROFILE).unwrap();
    let good = compile_cached_for(&profile, dir.path(), ARCH).unwrap();
    let path = cache_path(&profile, dir.path(), ARCH);
    let intact = fs::read(&path).unwrap();

    let mut flipped = intact.clone();
    flipped[60] ^= 0x40; // inside the instructions: the checksum must catch it
    let damaged: [Vec<u8>; 5] = [
        intact[..intact.len() / 2].to_vec(),
        intact[..intact.len() - 1].to_vec(),
        Vec::new(),
        flipped,
        b"not a filter".to_vec(),
    ];
    for bytes in damaged {
        fs::write(&path, &bytes).unwrap();
        assert_eq!(
            compile_cached_for(&profile, dir.path(), ARCH).unwrap(),
            good
        );
        assert_eq!(
            fs::read(&path).unwrap(),
            intact,
            "damaged file must be rewritten"
        );
    }
}

#[test]
fn rewrite_is_atomic_rename_not_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let profile = parse_profile(PROFILE).unwrap();
    let path = cache_path(&profile, dir.path(), ARCH);
    fs::write(&path, b"torn").unwrap();
    let old = fs::File::open(&path).unwrap();
    let old_inode = old.metadata().unwrap().ino();

    compile_cached_for(&profile, dir.path(), ARCH).unwrap();

    // A reader holding the old file still sees the old bytes: the new content arrived by
    // rename(2) of a fully written temp file, never by truncating and rewriting in place.
    assert_eq!(std::io::read_to_string(&old).unwrap(), "torn");
    assert_ne!(fs::metadata(&path).unwrap().ino(), old_inode);
    // No temp files are left behind.
    assert_eq!(
        files(dir.path()),
        vec![path.file_name().unwrap().to_str().unwrap()]
    );
}

#[test]
fn unwritable_cache_dir_is_a_cache_error() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    fs::write(&not_a_dir, b"").unwrap();
    let profile = parse_profile(PROFILE).unwrap();
    let e = compile_cached_for(&profile, &not_a_dir, ARCH).unwrap_err();
    assert!(matches!(&e, Error::Cache { .. }), "{e:?}");
    assert!(
        e.to_string().contains("cannot write seccomp cache file"),
        "{e}"
    );
}

#[test]
fn invalid_profile_is_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let profile = parse_profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["opne"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    let e = compile_cached_for(&profile, dir.path(), ARCH).unwrap_err();
    assert!(matches!(e, Error::UnknownSyscall(_)));
    assert!(files(dir.path()).is_empty());
}
