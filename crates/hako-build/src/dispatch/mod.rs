//! Applying instructions to a stage: the image config changes of every instruction, and
//! for RUN, COPY, ADD and WORKDIR the filesystem step to perform, fully expanded.
//!
//! Expansion follows BuildKit: values come from the environment *before* the
//! instruction (so `ENV a=x b=$a` sees the old `a`); ADD COPY ENV EXPOSE LABEL
//! STOPSIGNAL USER VOLUME WORKDIR are expanded here, RUN/CMD/ENTRYPOINT are left to the
//! shell.

pub mod args;
mod ports;

use std::collections::BTreeSet;

use args::{BuildArgs, Globals};

use crate::config::{Health, ImageConfig};
use crate::instructions::{CmdLine, Command, CopySpec, Instruction, RunSpec};
use crate::parser::Heredoc;
use crate::shell::{Lex, ShellError};

/// An instruction that could not be applied (bad value, failed expansion).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DispatchError {
    /// What is wrong.
    pub message: String,
}

impl From<ShellError> for DispatchError {
    fn from(e: ShellError) -> Self {
        DispatchError {
            message: e.to_string(),
        }
    }
}

fn derr(m: impl Into<String>) -> DispatchError {
    DispatchError { message: m.into() }
}

/// A stage being built: its config and the ARGs in scope.
#[derive(Debug, Clone)]
pub struct StageState {
    /// The image config so far.
    pub image: ImageConfig,
    /// Declared ARGs with a value, in order.
    pub args: Vec<(String, String)>,
    /// Every ARG declared in the stage, with a value or not (none is an undefined variable).
    pub declared: Vec<String>,
    /// CMD was set in this stage (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
    /// The escape token of the Dockerfile.
    pub escape: char,
}

/// A filesystem step to perform.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Only the config changed.
    Config,
    /// Run a command in a container.
    Run(RunStep),
    /// Copy files in (COPY or ADD).
    Copy(CopyStep),
    /// Create the working directory (`mkdir -p`, owned by root, 0755).
    Mkdir(String),
}

/// RUN, expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStep {
    /// The argv.
    pub argv: Vec<String>,
    /// `K=V` environment (config Env, then the ARGs ENV does not override).
    pub env: Vec<String>,
    /// Proxy variables from `--build-arg` not set otherwise (given to the container,
    /// kept out of the cache key).
    pub proxy_env: Vec<String>,
    /// ARGs as `K=V` for the cache key and history (no proxies).
    pub args: Vec<String>,
    /// `USER`.
    pub user: String,
    /// Working directory.
    pub cwd: String,
    /// `--mount` values, expanded, unparsed.
    pub mounts: Vec<String>,
    /// `--network`.
    pub network: Option<String>,
    /// `--security`.
    pub security: Option<String>,
    /// A heredoc with a `#!` line to run as a file: (name, body).
    pub script: Option<(String, String)>,
    /// The history line (`RUN |1 A=b /bin/sh -c make`).
    pub created_by: String,
}

/// Whether a COPY or an ADD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyKind {
    /// COPY.
    Copy,
    /// ADD (URLs, archives extracted).
    Add,
}

/// COPY/ADD, expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStep {
    /// Which instruction.
    pub kind: CopyKind,
    /// Source paths (relative to the context or the `--from` root) or URLs.
    pub sources: Vec<String>,
    /// Heredoc sources: (name, body after expansion).
    pub contents: Vec<(String, String)>,
    /// Absolute destination; a trailing `/` kept (it means "a directory").
    pub dest: String,
    /// `--from`, expanded.
    pub from: Option<String>,
    /// `--chown`, expanded (resolved against the image later).
    pub chown: Option<String>,
    /// `--chmod` as a mode.
    pub chmod: Option<u32>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns, expanded.
    pub exclude: Vec<String>,
    /// `--checksum` (ADD).
    pub checksum: Option<String>,
    /// `--unpack` (ADD).
    pub unpack: Option<bool>,
    /// The history line.
    pub created_by: String,
}

impl StageState {
    /// A stage on top of `image` (base image config, or the parent stage's state).
    pub fn new(image: ImageConfig, escape: char) -> StageState {
        StageState {
            image,
            args: Vec::new(),
            declared: Vec::new(),
            cmd_set: false,
            escape,
        }
    }

    fn lex(&self) -> Lex {
        Lex::new(self.escape)
    }

