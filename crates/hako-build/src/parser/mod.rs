//! The Dockerfile parser: text → a list of [`Node`]s, one per instruction, with the
//! rules of BuildKit's frontend (`frontend/dockerfile/parser`).
//!
//! - Directives (`# syntax`, `# escape`, `# check`) only at the very top ([`directives`]).
//! - A line ending in the escape token continues on the next; comment lines and empty
//!   lines inside a continuation are skipped (empty ones with a warning). Continuation
//!   lines keep their leading blanks; the first line of an instruction does not.
//! - `#` starts a comment only at the beginning of a line (after blanks).
//! - RUN, COPY and ADD (also after ONBUILD) in shell form may open heredocs; their
//!   bodies follow the instruction line.
//! - Arguments are split per instruction: JSON or shell form (RUN CMD ENTRYPOINT SHELL),
//!   JSON or a whitespace list (COPY ADD VOLUME), `key=value` words (ENV LABEL ARG).
//! - Instruction names are case-insensitive; an unknown one parses (with no arguments)
//!   and is refused when the instructions are built, with its line.

mod directives;
mod heredoc;
mod line;

pub use directives::Directives;
pub use heredoc::{Heredoc, chomp, parse_word as heredoc_word};

/// A parse error, with the lines of the instruction it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error on line {line}: {message}")]
pub struct ParseError {
    /// First line (1-based) of the instruction.
    pub line: usize,
    /// Last line of the instruction.
    pub end_line: usize,
    /// What is wrong.
    pub message: String,
}

/// A warning that does not stop the build (empty continuation lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The line it is about.
    pub line: usize,
    /// What to tell the user.
    pub message: String,
}

/// One instruction as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// The instruction, lowercase (`run`).
    pub keyword: String,
    /// The whole logical line (continuations joined, without heredoc bodies).
    pub original: String,
    /// `--flag[=value]` words before the arguments.
    pub flags: Vec<String>,
    /// The arguments, split as the instruction wants them (see the module docs; ENV and
    /// LABEL give `[key, value, key, value...]`, HEALTHCHECK `[type, args...]`, ONBUILD
    /// `[keyword, args...]` of the trigger).
    pub args: Vec<String>,
    /// The arguments were a JSON array (exec form).
    pub json: bool,
    /// Heredocs opened by this instruction, in order.
    pub heredocs: Vec<Heredoc>,
    /// First line (1-based).
    pub line: usize,
    /// Last line, heredoc bodies included.
    pub end_line: usize,
    /// The trigger instruction of an ONBUILD.
    pub sub: Option<Box<Node>>,
    /// Comment lines right above the instruction.
    pub comments: Vec<String>,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The parser directives found at the top.
    pub directives: Directives,
    /// The escape token in effect (`\` unless `# escape=`).
    pub escape: char,
    /// The instructions in order.
    pub nodes: Vec<Node>,
    /// Warnings to show the user.
    pub warnings: Vec<Warning>,
}

/// Parses a whole Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    Parser::new(text).run()
}

