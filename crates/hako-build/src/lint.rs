//! Build checks: BuildKit's Dockerfile linter rules that need no image or context, run
//! on the parsed file before anything is built, and the `# check=` directive (or the
//! `BUILDKIT_DOCKERFILE_CHECK` build arg, which wins) that skips rules or makes any
//! violation fail the build (`lint violation found for rules: ...`).
//!
//! Rules checked, with BuildKit's names and texts: StageNameCasing, FromAsCasing,
//! NoEmptyContinuation, ConsistentInstructionCasing, ReservedStageName,
//! JSONArgsRecommended, MaintainerDeprecated, UndefinedArgInFrom, WorkdirRelativePath,
//! MultipleInstructionsDisallowed, LegacyKeyValueFormat, SecretsUsedInArgOrEnv,
//! FromPlatformFlagConstDisallowed, InvalidDefaultArgInFrom, RedundantTargetPlatform.
//! UndefinedVar and InvalidBaseImagePlatform need the base images' configs: the build
//! reports them as it dispatches each stage ([`undefined_var`], [`invalid_base_platform`]);
//! with `error=true` it resolves the bases and dispatches every needed stage first, so a
//! violation fails the build before any step runs, as BuildKit's does. Not checked: the
//! experimental rules. JSONArgsRecommended is skipped after a `SHELL` in the stage (or
//! a stage it builds on), not for a base image whose config sets a shell.

use std::collections::{BTreeMap, BTreeSet};

use crate::instructions::Stages;
use crate::parser::{Dockerfile, Node};
use crate::shell::Lex;

/// One violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    /// The rule (`JSONArgsRecommended`).
    pub rule: &'static str,
    /// What is wrong, as BuildKit words it.
    pub detail: String,
    /// The Dockerfile line (1-based).
    pub line: usize,
}

impl std::fmt::Display for Lint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} (line {})", self.rule, self.detail, self.line)
    }
}

/// The rules hako checks.
pub const RULES: &[&str] = &[
    "StageNameCasing",
    "FromAsCasing",
    "NoEmptyContinuation",
    "ConsistentInstructionCasing",
    "ReservedStageName",
    "JSONArgsRecommended",
    "MaintainerDeprecated",
    "UndefinedArgInFrom",
    "WorkdirRelativePath",
    "MultipleInstructionsDisallowed",
    "LegacyKeyValueFormat",
    "SecretsUsedInArgOrEnv",
    "FromPlatformFlagConstDisallowed",
    "InvalidDefaultArgInFrom",
    "RedundantTargetPlatform",
    "UndefinedVar",
    "InvalidBaseImagePlatform",
];

/// `# check=skip=A,B;error=true`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Rules not to report.
    pub skip: BTreeSet<String>,
    /// `skip=all`.
    pub skip_all: bool,
    /// A violation fails the build.
    pub error: bool,
}

impl CheckOptions {
    /// Parses the directive's value (`;`-separated `key=value` options).
    pub fn parse(s: &str) -> Result<CheckOptions, String> {
        let mut o = CheckOptions::default();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(format!("invalid check option {part:?}"));
            };
            match k.trim() {
                "skip" => {
                    for r in v.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                        if r == "all" {
                            o.skip_all = true;
                        } else {
                            o.skip.insert(r.to_string());
                        }
                    }
                }
                "error" => {
                    o.error = match v.trim() {
                        "true" | "1" | "t" | "T" | "TRUE" | "True" => true,
                        "false" | "0" | "f" | "F" | "FALSE" | "False" => false,
                        _ => return Err(format!("failed to parse check option {part:?}")),
                    }
                }
                // BuildKit's experimental rules: hako has none to turn on.
                "experimental" => {}
                other => return Err(format!("invalid check option {other:?}")),
            }
        }
        Ok(o)
    }

    /// Whether `rule` is reported.
    pub fn enabled(&self, rule: &str) -> bool {
        !self.skip_all && !self.skip.contains(rule)
    }
}

