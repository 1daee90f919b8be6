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

/// `cmd | cmd | ...`: each command's result becomes the last argument of the next;
/// `$x := cmd...` declares variables with the result (`$i, $e :=` in `range`), `$x = ...`
/// assigns an existing one.
#[derive(Debug, Clone)]
pub(crate) struct Pipeline {
    pub(crate) cmds: Vec<Command>,
    pub(crate) decl: Vec<String>,
    pub(crate) assign: bool,
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
    Field {
        path: Vec<String>,
        span: Span,
    },
    Func(String),
    /// `$name` (`$` alone: the data the template runs on) and a field path after it.
    Var {
        name: String,
        path: Vec<String>,
        span: Span,
    },
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Sub(Pipeline),
    /// `(pipeline).Field.Sub`.
    SubField {
        pipe: Pipeline,
        path: Vec<String>,
        span: Span,
    },
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
    Float(f64),
    Var(String, Vec<String>),
    Declare,
    Assign,
    Comma,
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
        Stop::Else(line) | Stop::ElseChain(line, _, _) => Err(perr(line, "unexpected {{else}}")),
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
        // `{{/* a comment */}}` (with its trim markers): no output.
        let after_space = inner + (src.len() - inner - src[inner..].trim_start().len());
        if src[after_space..].starts_with("/*") {
            let line = line_of(src, inner);
            let end = src[after_space + 2..]
                .find("*/")
                .map(|i| after_space + 2 + i + 2)
                .ok_or_else(|| perr(line, "unclosed comment"))?;
            let rest = &src[end..];
            let (after, trimmed) = if rest.starts_with("}}") {
                (end + 2, false)
            } else if rest.starts_with(" -}}") || rest.starts_with("\t-}}") {
                (end + 4, true)
            } else {
                return Err(perr(line, "comment ends before closing delimiter"));
            };
            trim_next = trimmed;
            pos = after;
            continue;
        }
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
            b'-' | b'+' | b'0'..=b'9' => {
                let (tok, end) = lex_number(src, i).ok_or_else(|| {
                    perr(
                        line,
                        format!("bad number syntax: {:?}", &src[i..word_end(b, i + 1, true)]),
                    )
                })?;
                toks.push((tok, i, end));
                i = end;
            }
            b'\'' => {
                // A character constant is its code point, as in Go.
                let rest = &src[i + 1..];
                let (c, used) = match rest.chars().next() {
                    Some('\\') => {
                        let c = match rest[1..].chars().next() {
                            Some('n') => '\n',
                            Some('t') => '\t',
                            Some('\\') => '\\',
                            Some('\'') => '\'',
                            _ => return Err(perr(line, "bad character constant")),
                        };
                        (c, 2)
                    }
                    Some(c) if c != '\'' => (c, c.len_utf8()),
                    _ => return Err(perr(line, "empty character constant")),
                };
                if !rest[used..].starts_with('\'') {
                    return Err(perr(line, "unterminated character constant"));
                }
                let end = i + 1 + used + 1;
                toks.push((Tok::Int(i64::from(u32::from(c))), i, end));
                i = end;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let end = word_end(b, i, false);
                toks.push((Tok::Ident(src[i..end].to_string()), i, end));
                i = end;
            }
            b'$' => {
                let end = word_end(b, i + 1, false);
                let name = src[i + 1..end].to_string();
                let fend = if b.get(end) == Some(&b'.') {
                    word_end(b, end + 1, true)
                } else {
                    end
                };
                let path: Vec<String> = if fend > end {
                    src[end + 1..fend].split('.').map(String::from).collect()
                } else {
                    Vec::new()
                };
                if path.iter().any(|p| p.is_empty() || !is_ident(p)) {
                    return Err(perr(
                        line,
                        format!("bad character in field {:?}", &src[i..fend]),
                    ));
                }
                toks.push((Tok::Var(name, path), i, fend));
                i = fend;
            }
            b':' if b.get(i + 1) == Some(&b'=') => {
                toks.push((Tok::Declare, i, i + 2));
                i += 2;
            }
            b'=' => {
                toks.push((Tok::Assign, i, i + 1));
                i += 1;
            }
            b',' => {
                toks.push((Tok::Comma, i, i + 1));
                i += 1;
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(perr(line, format!("unexpected {ch:?} in command")));
            }
        }
    }
}

