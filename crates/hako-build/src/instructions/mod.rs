//! Typed instructions and build stages from parsed [`Node`]s (BuildKit's
//! `frontend/dockerfile/instructions`): flags checked per instruction, argument counts
//! validated, stage names checked. Values are *not* expanded here: expansion needs the
//! environment of the stage at that point, which only the build knows.

mod flags;

use flags::Flags;

use crate::parser::{Dockerfile, Heredoc, Node, ParseError};

/// A command line of RUN, CMD, ENTRYPOINT or a HEALTHCHECK test.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CmdLine {
    /// Exec form: the argv. Shell form: one string.
    pub args: Vec<String>,
    /// Shell form (the stage's SHELL is prepended).
    pub shell: bool,
    /// Heredocs of the instruction (RUN only).
    pub heredocs: Vec<Heredoc>,
}

/// COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopySpec {
    /// Source paths or URLs as written (not expanded).
    pub sources: Vec<String>,
    /// Heredoc sources (`COPY <<EOF /dst`).
    pub contents: Vec<Heredoc>,
    /// The destination as written.
    pub dest: String,
    /// `--from=` (COPY): a stage name or index, or an image.
    pub from: Option<String>,
    /// `--chown=`.
    pub chown: Option<String>,
    /// `--chmod=`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents` (COPY).
    pub parents: bool,
    /// `--exclude=` patterns.
    pub exclude: Vec<String>,
    /// `--checksum=` (ADD of a URL).
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD of a git URL; git sources are not supported).
    pub keep_git_dir: bool,
    /// `--unpack=` (ADD): whether local/remote archives are extracted; `None` = default.
    pub unpack: Option<bool>,
}

/// RUN.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunSpec {
    /// What to run.
    pub cmd: CmdLine,
    /// `--mount=` values as written (parsed after expansion).
    pub mounts: Vec<String>,
    /// `--network=` (`default`, `none`, `host`).
    pub network: Option<String>,
    /// `--security=` (`sandbox`, `insecure`).
    pub security: Option<String>,
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthSpec {
    /// `["NONE"]`, `["CMD", argv...]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// `--interval`, `--timeout`, `--start-period`, `--start-interval` in nanoseconds.
    pub interval: i64,
    /// See `interval`.
    pub timeout: i64,
    /// See `interval`.
    pub start_period: i64,
    /// See `interval`.
    pub start_interval: i64,
    /// `--retries`.
    pub retries: i64,
}

/// One instruction inside a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `ENV k=v ...` (values unexpanded).
    Env(Vec<(String, String)>),
    /// `LABEL k=v ...`.
    Label(Vec<(String, String)>),
    /// `MAINTAINER name`.
    Maintainer(String),
    /// `ADD`.
    Add(CopySpec),
    /// `COPY`.
    Copy(CopySpec),
    /// `RUN`.
    Run(RunSpec),
    /// `CMD`.
    Cmd(CmdLine),
    /// `ENTRYPOINT` (`ENTRYPOINT []` clears it).
    Entrypoint(CmdLine),
    /// `HEALTHCHECK`.
    Healthcheck(HealthSpec),
    /// `EXPOSE` ports as written.
    Expose(Vec<String>),
    /// `USER`.
    User(String),
    /// `WORKDIR`.
    Workdir(String),
    /// `VOLUME`.
    Volume(Vec<String>),
    /// `STOPSIGNAL`.
    StopSignal(String),
    /// `ARG name[=default] ...`.
    Arg(Vec<ArgDef>),
    /// `SHELL ["exe", "args"]`.
    Shell(Vec<String>),
    /// `ONBUILD <instruction>`: the trigger as text (heredoc bodies appended).
    Onbuild(String),
}

/// One `ARG` name with its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDef {
    /// The name.
    pub name: String,
    /// The default as written, if any.
    pub default: Option<String>,
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// What to do.
    pub instruction: Instruction,
    /// The instruction as written (one line, continuations joined).
    pub original: String,
    /// The uppercase keyword (`RUN`).
    pub keyword: String,
    /// First line (1-based).
    pub line: usize,
    /// Last line.
    pub end_line: usize,
}