/// The keyword as written (`from`, `FROM`, `From`).
fn written_keyword(n: &Node) -> &str {
    let t = n.original.trim_start();
    t.split(|c: char| c.is_whitespace()).next().unwrap_or(t)
}

fn is_lower(s: &str) -> bool {
    s.to_ascii_lowercase() == s
}

fn is_upper(s: &str) -> bool {
    s.to_ascii_uppercase() == s
}

/// Whether an ARG or ENV name looks like it holds a secret (BuildKit's word list:
/// `_`-separated words such as `password`, `token`, `key`, unless one is `public`).
fn secret_name(name: &str) -> bool {
    const SECRET: &[&str] = &[
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    let words: Vec<String> = name.split('_').map(str::to_ascii_lowercase).collect();
    words.iter().any(|w| SECRET.contains(&w.as_str())) && !words.iter().any(|w| w == "public")
}

/// The violations in `df` (`stages` is `df` as stages), in line order, every rule on.
pub fn check(df: &Dockerfile, stages: &Stages, builtins: &[(String, String)]) -> Vec<Lint> {
    let mut out = Vec::new();
    let mut add = |rule: &'static str, detail: String, line: usize| {
        out.push(Lint { rule, detail, line });
    };
    for w in &df.warnings {
        add(
            "NoEmptyContinuation",
            "Empty continuation line".into(),
            w.line,
        );
    }
    // Instruction casing: the majority of self-consistent keywords decides.
    let (mut lower, mut upper) = (0, 0);
    for n in &df.nodes {
        let k = written_keyword(n);
        if is_lower(k) {
            lower += 1;
        } else if is_upper(k) {
            upper += 1;
        }
    }
    let majority_lower = lower > upper;
    for n in &df.nodes {
        let k = written_keyword(n);
        if majority_lower && !is_lower(k) {
            add(
                "ConsistentInstructionCasing",
                format!("Command '{k}' should match the case of the command majority (lowercase)"),
                n.line,
            );
        } else if !majority_lower && !is_upper(k) {
            add(
                "ConsistentInstructionCasing",
                format!("Command '{k}' should match the case of the command majority (uppercase)"),
                n.line,
            );
        }
    }
    // FROM lines: meta ARGs (declared, with or without a value) and built-ins only.
    let lex = Lex::new(df.escape);
    let mut declared: BTreeMap<String, String> = builtins.iter().cloned().collect();
    for (a, _) in &stages.meta_args {
        declared.insert(a.name.clone(), a.default.clone().unwrap_or_default());
    }
    // Per stage: a SHELL or an absolute WORKDIR seen (stages on other stages inherit).
    let mut stage_shell: Vec<bool> = Vec::new();
    let mut stage_workdir: Vec<bool> = Vec::new();
    let mut names: Vec<Option<String>> = Vec::new();
    let (mut shell, mut workdir) = (false, false);
    let mut once: BTreeMap<&'static str, usize> = BTreeMap::new();
    for n in &df.nodes {
        let line = n.line;
        match n.keyword.as_str() {
            "from" => {
                if !names.is_empty() {
                    stage_shell.push(shell);
                    stage_workdir.push(workdir);
                }
                once.clear();
                let from = written_keyword(n);
                let base = n.args.first().cloned().unwrap_or_default();
                let name = match n.args.as_slice() {
                    [_, kw, name] => {
                        if (is_upper(from) && !is_upper(kw)) || (!is_upper(from) && !is_lower(kw)) {
                            add(
                                "FromAsCasing",
                                format!("'{kw}' and '{from}' keywords' casing do not match"),
                                line,
                            );
                        }
                        if !is_lower(name) {
                            add(
                                "StageNameCasing",
                                format!("Stage name '{name}' should be lowercase"),
                                line,
                            );
                        }
                        let lower = name.to_ascii_lowercase();
                        if lower == "scratch" || lower == "context" {
                            add(
                                "ReservedStageName",
                                format!(
                                    "Stage name should not use the same name as reserved stage {lower:?}"
                                ),
                                line,
                            );
                        }
                        Some(lower)
                    }
                    _ => None,
                };
                let platform = n
                    .flags
                    .iter()
                    .find_map(|f| f.strip_prefix("--platform="))
                    .map(str::to_string);
                for text in std::iter::once(&base).chain(platform.iter()) {
                    if let Ok(e) = lex.process(text, &declared) {
                        for v in e.unmatched {
                            add(
                                "UndefinedArgInFrom",
                                format!("FROM argument '{v}' is not declared"),
                                line,
                            );
                        }
                    }
                }
                // Built only from defaults (no --build-arg), the base must still be a name.
                if base.contains('$') {
                    let valid = lex
                        .process(&base, &declared)
                        .is_ok_and(|e| valid_reference(&e.result));
                    if !valid {
                        add(
                            "InvalidDefaultArgInFrom",
                            format!(
                                "Default value for ARG {base} results in empty or invalid base image name"
                            ),
                            line,
                        );
                    }
                }
                if let Some(p) = platform
                    .as_deref()
                    .filter(|p| matches!(*p, "$TARGETPLATFORM" | "${TARGETPLATFORM}"))
                {
                    add(
                        "RedundantTargetPlatform",
                        format!(
                            "Setting platform to predefined {p} in FROM is redundant as this is the default behavior"
                        ),
                        line,
                    );
                }
                if let Some(p) = platform.as_deref().filter(|p| !p.contains('$')) {
                    let mut parts = p.split('/');
                    let (os, arch) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    let stage_name = name.as_deref().unwrap_or("");
                    if !(stage_name.contains(os) || (!arch.is_empty() && stage_name.contains(arch)))
                    {
                        add(
                            "FromPlatformFlagConstDisallowed",
                            format!("FROM --platform flag should not use constant value {p:?}"),
                            line,
                        );
                    }
                }
                // A stage on another stage starts from what that one set.
                let parent = names
                    .iter()
                    .rposition(|s| s.as_deref() == Some(base.to_ascii_lowercase().as_str()));
                (shell, workdir) = match parent {
                    Some(i) => (stage_shell[i], stage_workdir[i]),
                    None => (false, false),
                };
                names.push(name);
            }
            "shell" => shell = true,
            "cmd" | "entrypoint" | "healthcheck" => {
                let kw: &'static str = match n.keyword.as_str() {
                    "cmd" => "CMD",
                    "entrypoint" => "ENTRYPOINT",
                    _ => "HEALTHCHECK",
                };
                if let Some(prev) = once.insert(kw, line) {
                    add(
                        "MultipleInstructionsDisallowed",
                        format!(
                            "Multiple {kw} instructions should not be used in the same stage because only the last one will be used"
                        ),
                        prev,
                    );
                }
                if kw != "HEALTHCHECK" && !n.json && !n.args.is_empty() && !shell {
                    add(
                        "JSONArgsRecommended",
                        format!(
                            "JSON arguments recommended for {kw} to prevent unintended behavior related to OS signals"
                        ),
                        line,
                    );
                }
            }
            "maintainer" => add(
                "MaintainerDeprecated",
                "Maintainer instruction is deprecated in favor of using label".into(),
                line,
            ),
            "workdir" => {
                let path = n.args.first().map(String::as_str).unwrap_or("");
                if !path.starts_with('/') && !path.starts_with('$') && !workdir {
                    add(
                        "WorkdirRelativePath",
                        format!(
                            "Relative workdir {path:?} can have unexpected results if the base image changes"
                        ),
                        line,
                    );
                }
                workdir = true;
            }
            "env" | "label" | "arg" => {
                let kw = n.keyword.to_ascii_uppercase();
                if kw != "ARG" {
                    let rest = n
                        .original
                        .trim()
                        .split_once(char::is_whitespace)
                        .map_or("", |(_, r)| r.trim_start());
                    let first = rest.split(char::is_whitespace).next().unwrap_or("");
                    if !first.is_empty() && !first.contains('=') {
                        add(
                            "LegacyKeyValueFormat",
                            format!(
                                "\"{kw} key=value\" should be used instead of legacy \"{kw} key value\" format"
                            ),
                            line,
                        );
                    }
                }
                if kw != "LABEL" {
                    let keys: Vec<&String> = if kw == "ENV" {
                        n.args.iter().step_by(2).collect()
                    } else {
                        n.args.iter().collect()
                    };
                    for k in keys {
                        let name = k.split_once('=').map_or(k.as_str(), |(a, _)| a);
                        if secret_name(name) {
                            add(
                                "SecretsUsedInArgOrEnv",
                                format!(
                                    "Do not use ARG or ENV instructions for sensitive data ({kw} {name:?})"
                                ),
                                line,
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out.sort_by_key(|l| l.line);
    out
}

/// Whether `s` is an image reference (`name[:tag][@digest]`, Docker's grammar): what a
/// FROM line must expand to.
fn valid_reference(s: &str) -> bool {
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let Some((algo, hex)) = d.split_once(':') else {
            return false;
        };
        let algo_ok = !algo.is_empty()
            && algo
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c));
        if !algo_ok || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return false;
        }
    }
    let (name, tag) = match rest.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t)),
        _ => (rest, None),
    };
    if let Some(t) = tag {
        let mut cs = t.chars();
        let first_ok = cs
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !first_ok || t.len() > 128 || !cs.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return false;
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 {
        let host = parts[0];
        if host.contains('.') || host.contains(':') || host == "localhost" {
            let (h, port) = host.split_once(':').unwrap_or((host, "0"));
            if h.is_empty()
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
                || port.is_empty()
                || !port.chars().all(|c| c.is_ascii_digit())
            {
                return false;
            }
            parts.remove(0);
        }
    }
    let component = |p: &str| {
        !p.is_empty()
            && p.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && p.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    };
    !parts.is_empty() && parts.iter().all(|p| component(p))
}

