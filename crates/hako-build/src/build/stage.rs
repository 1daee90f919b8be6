//! One stage: its base, ONBUILD triggers of the base, then its instructions in order.

use std::sync::Arc;

use super::plan::Base;
use super::{Build, BuildError, Fs, StageOut, copy_step, key, run_step};
use crate::config::{HISTORY_COMMENT, History, ImageConfig};
use crate::dispatch::{StageState, Step};
use crate::instructions::{Command, Instruction};
use crate::lint::Lint;
use crate::progress::{Event, StepInfo};
use crate::worker::{Layers, StepResult};

/// The instruction as shown in progress (`RUN make`, keyword in capitals).
fn is_fs(i: &Instruction) -> bool {
    matches!(
        i,
        Instruction::Run(_) | Instruction::Copy(_) | Instruction::Add(_) | Instruction::Workdir(_)
    )
}

/// Parses the ONBUILD triggers of a base image into commands at the FROM line.
fn triggers(exprs: &[String], line: usize) -> Result<Vec<Command>, BuildError> {
    let mut out = Vec::new();
    for t in exprs {
        let df = crate::parser::parse(&format!("{t}\n")).map_err(|e| {
            BuildError::new(format!("ONBUILD trigger {t:?}: {}", e.message)).at((line, line))
        })?;
        for node in &df.nodes {
            let instruction = crate::instructions::parse(node).map_err(|m| {
                BuildError::new(format!("ONBUILD trigger {t:?}: {m}")).at((line, line))
            })?;
            out.push(Command {
                instruction,
                original: node.original.trim().to_string(),
                keyword: node.keyword.to_ascii_uppercase(),
                line,
                end_line: line,
            });
        }
    }
    Ok(out)
}

/// Runs stage `i` to the end.
pub(crate) fn run(b: &Build<'_>, i: usize) -> Result<Arc<StageOut>, BuildError> {
    let st = &b.stages.stages[i];
    // BuildKit names steps by stage unless the Dockerfile has one stage only.
    let multi = b.stages.stages.len() > 1;
    let name = st.name.clone().unwrap_or_else(|| format!("stage-{i}"));
    let fs_total = 1 + st.commands.iter().filter(|c| is_fs(&c.instruction)).count();
    let label = |k: usize, total: usize| {
        if multi {
            format!("[{name} {k}/{total}]")
        } else {
            format!("[{k}/{total}]")
        }
    };
    let step_no = b.plan.first_step[i];
    let from_lines = (st.line, st.line);
    let base_text = match &b.plan.bases[i] {
        Base::Scratch => "scratch".to_string(),
        Base::Stage(j) => b.stages.stages[*j]
            .name
            .clone()
            .unwrap_or_else(|| j.to_string()),
        Base::Image(r) => super::normalize_tag(r),
    };
    let info = StepInfo {
        number: step_no,
        total: b.plan.total_steps,
        text: st.original.clone(),
        config_only: false,
    };
    let (vid, t0) = b.vertex(
        format!("{} FROM {base_text}", label(1, fs_total)),
        Some(info),
    );
    let fail = |vid: u64, e: BuildError| {
        if !e.cancelled {
            b.progress.event(Event::Error {
                id: vid,
                message: e.message.clone(),
            });
        }
        e
    };
    let platform = st
        .platform
        .as_ref()
        .map(|p| b.lex.word(p, &b.globals.vars))
        .transpose()
        .map_err(|e| fail(vid, BuildError::new(e.to_string()).at(from_lines)))?;
    let (mut state, mut fs, mut created) = match &b.plan.bases[i] {
        Base::Scratch => {
            let p = b.worker.platform();
            let img = ImageConfig::scratch(&p.os, &p.arch, p.variant.as_deref());
            (
                StageState::new(img, b.stages.escape),
                Fs {
                    key: key::scratch(),
                    layers: Layers(None),
                },
                None,
            )
        }
        Base::Stage(j) => {
            let out = b.wait_stage(*j)?;
            let mut s = out.state.clone();
            s.cmd_set = false;
            (s, out.fs.clone(), out.created.clone())
        }
        Base::Image(r) => {
            let mut log = |l: &str| {
                b.progress.event(Event::Status {
                    id: vid,
                    text: l.to_string(),
                })
            };
            // Resolved already when the checks ran before the build (prelint.rs).
            let img = match b.prefetched(i) {
                Some(img) => img,
                None => {
                    let img = b
                        .worker
                        .base_image(r, platform.as_deref(), b.opts.pull, &mut log)
                        .map_err(|e| fail(vid, BuildError::new(e.0).at(from_lines)))?;
                    if let Some(l) = platform_lint(b, r, platform.as_deref(), &img.config, st.line)
                    {
                        b.check(l).map_err(|e| fail(vid, e))?;
                    }
                    img
                }
            };
            let created = img.config.created.clone();
            (
                StageState::new(img.config, b.stages.escape),
                Fs {
                    key: key::from_image(&img.id),
                    layers: img.layers,
                },
                created,
            )
        }
    };
    b.done(vid, t0);
    let commands = commands(b, i, &mut state)?;
    let fs_total = fs_total + commands.len() - st.commands.len();
    let mut n = 1;
    for (step_no, c) in (step_no + 1..).zip(commands.iter()) {
        if b.stopped() {
            return Err(BuildError::cancelled());
        }
        let lines = (c.line, c.end_line);
        let shown = state.shown(c);
        if !b.prelinted {
            for l in undefined_lints(b, &state, c) {
                b.check(l)?;
            }
        }
        let step = state.apply(c, &b.build_args, &b.globals).map_err(|e| {
            let (v, _) = b.vertex(format!("{} {shown}", label(n + 1, fs_total)), None);
            fail(v, BuildError::new(e.message).at(lines))
        })?;
        let info = |config_only| StepInfo {
            number: step_no,
            total: b.plan.total_steps,
            text: c.original.clone(),
            config_only,
        };
        if step == Step::Config {
            if let Some(h) = state.image.history.last_mut() {
                h.created = created.clone();
            }
            let (v, t) = b.vertex(shown, Some(info(true)));
            b.done(v, t);
            continue;
        }
        n += 1;
        // A step that reads another stage starts (and shows) once that stage is done.
        for j in step_deps(b, i, &step) {
            b.wait_stage(j)?;
        }
        let vname = format!("{} {shown}", label(n, fs_total));
        let prepared = match &step {
            Step::Copy(cp) => Some(copy_step::prepare(b, i, cp).map_err(|e| {
                let (v, _) = b.vertex(vname.clone(), None);
                let mut e = fail(v, e.at(lines));
                e.step.get_or_insert(vname.clone());
                e
            })?),
            _ => None,
        };
        let (v, t) = b.vertex(vname.clone(), Some(info(false)));
        let res: Result<(String, StepResult, String), BuildError> = match &step {
            Step::Run(r) => {
                run_step::run(b, i, &fs, r, v).map(|(k, res)| (k, res, r.created_by.clone()))
            }
            Step::Copy(cp) => match prepared {
                Some(p) => {
                    copy_step::run(b, &fs, cp, p, v).map(|(k, res)| (k, res, cp.created_by.clone()))
                }
                None => unreachable_config(),
            },
            Step::Mkdir(p) => {
                run_step::mkdir(b, &fs, p, &state.image.config.user, v, created.as_deref())
                    .map(|(k, res)| (k, res, format!("WORKDIR {p}")))
            }
            Step::Config => unreachable_config(),
        };
        let (k, res, created_by) = res.map_err(|e| {
            let mut e = fail(v, e.at(lines));
            e.step.get_or_insert(vname.clone());
            e
        })?;
        created = Some(res.created.clone());
        state.image.history.push(History {
            created: Some(res.created),
            created_by: Some(created_by),
            author: None,
            comment: Some(HISTORY_COMMENT.into()),
            empty_layer: res.empty,
        });
        fs = Fs {
            key: k,
            layers: res.layers,
        };
        b.done(v, t);
    }
    Ok(Arc::new(StageOut { state, fs, created }))
}

