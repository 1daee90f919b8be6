//! The template functions: Go's builtins that Docker users need, and Docker's own.

use serde_json::Value;

use super::value::{go_print, to_go_json, truthy, type_name};

const NAMES: &[&str] = &[
    // Docker's own.
    "json", "upper", "lower", "title", "join", "split", "truncate", "pad",
    // Go's builtins (`and`/`or` are evaluated lazily by the executor).
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt",
    "le", "gt", "ge", "html", "js", "urlquery",
];

/// Whether `name` is a known function.
pub(crate) fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

/// Calls `name`; the error is Go's wording after `error calling NAME: `.
pub(crate) fn call(name: &str, args: &[Value]) -> Result<Value, String> {
    let want = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            ))
        }
    };
    match name {
        "json" => {
            want(1)?;
            Ok(Value::String(to_go_json(&args[0])))
        }
        "upper" | "lower" | "title" => {
            want(1)?;
            let s = go_print(&args[0]);
            Ok(Value::String(match name {
                "upper" => s.to_uppercase(),
                "lower" => s.to_lowercase(),
                _ => title(&s),
            }))
        }
        "len" => {
            want(1)?;
            match &args[0] {
                Value::String(s) => Ok(Value::from(s.len())),
                Value::Array(a) => Ok(Value::from(a.len())),
                Value::Object(m) => Ok(Value::from(m.len())),
                other => Err(format!("len of type {}", super::value::type_name(other))),
            }
        }
        "join" => {
            want(2)?;
            let sep = go_print(&args[1]);
            match &args[0] {
                Value::Array(a) => Ok(Value::String(
                    a.iter().map(go_print).collect::<Vec<_>>().join(&sep),
                )),
                Value::Null => Ok(Value::String(String::new())),
                other => Err(format!("join of non-list {}", go_print(other))),
            }
        }
        "split" => {
            want(2)?;
            let s = go_print(&args[0]);
            let sep = go_print(&args[1]);
            Ok(Value::Array(
                s.split(sep.as_str())
                    .map(|p| Value::String(p.into()))
                    .collect(),
            ))
        }
        "truncate" => {
            want(2)?;
            let s = go_print(&args[0]);
            let n = args[1]
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or("truncate length must be a non-negative integer")?;
            Ok(Value::String(s.chars().take(n).collect()))
        }
        "print" => Ok(Value::String(print_args(args))),
        "println" => {
            let mut s = args.iter().map(go_sprint).collect::<Vec<_>>().join(" ");
            s.push('\n');
            Ok(Value::String(s))
        }
        "index" => {
            let (first, keys) = args
                .split_first()
                .ok_or("wrong number of args for index: want at least 1 got 0")?;
            let mut cur = first.clone();
            for k in keys {
                cur = index(&cur, k)?;
            }
            Ok(cur)
        }
        "not" => {
            want(1)?;
            Ok(Value::Bool(!truthy(&args[0])))
        }
        "eq" => {
            let (first, rest) = args
                .split_first()
                .ok_or("wrong number of args for eq: want at least 1 got 0")?;
            if rest.is_empty() {
                return Err("missing argument for comparison".into());
            }
            for other in rest {
                if equal(first, other)? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" => {
            want(2)?;
            Ok(Value::Bool(!equal(&args[0], &args[1])?))
        }
        "lt" | "le" | "gt" | "ge" => {
            want(2)?;
            let o = order(&args[0], &args[1])?;
            Ok(Value::Bool(match name {
                "lt" => o.is_lt(),
                "le" => o.is_le(),
                "gt" => o.is_gt(),
                _ => o.is_ge(),
            }))
        }
        "printf" => {
            let (f, rest) = args
                .split_first()
                .ok_or("wrong number of args for printf: want at least 1 got 0")?;
            let Value::String(f) = f else {
                return Err(format!(
                    "wrong type for value; expected string; got {}",
                    type_name(f)
                ));
            };
            Ok(Value::String(super::printf::sprintf(f, rest)))
        }
        "slice" => {
            let (item, idx) = args
                .split_first()
                .ok_or("wrong number of args for slice: want at least 1 got 0")?;
            slice(item, idx)
        }
        "html" => Ok(Value::String(html(&print_args(args)))),
        "js" => Ok(Value::String(js(&print_args(args)))),
        "urlquery" => Ok(Value::String(query_escape(&print_args(args)))),
        "pad" => {
            want(3)?;
            let n = |v: &Value| {
                v.as_u64()
                    .filter(|n| *n <= super::printf::MAX_WIDTH as u64)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| {
                        format!("pad needs a width from 0 to {}", super::printf::MAX_WIDTH)
                    })
            };
            let (before, after) = (n(&args[1])?, n(&args[2])?);
            Ok(Value::String(format!(
                "{}{}{}",
                " ".repeat(before),
                go_print(&args[0]),
                " ".repeat(after)
            )))
        }
        _ => Err(format!("function {name:?} not defined")),
    }
}

