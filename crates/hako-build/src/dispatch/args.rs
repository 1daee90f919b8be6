//! ARG scoping.
//!
//! - ARGs before the first FROM are *global*: they are visible in FROM lines only. A
//!   `--build-arg` overrides their default.
//! - Inside a stage an ARG must be declared to be visible. `ARG NAME` without a default
//!   takes the `--build-arg`, else the global default of the same name, else a built-in
//!   (`TARGETARCH`...), else it stays unset.
//! - A declared ARG is in the environment of every RUN after it (not in the image
//!   config); ENV of the same name wins over it.
//! - Proxy variables (`HTTP_PROXY`...) given with `--build-arg` reach RUN without being
//!   declared, and stay out of the cache key and the history.

use std::collections::{BTreeMap, BTreeSet};

use crate::instructions::ArgDef;
use crate::shell::{Lex, ShellError};

/// The proxy variables that need no ARG and never affect the cache.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Whether `name` is one of [`PROXY_ARGS`].
pub fn is_proxy(name: &str) -> bool {
    PROXY_ARGS.contains(&name)
}

/// The platform a build targets, for the built-in ARGs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`.
    pub arch: String,
    /// `v8`, if any.
    pub variant: Option<String>,
}

impl Platform {
    /// `os/arch[/variant]`.
    pub fn spec(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.arch),
            None => format!("{}/{}", self.os, self.arch),
        }
    }
}

/// The built-in global ARGs for building on `build` for `target`.
pub fn builtins(build: &Platform, target: &Platform) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        out.push((format!("{prefix}PLATFORM"), p.spec()));
        out.push((format!("{prefix}OS"), p.os.clone()));
        out.push((format!("{prefix}ARCH"), p.arch.clone()));
        out.push((
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        ));
    }
    out
}

/// Build args given by the user, and which of them a stage consumed.
#[derive(Debug, Clone, Default)]
pub struct BuildArgs {
    values: BTreeMap<String, String>,
    used: std::sync::Arc<std::sync::Mutex<BTreeSet<String>>>,
}

impl BuildArgs {
    /// From `--build-arg` pairs (later ones win).
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> BuildArgs {
        BuildArgs {
            values: pairs.into_iter().collect(),
            used: Default::default(),
        }
    }

    /// The value given for `name`, marking it consumed.
    pub fn take(&self, name: &str) -> Option<String> {
        let v = self.values.get(name).cloned();
        if v.is_some()
            && let Ok(mut u) = self.used.lock()
        {
            u.insert(name.to_string());
        }
        v
    }

    /// Proxy variables given, as `(name, value)`.
    pub fn proxies(&self) -> Vec<(String, String)> {
        self.values
            .iter()
            .filter(|(k, _)| is_proxy(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Build args no ARG consumed (proxies never count as unused).
    pub fn unused(&self) -> Vec<String> {
        let used = self.used.lock().map(|u| u.clone()).unwrap_or_default();
        self.values
            .keys()
            .filter(|k| !used.contains(*k) && !is_proxy(k))
            .cloned()
            .collect()
    }
}

/// The global scope: meta ARGs with their final values, plus the built-ins.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    /// Visible in FROM lines (`(name, value)`, later wins).
    pub vars: Vec<(String, String)>,
    /// Names declared before FROM (a stage's bare `ARG NAME` imports these).
    pub declared: BTreeMap<String, Option<String>>,
}

/// Resolves the ARGs before the first FROM, each default expanded with the ones before.
pub fn globals(
    meta: &[(ArgDef, usize)],
    build_args: &BuildArgs,
    builtin: &[(String, String)],
    lex: &Lex,
) -> Result<Globals, (usize, ShellError)> {
    let mut g = Globals {
        vars: builtin.to_vec(),
        declared: BTreeMap::new(),
    };
    for (def, line) in meta {
        let value = match build_args.take(&def.name) {
            Some(v) => Some(v),
            None => match &def.default {
                Some(d) => Some(lex.word(d, &g.vars).map_err(|e| (*line, e))?),
                None => builtin
                    .iter()
                    .find(|(k, _)| *k == def.name)
                    .map(|(_, v)| v.clone()),
            },
        };
        g.declared.insert(def.name.clone(), value.clone());
        if let Some(v) = value {
            g.vars.push((def.name.clone(), v));
        }
    }
    Ok(g)
}

/// The value an `ARG` inside a stage takes (`None`: declared but unset).
pub fn stage_arg_value(
    def: &ArgDef,
    build_args: &BuildArgs,
    globals: &Globals,
    expand: impl FnOnce(&str) -> Result<String, ShellError>,
) -> Result<Option<String>, ShellError> {
    if let Some(v) = build_args.take(&def.name) {
        return Ok(Some(v));
    }
    if let Some(d) = &def.default {
        return expand(d).map(Some);
    }
    if let Some(v) = globals.declared.get(&def.name) {
        return Ok(v.clone());
    }
    Ok(globals
        .vars
        .iter()
        .rev()
        .find(|(k, _)| *k == def.name)
        .map(|(_, v)| v.clone()))
}
