//! `.dockerignore`: which context paths a build never sees (moby `patternmatcher` and
//! `patternmatcher/ignorefile` rules).
//!
//! - One pattern per line; a line *starting* with `#` is a comment; blanks around a
//!   pattern are trimmed; `!` re-includes.
//! - Patterns are cleaned like Go's `filepath.Clean` and a leading `/` is dropped, so
//!   `/foo/../bar/` is `bar`.
//! - `*` and `?` never match `/`; `**` matches any number of directories (also none);
//!   `[...]` classes and `\` escapes work as in `filepath.Match`.
//! - A path is excluded if it or one of its parent directories matches, and the last
//!   pattern that matches decides (`!` patterns can re-include inside excluded
//!   directories, so such directories are still walked).

use regex::Regex;

/// An invalid pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid .dockerignore pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Reads an ignore file's patterns (comments and blank lines dropped, cleaned).
pub fn read_patterns(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut p = line.trim();
        if p.is_empty() {
            continue;
        }
        let invert = p.starts_with('!');
        if invert {
            p = p[1..].trim();
        }
        let mut pat = String::new();
        if !p.is_empty() {
            pat = clean_path(p);
            if pat.len() > 1 && pat.starts_with('/') {
                pat.remove(0);
            }
        }
        out.push(if invert { format!("!{pat}") } else { pat });
    }
    out
}

/// Go's `path.Clean` for `/`-separated paths.
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Exact,
    /// `foo/**`: anything starting with the text before `**`.
    Prefix(String),
    /// `**/foo`: anything ending with the text after `**`.
    Suffix(String),
    Regex(Regex),
}

#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    dirs: Vec<String>,
    kind: Kind,
    exclusion: bool,
}

impl Pattern {
    fn new(raw: &str) -> Result<Option<Pattern>, PatternError> {
        let p = raw.trim();
        if p.is_empty() {
            return Ok(None);
        }
        let mut p = clean_path(p);
        let bad = |reason: &str| PatternError {
            pattern: raw.to_string(),
            reason: reason.to_string(),
        };
        let exclusion = p.starts_with('!');
        if exclusion {
            if p.len() == 1 {
                return Err(bad("illegal exclusion pattern: \"!\""));
            }
            p.remove(0);
        }
        let kind = compile(&p).map_err(|e| bad(&e))?;
        Ok(Some(Pattern {
            dirs: p.split('/').map(str::to_string).collect(),
            text: p,
            kind,
            exclusion,
        }))
    }

    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(pre) => path.starts_with(pre.as_str()),
            Kind::Suffix(suf) => {
                path.ends_with(suf.as_str()) || suf.strip_prefix('/').is_some_and(|s| path == s)
            }
            Kind::Regex(re) => re.is_match(path),
        }
    }

    /// Whether this pattern could match `dir` or something below it.
    fn may_match_below(&self, dir: &str) -> bool {
        let comps: Vec<&str> = dir.split('/').collect();
        for (i, pd) in self.dirs.iter().enumerate() {
            if pd.contains("**") {
                return true;
            }
            let Some(c) = comps.get(i) else {
                return true;
            };
            let single = Pattern {
                text: pd.clone(),
                dirs: vec![pd.clone()],
                kind: compile(pd).unwrap_or(Kind::Exact),
                exclusion: false,
            };
            if !single.matches(c) {
                return false;
            }
        }
        self.dirs.len() > comps.len()
    }
}

/// Turns a cleaned pattern into a matcher (the same classification as moby's).
fn compile(p: &str) -> Result<Kind, String> {
    let mut re = String::from("^");
    let mut exact = true;
    let mut kind_hint: Option<&str> = None;
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    let mut first = true;
    let mut in_class = false;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if exact && !first {
                        kind_hint = Some("prefix");
                    } else {
                        re.push_str(".*");
                    }
                } else {
                    re.push_str("(.*/)?");
                }
                if first {
                    kind_hint = Some("suffix");
                }
                exact = false;
            }
            '*' => {
                re.push_str("[^/]*");
                exact = false;
                kind_hint = None;
            }
            '?' => {
                re.push_str("[^/]");
                exact = false;
                kind_hint = None;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => match chars.get(i) {
                Some(n) => {
                    re.push('\\');
                    re.push(*n);
                    i += 1;
                    exact = false;
                    kind_hint = None;
                }
                None => re.push_str("\\\\"),
            },
            '[' | ']' => {
                in_class = ch == '[';
                re.push(ch);
                exact = false;
                kind_hint = None;
            }
            '^' if !in_class => re.push_str("\\^"),
            c => re.push(c),
        }
        first = false;
    }
    if exact {
        return Ok(Kind::Exact);
    }
    match kind_hint {
        Some("prefix") => return Ok(Kind::Prefix(p[..p.len() - 2].to_string())),
        Some("suffix") if is_plain_suffix(p) => return Ok(Kind::Suffix(p[2..].to_string())),
        _ => {}
    }
    re.push('$');
    Regex::new(&re)
        .map(Kind::Regex)
        .map_err(|_| "syntax error in pattern".to_string())
}

/// `**` followed by text without any other wildcard.
fn is_plain_suffix(p: &str) -> bool {
    p.starts_with("**") && !p[2..].contains(['*', '?', '[', ']', '\\'])
}

