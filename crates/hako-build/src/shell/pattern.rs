//! Shell patterns (`*`, `?`, `\`) for `${v#p}`, `${v%p}` and `${v/p/r}`, matched through
//! a regular expression built from the pattern.

use regex::Regex;

/// The regular expression for `pattern`: `*` any run (shortest unless `greedy`), `?` one
/// character, `\*` `\?` `\\` the character itself; `\}` and `\/` are the brace or slash.
/// (What [`fitting`] compiles; the tests look at it directly.)
#[cfg(test)]
pub(crate) fn to_regex(pattern: &str, greedy: bool, anchored: bool) -> Result<Regex, String> {
    let (src, _) = translate(pattern, greedy, anchored)?;
    Regex::new(&src).map_err(|e| e.to_string())
}

/// The regular expression's source for `pattern`, and how many characters a match takes
/// at the least (every pattern character but `*`).
fn translate(pattern: &str, greedy: bool, anchored: bool) -> Result<(String, usize), String> {
    let mut min = 0;
    let mut out = String::with_capacity(pattern.len() + 4);
    if anchored {
        out.push('^');
    }
    let star = if greedy { ".*" } else { ".*?" };
    let mut it = pattern.chars().peekable();
    while let Some(tok) = it.next() {
        if tok != '*' && !(tok == '\\' && matches!(it.peek(), Some('}' | '/'))) {
            min += 1;
        }
        match tok {
            '*' => out.push_str(star),
            '?' => out.push('.'),
            '\\' => {
                if matches!(it.peek(), Some('}' | '/')) {
                    continue;
                }
                match it.next() {
                    Some(c @ ('*' | '?' | '\\')) => {
                        out.push('\\');
                        out.push(c);
                    }
                    Some(c) => return Err(format!("invalid escape '\\{c}'")),
                    None => return Err("invalid escape '\\' at end of pattern".into()),
                }
            }
            '[' | ']' | '{' | '}' | '.' | '+' | '(' | ')' | '|' | '^' | '$' => {
                out.push('\\');
                out.push(tok);
            }
            c => out.push(c),
        }
    }
    Ok((out, min))
}

/// The regular expression for `pattern` when a match could fit in `value`; `None` when
/// the pattern needs more characters than `value` has. A pattern built from a grown
/// expansion can be a megabyte, and compiling it takes a second.
fn fitting(
    pattern: &str,
    value: &str,
    greedy: bool,
    anchored: bool,
) -> Result<Option<Regex>, String> {
    let (src, min) = translate(pattern, greedy, anchored)?;
    if min > value.chars().count() {
        return Ok(None);
    }
    Regex::new(&src).map(Some).map_err(|e| e.to_string())
}

fn bad(pattern: &str, e: String) -> String {
    format!("invalid pattern ({pattern}) in substitution: {e}")
}

/// `${value#pattern}` (`greedy`: `##`).
pub(crate) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let re = fitting(pattern, value, greedy, true).map_err(|e| bad(pattern, e))?;
    Ok(match re.as_ref().and_then(|re| re.find(value)) {
        Some(m) => value[m.end()..].to_string(),
        None => value.to_string(),
    })
}

/// `${value%pattern}` (`greedy`: `%%`): a prefix match on the reversed value.
pub(crate) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let rev_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &rev_value, greedy)
        .map_err(|_| bad(pattern, "invalid pattern".into()))?;
    Ok(trimmed.chars().rev().collect())
}

/// `${value/pattern/replacement}`, every match with `all`. An empty pattern matches
/// between every two characters (Go's regexp, so BuildKit, does the same), and a
/// replacement that holds the value grows it quadratically, nested ones exponentially: the
/// result stops at [`super::MAX_EXPANSION`].
pub(crate) fn replace(pattern: &str, repl: &str, value: &str, all: bool) -> Result<String, String> {
    let Some(re) = fitting(pattern, value, true, false).map_err(|e| bad(pattern, e))? else {
        return Ok(value.to_string());
    };
    let mut out = String::new();
    let mut last = 0;
    for m in re.find_iter(value) {
        out.push_str(&value[last..m.start()]);
        out.push_str(repl);
        last = m.end();
        if out.len() > super::MAX_EXPANSION {
            return Err(super::too_long());
        }
        if !all {
            break;
        }
    }
    out.push_str(&value[last..]);
    Ok(out)
}

/// `pattern` backwards, an escape staying in front of the character it quotes
/// (`a\*c` → `c\*a`).
pub(crate) fn reverse_pattern(pattern: &str) -> String {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = vec!['\0'; p.len()];
    let last = p.len().saturating_sub(1);
    let mut i = 0;
    while i < p.len() {
        let at = last - i;
        if p[i] == '\\' && i != last {
            out[at - 1] = '\\';
            i += 1;
            out[at] = p[i];
        } else {
            out[at] = p[i];
        }
        i += 1;
    }
    out.into_iter().collect()
}
