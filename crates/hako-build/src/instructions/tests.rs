//! Cases after BuildKit's `instructions/parse_test.go` and `bflag_test.go`.

use super::*;
use crate::parser;

fn st(text: &str) -> Stages {
    stages(&parser::parse(text).unwrap()).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> ParseError {
    match parser::parse(text) {
        Err(e) => e,
        Ok(d) => stages(&d).expect_err(text),
    }
}

#[test]
fn stages_and_meta_args() {
    let s = st(concat!(
        "ARG BASE=busybox\n",
        "ARG V\n",
        "FROM ${BASE}:${V:-latest} AS Build\n",
        "RUN make\n",
        "FROM --platform=linux/amd64 scratch\n",
        "COPY --from=build /out /\n",
    ));
    assert_eq!(s.meta_args.len(), 2);
    assert_eq!(s.meta_args[0].0.default.as_deref(), Some("busybox"));
    assert_eq!(s.meta_args[1].0.default, None);
    assert_eq!(s.stages.len(), 2);
    assert_eq!(s.stages[0].name.as_deref(), Some("build"));
    assert_eq!(s.stages[0].base, "${BASE}:${V:-latest}");
    assert_eq!(s.stages[1].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(s.find("BUILD"), Some(0));
    assert_eq!(s.find("1"), Some(1));
    assert_eq!(s.find("2"), None);
    let Instruction::Copy(c) = &s.stages[1].commands[0].instruction else {
        panic!()
    };
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(s.stages[1].commands[0].line, 6);
}

#[test]
fn bad_stages() {
    assert!(err("RUN x\n").message.contains("no build stage"));
    assert_eq!(
        err("FROM a b\n").message,
        "FROM requires either one or three arguments"
    );
    assert!(
        err("FROM a AS 1x\n")
            .message
            .contains("invalid name for build stage")
    );
    assert!(
        err("FROM a AS x\nFROM b AS X\n")
            .message
            .contains("duplicate stage name")
    );
    assert_eq!(err("FROM --nope a\n").message, "unknown flag: nope");
}

#[test]
fn unknown_instruction_with_line_and_suggestion() {
    let e = err("FROM a\nRUN x\nRUNN y\n");
    assert_eq!(e.line, 3);
    assert_eq!(e.message, "unknown instruction: RUNN (did you mean RUN?)");
    assert_eq!(
        e.to_string(),
        "dockerfile parse error on line 3: unknown instruction: RUNN (did you mean RUN?)"
    );
    assert_eq!(
        err("FROM a\nXYZZYQ y\n").message,
        "unknown instruction: XYZZYQ"
    );
}

#[test]
fn argument_counts() {
    for (text, msg) in [
        ("FROM a\nCOPY x\n", "COPY requires at least two arguments"),
        ("FROM a\nADD x\n", "ADD requires at least two arguments"),
        ("FROM a\nWORKDIR\n", "WORKDIR requires exactly one argument"),
        ("FROM a\nUSER\n", "USER requires exactly one argument"),
        ("FROM a\nEXPOSE\n", "EXPOSE requires at least one argument"),
        ("FROM a\nENV\n", "ENV requires at least one argument"),
        ("FROM a\nARG\n", "ARG requires at least one argument"),
        ("FROM a\nARG =x\n", "ARG names can not be blank"),
        (
            "FROM a\nSHELL sh -c\n",
            "SHELL requires the arguments to be in JSON form",
        ),
        (
            "FROM a\nVOLUME [\"\"]\n",
            "VOLUME specified can not be an empty string",
        ),
        (
            "FROM a\nSTOPSIGNAL\n",
            "STOPSIGNAL requires exactly one argument",
        ),
        ("FROM a\nONBUILD ONBUILD RUN x\n", "Chaining ONBUILD"),
        (
            "FROM a\nONBUILD FROM x\n",
            "FROM isn't allowed as an ONBUILD trigger",
        ),
        ("FROM a\nONBUILD NOPE x\n", "unknown instruction: NOPE"),
        (
            "FROM a\nCOPY <<EOF <<EOF\nx\nEOF\nEOF\n",
            "cannot accept a heredoc as a destination",
        ),
        (
            "FROM a\nCOPY --from=x --from=y a b\n",
            "duplicate flag specified: from",
        ),
        ("FROM a\nADD --from=x a b\n", "unknown flag: from"),
        (
            "FROM a\nCOPY --checksum=sha256:x a b\n",
            "unknown flag: checksum",
        ),
        ("FROM a\nENV --x=1 a=b\n", "unknown flag: x"),
        ("FROM a\nRUN --device=/dev/x true\n", "not supported"),
    ] {
        let e = err(text);
        assert!(e.message.contains(msg), "{text:?}: {e}");
    }
}

#[test]
fn copy_and_add_flags() {
    let s = st(concat!(
        "FROM a\n",
        "COPY --chown=app:app --chmod=0755 --link --parents --exclude=*.md --exclude=x a b /d/\n",
        "ADD --checksum=sha256:abc --unpack=false http://h/f.tar /x\n",
        "COPY <<one <<-two /files/\n",
        "hello $X\n",
        "one\n",
        "\tworld\n",
        "two\n",
    ));
    let Instruction::Copy(c) = &s.stages[0].commands[0].instruction else {
        panic!()
    };
    assert_eq!(c.chown.as_deref(), Some("app:app"));
    assert_eq!(c.chmod.as_deref(), Some("0755"));
    assert!(c.link && c.parents);
    assert_eq!(c.exclude, ["*.md", "x"]);
    assert_eq!(c.sources, ["a", "b"]);
    assert_eq!(c.dest, "/d/");
    let Instruction::Add(a) = &s.stages[0].commands[1].instruction else {
        panic!()
    };
    assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
    assert_eq!(a.unpack, Some(false));
    let Instruction::Copy(h) = &s.stages[0].commands[2].instruction else {
        panic!()
    };
    assert!(h.sources.is_empty());
    assert_eq!(h.contents.len(), 2);
    assert_eq!(h.contents[0].name, "one");
    assert_eq!(h.contents[0].content, "hello $X\n");
    assert!(h.contents[0].expand);
    assert!(h.contents[1].chomp);
    assert_eq!(h.contents[1].body(), "world\n");
}

#[test]
fn run_cmd_entrypoint_shell() {
    let s = st(concat!(
        "FROM a\n",
        "RUN --mount=type=cache,target=/c --network=none make\n",
        "CMD [\"a\", \"b\"]\n",
        "ENTRYPOINT exec app\n",
        "SHELL [\"/bin/bash\", \"-euo\", \"pipefail\", \"-c\"]\n",
        "ENTRYPOINT []\n",
    ));
    let c = &s.stages[0].commands;
    let Instruction::Run(r) = &c[0].instruction else {
        panic!()
    };
    assert_eq!(r.mounts, ["type=cache,target=/c"]);
    assert_eq!(r.network.as_deref(), Some("none"));
    assert!(r.cmd.shell);
    assert_eq!(
        c[1].instruction,
        Instruction::Cmd(CmdLine {
            args: vec!["a".into(), "b".into()],
            shell: false,
            heredocs: vec![]
        })
    );
    let Instruction::Entrypoint(e) = &c[2].instruction else {
        panic!()
    };
    assert!(e.shell);
    let Instruction::Shell(sh) = &c[3].instruction else {
        panic!()
    };
    assert_eq!(sh.len(), 4);
    let Instruction::Entrypoint(e) = &c[4].instruction else {
        panic!()
    };
    assert!(e.args.is_empty() && !e.shell);
}

#[test]
fn healthcheck() {
    let s = st(concat!(
        "FROM a\n",
        "HEALTHCHECK --interval=5s --timeout=1m30s --start-period=100ms --retries=3 CMD curl x\n",
        "HEALTHCHECK CMD [\"/check\"]\n",
        "HEALTHCHECK NONE\n",
    ));
    let c = &s.stages[0].commands;
    let Instruction::Healthcheck(h) = &c[0].instruction else {
        panic!()
    };
    assert_eq!(h.test, ["CMD-SHELL", "curl x"]);
    assert_eq!(h.interval, 5_000_000_000);
    assert_eq!(h.timeout, 90_000_000_000);
    assert_eq!(h.start_period, 100_000_000);
    assert_eq!(h.retries, 3);
    let Instruction::Healthcheck(h) = &c[1].instruction else {
        panic!()
    };
    assert_eq!(h.test, ["CMD", "/check"]);
    let Instruction::Healthcheck(h) = &c[2].instruction else {
        panic!()
    };
    assert_eq!(h.test, ["NONE"]);
    for (text, msg) in [
        ("FROM a\nHEALTHCHECK NONE x\n", "takes no arguments"),
        ("FROM a\nHEALTHCHECK FOO x\n", "Unknown type \"FOO\""),
        ("FROM a\nHEALTHCHECK CMD\n", "Missing command"),
        (
            "FROM a\nHEALTHCHECK --retries=-1 CMD x\n",
            "cannot be negative",
        ),
        (
            "FROM a\nHEALTHCHECK --interval=1ns CMD x\n",
            "cannot be less than 1ms",
        ),
        (
            "FROM a\nHEALTHCHECK --interval=5 CMD x\n",
            "invalid duration",
        ),
    ] {
        assert!(err(text).message.contains(msg), "{text}: {}", err(text));
    }
}

#[test]
fn env_label_arg_expose_onbuild() {
    let s = st(concat!(
        "FROM a\n",
        "ENV A=1 B=2\n",
        "LABEL x=y\n",
        "ARG N M=3\n",
        "EXPOSE 8080/udp 80\n",
        "ONBUILD RUN <<EOF\n",
        "echo later\n",
        "EOF\n",
        "onbuild  copy . /app\n",
    ));
    let c = &s.stages[0].commands;
    assert_eq!(
        c[0].instruction,
        Instruction::Env(vec![("A".into(), "1".into()), ("B".into(), "2".into())])
    );
    assert_eq!(
        c[2].instruction,
        Instruction::Arg(vec![
            ArgDef {
                name: "N".into(),
                default: None
            },
            ArgDef {
                name: "M".into(),
                default: Some("3".into())
            }
        ])
    );
    assert_eq!(
        c[3].instruction,
        Instruction::Expose(vec!["80".into(), "8080/udp".into()])
    );
    assert_eq!(
        c[4].instruction,
        Instruction::Onbuild("RUN <<EOF\necho later\nEOF".into())
    );
    assert_eq!(c[5].instruction, Instruction::Onbuild("copy . /app".into()));
    assert_eq!(c[5].keyword, "ONBUILD");
}

#[test]
fn go_durations() {
    assert_eq!(parse_go_duration("0"), Some(0));
    assert_eq!(parse_go_duration("1h2m3s"), Some(3_723_000_000_000));
    assert_eq!(parse_go_duration("1.5s"), Some(1_500_000_000));
    assert_eq!(parse_go_duration("10us"), Some(10_000));
    assert_eq!(parse_go_duration("5"), None);
    assert_eq!(parse_go_duration("s"), None);
    assert_eq!(parse_go_duration(""), None);
}
