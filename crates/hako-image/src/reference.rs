//! Image references as Docker parses them: `busybox`, `busybox:1.36`,
//! `localhost:5000/x/y:tag`, `name@sha256:...`, normalized to
//! `docker.io/library/busybox:latest`.

use std::fmt;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// Docker Hub's canonical domain.
pub const DEFAULT_DOMAIN: &str = "docker.io";

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

fn invalid(reference: &str, reason: &'static str) -> Error {
    Error::InvalidReference {
        reference: reference.to_string(),
        reason,
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: ".", "_", "__" or a run of "-", followed by alnum.
        let start = i;
        if b[i] == b'-' {
            while i < b.len() && b[i] == b'-' {
                i += 1;
            }
        } else if b[i] == b'_' && b.get(i + 1) == Some(&b'_') {
            i += 2;
        } else if b[i] == b'.' || b[i] == b'_' {
            i += 1;
        } else {
            return false;
        }
        if i == start || i >= b.len() || !is_alnum(b[i]) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_domain(d: &str) -> bool {
    // `[::1]` has no port (its last `:` is inside the brackets); `[::1]:5000` has one.
    let (host, port) = match d.rsplit_once(':') {
        _ if d.ends_with(']') => (d, None),
        Some((h, p)) if !h.starts_with('[') || h.ends_with(']') => (h, Some(p)),
        _ => (d, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    if host.starts_with('[') && host.ends_with(']') {
        return host[1..host.len() - 1]
            .bytes()
            .all(|c| c.is_ascii_hexdigit() || c == b':');
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

impl Reference {
    /// Parses and normalizes a reference the way `docker pull`/`docker tag` do. A missing
    /// tag is *not* filled in; see [`Reference::with_default_tag`].
    pub fn parse(s: &str) -> Result<Reference> {
        if s.is_empty() {
            return Err(invalid(s, "empty reference"));
        }
        // Name, `:` tag, `@sha256:` digest at their longest.
        if s.len() > 255 + 1 + 128 + 1 + 71 {
            return Err(invalid(s, "reference too long"));
        }
        // An image id is never a name (Docker refuses it too, to keep the two apart).
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid(s, "cannot specify 64-byte hexadecimal strings"));
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (
                n,
                Some(Digest::parse(d).map_err(|_| invalid(s, "bad digest"))?),
            ),
            None => (s, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &name[last_slash + i + 1..];
                if !valid_tag(tag) {
                    return Err(invalid(s, "bad tag"));
                }
                (&name[..last_slash + i], Some(tag.to_string()))
            }
            None => (name, None),
        };
        let (domain, path) = match name.split_once('/') {
            // Docker's splitDockerDomain: an uppercase first part is a host too (`Foo/bar`).
            Some((first, rest))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.bytes().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        if !valid_domain(&domain) {
            return Err(invalid(s, "bad registry host"));
        }
        let domain = if domain == "index.docker.io" || domain == "registry-1.docker.io" {
            DEFAULT_DOMAIN.to_string()
        } else {
            domain
        };
        if path.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid(s, "repository name must be lowercase"));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(invalid(s, "bad repository name"));
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if domain.len() + 1 + path.len() > 255 {
            return Err(invalid(s, "repository name too long"));
        }
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The reference with tag `latest` if it has neither tag nor digest.
    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".into());
        }
        self
    }

    /// Registry host (`docker.io`, `localhost:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Repository path inside the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `docker.io/library/busybox`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository as Docker shows it (`busybox`, `localhost:5000/x/y`).
    pub fn familiar_repository(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            // Docker's familiarizeName: `library/` goes only before a one-part name
            // (`library/a/b` stays, or it would name the image `a/b`).
            match self.path.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.repository()
        }
    }

    /// The short form Docker prints (`busybox:latest`).
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_repository();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        s
    }
}

impl fmt::Display for Reference {
    /// The fully normalized form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Reference;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().with_default_tag().to_string()
    }

    #[test]
    fn an_ipv6_registry_host_with_or_without_a_port() {
        // Docker's grammar: `\[[a-fA-F0-9:]+\](:[0-9]+)?` (found by fuzz image_reference).
        assert_eq!(norm("[::1]/azaz02"), "[::1]/azaz02:latest");
        assert_eq!(norm("[::1]:5000/a/b:t"), "[::1]:5000/a/b:t");
        assert!(Reference::parse("[::1/a").is_err());
        assert!(Reference::parse("[::1]:/a").is_err());
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("user/app:v1"), "docker.io/user/app:v1");
        assert_eq!(
            norm("index.docker.io/user/app"),
            "docker.io/user/app:latest"
        );
        assert_eq!(norm("localhost:5000/x/y:tag"), "localhost:5000/x/y:tag");
        assert_eq!(norm("localhost/x"), "localhost/x:latest");
        assert_eq!(norm("quay.io/a/b-c__d.e"), "quay.io/a/b-c__d.e:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            norm(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        let r = Reference::parse(&format!("localhost:5000/x:t@{d}")).unwrap();
        assert_eq!(
            (r.tag(), r.digest().map(|d| d.as_str().len())),
            (Some("t"), Some(71))
        );
        assert_eq!(
            Reference::parse("busybox")
                .unwrap()
                .with_default_tag()
                .familiar(),
            "busybox:latest"
        );
        assert_eq!(
            Reference::parse("localhost:5000/x/y:t").unwrap().familiar(),
            "localhost:5000/x/y:t"
        );
        // Found by the image_reference fuzz target, checked against `docker pull`.
        assert_eq!(norm("Foo/bar"), "Foo/bar:latest");
        // Found by the image_reference fuzz target: `library/` stays before a nested path.
        let nested = Reference::parse("docker.io/library/a/b").unwrap();
        assert_eq!(nested.familiar(), "library/a/b");
        assert_eq!(Reference::parse(&nested.familiar()).unwrap(), nested);
        assert_eq!(norm("UPPER/x"), "UPPER/x:latest");
        let longest = format!("x.io/{}:{}@{d}", "a".repeat(250), "t".repeat(128));
        assert_eq!(norm(&longest), longest);
    }

    #[test]
    fn refuses_bad_references() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:bad/tag",
            "a//b",
            "-a",
            "a-",
            "a..b",
            "busybox@sha256:abc",
            ":tag",
            "busybox:-x",
            "host:port/x",
            "a b",
            "UPPER/X",
            &"a".repeat(64),
            &format!("x:{}", "t".repeat(129)),
        ] {
            let e = Reference::parse(bad);
            assert!(e.is_err(), "{bad:?} parsed as {e:?}");
            assert!(
                e.unwrap_err()
                    .to_string()
                    .contains("invalid reference format")
            );
        }
    }
}
