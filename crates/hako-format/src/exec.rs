//! Executing parsed nodes on a JSON value.

use serde_json::Value;

use super::FormatError;
use super::funcs;
use super::parse::{Arg, BlockKind, Command, Node, Pipeline, Span};
use super::value::{go_print, truthy, type_name};

pub(crate) fn run(nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), FormatError> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => out.push_str(&go_print(&pipeline(p, dot)?)),
            Node::Block {
                kind,
                pipe,
                body,
                otherwise,
            } => {
                let v = pipeline(pipe, dot)?;
                match kind {
                    BlockKind::If if truthy(&v) => run(body, dot, out)?,
                    BlockKind::With if truthy(&v) => run(body, &v, out)?,
                    BlockKind::If | BlockKind::With => run(otherwise, dot, out)?,
                    BlockKind::Range => {
                        let items: Vec<&Value> = match &v {
                            Value::Array(a) => a.iter().collect(),
                            Value::Object(m) => {
                                let mut keys: Vec<&String> = m.keys().collect();
                                keys.sort();
                                keys.into_iter().map(|k| &m[k]).collect()
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
                        if items.is_empty() {
                            run(otherwise, dot, out)?;
                        }
                        for item in items {
                            run(body, item, out)?;
                        }
                    }
                }
            }
        }
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

fn pipeline(p: &Pipeline, dot: &Value) -> Result<Value, FormatError> {
    let mut prev = None;
    for c in &p.cmds {
        prev = Some(command(c, dot, prev)?);
    }
    Ok(prev.unwrap_or(Value::Null))
}

fn command(c: &Command, dot: &Value, prev: Option<Value>) -> Result<Value, FormatError> {
    match c.args.first() {
        Some(Arg::Func(name)) => {
            let mut args = Vec::with_capacity(c.args.len());
            for a in &c.args[1..] {
                args.push(operand(a, dot)?);
            }
            args.extend(prev);
            funcs::call(name, &args)
                .map_err(|e| exec_err(&c.span, format!("error calling {name}: {e}")))
        }
        Some(a) => operand(a, dot),
        None => Ok(Value::Null),
    }
}

fn operand(a: &Arg, dot: &Value) -> Result<Value, FormatError> {
    Ok(match a {
        Arg::Dot => dot.clone(),
        Arg::Field { path, span } => field(dot, path, span)?,
        Arg::Str(s) => Value::String(s.clone()),
        Arg::Int(n) => Value::from(*n),
        Arg::Bool(b) => Value::Bool(*b),
        Arg::Nil => Value::Null,
        Arg::Sub(p) => pipeline(p, dot)?,
        Arg::Func(name) => funcs::call(name, &[]).map_err(|e| FormatError::Exec {
            line: 1,
            col: 0,
            node: name.clone(),
            msg: format!("error calling {name}: {e}"),
        })?,
    })
}

/// `.A.B.C`: a missing key is an error (Docker's fields are fixed, so a typo should say
/// so); a null along the way yields null, as Go's nil maps do.
fn field(dot: &Value, path: &[String], span: &Span) -> Result<Value, FormatError> {
    let mut cur = dot;
    for name in path {
        cur = match cur {
            Value::Object(m) => match m.get(name) {
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
