//! Executing parsed nodes on a JSON value.

use serde_json::Value;

use super::FormatError;
use super::funcs;
use super::parse::{Arg, BlockKind, Command, Node, Pipeline, Span};
use super::value::{go_print, truthy, type_name};

/// The variables in scope, innermost last; `$` (the data) is the first.
struct Vars(Vec<(String, Value)>);

impl Vars {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// Runs the template on `data` (also `$`).
pub(crate) fn execute(nodes: &[Node], data: &Value, out: &mut String) -> Result<(), FormatError> {
    let mut vars = Vars(vec![(String::new(), data.clone())]);
    run(nodes, data, &mut vars, out)
}

fn run(nodes: &[Node], dot: &Value, vars: &mut Vars, out: &mut String) -> Result<(), FormatError> {
    // Variables declared here live until the end of this list of nodes (Go's scope: the
    // enclosing block).
    let scope = vars.0.len();
    let r = run_scoped(nodes, dot, vars, out);
    vars.0.truncate(scope);
    r
}

fn run_scoped(
    nodes: &[Node],
    dot: &Value,
    vars: &mut Vars,
    out: &mut String,
) -> Result<(), FormatError> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                let v = pipeline(p, dot, vars)?;
                // A declaration or an assignment prints nothing.
                if p.decl.is_empty() {
                    out.push_str(&go_print(&v));
                }
            }
            Node::Block {
                kind,
                pipe,
                body,
                otherwise,
            } => {
                let scope = vars.0.len();
                let r = block(*kind, pipe, body, otherwise, dot, vars, out);
                vars.0.truncate(scope);
                r?;
            }
        }
    }
    Ok(())
}

fn block(
    kind: BlockKind,
    pipe: &Pipeline,
    body: &[Node],
    otherwise: &[Node],
    dot: &Value,
    vars: &mut Vars,
    out: &mut String,
) -> Result<(), FormatError> {
    if kind != BlockKind::Range {
        // `if $x := ...` / `with $x := ...`: the variable is seen in both branches.
        let v = pipeline(pipe, dot, vars)?;
        return match kind {
            BlockKind::If if truthy(&v) => run(body, dot, vars, out),
            BlockKind::With if truthy(&v) => run(body, &v, vars, out),
            _ => run(otherwise, dot, vars, out),
        };
    }
    let v = pipeline(
        &Pipeline {
            decl: Vec::new(),
            assign: false,
            ..pipe.clone()
        },
        dot,
        vars,
    )?;
    let items: Vec<(Value, &Value)> = match &v {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, e)| (Value::from(i), e))
            .collect(),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            keys.into_iter()
                .map(|k| (Value::String(k.clone()), &m[k]))
                .collect()
        }
        Value::Null => Vec::new(),
        other => {
            let span = &pipe.cmds[0].span;
            return Err(exec_err(
                span,
                format!("range can't iterate over {}", go_print(other)),
            ));
        }
    };
    range_items(pipe, items, body, otherwise, dot, vars, out)
}

fn range_items(
    pipe: &Pipeline,
    items: Vec<(Value, &Value)>,
    body: &[Node],
    otherwise: &[Node],
    dot: &Value,
    vars: &mut Vars,
    out: &mut String,
) -> Result<(), FormatError> {
    if items.is_empty() {
        return run(otherwise, dot, vars, out);
    }
    for (key, item) in items {
        let scope = vars.0.len();
        match pipe.decl.as_slice() {
            [e] => vars.0.push((e.clone(), item.clone())),
            [k, e] => {
                vars.0.push((k.clone(), key));
                vars.0.push((e.clone(), item.clone()));
            }
            _ => {}
        }
        let r = run(body, item, vars, out);
        vars.0.truncate(scope);
        r?;
    }
    Ok(())
}

pub(crate) fn exec_err(span: &Span, msg: impl Into<String>) -> FormatError {
    FormatError::Exec {
        line: span.line,
        col: span.col,
        node: span.text.clone(),
        msg: msg.into(),
    }
}

fn pipeline(p: &Pipeline, dot: &Value, vars: &mut Vars) -> Result<Value, FormatError> {
    let mut prev = None;
    for c in &p.cmds {
        prev = Some(command(c, dot, vars, prev)?);
    }
    let v = prev.unwrap_or(Value::Null);
    if p.assign {
        let name = &p.decl[0];
        let Some(slot) = vars.0.iter_mut().rev().find(|(n, _)| n == name) else {
            return Err(exec_err(
                &p.cmds[0].span,
                format!("undefined variable: ${name}"),
            ));
        };
        slot.1 = v.clone();
    } else if let [name] = p.decl.as_slice() {
        vars.0.push((name.clone(), v.clone()));
    }
    Ok(v)
}

