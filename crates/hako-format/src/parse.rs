//! Template text -> nodes. Errors use Go's wording (`unexpected EOF`, `function "x" not
//! defined`, `unclosed action`) so users can search for them.

use super::FormatError;
use super::funcs;

/// Where a node is and what it looked like, for execution errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) line: usize,
    pub(crate) col: usize,
    pub(crate) text: String,
}

/// One piece of a template.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(String),
    Action(Pipeline),
    /// `range`, `if` and `with` share one shape.
    Block {
        kind: BlockKind,
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockKind {
    Range,
    If,
    With,
}

/// `cmd | cmd | ...`: each command's result becomes the last argument of the next.
#[derive(Debug, Clone)]
pub(crate) struct Pipeline {
    pub(crate) cmds: Vec<Command>,
}

/// A function call with arguments, or a single operand.
#[derive(Debug, Clone)]
pub(crate) struct Command {
    pub(crate) args: Vec<Arg>,
    pub(crate) span: Span,
}

#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Dot,
    Field { path: Vec<String>, span: Span },
    Func(String),
    Str(String),
    Int(i64),
    Bool(bool),
    Nil,
    Sub(Pipeline),
}

/// A token with its byte range in the source.
type Spanned = (Tok, usize, usize);

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Dot,
    Field(Vec<String>),
    Ident(String),
    Str(String),
    Int(i64),
    Pipe,
    LParen,
    RParen,
}

/// Parses a whole template.
pub(crate) fn parse(src: &str) -> Result<Vec<Node>, FormatError> {
    let mut p = Parser {
        src,
        items: lex(src)?,
        at: 0,
    };
    let (nodes, end) = p.nodes()?;
    match end {
        Stop::Eof => Ok(nodes),
        Stop::End(line) => Err(perr(line, "unexpected {{end}}")),
        Stop::Else(line) => Err(perr(line, "unexpected {{else}}")),
    }
}

fn perr(line: usize, msg: impl Into<String>) -> FormatError {
    FormatError::Parse {
        line,
        msg: msg.into(),
    }
}

/// Text or the tokens of one action, with the action's byte offset.
enum Item {
    Text(String),
    Action { toks: Vec<Spanned>, start: usize },
}

fn line_of(src: &str, pos: usize) -> usize {
    1 + src[..pos].matches('\n').count()
}

fn span(src: &str, start: usize, end: usize) -> Span {
    let before = &src[..start];
    Span {
        line: 1 + before.matches('\n').count(),
        col: start - before.rfind('\n').map_or(0, |i| i + 1),
        text: src[start..end].to_string(),
    }
}

/// Splits the source into text and actions; applies trim markers and `\t`/`\n` escapes.
fn lex(src: &str) -> Result<Vec<Item>, FormatError> {
    let mut items = Vec::new();
    let mut pos = 0;
    let mut trim_next = false;
    while pos < src.len() {
        let open = src[pos..].find("{{").map(|i| i + pos);
        let text_end = open.unwrap_or(src.len());
        let mut text = &src[pos..text_end];
        if trim_next {
            text = text.trim_start();
        }
        let Some(open) = open else {
            push_text(&mut items, text);
            break;
        };
        let mut inner = open + 2;
        if src[inner..].starts_with("- ") || src[inner..].starts_with("-\t") {
            text = text.trim_end();
            inner += 1;
        }
        push_text(&mut items, text);
        let (toks, close) = lex_action(src, inner)?;
        trim_next = close.trimmed;
        items.push(Item::Action { toks, start: inner });
        pos = close.after;
    }
    Ok(items)
}

fn push_text(items: &mut Vec<Item>, text: &str) {
    if !text.is_empty() {
        items.push(Item::Text(text.replace("\\t", "\t").replace("\\n", "\n")));
    }
}

struct Close {
    after: usize,
    trimmed: bool,
}

