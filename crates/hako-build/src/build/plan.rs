//! Which stages a build needs and what each stage starts from.
//!
//! A FROM names `scratch`, an earlier stage (by name, case-insensitive) or an image; its
//! text is expanded with the global ARGs only. `COPY --from` and `RUN --mount from=`
//! name an earlier stage (by name or index) or an image. The needed stages are the
//! target and everything it uses, transitively; the others are never built.

use super::BuildError;
use crate::dispatch::args::Globals;
use crate::instructions::{Instruction, Stages};
use crate::shell::Lex;

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Base {
    /// An empty filesystem.
    Scratch,
    /// An earlier stage.
    Stage(usize),
    /// An image reference (expanded).
    Image(String),
}

/// The build's stage graph.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Base of each stage.
    pub(crate) bases: Vec<Base>,
    /// Whether each stage is built.
    pub(crate) needed: Vec<bool>,
    /// The stage whose result is the image.
    pub(crate) target: usize,
    /// Instructions of the needed stages (FROM included), for `Step N/M`.
    pub(crate) total_steps: usize,
    /// The `Step` number of each stage's FROM.
    pub(crate) first_step: Vec<usize>,
}

/// A `--from` value → a stage index, if it names one before `stage`.
pub(crate) fn stage_ref(stages: &Stages, name: &str, before: usize) -> Option<usize> {
    stages.find(name).filter(|i| *i < before)
}

/// The stages `stage` uses besides its base (through `COPY --from`, `RUN --mount from=`).
fn uses(stages: &Stages, globals: &Globals, lex: &Lex, stage: usize) -> Vec<usize> {
    let mut out = Vec::new();
    for c in &stages.stages[stage].commands {
        let froms: Vec<String> = match &c.instruction {
            Instruction::Copy(cp) => cp.from.iter().cloned().collect(),
            Instruction::Run(r) => r
                .mounts
                .iter()
                .filter_map(|m| {
                    m.split(',')
                        .find_map(|f| f.strip_prefix("from=").map(str::to_string))
                })
                .collect(),
            _ => Vec::new(),
        };
        for f in froms {
            let f = lex.word(&f, &globals.vars).unwrap_or(f);
            if let Some(i) = stage_ref(stages, &f, stage) {
                out.push(i);
            }
        }
    }
    out
}

/// Builds the plan for `target` (default: the last stage).
pub(crate) fn plan(
    stages: &Stages,
    globals: &Globals,
    lex: &Lex,
    target: Option<&str>,
) -> Result<Plan, BuildError> {
    let n = stages.stages.len();
    let mut bases = Vec::with_capacity(n);
    for (i, s) in stages.stages.iter().enumerate() {
        let base = lex
            .word(&s.base, &globals.vars)
            .map_err(|e| BuildError::new(e.to_string()).at((s.line, s.line)))?;
        if base.is_empty() {
            return Err(
                BuildError::new(format!("base name ({}) should not be blank", s.base))
                    .at((s.line, s.line)),
            );
        }
        bases.push(if base.eq_ignore_ascii_case("scratch") {
            Base::Scratch
        } else if let Some(j) = stages
            .stages
            .iter()
            .take(i)
            .position(|p| p.name.as_deref() == Some(base.to_ascii_lowercase().as_str()))
        {
            Base::Stage(j)
        } else {
            Base::Image(base)
        });
    }
    let target = match target {
        None => n - 1,
        Some(t) => stages
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(t.to_ascii_lowercase().as_str()))
            .ok_or_else(|| BuildError::new(format!("target stage {t:?} could not be found")))?,
    };
    let mut needed = vec![false; n];
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if std::mem::replace(&mut needed[i], true) {
            continue;
        }
        if let Base::Stage(j) = bases[i] {
            todo.push(j);
        }
        todo.extend(uses(stages, globals, lex, i));
    }
    let mut first_step = vec![0; n];
    let mut total = 0;
    for i in 0..n {
        if needed[i] {
            first_step[i] = total + 1;
            total += 1 + stages.stages[i].commands.len();
        }
    }
    Ok(Plan {
        bases,
        needed,
        target,
        total_steps: total,
        first_step,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::args::BuildArgs;

    fn p(text: &str, target: Option<&str>, bargs: &[(&str, &str)]) -> Result<Plan, BuildError> {
        let s = crate::instructions::stages(&crate::parser::parse(text).unwrap()).unwrap();
        let ba = BuildArgs::new(bargs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let g = crate::dispatch::args::globals(&s.meta_args, &ba, &[], &Lex::default()).unwrap();
        plan(&s, &g, &Lex::default(), target)
    }

    const MULTI: &str = concat!(
        "ARG BASE=busybox\n",
        "FROM ${BASE} AS base\n",
        "FROM base AS build\n",
        "RUN make\n",
        "FROM busybox AS unused\n",
        "RUN sleep 100\n",
        "FROM alpine AS assets\n",
        "FROM scratch\n",
        "COPY --from=build /out /\n",
        "COPY --from=assets /a /\n",
        "COPY --from=other/image:1 /x /\n",
    );

    #[test]
    fn bases_and_needed_stages() {
        let pl = p(MULTI, None, &[]).unwrap();
        assert_eq!(
            pl.bases,
            [
                Base::Image("busybox".into()),
                Base::Stage(0),
                Base::Image("busybox".into()),
                Base::Image("alpine".into()),
                Base::Scratch
            ]
        );
        assert_eq!(pl.needed, [true, true, false, true, true]);
        assert_eq!(pl.target, 4);
        // base(1) + build(2) + assets(1) + final(4)
        assert_eq!(pl.total_steps, 8);
        let pl = p(MULTI, Some("BUILD"), &[("BASE", "alpine")]).unwrap();
        assert_eq!(pl.needed, [true, true, false, false, false]);
        assert_eq!(pl.bases[0], Base::Image("alpine".into()));
        let e = p(MULTI, Some("nope"), &[]).unwrap_err();
        assert!(
            e.message
                .contains("target stage \"nope\" could not be found"),
            "{e}"
        );
    }

    #[test]
    fn mounts_and_indexes_count_as_uses() {
        let text = "FROM a AS one\nFROM b\nRUN --mount=type=bind,from=one,target=/x true\n";
        assert_eq!(p(text, None, &[]).unwrap().needed, [true, true]);
        let text = "FROM a\nFROM b\nCOPY --from=0 /x /\n";
        assert_eq!(p(text, None, &[]).unwrap().needed, [true, true]);
        // A later stage is not a stage reference (it is an image name).
        let text = "FROM a\nCOPY --from=later /x /\nFROM b AS later\n";
        assert_eq!(p(text, Some("later"), &[]).unwrap().needed, [false, true]);
        let e = p("ARG X\nFROM $X\n", None, &[]).unwrap_err();
        assert!(e.message.contains("should not be blank"), "{e}");
    }
}
