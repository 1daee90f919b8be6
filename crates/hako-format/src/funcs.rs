//! The template functions: Go's builtins that Docker users need, and Docker's own.

use serde_json::Value;

use super::value::{go_print, to_go_json};

const NAMES: &[&str] = &[
    "json", "index", "upper", "lower", "title", "join", "split", "len", "truncate", "println",
    "print",
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
        "print" | "println" => {
            let mut s = args.iter().map(go_print).collect::<Vec<_>>().join(" ");
            if name == "println" {
                s.push('\n');
            }
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
        _ => Err(format!("function {name:?} not defined")),
    }
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