fn lex_action(src: &str, start: usize) -> Result<(Vec<Spanned>, Close), FormatError> {
    let b = src.as_bytes();
    let mut toks = Vec::new();
    let mut i = start;
    let line = line_of(src, start);
    loop {
        if i >= b.len() {
            return Err(perr(line, "unclosed action"));
        }
        let c = b[i];
        if src[i..].starts_with("}}") {
            return Ok((
                toks,
                Close {
                    after: i + 2,
                    trimmed: false,
                },
            ));
        }
        if src[i..].starts_with(" -}}") || src[i..].starts_with("\t-}}") {
            return Ok((
                toks,
                Close {
                    after: i + 4,
                    trimmed: true,
                },
            ));
        }
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'|' => {
                toks.push((Tok::Pipe, i, i + 1));
                i += 1;
            }
            b'(' => {
                toks.push((Tok::LParen, i, i + 1));
                i += 1;
            }
            b')' => {
                toks.push((Tok::RParen, i, i + 1));
                i += 1;
            }
            b'"' | b'`' => {
                let (s, end) =
                    lex_string(src, i).ok_or_else(|| perr(line, "unterminated quoted string"))?;
                toks.push((Tok::Str(s), i, end));
                i = end;
            }
            b'.' => {
                let end = word_end(b, i + 1, true);
                let word = &src[i..end];
                if word == "." {
                    toks.push((Tok::Dot, i, end));
                } else {
                    let path: Vec<String> = word[1..].split('.').map(String::from).collect();
                    if path.iter().any(|p| p.is_empty() || !is_ident(p)) {
                        return Err(perr(line, format!("bad character in field {word:?}")));
                    }
                    toks.push((Tok::Field(path), i, end));
                }
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let end = word_end(b, i + 1, false);
                let n = src[i..end]
                    .parse::<i64>()
                    .map_err(|_| perr(line, format!("bad number syntax: {:?}", &src[i..end])))?;
                toks.push((Tok::Int(n), i, end));
                i = end;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let end = word_end(b, i, false);
                toks.push((Tok::Ident(src[i..end].to_string()), i, end));
                i = end;
            }
            b'$' => {
                return Err(perr(
                    line,
                    "variables are not supported by hako's templates",
                ));
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(perr(line, format!("unexpected {ch:?} in command")));
            }
        }
    }
}

fn is_ident(s: &str) -> bool {
    s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn word_end(b: &[u8], mut i: usize, dots: bool) -> usize {
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || (dots && b[i] == b'.')) {
        i += 1;
    }
    i
}

/// A Go string literal: `"..."` with escapes or a raw `` `...` ``.
fn lex_string(src: &str, start: usize) -> Option<(String, usize)> {
    let quote = src[start..].chars().next()?;
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            c if c == quote => return Some((out, start + 1 + off + 1)),
            '\\' if quote == '"' => match chars.next()?.1 {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            },
            '\n' if quote == '"' => return None,
            c => out.push(c),
        }
    }
    None
}

/// What stopped a run of nodes (with the line of `{{end}}` / `{{else}}`).
enum Stop {
    Eof,
    End(usize),
    Else(usize),
}

struct Parser<'a> {
    src: &'a str,
    items: Vec<Item>,
    at: usize,
}