/// A compiled `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl Matcher {
    /// Compiles `patterns` (as from [`read_patterns`]).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Matcher, PatternError> {
        let mut out = Matcher::default();
        for p in patterns {
            if let Some(pat) = Pattern::new(p.as_ref())? {
                out.exclusions |= pat.exclusion;
                out.patterns.push(pat);
            }
        }
        Ok(out)
    }

    /// Whether there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (relative, `/`-separated) is excluded: it or a parent directory
    /// matches, and the last matching pattern is not a `!` one.
    pub fn excluded(&self, path: &str) -> bool {
        let path = clean_path(path);
        if path == "." {
            return false;
        }
        let parents: Vec<&str> = match path.rfind('/') {
            Some(i) => path[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matches(&path);
            if !m {
                for i in 0..parents.len() {
                    if p.matches(&parents[..=i].join("/")) {
                        m = true;
                        break;
                    }
                }
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether the walk can skip the excluded directory `dir` entirely (no `!` pattern
    /// could re-include anything below it).
    pub fn skip_dir(&self, dir: &str) -> bool {
        if !self.excluded(dir) {
            return false;
        }
        !self
            .patterns
            .iter()
            .any(|p| p.exclusion && p.may_match_below(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &[&str]) -> Matcher {
        Matcher::new(p).unwrap()
    }

    #[test]
    fn reading_the_file() {
        let text = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! \n  spaced  \nfoo/../bar/\n";
        assert_eq!(
            read_patterns(text),
            [
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path",
                "!",
                "!",
                "spaced",
                "bar"
            ]
        );
        assert!(Matcher::new(&read_patterns("!\n")).is_err());
        assert!(read_patterns("\u{feff}a").contains(&"a".to_string()));
    }

    #[test]
    fn clean() {
        for (i, o) in [
            ("", "."),
            (".", "."),
            ("a/b/", "a/b"),
            ("a//b", "a/b"),
            ("a/./b", "a/b"),
            ("a/../b", "b"),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("/", "/"),
            ("a/b/../../..", ".."),
        ] {
            assert_eq!(clean_path(i), o, "{i}");
        }
    }

    /// (patterns, path, excluded) after moby's `patternmatcher_test.go`.
    #[test]
    fn matching() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&["*.go"], "main.go", true),
            (&["*.go"], "a/main.go", false),
            (&["**/*.go"], "a/b/main.go", true),
            (&["**/*.go"], "main.go", true),
            (&["**"], "anything/at/all", true),
            (&["dir/**"], "dir/a/b", true),
            (&["dir/**"], "dir", false),
            (&["dir"], "dir/a/b", true),
            (&["dir/"], "dir/a", true),
            (&["**/foo"], "foo", true),
            (&["**/foo"], "x/y/foo", true),
            (&["**/foo"], "x/yfoo", false),
            (&["**/foo/bar"], "a/foo/bar/baz", true),
            (&["a/**/b"], "a/b", true),
            (&["a/**/b"], "a/x/y/b", true),
            (&["a/**/b"], "a/x/y/c", false),
            (&["?.txt"], "a.txt", true),
            (&["?.txt"], "ab.txt", false),
            (&["[a-c].txt"], "b.txt", true),
            (&["[a-c].txt"], "d.txt", false),
            (&["[^a].txt"], "a.txt", false),
            (&["\\*"], "*", true),
            (&["\\*"], "a", false),
            (&["a.b"], "axb", false),
            (&["a+b(c)"], "a+b(c)", true),
            (&["*", "!keep"], "keep", false),
            (&["*", "!keep"], "other", true),
            (&["dir", "!dir/keep"], "dir/keep", false),
            (&["dir", "!dir/keep"], "dir/other", true),
            (&["!x", "x"], "x", true),
            (&["x", "!x", "x"], "x", true),
            (
                &["docs", "!docs/README.md", "docs/*.md"],
                "docs/README.md",
                true,
            ),
            (&["/abs"], "abs", true),
            (&["*/*.md"], "a/x.md", true),
            (&["*/*.md"], "x.md", false),
            (&["**/.git"], "sub/.git/config", true),
            (&["**"], ".", false),
        ];
        for (pats, path, want) in cases {
            let pats: Vec<String> = read_patterns(&pats.join("\n"));
            assert_eq!(
                m(&pats.iter().map(String::as_str).collect::<Vec<_>>()).excluded(path),
                *want,
                "{pats:?} {path}"
            );
        }
    }

    #[test]
    fn walking_decisions() {
        let mm = m(&["node_modules", "build"]);
        assert!(mm.skip_dir("node_modules"));
        assert!(!mm.skip_dir("src"));
        let mm = m(&["build", "!build/keep.txt"]);
        assert!(!mm.skip_dir("build"), "an exception inside must be found");
        assert!(mm.excluded("build/other"));
        assert!(!mm.excluded("build/keep.txt"));
        let mm = m(&["a", "!b/x"]);
        assert!(mm.skip_dir("a"), "the exception is elsewhere");
        let mm = m(&["*", "!**/*.rs"]);
        assert!(!mm.skip_dir("src"));
        assert!(!mm.excluded("src/main.rs"));
    }

    #[test]
    fn bad_patterns() {
        assert!(Matcher::new(&["[a-"]).is_err());
        assert!(Matcher::new(&["!"]).is_err());
    }
}