/// A build stage: `FROM base [AS name]` and its instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The base as written (may contain `$VAR` from global ARGs).
    pub base: String,
    /// The stage name, lowercase.
    pub name: Option<String>,
    /// `--platform=`, as written.
    pub platform: Option<String>,
    /// The FROM line as written.
    pub original: String,
    /// The FROM line number.
    pub line: usize,
    /// The instructions.
    pub commands: Vec<Command>,
}

/// A Dockerfile as stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stages {
    /// ARGs before the first FROM (global scope: usable in FROM lines).
    pub meta_args: Vec<(ArgDef, usize)>,
    /// The stages in order.
    pub stages: Vec<Stage>,
    /// The escape token.
    pub escape: char,
}

impl Stages {
    /// The index of the stage named `name` (case-insensitive) or numbered `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        if let Some(i) = self
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return Some(i);
        }
        name.parse::<usize>()
            .ok()
            .filter(|i| *i < self.stages.len())
    }
}

const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

fn err(node: &Node, message: impl Into<String>) -> ParseError {
    ParseError {
        line: node.line,
        end_line: node.end_line,
        message: message.into(),
    }
}

/// Turns a parsed Dockerfile into stages.
pub fn stages(df: &Dockerfile) -> Result<Stages, ParseError> {
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &df.nodes {
        if node.keyword == "from" {
            let stage = parse_from(node)?;
            if let Some(n) = &stage.name
                && stages.iter().any(|s| s.name.as_ref() == Some(n))
            {
                return Err(err(node, format!("duplicate stage name {n:?}")));
            }
            stages.push(stage);
            continue;
        }
        let instruction = parse(node).map_err(|m| err(node, m))?;
        let command = Command {
            instruction,
            original: node.original.trim().to_string(),
            keyword: node.keyword.to_ascii_uppercase(),
            line: node.line,
            end_line: node.end_line,
        };
        match stages.last_mut() {
            Some(s) => s.commands.push(command),
            None => match command.instruction {
                Instruction::Arg(args) => {
                    meta_args.extend(args.into_iter().map(|a| (a, node.line)));
                }
                _ => {
                    return Err(err(
                        node,
                        format!(
                            "{} before the first FROM: no build stage in current context",
                            command.keyword
                        ),
                    ));
                }
            },
        }
    }
    Ok(Stages {
        meta_args,
        stages,
        escape: df.escape,
    })
}