impl Parser<'_> {
    /// Nodes until EOF, `{{end}}` or `{{else}}`.
    fn nodes(&mut self) -> Result<(Vec<Node>, Stop), FormatError> {
        let mut nodes = Vec::new();
        while self.at < self.items.len() {
            let idx = self.at;
            self.at += 1;
            let (toks, start) = match &self.items[idx] {
                Item::Text(t) => {
                    nodes.push(Node::Text(t.clone()));
                    continue;
                }
                Item::Action { toks, start } => (toks.clone(), *start),
            };
            let line = line_of(self.src, start);
            let kind = match toks.first() {
                None => return Err(perr(line, "missing value for command")),
                Some((Tok::Ident(k), _, _)) => k.as_str(),
                Some(_) => "",
            };
            let block = match kind {
                "end" if toks.len() == 1 => return Ok((nodes, Stop::End(line))),
                "else" if toks.len() == 1 => return Ok((nodes, Stop::Else(line))),
                "end" | "else" => return Err(perr(line, format!("unexpected {kind} arguments"))),
                "range" => Some(BlockKind::Range),
                "if" => Some(BlockKind::If),
                "with" => Some(BlockKind::With),
                _ => None,
            };
            let Some(kind) = block else {
                nodes.push(Node::Action(self.pipeline(&toks)?));
                continue;
            };
            if toks.len() < 2 {
                return Err(perr(
                    line,
                    format!("missing value for {kind:?}").to_lowercase(),
                ));
            }
            let pipe = self.pipeline(&toks[1..])?;
            let (body, end) = self.nodes()?;
            let otherwise = match end {
                Stop::Eof => return Err(perr(line_of(self.src, self.src.len()), "unexpected EOF")),
                Stop::End(_) => Vec::new(),
                Stop::Else(_) => match self.nodes()? {
                    (o, Stop::End(_)) => o,
                    (_, Stop::Else(l)) => return Err(perr(l, "expected end; found {{else}}")),
                    (_, Stop::Eof) => {
                        return Err(perr(line_of(self.src, self.src.len()), "unexpected EOF"));
                    }
                },
            };
            nodes.push(Node::Block {
                kind,
                pipe,
                body,
                otherwise,
            });
        }
        Ok((nodes, Stop::Eof))
    }

    fn pipeline(&self, toks: &[Spanned]) -> Result<Pipeline, FormatError> {
        let line = toks.first().map_or(1, |t| line_of(self.src, t.1));
        let mut cmds = Vec::new();
        let mut depth = 0usize;
        let mut begin = 0;
        for (i, (t, _, _)) in toks.iter().enumerate() {
            match t {
                Tok::LParen => depth += 1,
                Tok::RParen => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or_else(|| perr(line, "unexpected right paren"))?;
                }
                Tok::Pipe if depth == 0 => {
                    cmds.push(self.command(&toks[begin..i], line)?);
                    begin = i + 1;
                }
                _ => {}
            }
        }
        if depth != 0 {
            return Err(perr(line, "unclosed left paren"));
        }
        cmds.push(self.command(&toks[begin..], line)?);
        for c in &cmds[1..] {
            if !matches!(c.args.first(), Some(Arg::Func(_))) {
                return Err(perr(
                    line,
                    format!("non executable command in pipeline stage {}", 2),
                ));
            }
        }
        Ok(Pipeline { cmds })
    }

    fn command(&self, toks: &[Spanned], line: usize) -> Result<Command, FormatError> {
        let (Some(first), Some(last)) = (toks.first(), toks.last()) else {
            return Err(perr(line, "missing value for command"));
        };
        let mut args = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            let (t, s, e) = &toks[i];
            i += 1;
            let arg = match t {
                Tok::Dot => Arg::Dot,
                Tok::Field(path) => Arg::Field {
                    path: path.clone(),
                    span: span(self.src, *s, *e),
                },
                Tok::Str(v) => Arg::Str(v.clone()),
                Tok::Int(n) => Arg::Int(*n),
                Tok::Ident(name) => match name.as_str() {
                    "true" => Arg::Bool(true),
                    "false" => Arg::Bool(false),
                    "nil" => Arg::Nil,
                    f if funcs::exists(f) => {
                        if !args.is_empty() {
                            // Go allows a function only first; anything else is an operand.
                            return Err(perr(line, format!("unexpected <{f}> in operand")));
                        }
                        Arg::Func(f.to_string())
                    }
                    "range" | "if" | "with" | "end" | "else" => {
                        return Err(perr(line, format!("unexpected <{name}> in command")));
                    }
                    f => return Err(perr(line, format!("function {f:?} not defined"))),
                },
                Tok::LParen => {
                    let mut depth = 1;
                    let open = i;
                    while i < toks.len() && depth > 0 {
                        match toks[i].0 {
                            Tok::LParen => depth += 1,
                            Tok::RParen => depth -= 1,
                            _ => {}
                        }
                        i += 1;
                    }
                    Arg::Sub(self.pipeline(&toks[open..i - 1])?)
                }
                Tok::RParen => return Err(perr(line, "unexpected right paren")),
                Tok::Pipe => return Err(perr(line, "missing value for command")),
            };
            args.push(arg);
        }
        if args.len() > 1 && !matches!(args[0], Arg::Func(_)) {
            return Err(perr(
                line,
                format!(
                    "can't give argument to non-function {}",
                    &self.src[first.1..first.2]
                ),
            ));
        }
        Ok(Command {
            args,
            span: span(self.src, first.1, last.2),
        })
    }
}
