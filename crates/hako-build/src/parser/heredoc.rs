//! Heredocs: `RUN <<EOF`, `COPY <<-"EOT" /dst`, `RUN 3<<A cat /proc/self/fd/3`.
//!
//! A word of the instruction line of the form `[fd]<<[-]WORD` opens one; its body is the
//! lines that follow, up to a line equal to `WORD` (leading tabs ignored with `<<-`). A
//! quoted `WORD` (any part of it) means the body is taken literally, not expanded.

use crate::shell::{Lex, NoVars};

/// One heredoc of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, quotes removed (`EOF`).
    pub name: String,
    /// The file descriptor before `<<` (0 when not given).
    pub fd: u32,
    /// Whether `$` forms in the body are expanded (the delimiter was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are removed from the body's lines.
    pub chomp: bool,
    /// The body, each line with its newline.
    pub content: String,
}

impl Heredoc {
    /// The body with `<<-` applied.
    pub fn body(&self) -> String {
        if self.chomp {
            chomp(&self.content)
        } else {
            self.content.clone()
        }
    }
}

/// Leading tabs removed from every line.
pub fn chomp(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for line in s.split_inclusive('\n') {
        out.push_str(line.trim_start_matches('\t'));
    }
    out
}

/// Parses one word as a heredoc opener; `None` if it is not one.
pub fn parse_word(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match after.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, after),
    };
    let rest = rest.trim_start();
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let fd = if digits == 0 {
        0
    } else {
        word[..digits]
            .parse::<u32>()
            .map_err(|_| format!("invalid heredoc file descriptor in {word:?}"))?
    };
    let mut lex = Lex {
        skip_unset_env: true,
        ..Lex::default()
    };
    let words = lex.words(rest, &NoVars).map_err(|e| e.to_string())?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    lex.raw_quotes = true;
    let raw = lex.words(rest, &NoVars).map_err(|e| e.to_string())?;
    let [raw] = raw.as_slice() else {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    };
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    Ok(Some(Heredoc {
        name: name.clone(),
        fd,
        expand: quotes(name) == quotes(raw),
        chomp,
        content: String::new(),
    }))
}

/// The heredocs a (continued) instruction line opens, in order.
pub(crate) fn openers(line: &str) -> Result<Vec<Heredoc>, String> {
    let lex = Lex {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset_env: true,
        ..Lex::default()
    };
    // A line the lexer cannot split (an unbalanced quote) opens no heredoc; the
    // instruction itself reports the problem when it is expanded.
    let Ok(words) = lex.words(line, &NoVars) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for w in words {
        if let Some(h) = parse_word(&w)? {
            out.push(h);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, fd: u32, expand: bool, chomp: bool) -> Option<Heredoc> {
        Some(Heredoc {
            name: name.into(),
            fd,
            expand,
            chomp,
            content: String::new(),
        })
    }

    #[test]
    fn opener_words() {
        assert_eq!(parse_word("<<EOF"), Ok(h("EOF", 0, true, false)));
        assert_eq!(parse_word("<<-EOF"), Ok(h("EOF", 0, true, true)));
        assert_eq!(parse_word("3<<EOF"), Ok(h("EOF", 3, true, false)));
        assert_eq!(parse_word("<<'EOF'"), Ok(h("EOF", 0, false, false)));
        assert_eq!(parse_word("<<\"EOF\""), Ok(h("EOF", 0, false, false)));
        assert_eq!(parse_word("<<E\"O\"F"), Ok(h("EOF", 0, false, false)));
        assert_eq!(parse_word("<<-'EOF'"), Ok(h("EOF", 0, false, true)));
        assert_eq!(parse_word("<<"), Ok(None));
        assert_eq!(parse_word("<<<EOF"), Ok(None));
        assert_eq!(parse_word("EOF"), Ok(None));
        assert_eq!(parse_word("a<<EOF"), Ok(None));
        assert_eq!(parse_word("<<'A B'"), Ok(h("A B", 0, false, false)));
    }

    #[test]
    fn several_on_one_line() {
        let hs = openers("cat <<A 3<<'B' > /x").unwrap();
        assert_eq!(hs.len(), 2);
        assert_eq!((hs[0].name.as_str(), hs[0].expand), ("A", true));
        assert_eq!(
            (hs[1].name.as_str(), hs[1].fd, hs[1].expand),
            ("B", 3, false)
        );
        assert!(openers("echo '<<EOF'").unwrap().is_empty());
        assert!(openers("echo \\<<EOF").unwrap().is_empty());
    }

    #[test]
    fn chomp_removes_leading_tabs_only() {
        assert_eq!(chomp("\t\ta\n \tb\n\tc"), "a\n \tb\nc");
    }
}
