//! A content-addressed cache of compiled filters: `<cache_dir>/<sha256>.bpf`.
//!
//! Why: a container start compiles the same Docker profile every time; reading ~14 KiB back is
//! far cheaper than resolving and linking ~350 syscalls (see `examples/compile_default.rs`).
//!
//! The key hashes everything the output depends on: the profile as canonical JSON (serialized
//! from the typed profile, so field order in config.json does not matter), the target arch,
//! this crate's version and the file format version. A file is trusted only if its magic, embedded key,
//! length and trailing SHA-256 all check out; anything else (truncated, torn, foreign) is a
//! miss and is rewritten. Writes go to a unique temp file in the same directory and are
//! renamed over the final name, so readers see the old file or the new one, never a mix.
//! No fsync: after a crash a torn file fails the checksum and is simply recompiled.
//!
//! File layout (little-endian):
//! `magic[8] key[32] flags:u32 wants_listener:u32 count:u32 (code:u16 jt:u8 jf:u8 k:u32)*count
//! sha256(everything before)[32]`

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use crate::compile::compile_for;
use crate::program::MAX_INSTRUCTIONS;
use crate::syscalls::Arch;
use crate::{CompiledFilter, Error};

const MAGIC: &[u8; 8] = b"HAKOBPF\x01";
const HEADER_LEN: usize = 8 + 32 + 4 + 4 + 4;
const DIGEST_LEN: usize = 32;

/// [`crate::compile`], remembered in `cache_dir` (created if missing).
///
/// A corrupt, truncated or foreign cache file is ignored and replaced. An error means the
/// profile is invalid or the cache file could not be written ([`Error::Cache`]); callers that
/// treat the cache as optional can fall back to [`crate::compile`].
pub fn compile_cached(profile: &LinuxSeccomp, cache_dir: &Path) -> Result<CompiledFilter, Error> {
    compile_cached_for(profile, cache_dir, Arch::native()?)
}

pub(crate) fn compile_cached_for(
    profile: &LinuxSeccomp,
    cache_dir: &Path,
    arch: Arch,
) -> Result<CompiledFilter, Error> {
    let key = cache_key(profile, arch)?;
    let path = cache_dir.join(format!("{}.bpf", hex(&key)));
    // Any read failure (missing, unreadable, a directory) is a miss; the write reports real
    // problems with the cache directory.
    if let Some(hit) = fs::read(&path).ok().and_then(|bytes| decode(&bytes, &key)) {
        return Ok(hit);
    }
    let filter = compile_for(profile, arch)?;
    write_atomically(cache_dir, &path, &encode(&filter, &key))?;
    Ok(filter)
}

/// The path a profile is cached under (tests check the file itself).
#[cfg(test)]
pub(crate) fn cache_path(
    profile: &LinuxSeccomp,
    cache_dir: &Path,
    arch: Arch,
) -> std::path::PathBuf {
    let key = cache_key(profile, arch).expect("profile serializes");
    cache_dir.join(format!("{}.bpf", hex(&key)))
}

fn cache_key(profile: &LinuxSeccomp, arch: Arch) -> Result<[u8; 32], Error> {
    let mut hash = HashWriter(Sha256::new());
    for part in [
        "hako-seccomp",
        env!("CARGO_PKG_VERSION"),
        crate::program::LAYOUT,
        arch.name(),
    ] {
        hash.0.update(part.as_bytes());
        hash.0.update([0]);
    }
    hash.0.update(MAGIC);
    // Serializing the typed profile is canonical already: oci-spec's types are structs and
    // vectors (no maps), so fields come out in declaration order whatever order config.json
    // used, and absent options are skipped. Streaming into the hash avoids building the text.
    serde_json::to_writer(&mut hash, profile).map_err(Error::Json)?;
    Ok(hash.0.finalize().into())
}

/// `io::Write` into a running SHA-256.
struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn encode(filter: &CompiledFilter, key: &[u8; 32]) -> Vec<u8> {
    let count = u32::try_from(filter.instructions.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + filter.instructions.len() * 8 + DIGEST_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(key);
    out.extend_from_slice(&filter.flags.to_le_bytes());
    out.extend_from_slice(&u32::from(filter.wants_listener).to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    for i in &filter.instructions {
        out.extend_from_slice(&i.code.to_le_bytes());
        out.extend_from_slice(&[i.jt, i.jf]);
        out.extend_from_slice(&i.k.to_le_bytes());
    }
    let digest: [u8; DIGEST_LEN] = Sha256::digest(&out).into();
    out.extend_from_slice(&digest);
    out
}

/// `None` unless `bytes` is exactly a well-formed, intact file for `key`.
fn decode(bytes: &[u8], key: &[u8; 32]) -> Option<CompiledFilter> {
    let body_len = bytes.len().checked_sub(DIGEST_LEN)?;
    let (body, digest) = bytes.split_at(body_len);
    if body.len() < HEADER_LEN || Sha256::digest(body).as_slice() != digest {
        return None;
    }
    let u32_at = |at: usize| Some(u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?));
    if &body[..8] != MAGIC || &body[8..40] != key {
        return None;
    }
    let flags = u32_at(40)?;
    let wants_listener = match u32_at(44)? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let count = usize::try_from(u32_at(48)?).ok()?;
    if count == 0 || count > MAX_INSTRUCTIONS || body.len() != HEADER_LEN + count * 8 {
        return None;
    }
    let instructions = body[HEADER_LEN..]
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    Some(CompiledFilter {
        instructions,
        flags,
        wants_listener,
    })
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), Error> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let cache_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Cache { path, source }
    };
    fs::create_dir_all(dir).map_err(cache_err(dir))?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("filter.bpf");
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(cache_err(path))
}

#[cfg(test)]
mod tests;
