//! `go_template`: a `--format` value, parsed and run by hako-format (the Go text/template
//! subset behind every `--format`). Input: the template, optionally followed by a NUL byte
//! and JSON data to run it on; it also runs on a fixed container-like document.
//!
//! Invariants: no panic, no hang; running is deterministic; an error says where (Go's
//! `template: :LINE:` prefix); `table` rendering (header + rows through the tabwriter)
//! leaves no tab, keeps the line count, and aligning again changes nothing.
//!
//! Templates with more than three `range` are skipped: nested ranges multiply their output
//! (n^k), as they do in Go, so they would only measure the machine's memory.

use std::sync::OnceLock;

use hako_format::{Format, FormatError, Template, align};
use serde_json::{Value, json};

fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        json!({
            "ID": "3f4e8a1b2c5d",
            "Names": ["/web", "/alias"],
            "Image": "busybox:latest",
            "Command": "\"sh -c 'echo hi'\"",
            "Labels": {"com.example.a": "1", "b": "<two>"},
            "Mounts": [{"Type": "volume", "Source": "/var/lib/hako/volumes/v/_data", "RW": true}],
            "Ports": [{"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}],
            "Nested": [[1, 2], [3], []],
            "Size": 4096,
            "Ratio": 0.25,
            "Running": false,
            "Nothing": null,
            "Config": {"Env": ["PATH=/bin", "A=b=c"], "Cmd": ["sh"], "Entrypoint": null},
        })
    })
}

pub fn go_template(data: &[u8]) {
    let (text, extra) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    if text.matches("range").count() > 3 {
        return;
    }
    let extra: Option<Value> = extra.and_then(|b| serde_json::from_slice(b).ok());

    match Template::parse(text) {
        Ok(t) => {
            for d in std::iter::once(document()).chain(extra.as_ref()) {
                let first = t.execute(d);
                assert!(first == t.execute(d), "{text:?}: two runs differ");
                if let Err(e) = first {
                    check_error(text, &e);
                }
            }
        }
        Err(e) => check_error(text, &e),
    }

    let header = json!({"ID": "CONTAINER ID", "Image": "IMAGE", "Names": "NAMES"});
    match Format::parse(text, "table {{.ID}}\t{{.Image}}") {
        Ok(f) => {
            let rows: Vec<Value> = std::iter::once(document().clone()).chain(extra).collect();
            match f.render(&header, &rows) {
                Ok(out) => check_aligned(text, &out),
                Err(e) => check_error(text, &e),
            }
        }
        Err(e) => check_error(text, &e),
    }
    check_aligned(text, &align(text));
}

fn check_error(text: &str, e: &FormatError) {
    let msg = e.to_string();
    assert!(
        msg.starts_with("template parsing error: template: :") || msg.starts_with("template: :"),
        "{text:?}: error without Go's prefix: {msg}"
    );
    let (FormatError::Parse { line, .. } | FormatError::Exec { line, .. }) = e;
    let lines = text.split('\n').count();
    assert!(
        *line >= 1 && *line <= lines,
        "{text:?}: error on line {line} of {lines}: {msg}"
    );
}

fn check_aligned(text: &str, out: &str) {
    if out.contains('\t') {
        // Only an un-aligned (non-table) render keeps the user's tabs.
        return;
    }
    assert_eq!(align(out), out, "{text:?}: aligning twice changes the text");
}
