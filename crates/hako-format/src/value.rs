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
        Value::Number(n) if n.is_f64() => out.push_str(&go_float(n.as_f64().unwrap_or(0.0))),
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

/// Go's `%v` of a float64: the shortest digits that read back, in exponent form (`1e+06`,
/// `1.2e-05`) when the decimal exponent is below -4 or 6 and above, as strconv's `'g'`
/// decides for the shortest precision.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's `{:e}` is the shortest round-trip mantissa: "1.234567e6".
    let e = format!("{f:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let (sign, digits) = exp
            .to_string()
            .strip_prefix('-')
            .map_or(("+", exp.to_string()), |d| ("-", d.to_string()));
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    // Plain decimal: Rust's Display is the shortest round-trip decimal too.
    format!("{f}")
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
