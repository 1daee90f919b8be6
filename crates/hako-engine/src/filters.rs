//! Docker's `--filter` arguments, one type for both front ends: the CLI's repeated
//! `key=value` flags and the API's `filters` query parameter (JSON, `{"key":["v1","v2"]}`, or
//! the old `{"key":{"v1":true}}` form).
//!
//! Docker's rules: values of one key are ORed, different keys ANDed; `label` values are
//! ANDed (every label asked for must be there).

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};

/// Parsed filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// No filter.
    pub fn new() -> Filters {
        Filters::default()
    }

    /// From the CLI's `key=value` flags.
    pub fn from_args(args: &[String]) -> Result<Filters> {
        let mut f = Filters::new();
        for a in args {
            let Some((k, v)) = a.split_once('=') else {
                return Err(Error::InvalidArgument(format!(
                    "bad format of filter (expected name=value): {a}"
                )));
            };
            f.add(k.trim().to_ascii_lowercase(), v.to_string());
        }
        Ok(f)
    }

    /// From the API's JSON (empty: no filter).
    pub fn from_json(text: &str) -> Result<Filters> {
        if text.trim().is_empty() {
            return Ok(Filters::new());
        }
        let bad = |e: String| Error::InvalidArgument(format!("invalid filter: {e}"));
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad("expected a JSON object".into()))?;
        let mut f = Filters::new();
        for (k, vals) in obj {
            match vals {
                serde_json::Value::Array(a) => {
                    for x in a {
                        let s = x
                            .as_str()
                            .ok_or_else(|| bad(format!("values of {k:?} must be strings")))?;
                        f.add(k.clone(), s.to_string());
                    }
                }
                serde_json::Value::Object(o) => {
                    for (s, on) in o {
                        if on.as_bool() == Some(true) {
                            f.add(k.clone(), s.clone());
                        }
                    }
                }
                _ => return Err(bad(format!("values of {k:?} must be a list"))),
            }
        }
        Ok(f)
    }

    /// Adds one value.
    pub fn add(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.entry(key.into()).or_default().push(value.into());
    }

    /// Fails with Docker's message on a key that is not in `allowed`.
    pub fn validate(&self, allowed: &[&str]) -> Result<()> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(Error::InvalidArgument(format!("invalid filter '{k}'"))),
            None => Ok(()),
        }
    }

    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `key` has values.
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The values of `key`.
    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map_or(&[], Vec::as_slice)
    }

    /// True when `key` is not filtered on, or one of its values satisfies `pred`.
    pub fn any(&self, key: &str, pred: impl Fn(&str) -> bool) -> bool {
        self.0
            .get(key)
            .is_none_or(|vals| vals.iter().any(|v| pred(v)))
    }

    /// A boolean filter (`dangling=true`): `None` when not given.
    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        let Some(v) = self.0.get(key).and_then(|v| v.last()) else {
            return Ok(None);
        };
        match v.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(Error::InvalidArgument(format!(
                "invalid filter '{key}={v}'"
            ))),
        }
    }

    /// `label=KEY` / `label=KEY=VALUE` against `labels`: every one must match. `key` is
    /// `label` (or `label!` for the negated form prune uses: none may match).
    pub fn labels_match(&self, key: &str, labels: &HashMap<String, String>) -> bool {
        let test = |want: &str| match want.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(want),
        };
        let vals = self.get(key);
        if key.ends_with('!') {
            !vals.iter().any(|w| test(w))
        } else {
            vals.iter().all(|w| test(w))
        }
    }

    /// The keys and values (for the API's echo and for tests).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

/// Go's `path.Match`: `*` and `?` do not cross `/`; `[...]` classes with ranges and `^`.
pub fn glob(pattern: &str, name: &str) -> bool {
    Glob::new(pattern, name).matches()
}

/// One match of a pattern against a name, remembering the (pattern, name) positions that
/// failed: a naive backtracking match takes exponential time on patterns of many stars
/// (a 279-byte `filters` of an API request took 4 s in the fuzzer); remembered, each pair of
/// positions is tried once.
struct Glob {
    p: Vec<char>,
    n: Vec<char>,
    failed: Vec<bool>,
    /// Positions tried (for the test of the bound).
    steps: usize,
}

impl Glob {
    fn new(pattern: &str, name: &str) -> Glob {
        let p: Vec<char> = pattern.chars().collect();
        let n: Vec<char> = name.chars().collect();
        let failed = vec![false; (p.len() + 1) * (n.len() + 1)];
        Glob {
            p,
            n,
            failed,
            steps: 0,
        }
    }

    fn matches(&mut self) -> bool {
        self.at(0, 0)
    }

