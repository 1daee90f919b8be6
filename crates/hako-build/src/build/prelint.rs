//! With `error=true` (`# check=error=true`), the checks that need the base images' configs
//! (UndefinedVar, InvalidBaseImagePlatform) run before any step, as BuildKit's do: each
//! needed stage's base is resolved (`[internal] load metadata for ...`, as BuildKit shows
//! it), the stage's instructions are dispatched without building anything, and a violation
//! fails the build here. The stages then take the bases resolved here and check nothing
//! again. Without `error=true` the stages report these checks as they go (nothing waits
//! for every base before the first step).

use super::plan::Base;
use super::{Build, BuildError, normalize_tag, stage};
use crate::config::ImageConfig;
use crate::dispatch::StageState;
use crate::progress::Event;

/// Whether the checks must run before the build.
pub(crate) fn wanted(checks: &crate::lint::CheckOptions) -> bool {
    checks.error && (checks.enabled("UndefinedVar") || checks.enabled("InvalidBaseImagePlatform"))
}

/// Resolves the needed stages' bases and dispatches their instructions; fails with
/// "lint violation found for rules: ..." if a check finds anything.
pub(crate) fn run(b: &Build<'_>) -> Result<(), BuildError> {
    let n = b.stages.stages.len();
    let mut states: Vec<Option<StageState>> = vec![None; n];
    let mut found = Vec::new();
    for i in (0..n).filter(|i| b.plan.needed[*i]) {
        let st = &b.stages.stages[i];
        // An error here (a bad --platform, a bad ONBUILD trigger, an instruction that does
        // not dispatch) is the stage's to report when it runs: its checks stop here.
        let Ok(platform) = st
            .platform
            .as_ref()
            .map(|p| b.lex.word(p, &b.globals.vars))
            .transpose()
        else {
            continue;
        };
        let mut state = match &b.plan.bases[i] {
            Base::Scratch => {
                let p = b.worker.platform();
                let img = ImageConfig::scratch(&p.os, &p.arch, p.variant.as_deref());
                StageState::new(img, b.stages.escape)
            }
            Base::Stage(j) => match &states[*j] {
                Some(s) => {
                    let mut s = s.clone();
                    s.cmd_set = false;
                    s
                }
                None => continue,
            },
            Base::Image(r) => {
                let (vid, t0) = b.vertex(
                    format!("[internal] load metadata for {}", normalize_tag(r)),
                    None,
                );
                let mut log = |l: &str| {
                    b.progress.event(Event::Status {
                        id: vid,
                        text: l.to_string(),
                    })
                };
                let img = b
                    .worker
                    .base_image(r, platform.as_deref(), b.opts.pull, &mut log)
                    .map_err(|e| {
                        b.progress.event(Event::Error {
                            id: vid,
                            message: e.0.clone(),
                        });
                        BuildError::new(e.0).at((st.line, st.line))
                    })?;
                b.done(vid, t0);
                found.extend(stage::platform_lint(
                    b,
                    r,
                    platform.as_deref(),
                    &img.config,
                    st.line,
                ));
                let state = StageState::new(img.config.clone(), b.stages.escape);
                b.bases
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(i, img);
                state
            }
        };
        let Ok(commands) = stage::commands(b, i, &mut state) else {
            continue;
        };
        let mut whole = true;
        for c in &commands {
            found.extend(stage::undefined_lints(b, &state, c));
            if state.apply(c, &b.build_args, &b.globals).is_err() {
                whole = false;
                break;
            }
        }
        if whole {
            states[i] = Some(state);
        }
    }
    found.retain(|l| b.checks.enabled(l.rule));
    for l in &found {
        b.progress.event(Event::Check(l.clone()));
    }
    match super::violation(&found) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