struct Parser<'a> {
    lines: Vec<&'a str>,
    next: usize,
    directives: directives::DirectiveParser,
    escape: char,
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(raw: &str) -> bool {
    raw.trim_start().starts_with('#')
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Parser {
            lines: text.split_inclusive('\n').collect(),
            next: 0,
            directives: directives::DirectiveParser::default(),
            escape: '\\',
        }
    }

    fn take_line(&mut self) -> Option<&'a str> {
        let l = self.lines.get(self.next).copied();
        if l.is_some() {
            self.next += 1;
        }
        l
    }

    /// The line without its newline (and without leading blanks when `strip`), checked
    /// for a directive; comment lines come back empty. Returns (text, was a directive).
    fn process(&mut self, raw: &str, strip: bool) -> Result<(String, bool), ParseError> {
        let mut t = trim_newline(raw);
        if strip {
            t = t.trim_start();
        }
        let directive = self.directives.line(t).map_err(|message| ParseError {
            line: self.next,
            end_line: self.next,
            message,
        })?;
        if directive && let Some(esc) = &self.directives.found.escape {
            self.escape = esc.chars().next().unwrap_or('\\');
        }
        let text = if is_comment(t) {
            String::new()
        } else {
            t.to_string()
        };
        Ok((text, directive))
    }

    /// Removes a trailing escape token (and blanks after it) that continues the line:
    /// `(text, line ends here)`. An escaped escape token (`\\`) does not continue.
    fn continuation(&self, text: &str) -> (String, bool) {
        let t = text.trim_end_matches([' ', '\t']);
        let Some(before) = t.strip_suffix(self.escape) else {
            return (text.to_string(), true);
        };
        if before.ends_with(self.escape) && !before.is_empty() {
            return (text.to_string(), true);
        }
        (before.to_string(), false)
    }

    fn run(mut self) -> Result<Dockerfile, ParseError> {
        let mut nodes = Vec::new();
        let mut warnings = Vec::new();
        let mut comments: Vec<String> = Vec::new();
        while let Some(raw) = self.take_line() {
            if is_comment(trim_newline(raw)) {
                let c = trim_newline(raw).trim_start()[1..].trim().to_string();
                if c.is_empty() {
                    comments.clear();
                } else {
                    comments.push(c);
                }
            }
            let (text, directive) = self.process(raw, true)?;
            if directive {
                comments.pop();
            }
            let start = self.next;
            let (mut line, mut end) = self.continuation(&text);
            if end && line.is_empty() {
                continue;
            }
            let mut empty_continuation = false;
            while !end {
                let Some(raw) = self.take_line() else { break };
                let (text, _) = self.process(raw, false)?;
                if is_comment(trim_newline(raw)) {
                    continue;
                }
                if text.trim().is_empty() {
                    empty_continuation = true;
                    continue;
                }
                let (more, e) = self.continuation(&text);
                line.push_str(&more);
                end = e;
            }
            if empty_continuation {
                warnings.push(Warning {
                    line: start,
                    message: format!("Empty continuation line found in: {line}"),
                });
            }
            let err = |message: String, end_line: usize| ParseError {
                line: start,
                end_line,
                message,
            };
            let mut node = node_from_line(&line, self.escape).map_err(|m| err(m, self.next))?;
            node.comments = std::mem::take(&mut comments);
            let target = node.sub.as_deref().unwrap_or(&node);
            if matches!(target.keyword.as_str(), "run" | "copy" | "add")
                && !target.json
                && line.contains("<<")
            {
                let mut docs = heredoc::openers(&line).map_err(|m| err(m, self.next))?;
                for doc in &mut docs {
                    let mut terminated = false;
                    while let Some(raw) = self.take_line() {
                        let mut candidate = trim_newline(raw);
                        if doc.chomp {
                            candidate = candidate.trim_start_matches('\t');
                        }
                        if candidate == doc.name {
                            terminated = true;
                            break;
                        }
                        doc.content.push_str(raw);
                    }
                    if !terminated {
                        return Err(err("unterminated heredoc".into(), self.next));
                    }
                }
                node.heredocs = docs;
            }
            node.line = start;
            node.end_line = self.next;
            nodes.push(node);
        }
        if nodes.is_empty() {
            // An empty file has no line 0 to blame: its last line, or the first.
            return Err(ParseError {
                line: self.next.max(1),
                end_line: self.next.max(1),
                message: "file with no instructions".into(),
            });
        }
        Ok(Dockerfile {
            directives: self.directives.found,
            escape: self.escape,
            nodes,
            warnings,
        })
    }
}

/// One logical line → a node (arguments split for its instruction).
fn node_from_line(text: &str, escape: char) -> Result<Node, String> {
    let (keyword, flags, rest) = line::split_command(text)?;
    let mut node = Node {
        original: text.to_string(),
        flags,
        ..Node::default()
    };
    match keyword.as_str() {
        "add" | "copy" | "volume" => match line::json_array(&rest)? {
            Some(v) => (node.args, node.json) = (v, true),
            None => node.args = line::fields(&rest),
        },
        "cmd" | "entrypoint" | "run" | "shell" => maybe_json(&mut node, &rest)?,
        "arg" => node.args = line::words(&rest, escape),
        "env" => node.args = line::name_values(&rest, escape, "ENV")?,
        "label" => node.args = line::name_values(&rest, escape, "LABEL")?,
        "expose" | "from" => node.args = line::fields(&rest),
        "maintainer" | "stopsignal" | "user" | "workdir" if !rest.is_empty() => {
            node.args = vec![rest];
        }
        "healthcheck" => {
            let r = rest.trim_start();
            if let Some(i) = r.find(char::is_whitespace) {
                node.args.push(r[..i].to_string());
                maybe_json(&mut node, r[i..].trim_start())?;
            } else if !r.is_empty() {
                node.args.push(r.to_string());
            }
        }
        "onbuild" if !rest.is_empty() => {
            let sub = node_from_line(&rest, escape)?;
            node.args = std::iter::once(sub.keyword.clone())
                .chain(sub.args.iter().cloned())
                .collect();
            node.sub = Some(Box::new(sub));
        }
        _ => {}
    }
    node.keyword = keyword;
    Ok(node)
}

/// JSON form, or the whole rest as one string (shell form).
fn maybe_json(node: &mut Node, rest: &str) -> Result<(), String> {
    if rest.is_empty() {
        return Ok(());
    }
    match line::json_array(rest)? {
        Some(v) => {
            node.args.extend(v);
            node.json = true;
        }
        None => node.args.push(rest.to_string()),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
