//! `--name[=value]` flags of one instruction (BuildKit's `BFlags`): each instruction
//! declares the flags it takes; anything else is an error naming the flag.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    String,
    Strings,
}

/// The flags given to one instruction.
#[derive(Debug)]
pub(crate) struct Flags {
    given: Vec<String>,
    declared: BTreeMap<&'static str, Kind>,
    values: BTreeMap<&'static str, Vec<String>>,
}

impl Flags {
    pub(crate) fn new(given: &[String]) -> Flags {
        Flags {
            given: given.to_vec(),
            declared: BTreeMap::new(),
            values: BTreeMap::new(),
        }
    }

    pub(crate) fn bool(&mut self, name: &'static str) -> &mut Self {
        self.declared.insert(name, Kind::Bool);
        self
    }

    pub(crate) fn string(&mut self, name: &'static str) -> &mut Self {
        self.declared.insert(name, Kind::String);
        self
    }

    pub(crate) fn strings(&mut self, name: &'static str) -> &mut Self {
        self.declared.insert(name, Kind::Strings);
        self
    }

    /// Checks every given flag against the declared ones.
    pub(crate) fn parse(&mut self) -> Result<(), String> {
        for raw in &self.given {
            let Some(body) = raw.strip_prefix("--") else {
                return Err(format!("invalid flag {raw:?}: flags start with --"));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some((&key, &kind)) = self.declared.get_key_value(name) else {
                return Err(format!("unknown flag: {name}"));
            };
            let v = match (kind, value) {
                (Kind::Bool, None) => "true".to_string(),
                (Kind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" => "true".into(),
                    "false" => "false".into(),
                    _ => {
                        return Err(format!("expecting boolean value for flag {name}, not: {v}"));
                    }
                },
                (_, None) => return Err(format!("missing a value on flag: {name}")),
                (_, Some(v)) => v.to_string(),
            };
            let slot = self.values.entry(key).or_default();
            if kind != Kind::Strings && !slot.is_empty() {
                return Err(format!("duplicate flag specified: {name}"));
            }
            slot.push(v);
        }
        Ok(())
    }

    /// The value of a string flag, if given.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.first().cloned())
    }

    /// Every value of a repeatable flag.
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    /// A boolean flag (absent: `false`).
    pub(crate) fn is_set(&self, name: &str) -> bool {
        self.get(name).as_deref() == Some("true")
    }

    /// Whether the flag was given at all.
    pub(crate) fn given(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(given: &[&str]) -> Flags {
        let g: Vec<String> = given.iter().map(|s| s.to_string()).collect();
        let mut f = Flags::new(&g);
        f.bool("link").string("from").strings("mount");
        f
    }

    #[test]
    fn kinds() {
        let mut f = flags(&["--link", "--from=a", "--mount=x", "--mount=y"]);
        f.parse().unwrap();
        assert!(f.is_set("link"));
        assert_eq!(f.get("from").as_deref(), Some("a"));
        assert_eq!(f.all("mount"), ["x", "y"]);
        let mut f = flags(&["--link=FALSE"]);
        f.parse().unwrap();
        assert!(!f.is_set("link"));
        assert!(f.given("link"));
    }

    #[test]
    fn errors() {
        for (given, msg) in [
            (vec!["--nope"], "unknown flag: nope"),
            (vec!["--from"], "missing a value on flag: from"),
            (
                vec!["--from=a", "--from=b"],
                "duplicate flag specified: from",
            ),
            (
                vec!["--link=maybe"],
                "expecting boolean value for flag link, not: maybe",
            ),
        ] {
            let mut f = flags(&given);
            assert_eq!(f.parse().unwrap_err(), msg);
        }
    }
}