/// A Go number literal: decimal or `0x` integers, and decimal floats with a point and/or
/// an exponent (`1.5`, `1e3`, `-2.5e-3`).
fn lex_number(src: &str, start: usize) -> Option<(Tok, usize)> {
    let b = src.as_bytes();
    let mut i = start;
    if matches!(b[i], b'-' | b'+') {
        i += 1;
    }
    let digits = |mut i: usize, hex: bool| {
        while i < b.len()
            && (b[i].is_ascii_digit() || b[i] == b'_' || (hex && b[i].is_ascii_hexdigit()))
        {
            i += 1;
        }
        i
    };
    if src[i..].starts_with("0x") || src[i..].starts_with("0X") {
        let end = digits(i + 2, true);
        let n = i64::from_str_radix(&src[i + 2..end].replace('_', ""), 16).ok()?;
        let n = if b[start] == b'-' { -n } else { n };
        return (end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'.'))
            .then_some(())
            .map_or(Some((Tok::Int(n), end)), |()| None);
    }
    let int_end = digits(i, false);
    if int_end == i {
        return None;
    }
    let mut end = int_end;
    let mut float = false;
    if b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(u8::is_ascii_digit) {
        end = digits(end + 1, false);
        float = true;
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let mut j = end + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let k = digits(j, false);
        if k > j {
            end = k;
            float = true;
        }
    }
    if end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_' || b[end] == b'.') {
        return None;
    }
    let text = src[start..end].replace('_', "");
    if float {
        let f: f64 = text.parse().ok()?;
        f.is_finite().then_some((Tok::Float(f), end))
    } else {
        text.parse::<i64>().ok().map(|n| (Tok::Int(n), end))
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

/// A Go string literal: `"..."` with Go's escapes (`\n`, `\x41`, `\u00e9`, `\101`...)
/// or a raw `` `...` ``.
fn lex_string(src: &str, start: usize) -> Option<(String, usize)> {
    let quote = src[start..].chars().next()?;
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices().peekable();
    while let Some((off, c)) = chars.next() {
        match c {
            c if c == quote => return Some((out, start + 1 + off + 1)),
            '\\' if quote == '"' => {
                let (_, e) = chars.next()?;
                let simple = match e {
                    'a' => Some('\u{7}'),
                    'b' => Some('\u{8}'),
                    'f' => Some('\u{c}'),
                    'n' => Some('\n'),
                    'r' => Some('\r'),
                    't' => Some('\t'),
                    'v' => Some('\u{b}'),
                    '\\' => Some('\\'),
                    '"' => Some('"'),
                    _ => None,
                };
                if let Some(c) = simple {
                    out.push(c);
                    continue;
                }
                let (digits, radix) = match e {
                    'x' => (2, 16),
                    'u' => (4, 16),
                    'U' => (8, 16),
                    '0'..='7' => (2, 8),
                    _ => return None,
                };
                let mut code = if radix == 8 { e.to_digit(8)? } else { 0 };
                for _ in 0..digits {
                    let (_, d) = chars.next()?;
                    code = code.checked_mul(radix)?.checked_add(d.to_digit(radix)?)?;
                }
                // \x and octal are bytes; a byte above 0x7f is not a whole character.
                if matches!(e, 'x' | '0'..='7') && code > 0x7f {
                    out.push('\u{FFFD}');
                } else {
                    out.push(char::from_u32(code)?);
                }
            }
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
    /// `{{else if ...}}` / `{{else with ...}}`: a block that shares the `{{end}}`.
    ElseChain(usize, BlockKind, Vec<Spanned>),
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
                "else" => match &toks[1].0 {
                    Tok::Ident(k) if k == "if" || k == "with" => {
                        let kind = if k == "if" {
                            BlockKind::If
                        } else {
                            BlockKind::With
                        };
                        return Ok((nodes, Stop::ElseChain(line, kind, toks[2..].to_vec())));
                    }
                    _ => return Err(perr(line, "unexpected else arguments")),
                },
                "end" => return Err(perr(line, format!("unexpected {kind} arguments"))),
                "range" => Some(BlockKind::Range),
                "if" => Some(BlockKind::If),
                "with" => Some(BlockKind::With),
                _ => None,
            };
            let Some(kind) = block else {
                nodes.push(Node::Action(self.pipeline(&toks, false)?));
                continue;
            };
            nodes.push(self.block(kind, &toks[1..], line)?);
        }
        Ok((nodes, Stop::Eof))
    }

    /// The rest of a `range`/`if`/`with` block after its keyword: the pipeline, the body,
    /// and an `{{else}}` part (an `{{else if}}` chain nests, sharing the one `{{end}}`).
    fn block(
        &mut self,
        kind: BlockKind,
        toks: &[Spanned],
        line: usize,
    ) -> Result<Node, FormatError> {
        if toks.is_empty() {
            return Err(perr(
                line,
                format!("missing value for {kind:?}").to_lowercase(),
            ));
        }
        let pipe = self.pipeline(toks, kind == BlockKind::Range)?;
        let (body, end) = self.nodes()?;
        let eof = || perr(line_of(self.src, self.src.len()), "unexpected EOF");
        let otherwise = match end {
            Stop::Eof => return Err(eof()),
            Stop::End(_) => Vec::new(),
            Stop::ElseChain(l, k, rest) => vec![self.block(k, &rest, l)?],
            Stop::Else(_) => match self.nodes()? {
                (o, Stop::End(_)) => o,
                (_, Stop::Else(l) | Stop::ElseChain(l, _, _)) => {
                    return Err(perr(l, "expected end; found {{else}}"));
                }
                (_, Stop::Eof) => return Err(eof()),
            },
        };
        Ok(Node::Block {
            kind,
            pipe,
            body,
            otherwise,
        })
    }

    /// A pipeline, with its variable declaration if any (`$i, $e :=` only in `range`).
    fn pipeline(&self, toks: &[Spanned], in_range: bool) -> Result<Pipeline, FormatError> {
        let line = toks.first().map_or(1, |t| line_of(self.src, t.1));
        let (decl, assign, toks) = match toks {
            [
                (Tok::Var(a, pa), ..),
                (Tok::Comma, ..),
                (Tok::Var(b, pb), ..),
                (Tok::Declare, ..),
                rest @ ..,
            ] if in_range && pa.is_empty() && pb.is_empty() => {
                (vec![a.clone(), b.clone()], false, rest)
            }
            [
                (Tok::Var(a, pa), ..),
                (op @ (Tok::Declare | Tok::Assign), ..),
                rest @ ..,
            ] if pa.is_empty() => (vec![a.clone()], *op == Tok::Assign, rest),
            _ => (Vec::new(), false, toks),
        };
        if decl.iter().any(String::is_empty) {
            return Err(perr(line, "cannot assign to $"));
        }
        if in_range && assign {
            return Err(perr(line, "range can only initialize variables"));
        }
        let mut p = self.plain_pipeline(toks, line)?;
        p.decl = decl;
        p.assign = assign;
        Ok(p)
    }

    fn plain_pipeline(&self, toks: &[Spanned], line: usize) -> Result<Pipeline, FormatError> {
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
            if !matches!(c.args.first(), Some(Arg::Func(_) | Arg::Field { .. })) {
                return Err(perr(
                    line,
                    format!("non executable command in pipeline stage {}", 2),
                ));
            }
        }
        Ok(Pipeline {
            cmds,
            decl: Vec::new(),
            assign: false,
        })
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
                Tok::Float(f) => Arg::Float(*f),
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
                    let pipe = self.plain_pipeline(&toks[open..i - 1], line)?;
                    // `(...).Field`: a field right after the parenthesis, no space between.
                    match toks.get(i) {
                        Some((Tok::Field(path), fs, fe)) if *fs == toks[i - 1].2 => {
                            i += 1;
                            Arg::SubField {
                                pipe,
                                path: path.clone(),
                                span: span(self.src, *s, *fe),
                            }
                        }
                        _ => Arg::Sub(pipe),
                    }
                }
                Tok::Var(name, path) => Arg::Var {
                    name: name.clone(),
                    path: path.clone(),
                    span: span(self.src, *s, *e),
                },
                Tok::Declare | Tok::Assign | Tok::Comma => {
                    return Err(perr(
                        line,
                        format!("unexpected {:?} in operand", &self.src[*s..*e]),
                    ));
                }
                Tok::RParen => return Err(perr(line, "unexpected right paren")),
                Tok::Pipe => return Err(perr(line, "missing value for command")),
            };
            args.push(arg);
        }
        if args.len() > 1 && !matches!(args[0], Arg::Func(_) | Arg::Field { .. }) {
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