    /// The variables expansions see: ARGs, overridden by ENV.
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut v = self.args.clone();
        v.extend(self.image.env());
        v
    }

    /// How progress names `cmd` (BuildKit's vertex name): its text with the variables
    /// set before it (ARGs in scope, ENV) expanded, quotes kept, references to unset
    /// variables left as written; the text as written when it does not scan.
    pub fn shown(&self, cmd: &Command) -> String {
        let text = cmd.original.trim();
        let rest = text
            .split_once(char::is_whitespace)
            .map_or("", |(_, r)| r.trim_start());
        if rest.is_empty() {
            return cmd.keyword.clone();
        }
        let lex = Lex {
            raw_quotes: true,
            skip_unset_env: true,
            ..self.lex()
        };
        let rest = lex
            .process(rest, &self.vars())
            .map_or_else(|_| rest.to_string(), |e| e.result);
        format!("{} {rest}", cmd.keyword)
    }

    /// The variables `cmd` uses that nothing defines (BuildKit's UndefinedVar): in the
    /// words the builder expands (ENV, LABEL, EXPOSE, USER, WORKDIR, VOLUME, STOPSIGNAL,
    /// ARG defaults, COPY/ADD paths and flags; never RUN, CMD or ENTRYPOINT, which the
    /// shell expands), not set by ENV or the base image, nor declared by an ARG of the
    /// stage. Sorted, each once.
    pub fn undefined_vars(&self, cmd: &Command) -> Vec<String> {
        let mut words: Vec<&String> = Vec::new();
        match &cmd.instruction {
            Instruction::Env(pairs) | Instruction::Label(pairs) => {
                for (k, v) in pairs {
                    words.extend([k, v]);
                }
            }
            Instruction::Expose(v) | Instruction::Volume(v) => words.extend(v),
            Instruction::User(w) | Instruction::Workdir(w) | Instruction::StopSignal(w) => {
                words.push(w);
            }
            Instruction::Arg(defs) => words.extend(defs.iter().filter_map(|d| d.default.as_ref())),
            Instruction::Copy(c) | Instruction::Add(c) => {
                words.extend(&c.sources);
                words.push(&c.dest);
                words.extend(&c.exclude);
                for o in [&c.from, &c.chown, &c.chmod, &c.checksum] {
                    words.extend(o);
                }
            }
            _ => {}
        }
        let vars = self.vars();
        let lex = self.lex();
        let mut out: BTreeSet<String> = BTreeSet::new();
        for w in words {
            if let Ok(e) = lex.process(w, &vars) {
                out.extend(e.unmatched);
            }
        }
        // An ARG declared earlier in the same instruction counts as declared.
        if let Instruction::Arg(defs) = &cmd.instruction {
            for d in defs {
                out.remove(&d.name);
            }
        }
        // (BuildKit's SBOM scanner arguments are never in the environment: exempt.)
        out.retain(|v| {
            !self.declared.contains(v)
                && v != "BUILDKIT_SBOM_SCAN_CONTEXT"
                && v != "BUILDKIT_SBOM_SCAN_STAGE"
        });
        out.into_iter().collect()
    }

    fn word(&self, s: &str) -> Result<String, DispatchError> {
        Ok(self.lex().word(s, &self.vars())?)
    }

    /// Applies one instruction: updates the config (and history for config-only
    /// instructions) and returns the filesystem step, if any.
    pub fn apply(
        &mut self,
        cmd: &Command,
        build_args: &BuildArgs,
        globals: &Globals,
    ) -> Result<Step, DispatchError> {
        let ins = &cmd.instruction;
        match ins {
            Instruction::Env(pairs) => {
                let mut done = Vec::new();
                for (k, v) in pairs {
                    done.push((self.word(k)?, self.word(v)?));
                }
                let mut shown = Vec::new();
                for (k, v) in &done {
                    self.image.set_env(k, v);
                    shown.push(format!("{k}={v}"));
                }
                self.history(format!("ENV {}", shown.join(" ")));
            }
            Instruction::Label(pairs) => {
                let mut done = Vec::new();
                for (k, v) in pairs {
                    done.push((self.word(k)?, self.word(v)?));
                }
                let labels = self
                    .image
                    .config
                    .labels
                    .get_or_insert_with(Default::default);
                let mut shown = Vec::new();
                for (k, v) in done {
                    shown.push(format!("{k}={v}"));
                    labels.insert(k, v);
                }
                self.history(format!("LABEL {}", shown.join(" ")));
            }
            Instruction::Maintainer(m) => {
                self.image.author = Some(m.clone());
                self.history(format!("MAINTAINER {m}"));
            }
            Instruction::Expose(ports) => {
                let mut expanded = Vec::new();
                for p in ports {
                    expanded.extend(self.lex().words(p, &self.vars())?);
                }
                let set = ports::parse(&expanded).map_err(derr)?;
                let map = self
                    .image
                    .config
                    .exposed_ports
                    .get_or_insert_with(Default::default);
                for p in &set {
                    map.insert(p.clone(), serde_json::json!({}));
                }
                self.history(format!(
                    "EXPOSE map[{}]",
                    set.iter()
                        .map(|p| format!("{p}:{{}}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
            Instruction::User(u) => {
                let u = self.word(u)?;
                self.image.config.user = u.clone();
                self.history(format!("USER {u}"));
            }
            Instruction::Workdir(w) => {
                let w = self.word(w)?;
                let path = if w.starts_with('/') {
                    crate::ignore::clean_path(&w)
                } else {
                    crate::ignore::clean_path(&format!("{}/{w}", self.image.workdir()))
                };
                self.image.config.working_dir = path.clone();
                if path != "/" {
                    return Ok(Step::Mkdir(path));
                }
                self.history(format!("WORKDIR {path}"));
            }
            Instruction::Volume(vols) => {
                let mut done = Vec::new();
                for v in vols {
                    let v = self.word(v)?;
                    if v.is_empty() {
                        return Err(derr("VOLUME specified can not be an empty string"));
                    }
                    done.push(v);
                }
                let map = self
                    .image
                    .config
                    .volumes
                    .get_or_insert_with(Default::default);
                for v in &done {
                    map.insert(v.clone(), serde_json::json!({}));
                }
                self.history(format!("VOLUME [{}]", done.join(" ")));
            }
            Instruction::StopSignal(s) => {
                let s = self.word(s)?;
                if !valid_signal(&s) {
                    return Err(derr(format!("Invalid signal: {s}")));
                }
                self.image.config.stop_signal = s.clone();
                self.history(format!("STOPSIGNAL {s}"));
            }
            Instruction::Shell(sh) => {
                self.image.config.shell = Some(sh.clone());
                self.history(format!("SHELL [{}]", sh.join(" ")));
            }
            Instruction::Cmd(c) => {
                let argv = self.config_argv(c);
                self.history(format!("CMD {}", go_quoted(&argv)));
                self.image.config.cmd = Some(argv);
                self.cmd_set = true;
            }
            Instruction::Entrypoint(c) => {
                let argv = self.config_argv(c);
                self.history(format!("ENTRYPOINT {}", go_quoted(&argv)));
                self.image.config.entrypoint = if argv.is_empty() && !c.shell {
                    None
                } else {
                    Some(argv)
                };
                if !self.cmd_set {
                    self.image.config.cmd = None;
                }
            }
            Instruction::Healthcheck(h) => {
                let health = Health {
                    test: h.test.clone(),
                    interval: h.interval,
                    timeout: h.timeout,
                    start_period: h.start_period,
                    start_interval: h.start_interval,
                    retries: h.retries,
                };
                self.history(format!(
                    "HEALTHCHECK &{{{} \"{}\" \"{}\" \"{}\" \"{}\" '\\x{:02x}'}}",
                    go_quoted(&h.test),
                    go_duration(h.interval),
                    go_duration(h.timeout),
                    go_duration(h.start_period),
                    go_duration(h.start_interval),
                    h.retries
                ));
                self.image.config.healthcheck = Some(health);
            }
            Instruction::Arg(defs) => {
                let mut shown = Vec::new();
                for def in defs {
                    let vars = self.vars();
                    let lex = self.lex();
                    let value =
                        args::stage_arg_value(def, build_args, globals, |d| lex.word(d, &vars))?;
                    shown.push(match &def.default {
                        Some(d) => format!("{}={d}", def.name),
                        None => def.name.clone(),
                    });
                    self.args.retain(|(k, _)| *k != def.name);
                    if !self.declared.contains(&def.name) {
                        self.declared.push(def.name.clone());
                    }
                    if let Some(v) = value {
                        self.args.push((def.name.clone(), v));
                    }
                }
                self.history(format!("ARG {}", shown.join(" ")));
            }
            Instruction::Onbuild(expr) => {
                self.image
                    .config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(expr.clone());
                self.history(format!("ONBUILD {expr}"));
            }
            Instruction::Run(r) => return Ok(Step::Run(self.run_step(r, build_args))),
            Instruction::Copy(c) => return self.copy_step(c, CopyKind::Copy, cmd).map(Step::Copy),
            Instruction::Add(c) => return self.copy_step(c, CopyKind::Add, cmd).map(Step::Copy),
        }
        Ok(Step::Config)
    }

    fn history(&mut self, created_by: String) {
        self.image.add_history(created_by, true);
    }

    /// CMD/ENTRYPOINT as stored in the config.
    fn config_argv(&self, c: &CmdLine) -> Vec<String> {
        if c.shell {
            let mut v = self.image.shell();
            v.extend(c.args.iter().cloned());
            v
        } else {
            c.args.clone()
        }
    }

    /// The environment of a RUN: (env, proxies from `--build-arg` not otherwise set).
    pub fn run_env(&self, build_args: &BuildArgs) -> (Vec<String>, Vec<String>) {
        let env = self.image.env();
        let mut out: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for (k, v) in &self.args {
            if !env.iter().any(|(ek, _)| ek == k) {
                out.push(format!("{k}={v}"));
            }
        }
        let mut proxies = Vec::new();
        for (k, v) in build_args.proxies() {
            let set = out
                .iter()
                .any(|e| e.split_once('=').is_some_and(|(ek, _)| ek == k));
            if !set {
                proxies.push(format!("{k}={v}"));
            }
        }
        (out, proxies)
    }

    fn run_step(&self, r: &RunSpec, build_args: &BuildArgs) -> RunStep {
        let shell = self.image.shell();
        let mut script = None;
        let argv: Vec<String> = match (&r.cmd.heredocs[..], r.cmd.shell) {
            ([doc], true) if is_single_heredoc(&r.cmd.args) => {
                let body = doc.body();
                if body.starts_with("#!") {
                    script = Some((doc.name.clone(), body));
                    vec![format!("/dev/pipes/{}", doc.name)]
                } else {
                    shell.iter().cloned().chain([body]).collect()
                }
            }
            ([], true) => shell
                .iter()
                .cloned()
                .chain([r.cmd.args.join(" ")])
                .collect(),
            (docs, true) => {
                let mut full = r.cmd.args.join(" ");
                for d in docs {
                    full.push('\n');
                    full.push_str(&d.content);
                    full.push_str(&d.name);
                }
                shell.iter().cloned().chain([full]).collect()
            }
            (_, false) => r.cmd.args.clone(),
        };
        let args: Vec<String> = self
            .args
            .iter()
            .filter(|(k, _)| !args::is_proxy(k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let shown = if script.is_some() || r.cmd.heredocs.is_empty() {
            argv.join(" ")
        } else {
            shell
                .iter()
                .cloned()
                .chain([format!(
                    "{} ({})",
                    r.cmd.args.join(" "),
                    summarize(&r.cmd.heredocs[0])
                )])
                .collect::<Vec<_>>()
                .join(" ")
        };
        let created_by = if args.is_empty() {
            format!("RUN {shown} # buildkit")
        } else {
            format!("RUN |{} {} {shown} # buildkit", args.len(), args.join(" "))
        };
        let (env, proxy_env) = self.run_env(build_args);
        RunStep {
            argv,
            env,
            proxy_env,
            args,
            user: self.image.config.user.clone(),
            cwd: self.image.workdir().to_string(),
            mounts: r.mounts.clone(),
            network: r.network.clone(),
            security: r.security.clone(),
            script,
            created_by,
        }
    }

    fn copy_step(
        &self,
        c: &CopySpec,
        kind: CopyKind,
        cmd: &Command,
    ) -> Result<CopyStep, DispatchError> {
        let mut sources = Vec::new();
        for s in &c.sources {
            sources.push(self.word(s)?);
        }
        let mut contents = Vec::new();
        let heredoc_lex = Lex {
            skip_process_quotes: true,
            ..Lex::default()
        };
        for h in &c.contents {
            let body = h.body();
            let body = if h.expand {
                heredoc_lex.word(&body, &self.vars())?
            } else {
                body
            };
            contents.push((h.name.clone(), body));
        }
        let dest_raw = self.word(&c.dest)?;
        let dest = absolute_dest(self.image.workdir(), &dest_raw);
        let many = sources.len() + contents.len() > 1;
        if many && !dest.ends_with('/') {
            return Err(derr(format!(
                "When using {} with more than one source file, the destination must be a directory and end with a /",
                cmd.keyword
            )));
        }
        let chmod = match &c.chmod {
            Some(m) => Some(parse_chmod(&self.word(m)?)?),
            None => None,
        };
        let mut exclude = Vec::new();
        for e in &c.exclude {
            exclude.push(self.word(e)?);
        }
        let opt = |o: &Option<String>| -> Result<Option<String>, DispatchError> {
            o.as_ref().map(|v| self.word(v)).transpose()
        };
        let mut shown = vec![cmd.keyword.clone()];
        if let Some(f) = &c.from {
            shown.push(format!("--from={f}"));
        }
        if let Some(o) = &c.chown {
            shown.push(format!("--chown={o}"));
        }
        if let Some(m) = &c.chmod {
            shown.push(format!("--chmod={m}"));
        }
        if c.link {
            shown.push("--link".into());
        }
        if c.parents {
            shown.push("--parents".into());
        }
        shown.extend(sources.iter().cloned());
        shown.extend(contents.iter().map(|(n, _)| format!("<<{n}")));
        shown.push(dest_raw);
        Ok(CopyStep {
            kind,
            sources,
            contents,
            dest,
            from: opt(&c.from)?,
            chown: opt(&c.chown)?,
            chmod,
            link: c.link,
            parents: c.parents,
            exclude,
            checksum: opt(&c.checksum)?,
            unpack: c.unpack,
            created_by: format!("{} # buildkit", shown.join(" ")),
        })
    }
}

/// `RUN <<EOF` alone: the heredoc is the whole command.
fn is_single_heredoc(args: &[String]) -> bool {
    matches!(args, [one] if crate::parser::heredoc_word(one.trim()).ok().flatten().is_some())
}

fn summarize(h: &Heredoc) -> String {
    let body = h.body();
    let lines: Vec<&str> = body.lines().collect();
    match lines.as_slice() {
        [] => String::new(),
        [one] => one.to_string(),
        [first, ..] => format!("{first}..."),
    }
}

/// The destination made absolute against the working directory; a trailing `/` (or
/// `/.`) is kept, since it says "into a directory".
pub fn absolute_dest(workdir: &str, dest: &str) -> String {
    let dir_like = dest.ends_with('/') || dest.ends_with("/.") || dest == "." || dest.is_empty();
    let joined = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{}/{dest}", workdir.trim_end_matches('/'))
    };
    let mut clean = crate::ignore::clean_path(&joined);
    if dir_like && !clean.ends_with('/') {
        clean.push('/');
    }
    clean
}

/// `--chmod=0755` (octal) or symbolic like `u+x,go=r` applied to 0 is not meaningful
/// without a base mode; only octal is accepted, as BuildKit's stable frontend.
fn parse_chmod(s: &str) -> Result<u32, DispatchError> {
    if s.is_empty() || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(derr(format!(
            "invalid chmod parameter {s:?}: expected an octal mode"
        )));
    }
    let m =
        u32::from_str_radix(s, 8).map_err(|_| derr(format!("invalid chmod parameter {s:?}")))?;
    if m > 0o7777 {
        return Err(derr(format!(
            "invalid chmod parameter {s:?}: mode out of range"
        )));
    }
    Ok(m)
}

/// Signal names and numbers Docker accepts for STOPSIGNAL.
pub fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(rt) = name
        .strip_prefix("RTMIN")
        .or_else(|| name.strip_prefix("RTMAX"))
    {
        return rt.is_empty() || rt.trim_start_matches(['+', '-']).parse::<u32>().is_ok();
    }
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    NAMES.contains(&name)
}

/// Go's `%q` of a string slice: `["a" "b c"]`.
fn go_quoted(v: &[String]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", items.join(" "))
}

/// Go's `time.Duration` string for whole units (`5s`, `1m30s`, `0s`).
fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    if ns % 1_000_000_000 != 0 {
        if ns % 1_000_000 == 0 {
            return format!("{}ms", ns / 1_000_000);
        }
        return format!("{ns}ns");
    }
    let s = ns / 1_000_000_000;
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{sec}s"),
        (0, _) => format!("{m}m{sec}s"),
        _ => format!("{h}h{m}m{sec}s"),
    }
}

#[cfg(test)]
mod tests;
