//! The word scanner: one pass over the characters, expanding `$` forms and quotes as
//! it goes, building both the joined result and the list of words.

use std::collections::BTreeSet;

use super::pattern;
use super::{ShellError, Vars};

/// How words are processed. The default is what instructions see: escape token `\`,
/// quotes removed, escapes applied, unset variables empty.
#[derive(Debug, Clone, Copy)]
pub struct Lex {
    /// The escape token (`\`, or `` ` `` with `# escape=``).
    pub escape: char,
    /// Keep quote characters in the output (they are still interpreted).
    pub raw_quotes: bool,
    /// Keep escape tokens in the output (they are still interpreted).
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters.
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as they were written (`$x`, `${x:-y}`).
    pub skip_unset_env: bool,
}

impl Default for Lex {
    fn default() -> Lex {
        Lex::new('\\')
    }
}

/// The result of processing one piece of text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The text with quotes and escapes processed and variables expanded, spaces kept.
    pub result: String,
    /// The same split into words (unquoted whitespace separates; quoted text and
    /// escaped characters stay in their word; expanded values are split too).
    pub words: Vec<String>,
    /// Variables that were referenced and set.
    pub matched: BTreeSet<String>,
    /// Variables that were referenced and not set.
    pub unmatched: BTreeSet<String>,
}

