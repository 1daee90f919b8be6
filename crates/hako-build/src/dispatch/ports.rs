//! EXPOSE values: `80`, `80/udp`, `8000-8002/tcp` (ranges become single ports), and
//! the `[ip:]hostPort:containerPort` forms Docker also takes (only the container port
//! counts).

use std::collections::BTreeSet;

/// The `port/proto` keys for `specs`, sorted.
pub(crate) fn parse(specs: &[String]) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    for spec in specs {
        let (addr, proto) = match spec.rsplit_once('/') {
            Some((a, p)) => (a, p.to_ascii_lowercase()),
            None => (spec.as_str(), "tcp".to_string()),
        };
        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
            return Err(format!("invalid proto: {proto}"));
        }
        let container = addr.rsplit(':').next().unwrap_or(addr);
        let (lo, hi) = match container.split_once('-') {
            Some((a, b)) => (port(a, spec)?, port(b, spec)?),
            None => {
                let p = port(container, spec)?;
                (p, p)
            }
        };
        if hi < lo {
            return Err(format!(
                "invalid range specified for container port: {container}"
            ));
        }
        for p in lo..=hi {
            out.insert(format!("{p}/{proto}"));
        }
    }
    Ok(out)
}

fn port(s: &str, spec: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(p) if p <= 65535 => Ok(p),
        _ => Err(format!("invalid containerPort: {spec}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Vec<String>, String> {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).map(|s| s.into_iter().collect())
    }

    #[test]
    fn forms() {
        assert_eq!(p(&["80"]).unwrap(), ["80/tcp"]);
        assert_eq!(p(&["53/UDP", "80/tcp"]).unwrap(), ["53/udp", "80/tcp"]);
        assert_eq!(
            p(&["8000-8002"]).unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert_eq!(p(&["127.0.0.1:8080:80"]).unwrap(), ["80/tcp"]);
        assert!(p(&["x"]).is_err());
        assert!(p(&["80/icmp"]).is_err());
        assert!(p(&["70000"]).is_err());
        assert!(p(&["9-8"]).is_err());
    }
}
