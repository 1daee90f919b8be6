//! `hako image inspect IMAGE... [-f FORMAT]`: Docker's JSON array, or a template per image.

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use crate::commands::container::engine_err;
use crate::context::Global;
use crate::error::AlreadyReported;
use crate::format::{Template, to_go_json};

/// Arguments of `hako image inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a Go template (e.g. '{{.Id}}', '{{json .Config}}')
    #[arg(short, long)]
    pub format: Option<String>,

    /// Images to inspect (names, tags or ids)
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Fields of an image's `Config` that a template may name even when the image config
/// leaves them out, with the zero value Go's typed struct gives them (the docker CLI runs
/// templates on its typed `image.InspectResponse`: `{{.Config.Entrypoint}}` prints `[]`).
const CONFIG_FIELDS: &[(&str, ZeroKind)] = &[
    ("Hostname", ZeroKind::Str),
    ("Domainname", ZeroKind::Str),
    ("User", ZeroKind::Str),
    ("AttachStdin", ZeroKind::Bool),
    ("AttachStdout", ZeroKind::Bool),
    ("AttachStderr", ZeroKind::Bool),
    ("ExposedPorts", ZeroKind::Map),
    ("Tty", ZeroKind::Bool),
    ("OpenStdin", ZeroKind::Bool),
    ("StdinOnce", ZeroKind::Bool),
    ("Env", ZeroKind::List),
    ("Cmd", ZeroKind::List),
    ("Healthcheck", ZeroKind::Nil),
    ("ArgsEscaped", ZeroKind::Bool),
    ("Image", ZeroKind::Str),
    ("Volumes", ZeroKind::Map),
    ("WorkingDir", ZeroKind::Str),
    ("Entrypoint", ZeroKind::List),
    ("OnBuild", ZeroKind::List),
    ("Labels", ZeroKind::Map),
    ("StopSignal", ZeroKind::Str),
    ("Shell", ZeroKind::List),
];
const TOP_FIELDS: &[(&str, ZeroKind)] = &[
    ("Parent", ZeroKind::Str),
    ("DockerVersion", ZeroKind::Str),
    ("Author", ZeroKind::Str),
    ("Comment", ZeroKind::Str),
    ("Variant", ZeroKind::Str),
    ("OsVersion", ZeroKind::Str),
    ("Descriptor", ZeroKind::Nil),
];

/// Go's zero value of a field's type.
#[derive(Debug, Clone, Copy)]
enum ZeroKind {
    Str,
    Bool,
    List,
    Map,
    Nil,
}

impl ZeroKind {
    fn value(self) -> Value {
        match self {
            ZeroKind::Str => Value::String(String::new()),
            ZeroKind::Bool => Value::Bool(false),
            ZeroKind::List => Value::Array(Vec::new()),
            ZeroKind::Map => Value::Object(serde_json::Map::new()),
            ZeroKind::Nil => Value::Null,
        }
    }
}

/// Prints what was found; every name not found is one error line afterwards.
pub fn run(g: &Global, a: &InspectArgs) -> Result<()> {
    let template = a.format.as_deref().map(Template::parse).transpose()?;
    let engine = g.open_engine()?;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in &a.images {
        match engine.image_inspect(name) {
            Ok(v) => found.push(serde_json::to_value(v)?),
            Err(e) => errors.push(engine_err(e)),
        }
    }
    if template.is_some() {
        found = found.into_iter().map(with_docker_fields).collect();
    }
    super::super::print(&render(template.as_ref(), &found)?)?;
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        n => {
            for e in &errors {
                eprintln!("Error: {}", crate::error::chain_line(e));
            }
            Err(AlreadyReported(n).into())
        }
    }
}

/// JSON indented by four spaces, as `docker inspect` prints it.
pub fn pretty(v: &Value) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    match v.serialize(&mut ser) {
        Ok(()) => crate::format::escape_html(&String::from_utf8_lossy(&buf)),
        Err(_) => to_go_json(v),
    }
}

/// What every `inspect` prints: `--format` applied to each value (a line each), else the
/// values as one JSON array.
pub fn render(template: Option<&Template>, found: &[Value]) -> Result<String> {
    match template {
        Some(t) => {
            let mut s = String::new();
            for v in found {
                s.push_str(&t.execute(v)?);
                s.push('\n');
            }
            Ok(s)
        }
        None => Ok(format!("{}\n", pretty(&Value::Array(found.to_vec())))),
    }
}

/// `hako network inspect`, `hako volume inspect`: looks each name up with `find`, prints
/// what was found ([`render`]), then one line per name that was not (`error_prefix` and the
/// error, Docker's wording differs by command); exit status 1 when any was not.
pub fn inspect_each<T: serde::Serialize, E: std::fmt::Display>(
    template: Option<&Template>,
    names: &[String],
    error_prefix: &str,
    mut find: impl FnMut(&str) -> std::result::Result<T, E>,
) -> Result<()> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for n in names {
        match find(n) {
            Ok(v) => found.push(serde_json::to_value(v)?),
            Err(e) => errors.push(e.to_string()),
        }
    }
    super::super::print(&render(template, &found)?)?;
    for e in &errors {
        eprintln!("{error_prefix}{e}");
    }
    match errors.len() {
        0 => Ok(()),
        n => Err(AlreadyReported(n).into()),
    }
}

/// An image's inspect value as a template sees it in Docker: every field of the typed
/// struct present, the missing ones (or null) as their zero values.
pub fn with_docker_fields(mut v: Value) -> Value {
    fn fill(obj: &mut serde_json::Map<String, Value>, fields: &[(&str, ZeroKind)]) {
        for (f, kind) in fields {
            let slot = obj.entry(*f).or_insert(Value::Null);
            if slot.is_null() {
                *slot = kind.value();
            }
        }
    }
    if let Some(top) = v.as_object_mut() {
        fill(top, TOP_FIELDS);
        let cfg = top
            .entry("Config")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(cfg) = cfg.as_object_mut() {
            fill(cfg, CONFIG_FIELDS);
        }
    }
    v
}
