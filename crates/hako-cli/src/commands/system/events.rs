//! `hako events`: the event log shared by every hako process (CLI, `hako serve`, shims),
//! past events with `--since`, live ones until `--until` or interrupted.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use hako_engine::events::{Event, EventQuery, FILTER_KEYS, parse_time};
use hako_engine::filters::Filters;
use serde_json::Value;

use crate::commands::container::engine_err;
use crate::context::Global;
use crate::format::Template;

/// Arguments of `hako events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Show all events created since timestamp (unix seconds, RFC 3339, or a duration like 10m)
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
    /// Filter output: container=, event=, image=, label=, type=, volume=, network=; repeatable
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Format output using a Go template ('json' or TEMPLATE)
    #[arg(long)]
    pub format: Option<String>,
}

/// Prints events as they come.
pub fn run(g: &Global, a: &EventsArgs) -> Result<()> {
    let template = match a.format.as_deref() {
        None | Some("") => None,
        Some("json") => Some(Template::parse("{{json .}}")?),
        Some(t) => Some(Template::parse(t)?),
    };
    let filters = Filters::from_args(&a.filters).map_err(engine_err)?;
    filters.validate(FILTER_KEYS).map_err(engine_err)?;
    let since = a
        .since
        .as_deref()
        .map(parse_time)
        .transpose()
        .map_err(engine_err)?;
    let until = a
        .until
        .as_deref()
        .map(parse_time)
        .transpose()
        .map_err(engine_err)?;
    let engine = g.open_engine()?;
    let mut reader = engine.events(EventQuery {
        since,
        until,
        filters,
    });
    let show = |evs: Vec<Event>| -> Result<()> {
        let mut out = String::new();
        for ev in evs {
            match &template {
                Some(t) => {
                    out.push_str(&t.execute(&legacy_json(&ev))?);
                    out.push('\n');
                }
                None => out.push_str(&human(&ev)),
            }
        }
        crate::commands::print(&out)
    };
    show(reader.past().map_err(engine_err)?)?;
    while !reader.done() {
        show(
            reader
                .next_batch(Duration::from_millis(500))
                .map_err(engine_err)?,
        )?;
    }
    Ok(())
}

/// The template data: Docker's message with the legacy `status`, `id`, `from` fields.
fn legacy_json(ev: &Event) -> Value {
    let mut v = serde_json::to_value(ev).unwrap_or(Value::Null);
    if matches!(ev.typ.as_str(), "container" | "image") {
        v["status"] = Value::String(ev.action.clone());
        v["id"] = Value::String(ev.actor.id.clone());
        if let Some(image) = ev.actor.attributes.get("image") {
            v["from"] = Value::String(image.clone());
        }
    }
    v
}

/// Docker's line: `TIME TYPE ACTION ID (k=v, ...)`.
fn human(ev: &Event) -> String {
    let secs = u64::try_from(ev.time_nano / 1_000_000_000).unwrap_or(0);
    let nanos = u32::try_from(ev.time_nano % 1_000_000_000).unwrap_or(0);
    let t = std::time::UNIX_EPOCH + Duration::new(secs, nanos);
    let attrs: Vec<String> = ev
        .actor
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let attrs = if attrs.is_empty() {
        String::new()
    } else {
        format!(" ({})", attrs.join(", "))
    };
    format!(
        "{} {} {} {}{attrs}\n",
        humantime::format_rfc3339_nanos(t),
        ev.typ,
        ev.action,
        ev.actor.id
    )
}
