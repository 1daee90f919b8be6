//! Go's `fmt.Sprintf` for the `printf` template function, over JSON values: the verbs
//! `%v %s %d %q %t %x %X %o %b %c %f %F %e %E %g %G %%`, the flags `- + # 0` and space,
//! width and precision (numbers or `*`), and Go's `%!` forms for what does not fit
//! (`%!d(string=x)`, `%!s(MISSING)`, `%!(EXTRA ...)`). An integral number prints as Go
//! prints an `int` (Docker runs templates on typed structs, whose counts are integers).

use serde_json::Value;

use super::value::go_print;

/// Go's limit on a width or precision (`%!(BADWIDTH)` above it).
pub(crate) const MAX_WIDTH: usize = 1_000_000;

#[derive(Debug, Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
    verb: char,
}

/// `fmt.Sprintf(format, args...)`.
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut s = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => s.minus = true,
                '+' => s.plus = true,
                '#' => s.sharp = true,
                '0' => s.zero = true,
                ' ' => s.space = true,
                _ => break,
            }
            chars.next();
        }
        let mut bad = None;
        s.width = number(&mut chars, args, &mut next, &mut bad, "BADWIDTH");
        if chars.peek() == Some(&'.') {
            chars.next();
            s.prec = Some(number(&mut chars, args, &mut next, &mut bad, "BADPREC").unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if let Some(b) = bad {
            out.push_str(&format!("%!({b})"));
        }
        if verb == '%' {
            out.push('%');
            continue;
        }
        s.verb = verb;
        match args.get(next) {
            Some(v) => {
                next += 1;
                out.push_str(&format_value(v, s));
            }
            None => out.push_str(&format!("%!{verb}(MISSING)")),
        }
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|v| format!("{}={}", go_type(v), go_print_nil(v)))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

/// A width or precision: digits, or `*` taking the next argument (an integer).
fn number(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    args: &[Value],
    next: &mut usize,
    bad: &mut Option<&'static str>,
    what: &'static str,
) -> Option<usize> {
    if chars.peek() == Some(&'*') {
        chars.next();
        let n = args.get(*next).and_then(Value::as_i64);
        *next += 1;
        return match n.and_then(|n| usize::try_from(n).ok()) {
            Some(n) if n <= MAX_WIDTH => Some(n),
            _ => {
                *bad = Some(what);
                None
            }
        };
    }
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        chars.next();
        n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
    }
    match n {
        Some(n) if n > MAX_WIDTH => {
            *bad = Some(what);
            None
        }
        n => n,
    }
}

/// A JSON integer as Go's `int` (a number written with a point or an exponent is a
/// float64, as in Go: `3.0` is not an int).
fn as_int(v: &Value) -> Option<i128> {
    let n = v.as_number()?;
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// The Go type a value has for `%!verb(type=value)` and `%T`.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) if as_int(v).is_some() => "int",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// `%v` of a value inside a `%!` form or a list (nil as `<nil>`).
fn go_print_nil(v: &Value) -> String {
    if v.is_null() {
        "<nil>".into()
    } else {
        go_print(v)
    }
}

fn bad_verb(v: &Value, verb: char) -> String {
    if v.is_null() {
        return format!("%!{verb}(<nil>)");
    }
    format!("%!{verb}({}={})", go_type(v), go_print_nil(v))
}

fn format_value(v: &Value, s: Spec) -> String {
    if s.verb == 'T' {
        return pad(go_type(v), s);
    }
    match v {
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(|e| format_value(e, s)).collect();
            return format!("[{}]", parts.join(" "));
        }
        Value::Object(m) if s.verb != 'v' && s.verb != 's' => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    let key = format_value(&Value::String(k.clone()), s);
                    format!("{key}:{}", format_value(&m[k], s))
                })
                .collect();
            return format!("map[{}]", parts.join(" "));
        }
        _ => {}
    }
    match (s.verb, v) {
        ('v', Value::Null) => pad("<nil>", s),
        ('v' | 's', Value::Object(_)) => pad(&go_print(v), s),
        ('v' | 't', Value::Bool(b)) => pad(if *b { "true" } else { "false" }, s),
        ('v' | 's', Value::String(t)) => pad(&truncate(t, s.prec), s),
        ('q', Value::String(t)) => pad(&quote(&truncate(t, s.prec), s.plus), s),
        ('x' | 'X', Value::String(t)) => {
            let bytes = truncate(t, s.prec);
            let mut h = String::new();
            for (i, b) in bytes.bytes().enumerate() {
                // `% x`: a space between the bytes.
                if s.space && i > 0 {
                    h.push(' ');
                }
                h.push_str(&if s.verb == 'x' {
                    format!("{b:02x}")
                } else {
                    format!("{b:02X}")
                });
            }
            if s.sharp && !h.is_empty() {
                h.insert_str(0, if s.verb == 'x' { "0x" } else { "0X" });
            }
            pad(&h, s)
        }
        (verb, Value::Number(_)) => match as_int(v) {
            Some(i) => int(i, s).unwrap_or_else(|| bad_verb(v, verb)),
            None => float(v.as_f64().unwrap_or(0.0), s).unwrap_or_else(|| bad_verb(v, verb)),
        },
        (verb, _) => bad_verb(v, verb),
    }
}