/// BuildKit's UndefinedVar text for `name`, with a "did you mean" from `known` (the
/// variables in scope and the Dockerfile's global ARGs) when one is close.
pub fn undefined_var(name: &str, known: &[String]) -> String {
    let mut out = format!("Usage of undefined variable '${name}'");
    if let Some(m) = suggest(name, known) {
        out.push_str(&format!(" (did you mean ${m}?)"));
    }
    out
}

/// BuildKit's InvalidBaseImagePlatform text: base image `image` is for `actual`
/// (`os/arch[/variant]` of its config), the stage wants `expected` (its `--platform`, else
/// the target platform); `None` when they match.
pub fn invalid_base_platform(image: &str, expected: &str, actual: &str) -> Option<String> {
    if platform_matches(expected, actual) {
        return None;
    }
    Some(format!(
        "Base image {image} was pulled with platform \"{actual}\", expected \"{expected}\" for current build"
    ))
}

/// Whether an image for `actual` serves a build for `expected` (`os/arch[/variant]`,
/// architectures as containerd normalizes them; no variant wanted: any).
fn platform_matches(expected: &str, actual: &str) -> bool {
    fn norm(p: &str) -> (String, String, Option<String>) {
        let mut it = p.split('/');
        let os = it.next().unwrap_or_default().to_ascii_lowercase();
        let arch = it.next().unwrap_or_default().to_ascii_lowercase();
        let variant = it.next().map(str::to_ascii_lowercase);
        let arch = match arch.as_str() {
            "x86_64" | "x86-64" => "amd64".to_string(),
            "aarch64" => "arm64".to_string(),
            "i386" => "386".to_string(),
            "armhf" => "arm".to_string(),
            _ => arch,
        };
        let variant = match (arch.as_str(), variant.as_deref()) {
            ("arm64", Some("v8")) | ("amd64", Some("v1")) => None,
            _ => variant,
        };
        (os, arch, variant)
    }
    let (e, a) = (norm(expected), norm(actual));
    e.0 == a.0 && e.1 == a.1 && (e.2.is_none() || e.2 == a.2)
}

