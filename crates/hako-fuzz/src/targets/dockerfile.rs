//! `dockerfile`: a Dockerfile through hako-build's pure front half: the parser
//! (directives, continuations, heredocs), the typed instructions and stages, and the shell
//! word expansion every instruction argument goes through (`$VAR`, `${VAR:-w}`,
//! `${VAR/pattern/repl}`, quotes and the escape token).
//!
//! Invariants: no panic, no hang (the `${v/p/r}` patterns are the place to look); parsing
//! is deterministic; every node's lines lie inside the file, in order, keywords lowercase;
//! errors name a line inside the file.

use hako_build::instructions::{self, Instruction};
use hako_build::parser::{self, Node};
use hako_build::shell::Lex;

pub fn dockerfile(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split_inclusive('\n').count().max(1);
    let df = match parser::parse(text) {
        Ok(df) => df,
        Err(e) => {
            assert!(
                e.line >= 1 && e.line <= e.end_line && e.end_line <= lines,
                "error outside the file ({lines} lines): {e}"
            );
            return;
        }
    };
    assert!(
        parser::parse(text).as_ref() == Ok(&df),
        "parsing twice differs"
    );
    let mut last = 0;
    for node in &df.nodes {
        check_node(node, lines);
        assert!(
            node.line > last,
            "node at line {} after line {last}",
            node.line
        );
        last = node.end_line;
    }

    // Variables as a build would have them: defaults and every ENV/ARG of the file.
    let mut vars: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("HOME".into(), "/root".into()),
        ("EMPTY".into(), String::new()),
    ];
    match instructions::stages(&df) {
        Ok(st) => {
            for (a, _) in &st.meta_args {
                vars.push((a.name.clone(), a.default.clone().unwrap_or_default()));
            }
            for c in st.stages.iter().flat_map(|s| &s.commands) {
                assert!(c.line >= 1 && c.line <= c.end_line && c.end_line <= lines);
                match &c.instruction {
                    Instruction::Env(kv) => vars.extend(kv.iter().cloned()),
                    Instruction::Arg(args) => vars.extend(
                        args.iter()
                            .map(|a| (a.name.clone(), a.default.clone().unwrap_or_default())),
                    ),
                    _ => {}
                }
            }
        }
        Err(e) => assert!(
            e.line >= 1 && e.end_line <= lines,
            "error outside the file ({lines} lines): {e}"
        ),
    }

    let plain = Lex::new(df.escape);
    let keep_unset = Lex {
        skip_unset_env: true,
        ..plain
    };
    for lex in [plain, keep_unset] {
        for node in &df.nodes {
            for arg in node.args.iter().chain(&node.flags) {
                if let Ok(x) = lex.process(arg, &vars) {
                    assert!(
                        x.matched.is_disjoint(&x.unmatched),
                        "{arg:?}: a variable both set and unset"
                    );
                }
            }
        }
    }
}

fn check_node(node: &Node, lines: usize) {
    assert!(
        node.line >= 1 && node.line <= node.end_line && node.end_line <= lines,
        "node {:?} on lines {}..{} of {lines}",
        node.keyword,
        node.line,
        node.end_line
    );
    assert_eq!(
        node.keyword,
        node.keyword.to_lowercase(),
        "keyword not lowercase"
    );
    if let Some(sub) = &node.sub {
        // An ONBUILD trigger has no lines of its own (line 0, as in BuildKit).
        assert_eq!(
            sub.keyword,
            sub.keyword.to_lowercase(),
            "keyword not lowercase"
        );
    }
}
