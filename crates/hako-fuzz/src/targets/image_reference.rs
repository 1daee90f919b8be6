//! `image_reference`: an image reference as a user types it (`busybox`,
//! `localhost:5000/a/b:tag@sha256:...`), parsed by `hako_image::Reference::parse`.
//!
//! Invariants:
//! - round trips: the normalized form, the familiar form and the form with the default tag
//!   each parse back to the same reference, and normalizing is idempotent;
//! - the parts are what Docker's grammar allows (domain never `index.docker.io`, Docker Hub
//!   paths have a namespace, lowercase paths, tags of at most 128 characters);
//! - differential: Docker's own rules (distribution/reference's `ParseNormalizedNamed`,
//!   written out below from its grammar) accept the same strings and normalize them the
//!   same way, apart from hako's documented differences: digests other than sha256 are
//!   refused, and `registry-1.docker.io` (Docker Hub's API host) is Docker Hub.

use std::sync::OnceLock;

use hako_image::Reference;
use regex::Regex;

pub fn image_reference(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Reference::parse(s);
    let docker = docker_normalize(s);
    match (&parsed, &docker) {
        (Ok(r), Docker::Ok(want)) => assert_eq!(
            &r.to_string(),
            want,
            "{s:?}: hako and Docker normalize differently"
        ),
        (Ok(r), Docker::Refused(why)) => {
            panic!("{s:?}: hako accepts it ({r}), Docker refuses it: {why}")
        }
        (Err(e), Docker::Ok(want)) => {
            panic!("{s:?}: Docker accepts it ({want}), hako refuses it: {e}")
        }
        (Err(e), _) => assert!(!e.to_string().is_empty()),
        (Ok(_), Docker::Unsupported) => {}
    }
    let Ok(r) = parsed else {
        return;
    };
    assert_ne!(
        r.domain(),
        "index.docker.io",
        "{s:?}: legacy Hub domain kept"
    );
    assert!(!r.path().is_empty(), "{s:?}: empty path");
    if r.domain() == "docker.io" {
        assert!(
            r.path().contains('/'),
            "{s:?}: Docker Hub path without namespace"
        );
    }
    assert_eq!(r.repository(), format!("{}/{}", r.domain(), r.path()));
    assert!(r.tag().is_none_or(|t| !t.is_empty() && t.len() <= 128));

    let normalized = r.to_string();
    let again = Reference::parse(&normalized).unwrap_or_else(|e| {
        panic!("{s:?}: its normalized form {normalized:?} does not parse: {e}")
    });
    assert_eq!(
        again, r,
        "{s:?}: normalized form {normalized:?} parses differently"
    );
    assert_eq!(
        again.to_string(),
        normalized,
        "{s:?}: normalizing is not idempotent"
    );

    let familiar = r.familiar();
    assert_eq!(
        r.familiar_repository(),
        docker_familiar(r.domain(), r.path()),
        "{s:?}: hako and Docker shorten it differently"
    );
    // Docker's familiar form of a Hub path whose first part looks like a host
    // (`docker.io/a.b/c` → `a.b/c`) names that host when read back, in Docker too; when
    // that first part is no valid host (`a__b.c/d`), Docker reads the whole as a path with
    // an empty domain (the quirk the differential documents) and hako refuses it.
    let first = familiar.split('/').next().unwrap_or_default();
    let names_a_host = r.domain() == "docker.io"
        && familiar.contains('/')
        && (first.contains(['.', ':'])
            || first == "localhost"
            || first.bytes().any(|c| c.is_ascii_uppercase()));
    match (Reference::parse(&familiar), names_a_host) {
        (Ok(back), false) => assert_eq!(
            back, r,
            "{s:?}: familiar form {familiar:?} parses differently"
        ),
        // Docker refuses some familiar forms of names it accepts in full, as hako does:
        // `docker.io/<64 hex>` shortens to 64 hex characters, which read as an image id.
        (Err(_), false) if matches!(docker_normalize(&familiar), Docker::Refused(_)) => {}
        (Err(e), false) => panic!("{s:?}: its familiar form {familiar:?} does not parse: {e}"),
        (_, true) => {}
    }

    let tagged = r.clone().with_default_tag();
    assert!(tagged.tag().is_some() || tagged.digest().is_some());
    let t = tagged.to_string();
    assert_eq!(
        Reference::parse(&t).ok().as_ref(),
        Some(&tagged),
        "{s:?}: the default-tagged form {t:?} parses differently"
    );
    assert_eq!(tagged.clone().with_default_tag(), tagged);
}