fn parse_from(node: &Node) -> Result<Stage, ParseError> {
    let mut f = Flags::new(&node.flags);
    f.string("platform");
    f.parse().map_err(|m| err(node, m))?;
    let name = match node.args.as_slice() {
        [_] => None,
        [_, kw, name] if kw.eq_ignore_ascii_case("as") => {
            let lower = name.to_ascii_lowercase();
            let ok = lower.starts_with(|c: char| c.is_ascii_lowercase())
                && lower
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !ok {
                return Err(err(
                    node,
                    format!(
                        "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                    ),
                ));
            }
            Some(lower)
        }
        _ => return Err(err(node, "FROM requires either one or three arguments")),
    };
    Ok(Stage {
        base: node.args[0].clone(),
        name,
        platform: f.get("platform"),
        original: node.original.trim().to_string(),
        line: node.line,
        commands: Vec::new(),
    })
}

/// One instruction (not FROM).
pub fn parse(node: &Node) -> Result<Instruction, String> {
    let mut f = Flags::new(&node.flags);
    let a = &node.args;
    let kw = node.keyword.to_ascii_uppercase();
    let instruction = match node.keyword.as_str() {
        "env" | "label" => {
            f.parse()?;
            if a.is_empty() {
                return Err(format!("{kw} requires at least one argument"));
            }
            let mut pairs = Vec::new();
            for kv in a.chunks(2) {
                let [k, v] = kv else {
                    return Err(format!("Bad input to {kw}, too many arguments"));
                };
                if k.is_empty() {
                    return Err(format!("{kw} names can not be blank"));
                }
                pairs.push((k.clone(), v.clone()));
            }
            if kw == "ENV" {
                Instruction::Env(pairs)
            } else {
                Instruction::Label(pairs)
            }
        }
        "maintainer" => {
            f.parse()?;
            Instruction::Maintainer(one(a, &kw)?)
        }
        "add" | "copy" => Instruction::Add(parse_copy(node, &mut f, &kw)?),
        "run" => {
            f.strings("mount")
                .string("network")
                .string("security")
                .strings("device");
            f.parse()?;
            if f.given("device") {
                return Err("RUN --device is not supported by hako".into());
            }
            Instruction::Run(RunSpec {
                cmd: cmd_line(node),
                mounts: f.all("mount"),
                network: f.get("network"),
                security: f.get("security"),
            })
        }
        "cmd" => {
            f.parse()?;
            Instruction::Cmd(cmd_line(node))
        }
        "entrypoint" => {
            f.parse()?;
            Instruction::Entrypoint(cmd_line(node))
        }
        "healthcheck" => Instruction::Healthcheck(parse_health(node, &mut f)?),
        "expose" => {
            f.parse()?;
            if a.is_empty() {
                return Err("EXPOSE requires at least one argument".into());
            }
            let mut ports = a.clone();
            ports.sort();
            Instruction::Expose(ports)
        }
        "user" => {
            f.parse()?;
            Instruction::User(one(a, &kw)?)
        }
        "workdir" => {
            f.parse()?;
            Instruction::Workdir(one(a, &kw)?)
        }
        "volume" => {
            f.parse()?;
            if a.is_empty() {
                return Err("VOLUME requires at least one argument".into());
            }
            let mut vols = Vec::new();
            for v in a {
                let v = v.trim();
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                vols.push(v.to_string());
            }
            Instruction::Volume(vols)
        }
        "stopsignal" => {
            f.parse()?;
            Instruction::StopSignal(one(a, &kw)?)
        }
        "arg" => {
            f.parse()?;
            if a.is_empty() {
                return Err("ARG requires at least one argument".into());
            }
            let mut defs = Vec::new();
            for w in a {
                let def = match w.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".into()),
                    Some((k, v)) => ArgDef {
                        name: k.to_string(),
                        default: Some(v.to_string()),
                    },
                    None => ArgDef {
                        name: w.clone(),
                        default: None,
                    },
                };
                defs.push(def);
            }
            Instruction::Arg(defs)
        }
        "shell" => {
            f.parse()?;
            if a.is_empty() {
                return Err("SHELL requires at least one argument".into());
            }
            if !node.json {
                return Err(format!(
                    "SHELL requires the arguments to be in JSON form: {}",
                    node.original.trim()
                ));
            }
            Instruction::Shell(a.clone())
        }
        "onbuild" => {
            f.parse()?;
            let Some(sub) = &node.sub else {
                return Err("ONBUILD requires at least one argument".into());
            };
            match sub.keyword.as_str() {
                "onbuild" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into());
                }
                "maintainer" | "from" => {
                    return Err(format!(
                        "{} isn't allowed as an ONBUILD trigger",
                        sub.keyword.to_ascii_uppercase()
                    ));
                }
                _ => {}
            }
            // The trigger is checked now, so a bad one fails here and not in a child.
            parse(sub)?;
            let original = node.original.trim();
            let mut expr = original
                .get(7..)
                .filter(|_| original[..7].eq_ignore_ascii_case("onbuild"))
                .unwrap_or(original)
                .trim_start()
                .to_string();
            for h in &node.heredocs {
                expr.push('\n');
                expr.push_str(&h.content);
                expr.push_str(&h.name);
            }
            Instruction::Onbuild(expr)
        }
        _ => {
            let shown = node.keyword.to_ascii_uppercase();
            return Err(match suggest(&shown) {
                Some(s) => format!("unknown instruction: {shown} (did you mean {s}?)"),
                None => format!("unknown instruction: {shown}"),
            });
        }
    };
    Ok(match instruction {
        Instruction::Add(spec) if node.keyword == "copy" => Instruction::Copy(spec),
        i => i,
    })
}

fn one(a: &[String], kw: &str) -> Result<String, String> {
    match a {
        [x] => Ok(x.clone()),
        _ => Err(format!("{kw} requires exactly one argument")),
    }
}

fn cmd_line(node: &Node) -> CmdLine {
    CmdLine {
        args: node.args.clone(),
        shell: !node.json,
        heredocs: node.heredocs.clone(),
    }
}

