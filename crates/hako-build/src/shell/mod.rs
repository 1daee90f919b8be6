//! Shell-word processing as the Dockerfile frontend does it: quotes, the escape token,
//! `$VAR`, `${VAR}` and the `${VAR<op>word}` forms, and splitting into words after
//! expansion. No commands are run and no globbing happens: this is the subset of `sh`
//! that instructions other than RUN/CMD/ENTRYPOINT (shell form) see.
//!
//! | form | value |
//! |---|---|
//! | `${v:-w}` / `${v-w}` | `w` if `v` is unset or empty / unset, else `$v` |
//! | `${v:+w}` / `${v+w}` | `w` if `v` is set and not empty / set, else empty |
//! | `${v:?m}` / `${v?m}` | error `v: m` if unset or empty / unset |
//! | `${v#p}` `${v##p}` | `$v` without the shortest / longest prefix matching `p` |
//! | `${v%p}` `${v%%p}` | the same for suffixes |
//! | `${v/p/r}` `${v//p/r}` | the first / every match of `p` replaced by `r` |
//!
//! Patterns know `*` and `?` (and `\` to quote them); bracket expressions are not
//! supported, as in BuildKit.

mod lex;
mod pattern;

pub use lex::{Expansion, Lex};

/// The longest text one expansion may produce: 1 MiB, eight times what a single argument
/// or environment string may be for `execve` (`MAX_ARG_STRLEN`, 128 KiB). Without a
/// limit, nested `${v//pattern/$v}` grow exponentially: a 1 KB Dockerfile (a fuzzer's)
/// made a 13 MB pattern and took seconds; a few more levels would exhaust memory.
pub(crate) const MAX_EXPANSION: usize = 1 << 20;

fn too_long() -> String {
    format!("the expansion is longer than {MAX_EXPANSION} bytes")
}

/// An expansion that failed (bad syntax, `${v?message}`, a bad pattern).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {input:?}: {reason}")]
pub struct ShellError {
    /// The text that was being expanded.
    pub input: String,
    /// What was wrong.
    pub reason: String,
}

/// Variables visible to an expansion, in order of definition; a later entry with the
/// same name wins (as `docker build` treats `Env` lists).
pub trait Vars {
    /// The value of `name`, if set (set to the empty string counts as set).
    fn var(&self, name: &str) -> Option<&str>;
}

impl Vars for [(String, String)] {
    fn var(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Vars for Vec<(String, String)> {
    fn var(&self, name: &str) -> Option<&str> {
        self.as_slice().var(name)
    }
}

impl Vars for std::collections::BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// No variables at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoVars;

impl Vars for NoVars {
    fn var(&self, _: &str) -> Option<&str> {
        None
    }
}

#[cfg(test)]
mod tests;
