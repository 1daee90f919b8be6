//! Build checks: BuildKit's Dockerfile linter rules that need no image or context, run
//! on the parsed file before anything is built, and the `# check=` directive (or the
//! `BUILDKIT_DOCKERFILE_CHECK` build arg, which wins) that skips rules or makes any
//! violation fail the build (`lint violation found for rules: ...`).
//!
//! Rules checked, with BuildKit's names and texts: StageNameCasing, FromAsCasing,
//! NoEmptyContinuation, ConsistentInstructionCasing, ReservedStageName,
//! JSONArgsRecommended, MaintainerDeprecated, UndefinedArgInFrom, WorkdirRelativePath,
//! MultipleInstructionsDisallowed, LegacyKeyValueFormat, SecretsUsedInArgOrEnv,
//! FromPlatformFlagConstDisallowed. Not checked: UndefinedVar, InvalidDefaultArgInFrom,
//! InvalidBaseImagePlatform and RedundantTargetPlatform (they need the base images'
//! configs; hako resolves those while building, after the checks), and the experimental
//! ones. JSONArgsRecommended is skipped after a `SHELL` in the stage (or a stage it
//! builds on), not for a base image whose config sets a shell.

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
