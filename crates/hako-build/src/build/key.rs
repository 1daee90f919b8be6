//! Cache keys. A step's key is the hash of its parent's key and a canonical description
//! of everything the step depends on; nothing else (not the time, not the instruction's
//! spelling beyond what it means, not a secret or a cache mount's contents).
//!
//! | step | inputs |
//! |---|---|
//! | FROM image | image id (config digest) |
//! | FROM scratch | constant |
//! | RUN | argv, env (proxies left out), user, cwd, network, security, mounts (bind: the content of what is mounted; cache: target and options, not the id or contents; secret: id and target, never the value), a heredoc script |
//! | COPY/ADD | the sources' content digest (names, types, modes, owners, sizes, links, xattrs, content; no mtimes), destination, --chown/--chmod/--link/--parents/--exclude, heredoc bodies, URL content |
//! | WORKDIR | path and USER (the owner of what it creates) |
//!
//! Build args reach a key only through what they change (the env of a RUN, an expanded
//! path): a changed ARG misses at its first use.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Bumped when the meaning of a key changes, so old entries are never trusted.
const VERSION: &str = "hako-build-cache-v1";

/// The key of a step on top of `parent`.
pub(crate) fn step(parent: &str, kind: &str, desc: &Value) -> String {
    let mut h = Sha256::new();
    h.update(VERSION.as_bytes());
    h.update(b"\n");
    h.update(parent.as_bytes());
    h.update(b"\n");
    h.update(kind.as_bytes());
    h.update(b"\n");
    h.update(serde_json::to_vec(desc).unwrap_or_default());
    format!("sha256:{:x}", h.finalize())
}

/// The key of a base image.
pub(crate) fn from_image(id: &str) -> String {
    step("", "from", &Value::String(id.to_string()))
}

/// The key of `FROM scratch`.
pub(crate) fn scratch() -> String {
    step("", "scratch", &Value::Null)
}

/// sha256 of bytes as `sha256:<hex>`.
pub(crate) fn bytes(b: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_depend_on_parent_kind_and_description_only() {
        let a = step("p", "run", &json!({"argv": ["a"]}));
        assert_eq!(a, step("p", "run", &json!({"argv": ["a"]})));
        assert_ne!(a, step("q", "run", &json!({"argv": ["a"]})));
        assert_ne!(a, step("p", "copy", &json!({"argv": ["a"]})));
        assert_ne!(a, step("p", "run", &json!({"argv": ["b"]})));
        assert_ne!(from_image("sha256:1"), from_image("sha256:2"));
        assert_ne!(scratch(), from_image(""));
    }
}
