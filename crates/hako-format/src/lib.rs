//! `--format`: a Go `text/template` engine for Docker's format strings.
//!
//! Supported: text with `\t`/`\n` escapes, `{{.Field.Sub}}`, `{{.}}`, pipelines
//! (`{{.Tag | upper}}`), `{{range}}`, `{{if}}`/`{{else if}}`, `{{with}}`, variables
//! (`{{$x := .A}}`, `{{$x = ...}}`, `{{range $k, $v := .Labels}}`, `$` for the data,
//! `$x.Field`), `{{/* comments */}}`, `{{- ` / ` -}}` trim markers, string (Go's escapes),
//! number (ints, floats, `0x`, `'c'`), bool and nil literals, parentheses; Go's builtins
//! `and`, `or` (lazy), `not`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `len`, `index`, `slice`,
//! `print`, `printf` (Go's fmt verbs and flags, `printf.rs`), `println`, `html`, `js`,
//! `urlquery`; and Docker's `json`, `upper`, `lower`, `title`, `join`, `split`,
//! `truncate`, `pad`. Data is JSON ([`serde_json::Value`]), printed as Go's `%v` would print
//! the decoded value (`[a b]`, `map[k:v]`, floats as `1e+06`); JSON integers are Go ints.
//!
//! A format string starting with `table` renders a header row and aligns columns the
//! way Docker's tabwriter does; `json` alone means `{{json .}}`.
//!
//! ```text
//!  "table {{.ID}}\t{{.Size}}"  --parse-->  [Action(.ID), Text("\t"), Action(.Size)]
//!        header row: execute on {"ID": "IMAGE ID", "Size": "SIZE"}
//!        each row:   execute on {"ID": "0123456789ab", "Size": "4.26MB"}
//!        --tabwriter--> "IMAGE ID       SIZE\n0123456789ab   4.26MB\n"
//! ```

mod exec;
mod funcs;
mod parse;
mod printf;
mod tabwriter;
mod value;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use funcs::query_escape;
pub use tabwriter::align;
pub use value::{escape_html, to_go_json};

/// Why a format string could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    /// The template does not parse (`template: :1: unexpected "}" in operand`).
    #[error("template parsing error: template: :{line}: {msg}")]
    Parse {
        /// 1-based line of the problem.
        line: usize,
        /// Go's wording.
        msg: String,
    },
    /// Executing failed (`template: :1:2: executing "" at <.Nope>: can't evaluate field Nope`).
    #[error("template: :{line}:{col}: executing \"\" at <{node}>: {msg}")]
    Exec {
        /// 1-based line.
        line: usize,
        /// 0-based byte column, as Go reports it.
        col: usize,
        /// The source text of the failing node.
        node: String,
        /// What went wrong.
        msg: String,
    },
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<parse::Node>,
}

impl Template {
    /// Parses Go template text. `\t` and `\n` written as two characters in the text
    /// parts become a tab and a newline (Docker does the same for shell-quoted formats).
    pub fn parse(src: &str) -> Result<Template, FormatError> {
        Ok(Template {
            nodes: parse::parse(src)?,
        })
    }

    /// Executes the template on `data`.
    pub fn execute(&self, data: &Value) -> Result<String, FormatError> {
        let mut out = String::new();
        exec::execute(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

/// A `--format` value: a template, maybe in `table` mode.
#[derive(Debug, Clone)]
pub struct Format {
    table: bool,
    template: Template,
}

impl Format {
    /// Parses a `--format` value. Empty or `table` means `default_table` (itself a
    /// `table ...` format); `json` means `{{json .}}`.
    pub fn parse(format: &str, default_table: &str) -> Result<Format, FormatError> {
        let format = match format.trim() {
            "" | "table" => default_table,
            "json" => "{{json .}}",
            _ => format,
        };
        match format.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => Ok(Format {
                table: true,
                template: Template::parse(rest.trim_start())?,
            }),
            _ => Ok(Format {
                table: false,
                template: Template::parse(format)?,
            }),
        }
    }

    /// Whether this is a `table` format (header row, aligned columns).
    #[cfg(test)]
    pub fn is_table(&self) -> bool {
        self.table
    }

    /// Renders `rows`; in table mode `header` (field name -> column title) comes first
    /// and the columns are aligned. Every row ends with a newline.
    pub fn render(&self, header: &Value, rows: &[Value]) -> Result<String, FormatError> {
        let mut lines = Vec::with_capacity(rows.len() + 1);
        if self.table {
            lines.push(self.template.execute(header)?);
        }
        for r in rows {
            lines.push(self.template.execute(r)?);
        }
        let mut text = String::new();
        for l in lines {
            text.push_str(&l);
            text.push('\n');
        }
        Ok(if self.table { align(&text) } else { text })
    }
}
