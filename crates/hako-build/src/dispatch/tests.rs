//! Config effects, expansion and ARG scoping, instruction by instruction.

use super::args::{BuildArgs, Globals, Platform, builtins, globals};
use super::*;
use crate::instructions::stages;
use crate::parser::parse;

struct Run {
    state: StageState,
    steps: Vec<Step>,
    globals: Globals,
    build_args: BuildArgs,
}

fn platform() -> Platform {
    Platform {
        os: "linux".into(),
        arch: "amd64".into(),
        variant: None,
    }
}

fn base() -> ImageConfig {
    let mut c = ImageConfig::scratch("linux", "amd64", None);
    c.config.cmd = Some(vec!["sh".into()]);
    c
}

/// Dispatches every instruction of stage `idx`.
fn run(text: &str, idx: usize, bargs: &[(&str, &str)]) -> Result<Run, String> {
    let s = stages(&parse(text).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let build_args = BuildArgs::new(bargs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let b = builtins(&platform(), &platform());
    let g = globals(&s.meta_args, &build_args, &b, &Lex::default()).map_err(|e| e.1.to_string())?;
    let mut state = StageState::new(base(), s.escape);
    let mut steps = Vec::new();
    for c in &s.stages[idx].commands {
        steps.push(state.apply(c, &build_args, &g).map_err(|e| e.to_string())?);
    }
    Ok(Run {
        state,
        steps,
        globals: g,
        build_args,
    })
}

fn env_of(r: &Run) -> Vec<String> {
    r.state.image.config.env.clone().unwrap_or_default()
}

#[test]
fn env_sees_values_from_before_the_instruction() {
    let r = run(
        "FROM a\nENV a=x\nENV a=y b=$a c=${a}z\nENV d=\"$a $b\"\n",
        0,
        &[],
    )
    .unwrap();
    let env = env_of(&r);
    assert!(env.contains(&"a=y".to_string()), "{env:?}");
    assert!(env.contains(&"b=x".to_string()), "{env:?}");
    assert!(env.contains(&"c=xz".to_string()), "{env:?}");
    assert!(env.contains(&"d=y x".to_string()), "{env:?}");
    // Replaced in place, PATH first as in the base.
    assert!(env[0].starts_with("PATH="));
    assert_eq!(env.iter().filter(|e| e.starts_with("a=")).count(), 1);
}

#[test]
fn env_old_form_and_quotes() {
    let r = run(
        "FROM a\nENV X hello world\nENV Y='single $X' Z=a\\ b\n",
        0,
        &[],
    )
    .unwrap();
    let env = env_of(&r);
    assert!(env.contains(&"X=hello world".to_string()));
    assert!(env.contains(&"Y=single $X".to_string()));
    assert!(env.contains(&"Z=a b".to_string()));
}

#[test]
fn global_args_only_in_from() {
    let text = "ARG V=1\nARG W=${V}.2\nFROM a\nRUN echo $V\nARG V\nARG W\nRUN echo $V $W\n";
    let r = run(text, 0, &[]).unwrap();
    assert_eq!(
        r.globals
            .vars
            .iter()
            .rev()
            .find(|(k, _)| k == "W")
            .unwrap()
            .1,
        "1.2"
    );
    let Step::Run(first) = &r.steps[0] else {
        panic!()
    };
    assert!(
        !first.env.iter().any(|e| e.starts_with("V=")),
        "{:?}",
        first.env
    );
    let Step::Run(second) = &r.steps[3] else {
        panic!()
    };
    assert!(second.env.contains(&"V=1".to_string()), "{:?}", second.env);
    assert!(second.env.contains(&"W=1.2".to_string()));
    assert_eq!(second.args, ["V=1", "W=1.2"]);
    assert!(
        second
            .created_by
            .starts_with("RUN |2 V=1 W=1.2 /bin/sh -c echo $V $W")
    );
    // ARGs never reach the image config.
    assert!(!env_of(&r).iter().any(|e| e.starts_with("V=")));
}

#[test]
fn build_args_override_and_unused_ones_are_reported() {
    let text = "ARG V=1\nFROM a\nARG V\nARG S=default\nARG N\nRUN true\n";
    let r = run(
        text,
        0,
        &[
            ("V", "9"),
            ("S", "given"),
            ("EXTRA", "x"),
            ("HTTP_PROXY", "http://p"),
        ],
    )
    .unwrap();
    let Step::Run(step) = &r.steps[3] else {
        panic!()
    };
    assert!(step.env.contains(&"V=9".to_string()), "{:?}", step.env);
    assert!(step.env.contains(&"S=given".to_string()));
    assert!(
        !step.env.iter().any(|e| e.starts_with("N=")),
        "declared without value stays unset"
    );
    assert_eq!(step.proxy_env, ["HTTP_PROXY=http://p"], "proxies reach RUN");
    assert!(
        !step.env.iter().any(|e| e.contains("PROXY")),
        "but not the env that is part of the key"
    );
    assert!(
        !step.args.iter().any(|a| a.contains("PROXY")),
        "but not the cache key"
    );
    assert!(!step.created_by.contains("PROXY"));
    assert_eq!(r.build_args.unused(), ["EXTRA"]);
}

#[test]
fn env_wins_over_arg() {
    let r = run("FROM a\nARG X=arg\nENV X=env\nRUN echo\nENV Y=$X\n", 0, &[]).unwrap();
    let Step::Run(step) = &r.steps[2] else {
        panic!()
    };
    assert_eq!(
        step.env
            .iter()
            .filter(|e| e.starts_with("X="))
            .collect::<Vec<_>>(),
        ["X=env"]
    );
    assert!(env_of(&r).contains(&"Y=env".to_string()));
    // An ARG declared after the ENV does not beat it either.
    let r = run(
        "FROM a\nENV X=env\nARG X=arg\nENV Y=$X\n",
        0,
        &[("X", "cli")],
    )
    .unwrap();
    assert!(env_of(&r).contains(&"Y=env".to_string()));
}

#[test]
fn arg_defaults_see_earlier_args() {
    let r = run("FROM a\nARG A=1\nARG B=${A}2 C=$B\nENV R=$A$B$C\n", 0, &[]).unwrap();
    // Unlike ENV, the names of one ARG line are declared one after the other
    // (BuildKit's dispatchArg), so `C=$B` sees the B just declared.
    assert!(
        env_of(&r).contains(&"R=11212".to_string()),
        "{:?}",
        env_of(&r)
    );
}

#[test]
fn builtin_platform_args() {
    let text = "FROM a\nRUN echo $TARGETARCH\nARG TARGETARCH\nARG BUILDPLATFORM\nRUN echo\n";
    let r = run(text, 0, &[]).unwrap();
    let Step::Run(before) = &r.steps[0] else {
        panic!()
    };
    assert!(!before.env.iter().any(|e| e.starts_with("TARGETARCH")));
    let Step::Run(after) = &r.steps[3] else {
        panic!()
    };
    assert!(after.env.contains(&"TARGETARCH=amd64".to_string()));
    assert!(after.env.contains(&"BUILDPLATFORM=linux/amd64".to_string()));
}

#[test]
fn expansion_targets() {
    let text = concat!(
        "FROM a\n",
        "ARG P=8080\n",
        "ENV DIR=/srv U=app SIG=SIGTERM\n",
        "WORKDIR $DIR\n",
        "WORKDIR sub\n",
        "USER ${U}\n",
        "EXPOSE $P/udp 80\n",
        "VOLUME $DIR/data\n",
        "STOPSIGNAL $SIG\n",
        "LABEL dir=$DIR\n",
        "COPY --chown=$U:$U a${P} ./\n",
        "CMD echo $DIR\n",
    );
    let r = run(text, 0, &[]).unwrap();
    let c = &r.state.image.config;
    assert_eq!(c.working_dir, "/srv/sub");
    assert_eq!(c.user, "app");
    assert_eq!(
        c.exposed_ports.as_ref().unwrap().keys().collect::<Vec<_>>(),
        ["80/tcp", "8080/udp"]
    );
    assert!(c.volumes.as_ref().unwrap().contains_key("/srv/data"));
    assert_eq!(c.stop_signal, "SIGTERM");
    assert_eq!(c.labels.as_ref().unwrap()["dir"], "/srv");
    assert_eq!(c.cmd.as_ref().unwrap(), &["/bin/sh", "-c", "echo $DIR"]);
    assert_eq!(r.steps[2], Step::Mkdir("/srv".into()));
    assert_eq!(r.steps[3], Step::Mkdir("/srv/sub".into()));
    let Step::Copy(cp) = &r.steps[9] else {
        panic!()
    };
    assert_eq!(cp.sources, ["a8080"]);
    assert_eq!(cp.dest, "/srv/sub/");
    assert_eq!(cp.chown.as_deref(), Some("app:app"));
}

#[test]
fn cmd_entrypoint_shell() {
    let r = run(
        "FROM a\nSHELL [\"/bin/bash\", \"-c\"]\nENTRYPOINT run it\nRUN x\n",
        0,
        &[],
    )
    .unwrap();
    let c = &r.state.image.config;
    assert_eq!(
        c.entrypoint.as_ref().unwrap(),
        &["/bin/bash", "-c", "run it"]
    );
    assert_eq!(c.cmd, None, "ENTRYPOINT resets the base image's CMD");
    let Step::Run(step) = &r.steps[2] else {
        panic!()
    };
    assert_eq!(step.argv, ["/bin/bash", "-c", "x"]);
    let r = run("FROM a\nCMD [\"x\"]\nENTRYPOINT [\"e\"]\n", 0, &[]).unwrap();
    assert_eq!(
        r.state.image.config.cmd.as_ref().unwrap(),
        &["x"],
        "CMD set in this stage stays"
    );
    let r = run("FROM a\nENTRYPOINT [\"e\"]\nENTRYPOINT []\n", 0, &[]).unwrap();
    assert_eq!(r.state.image.config.entrypoint, None);
}

#[test]
fn run_heredocs() {
    let text = concat!(
        "FROM a\n",
        "RUN <<EOF\n",
        "echo one\n",
        "echo two\n",
        "EOF\n",
        "RUN <<EOF\n",
        "#!/usr/bin/env python3\n",
        "print(1)\n",
        "EOF\n",
        "RUN cat <<A > /x\n",
        "content\n",
        "A\n",
        "RUN --network=none [\"echo\", \"exec\"]\n",
    );
    let r = run(text, 0, &[]).unwrap();
    let Step::Run(a) = &r.steps[0] else { panic!() };
    assert_eq!(a.argv, ["/bin/sh", "-c", "echo one\necho two\n"]);
    assert_eq!(
        a.created_by,
        "RUN /bin/sh -c <<EOF (echo one...) # buildkit"
    );
    let Step::Run(b) = &r.steps[1] else { panic!() };
    assert_eq!(b.argv, ["/dev/pipes/EOF"]);
    assert_eq!(
        b.script.as_ref().unwrap().1,
        "#!/usr/bin/env python3\nprint(1)\n"
    );
    let Step::Run(c) = &r.steps[2] else { panic!() };
    assert_eq!(c.argv, ["/bin/sh", "-c", "cat <<A > /x\ncontent\nA"]);
    let Step::Run(d) = &r.steps[3] else { panic!() };
    assert_eq!(d.argv, ["echo", "exec"]);
    assert_eq!(d.network.as_deref(), Some("none"));
}

#[test]
fn copy_heredoc_expansion_keeps_quotes() {
    let text =
        "FROM a\nENV N=world\nCOPY <<EOF <<'RAW' /etc/\nhello \"$N\" \\$N\nEOF\nraw $N\nRAW\n";
    let r = run(text, 0, &[]).unwrap();
    let Step::Copy(c) = &r.steps[1] else { panic!() };
    assert_eq!(c.contents[0], ("EOF".into(), "hello \"world\" $N\n".into()));
    assert_eq!(c.contents[1], ("RAW".into(), "raw $N\n".into()));
    assert_eq!(c.dest, "/etc/");
}

#[test]
fn copy_destinations() {
    assert_eq!(absolute_dest("/", "x"), "/x");
    assert_eq!(absolute_dest("/app", "x/"), "/app/x/");
    assert_eq!(absolute_dest("/app", "."), "/app/");
    assert_eq!(absolute_dest("/app", "./"), "/app/");
    assert_eq!(absolute_dest("/app", "/abs/../y"), "/y");
    assert_eq!(absolute_dest("/app/", "../z/."), "/z/");
    let e = run("FROM a\nCOPY a b /dst\n", 0, &[]).err().unwrap();
    assert!(e.contains("must be a directory and end with a /"), "{e}");
    let e = run("FROM a\nCOPY --chmod=999 a /dst\n", 0, &[])
        .err()
        .unwrap();
    assert!(e.contains("invalid chmod"), "{e}");
}

#[test]
fn bad_values() {
    for (text, msg) in [
        ("FROM a\nSTOPSIGNAL SIGNOPE\n", "Invalid signal"),
        ("FROM a\nEXPOSE 80/icmp\n", "invalid proto"),
        ("FROM a\nENV X=\"${Y:?must be set}\"\n", "Y: must be set"),
        ("FROM a\nWORKDIR ${X\n", "missing '}'"),
    ] {
        let e = run(text, 0, &[]).err().unwrap();
        assert!(e.contains(msg), "{text}: {e}");
    }
    assert!(valid_signal("9") && valid_signal("kill") && valid_signal("SIGRTMIN+3"));
}

#[test]
fn history_lines() {
    let text = concat!(
        "FROM a\n",
        "ENV A=1\n",
        "LABEL l=v\n",
        "EXPOSE 80\n",
        "HEALTHCHECK --interval=5s --retries=3 CMD true\n",
        "ONBUILD RUN later\n",
        "ARG X=1\n",
        "USER u\n",
    );
    let r = run(text, 0, &[]).unwrap();
    let h: Vec<&str> = r
        .state
        .image
        .history
        .iter()
        .map(|h| h.created_by.as_deref().unwrap())
        .collect();
    assert_eq!(
        h,
        [
            "ENV A=1",
            "LABEL l=v",
            "EXPOSE map[80/tcp:{}]",
            "HEALTHCHECK &{[\"CMD-SHELL\" \"true\"] \"5s\" \"0s\" \"0s\" \"0s\" '\\x03'}",
            "ONBUILD RUN later",
            "ARG X=1",
            "USER u",
        ]
    );
    assert!(r.state.image.history.iter().all(|h| h.empty_layer));
    assert_eq!(
        r.state.image.config.on_build.as_ref().unwrap(),
        &["RUN later"]
    );
    let hc = r.state.image.config.healthcheck.as_ref().unwrap();
    assert_eq!((hc.interval, hc.retries), (5_000_000_000, 3));
}

#[test]
fn progress_shows_the_instruction_expanded_as_buildkit_does() {
    let text = concat!(
        "ARG V=1\n",
        "FROM a\n",
        "ARG V\n",
        "ARG W=w1\n",
        "ENV E=e1 W=fromenv\n",
        "RUN echo \"$V $W\" '$E' ${E:-x} $UNSET ${UNSET:-d} > /f\n",
        "COPY $E/* /dst/$W/\n",
        "RUN [\"sh\", \"-c\", \"echo $E\"]\n",
        "ENV E=e2\n",
        "WORKDIR /w/$E\n",
    );
    let s = stages(&parse(text).unwrap()).unwrap();
    let build_args = BuildArgs::new([("V".to_string(), "2".to_string())]);
    let b = builtins(&platform(), &platform());
    let g = globals(&s.meta_args, &build_args, &b, &Lex::default()).unwrap();
    let mut state = StageState::new(base(), s.escape);
    let mut shown = Vec::new();
    for c in &s.stages[0].commands {
        shown.push(state.shown(c));
        state.apply(c, &build_args, &g).unwrap();
    }
    assert_eq!(
        shown,
        [
            "ARG V",
            "ARG W=w1",
            "ENV E=e1 W=fromenv",
            // Quotes kept (single quotes too, as the shell will see them); ENV wins over
            // ARG; references to unset variables left as written, defaults included
            // (BuildKit's SkipUnsetEnv).
            "RUN echo \"2 fromenv\" '$E' e1 $UNSET ${UNSET:-d} > /f",
            "COPY e1/* /dst/fromenv/",
            "RUN [\"sh\", \"-c\", \"echo e1\"]",
            "ENV E=e2",
            "WORKDIR /w/e2",
        ]
    );
}

#[test]
fn undefined_variables_are_those_nothing_defines() {
    let text = concat!(
        "ARG GLOBAL=g\n",
        "FROM a\n",
        "ARG DECLARED\n",
        "ENV E=1 F=$E G=$GLOBAL\n",
        "RUN echo $NOT_CHECKED\n",
        "CMD echo $NOR_THIS\n",
        "COPY --chown=$OWNER $SRC $DECLARED /d/$E/\n",
        "LABEL l=$PATH k=${MISSING:-x}\n",
        "ARG A=1 B=$A C=$UNSET\n",
        "WORKDIR $BUILDKIT_SBOM_SCAN_STAGE/$E\n",
    );
    let s = stages(&parse(text).unwrap()).unwrap();
    let build_args = BuildArgs::new([("OWNER".to_string(), "1".to_string())]);
    let b = builtins(&platform(), &platform());
    let g = globals(&s.meta_args, &build_args, &b, &Lex::default()).unwrap();
    let mut state = StageState::new(base(), s.escape);
    state.image.set_env("PATH", "/bin");
    let mut found = Vec::new();
    for c in &s.stages[0].commands {
        for v in state.undefined_vars(c) {
            found.push(format!("{}:{v}", c.line));
        }
        state.apply(c, &build_args, &g).unwrap();
    }
    // ENV's own E is not set for F yet (values from before the instruction), a global ARG
    // is not in the stage, a --build-arg does not declare; RUN and CMD are the shell's.
    assert_eq!(
        found,
        [
            "4:E",
            "4:GLOBAL",
            "7:OWNER",
            "7:SRC",
            "8:MISSING",
            "9:UNSET"
        ]
    );
}
