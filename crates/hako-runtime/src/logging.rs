//! `--log`/`--log-format`/`--debug`: runc's log contract. containerd reads the last
//! `"level":"error"` line of the log file to report why a runtime call failed, so JSON lines
//! are exactly `{"level","msg","time"}` like runc's logrus output.

use std::fmt;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::LogFormat;
use crate::output::QuietStderr;

/// Install the subscriber. Without `--log`, warnings go to stderr as
/// `hako-runtime: warning: ...` (runc prints its warnings to stderr too); errors are
/// printed by `main`, once.
pub fn init(log: Option<&Path>, format: LogFormat, debug: bool) -> std::io::Result<()> {
    let level = if debug { Level::DEBUG } else { Level::WARN };
    let Some(path) = log else {
        let sub = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(|| QuietStderr)
            .event_format(Runc {
                json: format == LogFormat::Json,
                human: !debug,
            })
            .finish();
        let _ = tracing::subscriber::set_global_default(sub);
        return Ok(());
    };
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let sub = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(Mutex::new(file))
        .event_format(Runc {
            json: format == LogFormat::Json,
            human: false,
        })
        .finish();
    let _ = tracing::subscriber::set_global_default(sub);
    Ok(())
}

/// runc's line format (logrus): JSON `{"level":"error","msg":"...","time":"..."}` or text
/// `time="..." level=error msg="..."`; `human`: warnings only, as `hako-runtime: warning: ...`.
struct Runc {
    json: bool,
    human: bool,
}

#[derive(Default)]
struct Fields {
    msg: String,
    extra: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.msg = format!("{value:?}");
        } else {
            self.extra
                .push((field.name().to_owned(), format!("{value:?}")));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg = value.to_owned();
        } else {
            self.extra.push((field.name().to_owned(), value.to_owned()));
        }
    }
}

impl<S, N> FormatEvent<S, N> for Runc
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut f = Fields::default();
        event.record(&mut f);
        if self.human {
            if *event.metadata().level() != Level::WARN {
                return Ok(());
            }
            write!(w, "hako-runtime: warning: {}", f.msg)?;
            for (k, v) in f.extra {
                write!(w, " ({k}: {v})")?;
            }
            return writeln!(w);
        }
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let level = if level == "warn" {
            "warning".to_owned()
        } else {
            level
        };
        let time = crate::state::now_rfc3339();
        if self.json {
            let mut obj = serde_json::Map::new();
            obj.insert("level".into(), level.into());
            obj.insert("msg".into(), f.msg.into());
            obj.insert("time".into(), time.into());
            for (k, v) in f.extra {
                obj.insert(k, v.into());
            }
            writeln!(w, "{}", serde_json::Value::Object(obj))
        } else {
            write!(w, "time={time:?} level={level} msg={:?}", f.msg)?;
            for (k, v) in f.extra {
                write!(w, " {k}={v:?}")?;
            }
            writeln!(w)
        }
    }
}