fn command(
    c: &Command,
    dot: &Value,
    vars: &mut Vars,
    prev: Option<Value>,
) -> Result<Value, FormatError> {
    match c.args.first() {
        // `and` and `or` stop at the first operand that decides (Go evaluates lazily).
        Some(Arg::Func(name)) if name == "and" || name == "or" => {
            let n = c.args.len() - 1 + usize::from(prev.is_some());
            if n == 0 {
                return Err(exec_err(
                    &c.span,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let mut last = Value::Null;
            for a in &c.args[1..] {
                last = operand(a, dot, vars)?;
                if truthy(&last) != (name == "and") {
                    return Ok(last);
                }
            }
            Ok(prev.unwrap_or(last))
        }
        // `.Label "k"`: Docker's formatting contexts have methods with arguments (`Label`
        // of ps, volume ls and network ls rows); a row carries such a method as a map from
        // its argument to its result.
        Some(Arg::Field { path, span }) if c.args.len() > 1 || prev.is_some() => {
            let method = field(dot, path, span)?;
            let mut args = Vec::with_capacity(c.args.len());
            for a in &c.args[1..] {
                args.push(operand(a, dot, vars)?);
            }
            args.extend(prev);
            match (&method, args.as_slice()) {
                (Value::Object(m), [Value::String(k)]) => {
                    Ok(m.get(k).cloned().unwrap_or(Value::String(String::new())))
                }
                _ => Err(exec_err(
                    span,
                    format!("can't give argument to non-function {}", span.text),
                )),
            }
        }
        Some(Arg::Func(name)) => {
            let mut args = Vec::with_capacity(c.args.len());
            for a in &c.args[1..] {
                args.push(operand(a, dot, vars)?);
            }
            args.extend(prev);
            funcs::call(name, &args)
                .map_err(|e| exec_err(&c.span, format!("error calling {name}: {e}")))
        }
        Some(a) => operand(a, dot, vars),
        None => Ok(Value::Null),
    }
}

fn operand(a: &Arg, dot: &Value, vars: &mut Vars) -> Result<Value, FormatError> {
    Ok(match a {
        Arg::Dot => dot.clone(),
        Arg::Field { path, span } => field(dot, path, span)?,
        Arg::Var { name, path, span } => {
            let v = vars
                .get(name)
                .ok_or_else(|| exec_err(span, format!("undefined variable: ${name}")))?;
            field(v, path, span)?
        }
        Arg::Str(s) => Value::String(s.clone()),
        Arg::Int(n) => Value::from(*n),
        Arg::Float(f) => Value::from(*f),
        Arg::Bool(b) => Value::Bool(*b),
        Arg::Nil => Value::Null,
        Arg::Sub(p) => pipeline(p, dot, vars)?,
        Arg::SubField { pipe, path, span } => {
            let v = pipeline(pipe, dot, vars)?;
            field(&v, path, span)?
        }
        Arg::Func(name) => funcs::call(name, &[]).map_err(|e| FormatError::Exec {
            line: 1,
            col: 0,
            node: name.clone(),
            msg: format!("error calling {name}: {e}"),
        })?,
    })
}

/// The value of the JSON key whose Go field `name` is: Docker runs templates on its typed
/// structs, whose field names spell acronyms in capitals where the JSON keys do not (`ID`
/// for `Id`, `NanoCPUs` for `NanoCpus`, `APIVersion` for `ApiVersion`, `DNS` for `Dns`);
/// both spellings work there. A name with fewer capitals than the key (`.id`) stays an
/// error, as in Docker.
fn go_field_name<'a>(m: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    let caps = |s: &str| s.bytes().filter(u8::is_ascii_uppercase).count();
    let mut found = m
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name) && caps(name) > caps(k));
    match (found.next(), found.next()) {
        (Some((_, v)), None) => Some(v),
        _ => None,
    }
}

/// `.A.B.C`: a missing key is an error (Docker's fields are fixed, so a typo should say
/// so); a null along the way yields null, as Go's nil maps do.
fn field(dot: &Value, path: &[String], span: &Span) -> Result<Value, FormatError> {
    let mut cur = dot;
    for name in path {
        cur = match cur {
            Value::Object(m) => match m.get(name).or_else(|| go_field_name(m, name)) {
                Some(v) => v,
                None => return Err(exec_err(span, format!("can't evaluate field {name}"))),
            },
            Value::Null => return Ok(Value::Null),
            other => {
                return Err(exec_err(
                    span,
                    format!("can't evaluate field {name} in type {}", type_name(other)),
                ));
            }
        };
    }
    Ok(cur.clone())
}