/// distribution/reference's `familiarizeName`: Docker Hub loses its domain, and `library/`
/// goes only before a one-part name.
fn docker_familiar(domain: &str, path: &str) -> String {
    if domain != "docker.io" {
        return format!("{domain}/{path}");
    }
    match path.strip_prefix("library/") {
        Some(rest) if !rest.contains('/') => rest.to_string(),
        _ => path.to_string(),
    }
}

enum Docker {
    Ok(String),
    Refused(String),
    /// Valid for Docker, deliberately not for hako.
    Unsupported,
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("the reference grammar compiles")
}

/// distribution/reference's grammar (reference/regexp.go), anchored.
/// distribution/reference's DomainRegexp.
fn domain_pattern() -> String {
    let domain_component = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let domain_name = format!(r"{domain_component}(?:\.{domain_component})*");
    let host = format!(r"(?:{domain_name}|\[(?:[a-fA-F0-9:]+)\])");
    format!("{host}(?::[0-9]+)?")
}

fn reference_regexp() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let alnum = "[a-z0-9]+";
        let separator = "(?:[._]|__|[-]+)";
        let path_component = format!("{alnum}(?:{separator}{alnum})*");
        let domain = domain_pattern();
        let name = format!("(?:{domain}/)?{path_component}(?:/{path_component})*");
        // Go's RE2 `\w` is ASCII only; the regex crate's is Unicode.
        let tag = r"[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}";
        let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";
        re(&format!("^({name})(?::({tag}))?(?:@({digest}))?$"))
    })
}

/// `reference.ParseNormalizedNamed(s).String()`, or why Docker refuses `s`.
fn docker_normalize(s: &str) -> Docker {
    static HEX64: OnceLock<Regex> = OnceLock::new();
    if HEX64.get_or_init(|| re("^[a-f0-9]{64}$")).is_match(s) {
        return Docker::Refused("cannot specify 64-byte hexadecimal strings".into());
    }
    // splitDockerDomain
    let (mut domain, mut rest) = match s.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => ("docker.io".to_string(), s.to_string()),
    };
    if domain == "index.docker.io" {
        domain = "docker.io".into();
    }
    if domain == "registry-1.docker.io" {
        return Docker::Unsupported;
    }
    // A first part with a '.' or ':' that is no host name (`a_b.io/x`): Docker's grammar
    // still matches the whole as a path and returns a name with an empty domain, which no
    // registry serves; hako refuses it ("bad registry host").
    static DOMAIN: OnceLock<Regex> = OnceLock::new();
    if domain != "docker.io"
        && !DOMAIN
            .get_or_init(|| re(&format!("^{}$", domain_pattern())))
            .is_match(&domain)
    {
        return Docker::Unsupported;
    }
    if domain == "docker.io" && !rest.contains('/') {
        rest = format!("library/{rest}");
    }
    let remote = rest.split_once(':').map_or(rest.as_str(), |(r, _)| r);
    if remote.to_lowercase() != remote {
        return Docker::Refused("repository name must be lowercase".into());
    }
    // reference.Parse(domain + "/" + rest)
    let full = format!("{domain}/{rest}");
    let Some(m) = reference_regexp().captures(&full) else {
        return Docker::Refused("invalid reference format".into());
    };
    let name = m.get(1).map_or("", |x| x.as_str());
    if name.len() > 255 {
        return Docker::Refused("repository name must not be more than 255 characters".into());
    }
    let mut out = name.to_string();
    if let Some(t) = m.get(2) {
        out += ":";
        out += t.as_str();
    }
    if let Some(d) = m.get(3) {
        let d = d.as_str();
        let (alg, hex) = d.split_once(':').unwrap_or((d, ""));
        match alg {
            "sha256" if hex.len() == 64 && !hex.bytes().any(|b| b.is_ascii_uppercase()) => {}
            "sha256" | "sha384" | "sha512"
                if hex.bytes().any(|b| b.is_ascii_uppercase())
                    || hex.len()
                        != if alg == "sha256" {
                            64
                        } else if alg == "sha384" {
                            96
                        } else {
                            128
                        } =>
            {
                return Docker::Refused(format!("invalid digest {d}"));
            }
            "sha384" | "sha512" => return Docker::Unsupported,
            _ => return Docker::Refused(format!("unsupported digest algorithm {alg}")),
        }
        out += "@";
        out += d;
    }
    Docker::Ok(out)
}