/// Go's `fmt.Sprint` of the arguments: spaces only between operands that are not strings.
fn print_args(args: &[Value]) -> String {
    let mut s = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !a.is_string() && !args[i - 1].is_string() {
            s.push(' ');
        }
        s.push_str(&go_sprint(a));
    }
    s
}

/// `%v` of one operand (nil is `<nil>` here, `<no value>` only as an action's result).
fn go_sprint(v: &Value) -> String {
    if v.is_null() {
        "<nil>".into()
    } else {
        go_print(v)
    }
}

/// Go's `eq` of two basic values: numbers by value, strings, bools; nil only equals nil.
fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        // An int and a float64 are different types to Go (`eq 1 1.0` is an error).
        (Value::Number(x), Value::Number(y)) if x.is_f64() != y.is_f64() => {
            Err("incompatible types for comparison".into())
        }
        (Value::Number(x), Value::Number(y)) => Ok(x.as_f64() == y.as_f64()),
        (Value::String(x), Value::String(y)) => Ok(x == y),
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::Null, Value::Null) => Ok(true),
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => {
            Err("non-comparable type".into())
        }
        (Value::Null, _) | (_, Value::Null) => Ok(false),
        _ => Err("incompatible types for comparison".into()),
    }
}

/// Go's order of two numbers or two strings.
fn order(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() != y.is_f64() => {
            Err("incompatible types for comparison".into())
        }
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .zip(y.as_f64())
            .and_then(|(x, y)| x.partial_cmp(&y))
            .ok_or_else(|| "invalid type for comparison".into()),
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Number(_) | Value::String(_), Value::Number(_) | Value::String(_)) => {
            Err("incompatible types for comparison".into())
        }
        _ => Err("invalid type for comparison".into()),
    }
}

/// Go's `slice x i j`: of a string by bytes, of a list by items.
fn slice(item: &Value, idx: &[Value]) -> Result<Value, String> {
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()));
    }
    let mut at = Vec::with_capacity(idx.len());
    for i in idx {
        let n = i
            .as_i64()
            .ok_or_else(|| format!("cannot index slice/array with type {}", type_name(i)))?;
        at.push(usize::try_from(n).map_err(|_| format!("index out of range: {n}"))?);
    }
    let len = match item {
        Value::String(s) => s.len(),
        Value::Array(a) => a.len(),
        Value::Null => return Err("slice of untyped nil".into()),
        other => return Err(format!("can't slice item of type {}", type_name(other))),
    };
    let from = at.first().copied().unwrap_or(0);
    let to = at.get(1).copied().unwrap_or(len);
    if from > to || to > len {
        return Err(format!("invalid slice index: {from} > {to}"));
    }
    match item {
        Value::String(s) => {
            if idx.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.get(from..to)
                .map(|t| Value::String(t.to_string()))
                .ok_or_else(|| format!("invalid slice index: {from}:{to} splits a character"))
        }
        Value::Array(a) => Ok(Value::Array(a[from..to].to_vec())),
        _ => unreachable!("checked above"),
    }
}

/// Go's `html`: `<`, `>`, `&`, `'`, `"` (and NUL) escaped.
fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&#34;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `js`: quotes, backslash, `<`, `>`, `&`, `=` and control characters escaped.
fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape` (the `urlquery` function; also how Docker writes log details):
/// unreserved bytes kept, space as `+`, the rest `%XX`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn index(v: &Value, k: &Value) -> Result<Value, String> {
    match (v, k) {
        (Value::Array(a), Value::Number(n)) => {
            let i = n
                .as_i64()
                .ok_or_else(|| format!("cannot index slice/array with {n}"))?;
            usize::try_from(i)
                .ok()
                .and_then(|i| a.get(i))
                .cloned()
                .ok_or_else(|| format!("index out of range: {i}"))
        }
        (Value::Object(m), Value::String(s)) => Ok(m.get(s).cloned().unwrap_or(Value::Null)),
        (Value::Null, _) => Err("index of untyped nil".into()),
        (Value::Array(_), other) => Err(format!(
            "cannot index slice/array with type {}",
            super::value::type_name(other)
        )),
        (other, _) => Err(format!(
            "can't index item of type {}",
            super::value::type_name(other)
        )),
    }
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
}
