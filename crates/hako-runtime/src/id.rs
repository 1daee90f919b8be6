//! Container ids: the one piece of user input that becomes a path on the host.

use crate::error::{Error, Result};

/// Check an id the way runc does (`^[\w+-\.]+$`, and not `.`/`..`), so that
/// `<root>/<id>` can never leave the state root.
pub fn validate(id: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidId {
            id: id.to_owned(),
            reason,
        })
    };
    if id.is_empty() {
        return bad("it is empty");
    }
    if id == "." || id == ".." {
        return bad("it is a path component");
    }
    if id.len() > 1024 {
        return bad("it is longer than 1024 bytes");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
    {
        return bad("only letters, digits, '_', '+', '-' and '.' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_runc_style_ids() {
        for id in ["a", "abc-123", "x_y.z+1", "0123456789abcdef"] {
            validate(id).unwrap();
        }
    }

    #[test]
    fn rejects_paths_and_empty() {
        for id in ["", ".", "..", "../x", "a/b", "/abs", "a b", "é", "a\0b"] {
            assert!(validate(id).is_err(), "{id:?} should be rejected");
        }
    }
}
