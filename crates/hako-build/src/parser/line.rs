//! Splitting one logical line: the instruction word, its `--flags`, and the argument
//! forms (JSON array, whitespace list, `key=value` words, a single string).

/// `(keyword in lowercase, flags, rest)`.
pub(crate) fn split_command(line: &str) -> Result<(String, Vec<String>, String), String> {
    let line = line.trim();
    let (cmd, rest) = match line.find(is_blank) {
        Some(i) => (&line[..i], line[i..].trim_start_matches(is_blank)),
        None => (line, ""),
    };
    let (rest, flags) = if rest.is_empty() {
        (String::new(), Vec::new())
    } else {
        extract_flags(rest)?
    };
    // strings.ToLower in BuildKit: Unicode, not only ASCII.
    Ok((cmd.to_lowercase(), flags, rest.trim().to_string()))
}

/// The blanks BuildKit splits instructions on (`[\t\v\f\r ]`).
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{b}' | '\u{c}' | '\r')
}

/// Leading `--name[=value]` words (quotes and `\` processed inside them) and the rest of
/// the line. A lone `--` ends the flags.
fn extract_flags(line: &str) -> Result<(String, Vec<String>), String> {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut flags = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && chars[i].1.is_whitespace() {
            i += 1;
        }
        if i == chars.len() {
            return Ok((String::new(), flags));
        }
        let starts_flag = chars[i].1 == '-' && chars.get(i + 1).map(|c| c.1) == Some('-');
        if !starts_flag {
            return Ok((line[chars[i].0..].to_string(), flags));
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i].1;
            match quote {
                None if c.is_whitespace() => break,
                None if c == '\'' || c == '"' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    if let Some(&(_, n)) = chars.get(i + 1) {
                        word.push(n);
                        i += 1;
                    }
                }
                _ => word.push(c),
            }
            i += 1;
        }
        if word == "--" {
            let rest = chars.get(i).map_or("", |&(at, _)| &line[at..]);
            return Ok((rest.to_string(), flags));
        }
        flags.push(word);
    }
}

/// Words of `rest` separated by unquoted whitespace, quotes and escapes kept as written
/// (they are processed at expansion time). Used by ENV, LABEL and ARG.
pub(crate) fn words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            None if !in_word && c.is_whitespace() => {}
            None if c.is_whitespace() => {
                if blank_ok || !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                in_word = false;
                blank_ok = false;
            }
            None => {
                in_word = true;
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    blank_ok = true;
                }
                if c == escape {
                    if i + 1 == chars.len() {
                        break;
                    }
                    word.push(c);
                    i += 1;
                }
                word.push(chars[i]);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                }
                if c == escape && q != '\'' {
                    if i + 1 == chars.len() {
                        break;
                    }
                    word.push(c);
                    i += 1;
                }
                word.push(chars[i]);
            }
        }
        i += 1;
    }
    if in_word && (blank_ok || !word.is_empty()) {
        out.push(word);
    }
    out
}

/// A JSON array of strings: `Ok(Some(v))`; not JSON at all: `Ok(None)`; a JSON array
/// with something other than strings: the error BuildKit gives.
pub(crate) fn json_array(rest: &str) -> Result<Option<Vec<String>>, String> {
    let t = rest.trim_start();
    if !t.starts_with('[') {
        return Ok(None);
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(t) {
        Ok(items) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                _ => Err(
                    "when using JSON array syntax, arrays must be comprised of strings only"
                        .to_string(),
                ),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Err(_) => Ok(None),
    }
}

/// Whitespace-separated fields (FROM, EXPOSE, the list form of COPY/ADD/VOLUME).
pub(crate) fn fields(rest: &str) -> Vec<String> {
    rest.split(is_blank)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// ENV and LABEL: `key value` (old form, one pair, the value is the rest of the line)
/// or `k=v k2=v2`. Returns `[k, v, k2, v2, ...]`.
pub(crate) fn name_values(rest: &str, escape: char, what: &str) -> Result<Vec<String>, String> {
    let ws = words(rest, escape);
    let Some(first) = ws.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let r = rest.trim_start_matches(is_blank);
        let Some(i) = r.find(is_blank) else {
            return Err(format!("{what} must have two arguments"));
        };
        let value = r[i..].trim_start_matches(is_blank);
        return Ok(vec![r[..i].to_string(), value.to_string()]);
    }
    let mut out = Vec::new();
    for w in ws {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            ));
        };
        out.push(k.to_string());
        out.push(v.to_string());
    }
    Ok(out)
}