/// What stage `i` runs on top of its base's `state`: the base's ONBUILD triggers, then
/// its own instructions. Sets PATH if the base has none (BuildKit and the classic builder
/// both add it).
pub(crate) fn commands(
    b: &Build<'_>,
    i: usize,
    state: &mut StageState,
) -> Result<Vec<Command>, BuildError> {
    let st = &b.stages.stages[i];
    if !state.image.env().iter().any(|(k, _)| k == "PATH") {
        state.image.set_env("PATH", crate::config::DEFAULT_PATH);
    }
    let mut commands = match state.image.config.on_build.take() {
        Some(t) if !t.is_empty() => triggers(&t, st.line)?,
        _ => Vec::new(),
    };
    commands.extend(st.commands.iter().cloned());
    Ok(commands)
}

/// UndefinedVar for instruction `c` in `state`, with a "did you mean" from the variables
/// in scope and the global ARGs.
pub(crate) fn undefined_lints(b: &Build<'_>, state: &StageState, c: &Command) -> Vec<Lint> {
    let vars = state.undefined_vars(c);
    if vars.is_empty() {
        return Vec::new();
    }
    let mut known: Vec<String> = b
        .stages
        .meta_args
        .iter()
        .map(|(a, _)| a.name.clone())
        .collect();
    known.extend(state.vars().into_iter().map(|(k, _)| k));
    vars.iter()
        .map(|v| Lint {
            rule: "UndefinedVar",
            detail: crate::lint::undefined_var(v, &known),
            line: c.line,
        })
        .collect()
}

/// InvalidBaseImagePlatform for base image `reference` of the stage at `line`: its config's
/// platform against the stage's `--platform` (else the host's, the target platform).
pub(crate) fn platform_lint(
    b: &Build<'_>,
    reference: &str,
    platform: Option<&str>,
    config: &ImageConfig,
    line: usize,
) -> Option<Lint> {
    if config.os.is_empty() || config.architecture.is_empty() {
        return None;
    }
    let expected = platform.map_or_else(|| b.worker.platform().spec(), str::to_string);
    let mut actual = format!("{}/{}", config.os, config.architecture);
    if let Some(v) = &config.variant {
        actual.push('/');
        actual.push_str(v);
    }
    crate::lint::invalid_base_platform(reference, &expected, &actual).map(|detail| Lint {
        rule: "InvalidBaseImagePlatform",
        detail,
        line,
    })
}

/// The stages a step reads (`COPY --from`, `RUN --mount from=`).
fn step_deps(b: &Build<'_>, stage: usize, step: &Step) -> Vec<usize> {
    let froms: Vec<String> = match step {
        Step::Copy(cp) => cp.from.iter().cloned().collect(),
        Step::Run(r) => r
            .mounts
            .iter()
            .filter_map(|m| match crate::mounts::parse(m) {
                Ok(crate::mounts::MountSpec::Bind { from: Some(f), .. }) => Some(f),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    froms
        .iter()
        .filter_map(|f| super::plan::stage_ref(&b.stages, f, stage))
        .collect()
}

fn unreachable_config() -> Result<(String, StepResult, String), BuildError> {
    Err(BuildError::new(
        "internal: config step reached the filesystem path",
    ))
}