    fn at(&mut self, pi: usize, ni: usize) -> bool {
        let slot = pi * (self.n.len() + 1) + ni;
        if self.failed[slot] {
            return false;
        }
        self.steps += 1;
        let hit = self.step(pi, ni);
        if !hit {
            self.failed[slot] = true;
        }
        hit
    }

    fn step(&mut self, pi: usize, ni: usize) -> bool {
        let n_len = self.n.len();
        match self.p.get(pi).copied() {
            None => ni == n_len,
            Some('*') => {
                let mut i = ni;
                loop {
                    if self.at(pi + 1, i) {
                        return true;
                    }
                    if i == n_len || self.n[i] == '/' {
                        return false;
                    }
                    i += 1;
                }
            }
            Some('?') => self.n.get(ni).is_some_and(|c| *c != '/') && self.at(pi + 1, ni + 1),
            Some('[') => {
                let Some(close) = self.p[pi..].iter().position(|c| *c == ']').map(|c| pi + c)
                else {
                    return false;
                };
                let Some(&c) = self.n.get(ni) else {
                    return false;
                };
                let class = &self.p[pi + 1..close];
                let (neg, class) = match class.first() {
                    Some('^' | '!') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= (class[i]..=class[i + 2]).contains(&c);
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit != neg && self.at(close + 1, ni + 1)
            }
            Some('\\') if pi + 1 < self.p.len() => {
                self.n.get(ni) == Some(&self.p[pi + 1]) && self.at(pi + 2, ni + 1)
            }
            Some(c) => self.n.get(ni) == Some(&c) && self.at(pi + 1, ni + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_json_forms_and_cli_flags() {
        let a = Filters::from_json(r#"{"label":["a=1","b"],"status":["running"]}"#).unwrap();
        let b = Filters::from_json(r#"{"label":{"a=1":true,"b":true},"status":{"running":true}}"#)
            .unwrap();
        let c = Filters::from_args(&[
            "label=a=1".into(),
            "label=b".into(),
            "status=running".into(),
        ])
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert!(Filters::from_json("").unwrap().is_empty());
        assert!(Filters::from_json("[1]").is_err());
        assert!(Filters::from_args(&["nope".into()]).is_err());
        assert_eq!(
            a.validate(&["label"]).unwrap_err().to_string(),
            "invalid filter 'status'"
        );
    }

    #[test]
    fn labels_are_anded_other_values_ored() {
        let f = Filters::from_args(&[
            "label=a=1".into(),
            "label=b".into(),
            "name=x".into(),
            "name=y".into(),
        ])
        .unwrap();
        let mut l = HashMap::new();
        l.insert("a".to_string(), "1".to_string());
        assert!(!f.labels_match("label", &l));
        l.insert("b".to_string(), String::new());
        assert!(f.labels_match("label", &l));
        assert!(f.any("name", |v| v == "y"));
        assert!(!f.any("name", |v| v == "z"));
        assert!(f.any("status", |_| false), "an absent key matches");
        assert_eq!(
            Filters::from_args(&["dangling=maybe".into()])
                .unwrap()
                .bool("dangling")
                .unwrap_err()
                .to_string(),
            "invalid filter 'dangling=maybe'"
        );
    }

    #[test]
    fn many_stars_try_each_pair_of_positions_once() {
        // Found by the api_request fuzzer: `{"label":["****...exDe"]}` took 4 s.
        let mut g = Glob::new(&format!("{}b", "*".repeat(12)), &"a".repeat(12));
        assert!(!g.matches());
        // The naive backtracking took C(24, 12) = 2.7 million steps here.
        assert!(g.steps <= 14 * 13, "{} steps", g.steps);
        assert!(!glob(&format!("{}exDe", "*".repeat(200)), &"e".repeat(300)));
        assert!(glob(&format!("{}exDe", "*".repeat(200)), "aexDe"));
    }

    #[test]
    fn globs_like_path_match() {
        assert!(glob("busybox", "busybox"));
        assert!(glob("busy*", "busybox"));
        assert!(glob("busybox:*", "busybox:latest"));
        assert!(!glob("*", "a/b"));
        assert!(glob("*/*", "a/b"));
        assert!(glob("b?sybox", "busybox"));
        assert!(glob("[a-c]usybox", "busybox"));
        assert!(!glob("[^b]usybox", "busybox"));
        assert!(!glob("busy", "busybox"));
        assert!(glob("a\\*b", "a*b"));
        assert!(!glob("a\\*b", "axb"));
        assert!(glob("*/*x", "ab/cdx"));
        assert!(!glob("[a-", "a"));
    }
}