impl Lex {
    /// A lexer with `escape` as the escape token and default options.
    pub fn new(escape: char) -> Lex {
        Lex {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Processes `input` with the variables `vars`.
    pub fn process(&self, input: &str, vars: &dyn Vars) -> Result<Expansion, ShellError> {
        let mut sc = Scanner {
            lex: *self,
            chars: input.chars().collect(),
            pos: 0,
            vars,
            raw_escapes: self.raw_escapes,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        match sc.stop_on(None, self.raw_escapes) {
            Ok((result, words)) => Ok(Expansion {
                result,
                words,
                matched: sc.matched,
                unmatched: sc.unmatched,
            }),
            Err(reason) => Err(ShellError {
                input: input.to_string(),
                reason,
            }),
        }
    }

    /// The processed text as one string (ENV values, WORKDIR, USER, ...).
    pub fn word(&self, input: &str, vars: &dyn Vars) -> Result<String, ShellError> {
        Ok(self.process(input, vars)?.result)
    }

    /// The processed text split into words (COPY sources, EXPOSE ports, ...).
    pub fn words(&self, input: &str, vars: &dyn Vars) -> Result<Vec<String>, ShellError> {
        Ok(self.process(input, vars)?.words)
    }
}

/// Words being collected.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

struct Scanner<'a> {
    lex: Lex,
    chars: Vec<char>,
    pos: usize,
    vars: &'a dyn Vars,
    /// The escape mode in effect (patterns keep their escapes for the matcher).
    raw_escapes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

type Res<T> = Result<T, String>;

impl Scanner<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn var(&mut self, name: &str) -> Option<String> {
        match self.vars.var(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v.to_string())
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }

    /// Processes up to `stop` (consumed) or the end of input when `stop` is `None`.
    fn stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> Res<(String, Vec<String>)> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Res<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                return Ok((result, words.finish()));
            }
            if ch == '$' {
                let v = self.dollar()?;
                if result.len() + v.len() > super::MAX_EXPANSION {
                    return Err(super::too_long());
                }
                result.push_str(&v);
                words.add_string(&v);
                continue;
            }
            if !self.lex.skip_process_quotes && (ch == '\'' || ch == '"') {
                let v = if ch == '\'' {
                    self.single_quote()?
                } else {
                    self.double_quote()?
                };
                result.push_str(&v);
                words.add_raw_string(&v);
                continue;
            }
            let mut ch = self.next().unwrap_or_default();
            if ch == self.lex.escape {
                if self.raw_escapes {
                    words.add_raw_char(ch);
                    result.push(ch);
                }
                // The escape token quotes the next character; alone at the end it vanishes.
                match self.next() {
                    None => break,
                    Some(c) => ch = c,
                }
                words.add_raw_char(ch);
            } else {
                words.add_char(ch);
            }
            result.push(ch);
        }
        if let Some(s) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {s}"
            ));
        }
        Ok((result, words.finish()))
    }

    /// `'...'`: everything literal, no escapes.
    fn single_quote(&mut self) -> Res<String> {
        let mut out = String::new();
        let open = self.next().unwrap_or('\'');
        if self.lex.raw_quotes {
            out.push(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    );
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// `"..."`: `$` forms expanded; the escape token quotes only `"`, `$` and itself.
    fn double_quote(&mut self) -> Res<String> {
        let mut out = String::new();
        let open = self.next().unwrap_or('"');
        if self.lex.raw_quotes {
            out.push(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    );
                }
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let v = self.dollar()?;
                    out.push_str(&v);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                ch = c;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    /// A name after `$`: digits, one special parameter, or letters/digits/underscores.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }

    fn dollar(&mut self) -> Res<String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.var(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.name();
        let Some(mut op) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        let mut ops = op.to_string();
        let mut null_is_unset = false;
        match op {
            '}' => {
                return Ok(match self.var(&name) {
                    Some(v) => v,
                    None if self.lex.skip_unset_env => format!("${{{name}}}"),
                    None => String::new(),
                });
            }
            '/' => return self.replace(&name),
            ':' => {
                null_is_unset = true;
                op = self.next().ok_or("syntax error: missing '}'")?;
                ops.push(op);
            }
            _ => {}
        }
        if !matches!(op, '+' | '-' | '?' | '#' | '%') {
            return Err(format!("unsupported modifier ({ops}) in substitution"));
        }
        let word = match self.stop_on(Some('}'), op == '#' || op == '%') {
            Ok((w, _)) => w,
            Err(_) if self.peek().is_none() => return Err("syntax error: missing '}'".into()),
            Err(e) => return Err(e),
        };
        let value = self.var(&name);
        let Some(v) = value else {
            if self.lex.skip_unset_env {
                return Ok(format!("${{{name}{ops}{word}}}"));
            }
            return match op {
                '-' => Ok(word),
                '?' => Err(format!(
                    "{name}: {}",
                    if word.is_empty() {
                        "is not allowed to be unset"
                    } else {
                        &word
                    }
                )),
                '#' | '%' => Ok(String::new()),
                _ => Ok(String::new()),
            };
        };
        let empty = null_is_unset && v.is_empty();
        match op {
            '-' => Ok(if empty { word } else { v }),
            '+' => Ok(if empty { String::new() } else { word }),
            '?' if empty => Err(format!(
                "{name}: {}",
                if word.is_empty() {
                    "is not allowed to be empty"
                } else {
                    &word
                }
            )),
            '?' => Ok(v),
            _ => {
                // `#`/`%` shortest, `##`/`%%` longest.
                let (greedy, pat) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest.to_string()),
                    None => (false, word),
                };
                if op == '%' {
                    pattern::trim_suffix(&pat, &v, greedy)
                } else {
                    pattern::trim_prefix(&pat, &v, greedy)
                }
            }
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}` (after `/`).
    fn replace(&mut self, name: &str) -> Res<String> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let pat = match self.stop_on(Some('/'), true) {
            Ok((p, _)) => p,
            Err(_) if self.peek().is_none() => {
                return Err("syntax error: missing '/' in ${}".into());
            }
            Err(e) => return Err(e),
        };
        let repl = match self.stop_on(Some('}'), true) {
            Ok((r, _)) => r,
            Err(_) if self.peek().is_none() => return Err("syntax error: missing '}'".into()),
            Err(e) => return Err(e),
        };
        let Some(v) = self.var(name) else {
            if self.lex.skip_unset_env {
                let slash = if all { "//" } else { "/" };
                return Ok(format!("${{{name}{slash}{pat}/{repl}}}"));
            }
            return Ok(String::new());
        };
        pattern::replace(&pat, &repl, &v, all)
    }
}