fn int(i: i128, s: Spec) -> Option<String> {
    let neg = i < 0;
    let u = i.unsigned_abs();
    let (mut digits, prefix) = match s.verb {
        'v' | 'd' => (u.to_string(), ""),
        'x' => (format!("{u:x}"), "0x"),
        'X' => (format!("{u:X}"), "0X"),
        'o' => (format!("{u:o}"), "0"),
        'b' => (format!("{u:b}"), ""),
        'c' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            return Some(pad(&c.to_string(), s));
        }
        'U' => {
            let mut t = format!("U+{u:04X}");
            if s.sharp
                && let Some(c) = u32::try_from(i).ok().and_then(char::from_u32)
                && !c.is_control()
            {
                t.push_str(&format!(" '{c}'"));
            }
            return Some(pad(&t, s));
        }
        'q' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            let q = quote(&c.to_string(), s.plus);
            return Some(pad(&format!("'{}'", &q[1..q.len() - 1]), s));
        }
        'f' | 'F' | 'e' | 'E' | 'g' | 'G' => return None,
        _ => return None,
    };
    if let Some(p) = s.prec
        && digits.len() < p
    {
        digits.insert_str(0, &"0".repeat(p - digits.len()));
    }
    if s.sharp {
        digits.insert_str(0, prefix);
    }
    let sign = if neg {
        "-"
    } else if s.plus {
        "+"
    } else if s.space {
        " "
    } else {
        ""
    };
    Some(pad_number(sign, &digits, s))
}

fn float(f: f64, s: Spec) -> Option<String> {
    let prec = s.prec;
    let body = match s.verb {
        'v' | 'g' | 'G' => {
            let t = match prec {
                // `%#g` keeps the trailing zeros of Go's default precision, 6.
                None if s.sharp && s.verb != 'v' => g_with_precision(f, 6, true),
                None => super::value::go_float(f),
                Some(p) => g_with_precision(f, p.max(1), s.sharp),
            };
            if s.verb == 'G' { t.to_uppercase() } else { t }
        }
        'f' | 'F' => fixed(f, prec.unwrap_or(6)),
        'e' | 'E' => {
            let t = sci(f, prec.unwrap_or(6));
            // Go writes the exponent with a sign and at least two digits: 1.5e+00.
            let t = match t.split_once('e') {
                Some((m, e)) => {
                    let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
                    format!("{m}e{sign}{digits:0>2}")
                }
                None => t,
            };
            if s.verb == 'E' { t.to_uppercase() } else { t }
        }
        _ => return None,
    };
    let (sign, digits) = match body.strip_prefix('-') {
        Some(d) => ("-", d.to_string()),
        None if s.plus => ("+", body),
        None if s.space => (" ", body),
        None => ("", body),
    };
    Some(pad_number(sign, &digits, s))
}

/// `%.Ng`: N significant digits, exponent form when the exponent is below -4 or at least
/// N, trailing zeros dropped (kept with `#`).
fn g_with_precision(f: f64, p: usize, keep_zeros: bool) -> String {
    let e = sci(f, p - 1);
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let trim = |m: &str| -> String {
        if keep_zeros || !m.contains('.') {
            m.to_string()
        } else {
            m.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    };
    if exp < -4 || exp >= i64::try_from(p).unwrap_or(i64::MAX) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim(mantissa), exp.abs());
    }
    let decimals = usize::try_from(i64::try_from(p).unwrap_or(0) - 1 - exp).unwrap_or(0);
    trim(&fixed(f, decimals))
}

/// Past this many digits after the point every digit of an f64 is a zero: its exact
/// decimal expansion ends within 1,074 fractional digits (767 significant ones).
const EXACT_DIGITS: usize = 1100;

/// `f` with `prec` digits after the point. Rust's formatter panics on a precision above
/// `u16::MAX` ("Formatting argument out of range"), Go takes up to a million (`%.70000f`
/// was a crash of the go_template fuzzer): the digits past [`EXACT_DIGITS`] are zeros.
fn fixed(f: f64, prec: usize) -> String {
    let mut t = format!("{:.*}", prec.min(EXACT_DIGITS), f);
    if prec > EXACT_DIGITS && f.is_finite() {
        t.push_str(&"0".repeat(prec - EXACT_DIGITS));
    }
    t
}

/// `f` in Rust's exponent form (`1.5e0`) with `prec` digits after the point, as [`fixed`].
fn sci(f: f64, prec: usize) -> String {
    let t = format!("{:.*e}", prec.min(EXACT_DIGITS), f);
    match t.split_once('e') {
        Some((m, e)) if prec > EXACT_DIGITS => {
            format!("{m}{}e{e}", "0".repeat(prec - EXACT_DIGITS))
        }
        _ => t,
    }
}

/// Pads a number: zeros go after the sign (`%05d` of -3 is `-0003`), unless `-`.
fn pad_number(sign: &str, digits: &str, s: Spec) -> String {
    let len = sign.len() + digits.chars().count();
    match s.width {
        Some(w) if s.zero && !s.minus && w > len => {
            format!("{sign}{}{digits}", "0".repeat(w - len))
        }
        _ => pad(&format!("{sign}{digits}"), s),
    }
}

/// Pads to the width with spaces (left, or right with `-`), counting characters.
fn pad(text: &str, s: Spec) -> String {
    let len = text.chars().count();
    match s.width {
        Some(w) if w > len && s.minus => format!("{text}{}", " ".repeat(w - len)),
        Some(w) if w > len => format!("{}{text}", " ".repeat(w - len)),
        _ => text.to_string(),
    }
}

/// The first `prec` characters (Go's precision on strings).
fn truncate(t: &str, prec: Option<usize>) -> String {
    match prec {
        Some(p) => t.chars().take(p).collect(),
        None => t.to_string(),
    }
}

/// Go's `strconv.Quote` (`ascii_only`: `strconv.QuoteToASCII`, for `%+q`).
fn quote(t: &str, ascii_only: bool) -> String {
    let mut out = String::from("\"");
    for c in t.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() || (ascii_only && !c.is_ascii()) => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
