//! Parser cases in the spirit of BuildKit's `parser_test.go`, `parser_heredoc_test.go`,
//! `directives_test.go` and `line_parsers_test.go`.

use super::*;

fn p(text: &str) -> Dockerfile {
    parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn args(n: &Node) -> Vec<&str> {
    n.args.iter().map(String::as_str).collect()
}

#[test]
fn continuations_skip_comments_and_empty_lines() {
    let d = p("FROM busybox\nRUN echo a \\\n# a comment\n  && echo b \\\n\n    && echo c\nCMD x\n");
    assert_eq!(d.nodes.len(), 3);
    let run = &d.nodes[1];
    assert_eq!(run.keyword, "run");
    assert_eq!(args(run), ["echo a   && echo b     && echo c"]);
    assert_eq!((run.line, run.end_line), (2, 6));
    assert_eq!(d.nodes[2].line, 7);
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(d.warnings[0].message.contains("Empty continuation line"));
}

#[test]
fn escaped_escape_does_not_continue() {
    let d = p("FROM a\nRUN echo x\\\\\nRUN y\n");
    assert_eq!(d.nodes.len(), 3);
    assert_eq!(args(&d.nodes[1]), ["echo x\\\\"]);
    // A lone escape token on a line continues; trailing blanks after it are fine.
    let d = p("FROM a\nRUN a \\  \n\\\nb\n");
    assert_eq!(args(&d.nodes[1]), ["a b"]);
}

#[test]
fn backtick_escape_directive() {
    let d = p("# escape=`\n\nFROM windows\nCOPY testfile.txt c:\\\nRUN dir c:\\\nRUN a `\n  b\n");
    assert_eq!(d.escape, '`');
    assert_eq!(d.directives.escape.as_deref(), Some("`"));
    assert_eq!(d.nodes.len(), 4);
    assert_eq!(args(&d.nodes[1]), ["testfile.txt", "c:\\"]);
    assert_eq!(args(&d.nodes[2]), ["dir c:\\"]);
    assert_eq!(args(&d.nodes[3]), ["a   b"]);
}

#[test]
fn directives_only_before_anything_else() {
    let d =
        p("# syntax=docker/dockerfile:1\n# check=skip=JSONArgsRecommended\n# escape=`\nFROM a\n");
    assert_eq!(d.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(
        d.directives.check.as_deref(),
        Some("skip=JSONArgsRecommended")
    );
    assert_eq!(d.escape, '`');
    // After a comment, an empty line or an instruction, it is a comment.
    for text in [
        "# hello\n# escape=`\nFROM a\nRUN x \\\ny\n",
        "\n# escape=`\nFROM a\nRUN x \\\ny\n",
        "FROM a\n# escape=`\nRUN x \\\ny\n",
    ] {
        let d = p(text);
        assert_eq!(d.escape, '\\', "{text}");
        assert_eq!(d.nodes.last().unwrap().args, ["x y"], "{text}");
    }
    let e = parse("# escape=`\n# escape=\\\nFROM a\n").unwrap_err();
    assert!(
        e.message.contains("only one escape parser directive"),
        "{e}"
    );
    let e = parse("# escape=x\nFROM a\n").unwrap_err();
    assert!(e.message.contains("invalid escape token"), "{e}");
    // Directive names are case-insensitive, blanks around `=` allowed.
    assert_eq!(p("#ESCAPE = `\nFROM a\n").escape, '`');
}

#[test]
fn byte_order_mark_and_crlf() {
    let d = p("\u{feff}FROM a\r\nRUN b \\\r\n  c\r\n");
    assert_eq!(d.nodes[0].args, ["a"]);
    assert_eq!(args(&d.nodes[1]), ["b   c"]);
}

#[test]
fn comments_only_at_line_start() {
    let d = p("FROM a\n   # indented comment\nRUN echo # not a comment\n");
    assert_eq!(d.nodes.len(), 2);
    assert_eq!(args(&d.nodes[1]), ["echo # not a comment"]);
    assert_eq!(d.nodes[1].comments, ["indented comment"]);
}

#[test]
fn no_instructions_is_an_error() {
    for t in ["", "\n\n", "# just a comment\n", "# syntax=x\n"] {
        let e = parse(t).unwrap_err();
        assert_eq!(e.message, "file with no instructions", "{t:?}");
        // Found by the dockerfile fuzz target: the empty file said "on line 0".
        assert!(e.line >= 1 && e.line == e.end_line, "{t:?}: {e:?}");
    }
}

#[test]
fn json_and_shell_forms() {
    let d = p(concat!(
        "FROM a\n",
        "RUN [\"echo\", \"hi there\"]\n",
        "RUN echo [\"not json\"\n",
        "CMD [\"a\"] x\n",
        "ENTRYPOINT []\n",
        "SHELL [\"/bin/bash\", \"-c\"]\n",
        "COPY [\"a b\", \"/c d/\"]\n",
        "COPY a b c/\n",
        "VOLUME [\"/v\"]\n",
        "VOLUME /a /b\n",
    ));
    let n = &d.nodes;
    assert!(n[1].json);
    assert_eq!(args(&n[1]), ["echo", "hi there"]);
    assert!(!n[2].json);
    assert!(!n[3].json, "trailing text makes it shell form");
    assert_eq!(args(&n[3]), ["[\"a\"] x"]);
    assert!(n[4].json);
    assert!(n[4].args.is_empty());
    assert_eq!(args(&n[5]), ["/bin/bash", "-c"]);
    assert_eq!(args(&n[6]), ["a b", "/c d/"]);
    assert_eq!(args(&n[7]), ["a", "b", "c/"]);
    assert!(n[8].json);
    assert_eq!(args(&n[9]), ["/a", "/b"]);
    let e = parse("FROM a\nRUN [\"a\", 1]\n").unwrap_err();
    assert!(
        e.message
            .contains("arrays must be comprised of strings only"),
        "{e}"
    );
    assert_eq!(e.line, 2);
}

#[test]
fn env_and_label_forms() {
    let d = p(concat!(
        "FROM a\n",
        "ENV A=1 B=\"two words\" C='x y' D=a\\ b\n",
        "ENV OLD some value here\n",
        "LABEL \"com.example.key\"=\"v\" other=x\n",
        "ENV E=\n",
    ));
    assert_eq!(
        args(&d.nodes[1]),
        ["A", "1", "B", "\"two words\"", "C", "'x y'", "D", "a\\ b"]
    );
    assert_eq!(args(&d.nodes[2]), ["OLD", "some value here"]);
    assert_eq!(
        args(&d.nodes[3]),
        ["\"com.example.key\"", "\"v\"", "other", "x"]
    );
    assert_eq!(args(&d.nodes[4]), ["E", ""]);
    let e = parse("FROM a\nENV ONLY\n").unwrap_err();
    assert_eq!(e.message, "ENV must have two arguments");
    let e = parse("FROM a\nENV a=b c\n").unwrap_err();
    assert!(e.message.contains("can't find = in \"c\""), "{e}");
}

#[test]
fn arg_words() {
    let d = p("ARG A B=1 C=\"x y\"\nFROM a\n");
    assert_eq!(args(&d.nodes[0]), ["A", "B=1", "C=\"x y\""]);
}

#[test]
fn flags_before_arguments() {
    let d = p(concat!(
        "FROM --platform=linux/amd64 a AS b\n",
        "COPY --from=b --chown=\"1:2\" --link src dst\n",
        "RUN --mount=type=cache,target=/c --network=none echo hi --flag\n",
        "COPY -- --weird dst\n",
        "RUN -x\n",
    ));
    assert_eq!(d.nodes[0].flags, ["--platform=linux/amd64"]);
    assert_eq!(args(&d.nodes[0]), ["a", "AS", "b"]);
    assert_eq!(d.nodes[1].flags, ["--from=b", "--chown=1:2", "--link"]);
    assert_eq!(args(&d.nodes[1]), ["src", "dst"]);
    assert_eq!(
        d.nodes[2].flags,
        ["--mount=type=cache,target=/c", "--network=none"]
    );
    assert_eq!(args(&d.nodes[2]), ["echo hi --flag"]);
    assert!(d.nodes[3].flags.is_empty());
    assert_eq!(args(&d.nodes[3]), ["--weird", "dst"]);
    assert_eq!(args(&d.nodes[4]), ["-x"]);
}

#[test]
fn healthcheck_and_onbuild() {
    let d = p(concat!(
        "FROM a\n",
        "HEALTHCHECK --interval=5s CMD curl -f http://x/ || exit 1\n",
        "HEALTHCHECK CMD [\"/bin/check\", \"-v\"]\n",
        "HEALTHCHECK NONE\n",
        "ONBUILD RUN echo hi\n",
        "ONBUILD COPY [\"a\", \"b\"]\n",
    ));
    assert_eq!(d.nodes[1].flags, ["--interval=5s"]);
    assert_eq!(args(&d.nodes[1]), ["CMD", "curl -f http://x/ || exit 1"]);
    assert!(d.nodes[2].json);
    assert_eq!(args(&d.nodes[2]), ["CMD", "/bin/check", "-v"]);
    assert_eq!(args(&d.nodes[3]), ["NONE"]);
    assert_eq!(args(&d.nodes[4]), ["run", "echo hi"]);
    assert_eq!(d.nodes[4].sub.as_ref().unwrap().keyword, "run");
    assert_eq!(args(&d.nodes[5]), ["copy", "a", "b"]);
}

#[test]
fn keywords_are_case_insensitive_and_unknown_ones_parse() {
    let d = p("from a\nRuN x\nFOO bar baz\n");
    assert_eq!(d.nodes[1].keyword, "run");
    assert_eq!(d.nodes[2].keyword, "foo");
    assert!(d.nodes[2].args.is_empty());
}

#[test]
fn heredocs() {
    let d = p(concat!(
        "FROM a\n",
        "RUN <<EOF\n",
        "echo $HOME\n",
        "EOF\n",
        "RUN <<-'X' cat > /f\n",
        "\t\tliteral $HOME\n",
        "\tX\n",
        "COPY <<A <<\"B\" /dest/\n",
        "first\n",
        "A\n",
        "second\n",
        "B\n",
        "RUN 3<<IN cat /proc/self/fd/3\n",
        "three\n",
        "IN\n",
        "ONBUILD RUN <<EOF\n",
        "later\n",
        "EOF\n",
        "RUN [\"echo\", \"<<EOF\"]\n",
        "CMD <<EOF\n",
    ));
    let n = &d.nodes;
    let h = &n[1].heredocs;
    assert_eq!(h.len(), 1);
    assert_eq!((h[0].name.as_str(), h[0].expand), ("EOF", true));
    assert_eq!(h[0].content, "echo $HOME\n");
    assert_eq!((n[1].line, n[1].end_line), (2, 4));
    let h = &n[2].heredocs[0];
    assert!(h.chomp && !h.expand);
    assert_eq!(h.content, "\t\tliteral $HOME\n");
    assert_eq!(h.body(), "literal $HOME\n");
    assert_eq!(args(&n[2]), ["<<-'X' cat > /f"]);
    let h = &n[3].heredocs;
    assert_eq!(h.len(), 2);
    assert_eq!((h[0].content.as_str(), h[0].expand), ("first\n", true));
    assert_eq!((h[1].content.as_str(), h[1].expand), ("second\n", false));
    assert_eq!(args(&n[3]), ["<<A", "<<\"B\"", "/dest/"]);
    assert_eq!(n[4].heredocs[0].fd, 3);
    assert_eq!(n[5].heredocs[0].content, "later\n");
    assert!(n[6].heredocs.is_empty(), "JSON form has no heredocs");
    assert!(
        n[7].heredocs.is_empty(),
        "only RUN, COPY and ADD have heredocs"
    );
    assert_eq!(n.len(), 8);
}

#[test]
fn heredoc_bodies_keep_blank_lines_and_hashes() {
    let d = p("FROM a\nRUN <<EOF\n# not a comment\n\n  indented\nEOF\nRUN b\n");
    assert_eq!(
        d.nodes[1].heredocs[0].content,
        "# not a comment\n\n  indented\n"
    );
    assert_eq!(d.nodes.len(), 3);
}

#[test]
fn unterminated_heredoc() {
    let e = parse("FROM a\nRUN <<EOF\nabc\n").unwrap_err();
    assert_eq!(e.message, "unterminated heredoc");
    assert_eq!(e.line, 2);
}

#[test]
fn string_instructions_keep_the_rest() {
    let d = p("FROM a\nWORKDIR /a b\nUSER  1000:1000 \nSTOPSIGNAL SIGKILL\nMAINTAINER Me <me@x>\n");
    assert_eq!(args(&d.nodes[1]), ["/a b"]);
    assert_eq!(args(&d.nodes[2]), ["1000:1000"]);
    assert_eq!(args(&d.nodes[4]), ["Me <me@x>"]);
}