/// The closest of `options` to `word` (never `word` itself: a global ARG of that name is
/// simply not in the stage): the same but for case, else at most two edits away (and
/// fewer than the word's length).
fn suggest<'a>(word: &str, options: &'a [String]) -> Option<&'a str> {
    let options: Vec<&'a String> = options.iter().filter(|o| *o != word).collect();
    if let Some(o) = options.iter().find(|o| o.eq_ignore_ascii_case(word)) {
        return Some(o.as_str());
    }
    let mut best: Option<(usize, &str)> = None;
    for o in options {
        let d = edit_distance(word, o);
        if d <= 2 && d < word.chars().count() && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, o));
        }
    }
    best.map(|(_, o)| o)
}

/// Levenshtein distance (characters).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The build's `--build-arg BUILDKIT_DOCKERFILE_CHECK` or else the directive, parsed.
pub fn options(directive: Option<&str>, build_arg: Option<&str>) -> Result<CheckOptions, String> {
    match build_arg.or(directive) {
        Some(s) => CheckOptions::parse(s),
        None => Ok(CheckOptions::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lints(text: &str) -> Vec<String> {
        let df = crate::parser::parse(text).expect("parse");
        let st = crate::instructions::stages(&df).expect("stages");
        let builtins = vec![("TARGETPLATFORM".to_string(), "linux/amd64".to_string())];
        check(&df, &st, &builtins)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn each_rule_as_buildkit_words_it() {
        let got = lints(concat!(
            "ARG BASE=busybox\n",
            "FROM $BASE as Builder\n",
            "MAINTAINER me\n",
            "ENV PATH2 /x\n",
            "ARG DB_PASSWORD\n",
            "ARG PUBLIC_KEY\n",
            "WORKDIR app\n",
            "CMD echo one\n",
            "CMD [\"two\"]\n",
            "run true\n",
            "FROM --platform=linux/arm64 ${NOPE:-busybox}\n",
            "FROM scratch AS context\n",
            "ENTRYPOINT run\n",
            "FROM builder\n",
            "WORKDIR sub\n",
            "SHELL [\"/bin/bash\", \"-c\"]\n",
            "ENTRYPOINT run\n",
        ));
        assert_eq!(
            got,
            [
                "FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 2)",
                "StageNameCasing: Stage name 'Builder' should be lowercase (line 2)",
                "MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 3)",
                "LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format (line 4)",
                "SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG \"DB_PASSWORD\") (line 5)",
                "WorkdirRelativePath: Relative workdir \"app\" can have unexpected results if the base image changes (line 7)",
                "JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 8)",
                "MultipleInstructionsDisallowed: Multiple CMD instructions should not be used in the same stage because only the last one will be used (line 8)",
                "ConsistentInstructionCasing: Command 'run' should match the case of the command majority (uppercase) (line 10)",
                "UndefinedArgInFrom: FROM argument 'NOPE' is not declared (line 11)",
                "FromPlatformFlagConstDisallowed: FROM --platform flag should not use constant value \"linux/arm64\" (line 11)",
                "ReservedStageName: Stage name should not use the same name as reserved stage \"context\" (line 12)",
                "JSONArgsRecommended: JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals (line 13)",
            ]
        );
        // Lowercase majority, and an empty continuation line.
        let got = lints("from busybox\nrun echo \\\n\n  hi\nCOPY a b\n");
        assert_eq!(
            got,
            [
                "NoEmptyContinuation: Empty continuation line (line 2)",
                "ConsistentInstructionCasing: Command 'COPY' should match the case of the command majority (lowercase) (line 5)",
            ]
        );
        assert!(lints("FROM busybox AS ok\nWORKDIR /abs\nWORKDIR rel\nCMD [\"x\"]\n").is_empty());
    }

    #[test]
    fn base_names_from_defaults_and_the_target_platform() {
        let got = lints(concat!(
            "ARG TAG\n",
            "ARG VARIANT\n",
            "ARG IMG=busybox\n",
            "ARG DIGEST\n",
            "FROM busybox:${TAG}\n",
            "FROM busybox:stable${VARIANT}\n",
            "FROM alpine:${TAG:-3.14}\n",
            "FROM ${IMG}@${DIGEST}\n",
            "FROM --platform=$TARGETPLATFORM ${IMG} AS b\n",
            "FROM --platform=${TARGETPLATFORM} ${IMG} AS c\n",
        ));
        assert_eq!(
            got,
            [
                "InvalidDefaultArgInFrom: Default value for ARG busybox:${TAG} results in empty or invalid base image name (line 5)",
                "InvalidDefaultArgInFrom: Default value for ARG ${IMG}@${DIGEST} results in empty or invalid base image name (line 8)",
                "RedundantTargetPlatform: Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior (line 9)",
                "RedundantTargetPlatform: Setting platform to predefined ${TARGETPLATFORM} in FROM is redundant as this is the default behavior (line 10)",
            ]
        );
        for ok in [
            "busybox",
            "reg.io:5000/a/b-c_d:1.0",
            "localhost/x",
            "x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(valid_reference(ok), "{ok}");
        }
        for bad in ["", "busybox:", "Busybox", "a//b", "x@", "x:-y", "-x"] {
            assert!(!valid_reference(bad), "{bad}");
        }
    }

    #[test]
    fn base_image_platforms_as_containerd_matches_them() {
        assert_eq!(
            invalid_base_platform("busybox", "linux/amd64", "linux/amd64"),
            None
        );
        assert_eq!(
            invalid_base_platform("b", "linux/arm64", "linux/arm64/v8"),
            None
        );
        assert_eq!(
            invalid_base_platform("b", "linux/arm", "linux/arm/v7"),
            None
        );
        assert_eq!(
            invalid_base_platform("b", "linux/x86_64", "linux/amd64"),
            None
        );
        assert_eq!(
            invalid_base_platform("busybox", "linux/arm64", "linux/amd64").as_deref(),
            Some(
                "Base image busybox was pulled with platform \"linux/amd64\", expected \"linux/arm64\" for current build"
            )
        );
        assert!(invalid_base_platform("b", "linux/arm/v6", "linux/arm/v7").is_some());
        assert!(invalid_base_platform("b", "windows/amd64", "linux/amd64").is_some());
    }

    #[test]
    fn undefined_variables_get_a_suggestion_when_one_is_close() {
        let known = ["PATH".to_string(), "HOME".to_string(), "GOPATH".to_string()];
        assert_eq!(
            undefined_var("PAHT", &known),
            "Usage of undefined variable '$PAHT' (did you mean $PATH?)"
        );
        assert_eq!(
            undefined_var("path", &known),
            "Usage of undefined variable '$path' (did you mean $PATH?)"
        );
        assert_eq!(
            undefined_var("foo", &known),
            "Usage of undefined variable '$foo'"
        );
        assert_eq!(
            undefined_var("HOME", &known),
            "Usage of undefined variable '$HOME'"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn the_check_directive() {
        let o = CheckOptions::parse("skip=JSONArgsRecommended,StageNameCasing;error=true")
            .expect("parse");
        assert!(o.error && !o.enabled("JSONArgsRecommended") && o.enabled("FromAsCasing"));
        let o = CheckOptions::parse("skip=all").expect("parse");
        assert!(!o.error && !o.enabled("FromAsCasing"));
        assert_eq!(
            CheckOptions::parse("error=maybe"),
            Err("failed to parse check option \"error=maybe\"".into())
        );
        assert_eq!(
            CheckOptions::parse("colour=red"),
            Err("invalid check option \"colour\"".into())
        );
        assert_eq!(
            CheckOptions::parse("skip"),
            Err("invalid check option \"skip\"".into())
        );
        // The build arg wins over the directive.
        let o = options(Some("error=true"), Some("skip=all")).expect("parse");
        assert!(o.skip_all && !o.error);
    }
}