fn parse_copy(node: &Node, f: &mut Flags, kw: &str) -> Result<CopySpec, String> {
    f.string("chown")
        .string("chmod")
        .bool("link")
        .strings("exclude");
    if kw == "COPY" {
        f.string("from").bool("parents");
    } else {
        f.string("checksum").bool("keep-git-dir").bool("unpack");
    }
    f.parse()?;
    if node.args.len() < 2 {
        return Err(format!(
            "{kw} requires at least two arguments, but only one was provided. Destination could not be determined"
        ));
    }
    let (srcs, dest) = node.args.split_at(node.args.len() - 1);
    let dest = dest[0].clone();
    if crate::parser::heredoc_word(&dest)?.is_some() {
        return Err(format!("{kw} cannot accept a heredoc as a destination"));
    }
    let mut sources = Vec::new();
    let mut contents = Vec::new();
    for s in srcs {
        match crate::parser::heredoc_word(s)? {
            Some(h) => {
                let body = node
                    .heredocs
                    .iter()
                    .find(|d| d.name == h.name)
                    .map(|d| d.content.clone())
                    .unwrap_or_default();
                contents.push(Heredoc { content: body, ..h });
            }
            None => sources.push(s.clone()),
        }
    }
    Ok(CopySpec {
        sources,
        contents,
        dest,
        from: f.get("from"),
        chown: f.get("chown"),
        chmod: f.get("chmod"),
        link: f.is_set("link"),
        parents: f.is_set("parents"),
        exclude: f.all("exclude"),
        checksum: f.get("checksum"),
        keep_git_dir: f.is_set("keep-git-dir"),
        unpack: f.given("unpack").then(|| f.is_set("unpack")),
    })
}

/// A duration flag (`30s`, `1m30s`, `500ms`) in nanoseconds; 0 when absent; at least 1ms.
fn duration_flag(f: &Flags, name: &str) -> Result<i64, String> {
    let Some(v) = f.get(name) else { return Ok(0) };
    if v.is_empty() {
        return Ok(0);
    }
    let ns = parse_go_duration(&v).ok_or_else(|| format!("time: invalid duration {v:?}"))?;
    if ns != 0 && ns < 1_000_000 {
        return Err(format!("Interval {name:?} cannot be less than 1ms"));
    }
    Ok(ns)
}

/// Go's `time.ParseDuration` for the units a Dockerfile uses (ns us µs ms s m h).
pub(crate) fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * scale;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    #[expect(clippy::cast_possible_truncation, reason = "range checked above")]
    let ns = total.round() as i64;
    Some(if neg { -ns } else { ns })
}

fn parse_health(node: &Node, f: &mut Flags) -> Result<HealthSpec, String> {
    let Some(typ) = node.args.first() else {
        return Err("HEALTHCHECK requires at least one argument".into());
    };
    let typ = typ.to_ascii_uppercase();
    let rest = &node.args[1..];
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        f.parse()?;
        return Ok(HealthSpec {
            test: vec!["NONE".into()],
            ..HealthSpec::default()
        });
    }
    f.string("interval")
        .string("timeout")
        .string("start-period")
        .string("start-interval")
        .string("retries");
    f.parse()?;
    if typ != "CMD" {
        return Err(format!("Unknown type {typ:?} in HEALTHCHECK (try CMD)"));
    }
    if rest.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".into());
    }
    let mut test = vec![if node.json { "CMD" } else { "CMD-SHELL" }.to_string()];
    test.extend(rest.iter().cloned());
    let retries = match f.get("retries") {
        Some(r) => {
            let n: i64 = r
                .parse()
                .map_err(|_| format!("strconv.ParseInt: parsing {r:?}: invalid syntax"))?;
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            n
        }
        None => 0,
    };
    Ok(HealthSpec {
        test,
        interval: duration_flag(f, "interval")?,
        timeout: duration_flag(f, "timeout")?,
        start_period: duration_flag(f, "start-period")?,
        start_interval: duration_flag(f, "start-interval")?,
        retries,
    })
}

/// The instruction closest to a misspelt one (`RUNN` → `RUN`), if any is close.
fn suggest(word: &str) -> Option<&'static str> {
    INSTRUCTIONS
        .iter()
        .map(|c| (levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d > 0)
        .min()
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;
