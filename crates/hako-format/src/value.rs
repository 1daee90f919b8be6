//! Printing JSON values the way Go prints the decoded `interface{}` values.

use serde_json::Value;

/// Go's `%v` of a decoded JSON value: strings bare, `[a b]` for arrays, `map[k:v]` with
/// sorted keys for objects, `<no value>` for null.
pub fn go_print(v: &Value) -> String {
    let mut s = String::new();
    write_go(v, &mut s, true);
    s
}

fn write_go(v: &Value, out: &mut String, top: bool) {
    match v {
        Value::Null if top => out.push_str("<no value>"),
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(s),
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go(e, out, false);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push_str("map[");
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_go(&m[k], out, false);
            }
            out.push(']');
        }
    }
}

/// Go's `json.Marshal`: compact, with `<`, `>` and `&` escaped as `\u003c` etc.
pub fn to_go_json(v: &Value) -> String {
    escape_html(&v.to_string())
}

/// Escapes `<`, `>`, `&` as Go's encoder does (they only occur inside strings).
pub fn escape_html(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The Go type name used in error messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Go's truth: false, 0, "", empty list or map, and nil are false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}
