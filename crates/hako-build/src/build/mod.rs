//! Running a build: the stage graph, one thread per needed stage (stages wait only for
//! the stages they use), the cache, and the final image.
//!
//! ```text
//!  parse ─► stages ─► globals (meta ARGs) ─► plan: bases, --from edges, needed set
//!    ─► threads: stage i waits for its base stage, runs its steps, waits for a --from
//!       stage only when it gets to that COPY ─► target stage ─► export (config, tags)
//! ```
//!
//! The first failure cancels every other stage; nothing is cached for a step that did not
//! finish, and no image is written unless the target stage finished.

mod context;
mod copy_step;
mod key;
mod plan;
mod prelint;
mod run_step;
mod stage;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::config::ImageConfig;
use crate::dispatch::StageState;
use crate::dispatch::args::{self, BuildArgs, Globals};
use crate::instructions::Stages;
use crate::progress::{Cancel, Event, Progress, StepInfo};
use crate::shell::Lex;
use crate::worker::{Layers, Network, Worker};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// Its name, for messages (`Dockerfile`).
    pub dockerfile_name: String,
    /// The context directory (`None`: a Dockerfile from stdin with no context).
    pub context: Option<PathBuf>,
    /// `.dockerignore` patterns.
    pub ignore: Vec<String>,
    /// `--build-arg` values.
    pub build_args: Vec<(String, String)>,
    /// `--target`.
    pub target: Option<String>,
    /// `-t` references.
    pub tags: Vec<String>,
    /// `--label` values.
    pub labels: Vec<(String, String)>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`.
    pub pull: bool,
    /// `--network` for RUN (`default`, `none`, `host`).
    pub network: Network,
    /// `--secret` values by id.
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// A directory this build may use for temporary files (made by the step that first
    /// needs it; deleted by the caller).
    pub scratch: PathBuf,
}

/// A build that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    /// One line for the user.
    pub message: String,
    /// The Dockerfile lines of the failing instruction.
    pub lines: Option<(usize, usize)>,
    /// The vertex that failed (`[2/3] RUN make`).
    pub step: Option<String>,
    /// The build was cancelled (not a failure of the Dockerfile).
    pub cancelled: bool,
    /// A RUN that exited non-zero: its command line (argv joined by spaces) and exit code
    /// (the classic API reports both, and the docker CLI exits with that code).
    pub failed_run: Option<(String, i32)>,
}

impl BuildError {
    /// An error with just a message.
    pub fn new(message: impl Into<String>) -> BuildError {
        BuildError {
            message: message.into(),
            lines: None,
            step: None,
            cancelled: false,
            failed_run: None,
        }
    }

    pub(crate) fn at(mut self, lines: (usize, usize)) -> BuildError {
        self.lines.get_or_insert(lines);
        self
    }

    pub(crate) fn cancelled() -> BuildError {
        BuildError {
            cancelled: true,
            ..BuildError::new("build cancelled")
        }
    }
}

impl From<crate::parser::ParseError> for BuildError {
    fn from(e: crate::parser::ParseError) -> Self {
        BuildError::new(e.to_string()).at((e.line, e.end_line))
    }
}

/// What a finished build made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutput {
    /// The image id (`sha256:...`).
    pub id: String,
    /// Warnings (unused build args, empty continuation lines...).
    pub warnings: Vec<String>,
}

/// A stage's filesystem: its cache key and layers.
#[derive(Debug, Clone)]
pub(crate) struct Fs {
    pub(crate) key: String,
    pub(crate) layers: Layers,
}

/// A finished stage.
#[derive(Debug, Clone)]
pub(crate) struct StageOut {
    pub(crate) state: StageState,
    pub(crate) fs: Fs,
    /// Time of the newest step (the image's `created`).
    pub(crate) created: Option<String>,
}

/// How a stage ended (`Err`: it failed or was stopped; the error went to the caller).
type StageResult = Result<Arc<StageOut>, ()>;

/// Shared by the stage threads.
pub(crate) struct Build<'a> {
    pub(crate) opts: &'a BuildOptions,
    pub(crate) worker: &'a dyn Worker,
    pub(crate) progress: &'a dyn Progress,
    /// Set by the user's cancel flag, and by the first failure so the other stages stop.
    pub(crate) stop: Cancel,
    pub(crate) stages: Stages,
    pub(crate) plan: plan::Plan,
    pub(crate) globals: Globals,
    pub(crate) build_args: BuildArgs,
    pub(crate) lex: Lex,
    pub(crate) context: context::Context,
    results: Mutex<Vec<Option<StageResult>>>,
    done: Condvar,
    vertex: AtomicU64,
    config_vertex: AtomicU64,
    /// Step keys being built now (see [`Build::claim`]).
    running: Mutex<std::collections::HashSet<String>>,
    running_done: Condvar,
    warnings: Mutex<Vec<String>>,
    /// Which build checks are on, and whether a violation fails the build.
    checks: crate::lint::CheckOptions,
    /// The checks that need base images ran before the build (prelint.rs): the stages
    /// neither check again nor resolve the bases it left in `bases`.
    pub(crate) prelinted: bool,
    bases: Mutex<std::collections::HashMap<usize, crate::worker::BaseImage>>,
}

/// A step being built by one stage (see [`Build::claim`]).
pub(crate) struct Claim<'a> {
    build: &'a Build<'a>,
    key: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut running = self.build.running.lock().unwrap_or_else(|p| p.into_inner());
        running.remove(&self.key);
        self.build.running_done.notify_all();
    }
}

/// Vertex numbers of config-only instructions start here.
pub const CONFIG_VERTEX_BASE: u64 = 1 << 40;

impl Build<'_> {
    /// A new vertex number (config-only instructions are numbered apart, from
    /// [`CONFIG_VERTEX_BASE`], so BuildKit's views keep consecutive numbers).
    pub(crate) fn vertex(&self, name: String, step: Option<StepInfo>) -> (u64, Instant) {
        let id = if step.as_ref().is_some_and(|s| s.config_only) {
            self.config_vertex.fetch_add(1, Ordering::SeqCst) + CONFIG_VERTEX_BASE
        } else {
            self.vertex.fetch_add(1, Ordering::SeqCst) + 1
        };
        self.progress.event(Event::Start { id, name, step });
        (id, Instant::now())
    }

    pub(crate) fn done(&self, id: u64, started: Instant) {
        self.progress.event(Event::Done {
            id,
            elapsed: started.elapsed(),
        });
    }

    /// Reports a build check violation found while building (UndefinedVar); with
    /// `error=true` it fails the build here.
    pub(crate) fn check(&self, lint: crate::lint::Lint) -> Result<(), BuildError> {
        if !self.checks.enabled(lint.rule) {
            return Ok(());
        }
        let (rule, line) = (lint.rule, lint.line);
        self.progress.event(Event::Check(lint));
        if self.checks.error {
            return Err(
                BuildError::new(format!("lint violation found for rules: {rule}")).at((line, line)),
            );
        }
        Ok(())
    }

    pub(crate) fn warn(&self, message: String) {
        self.progress.event(Event::Warning {
            message: message.clone(),
        });
        if let Ok(mut w) = self.warnings.lock() {
            w.push(message);
        }
    }

    /// Whether to stop now (cancelled, or another stage failed).
    pub(crate) fn stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Claims step `key` for this stage until the returned guard drops: another stage
    /// with the same step waits, then finds its result in the cache (BuildKit runs an
    /// identical step once too).
    pub(crate) fn claim(&self, key: &str) -> Claim<'_> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        while running.contains(key) {
            running = self
                .running_done
                .wait(running)
                .unwrap_or_else(|p| p.into_inner());
        }
        running.insert(key.to_string());
        Claim {
            build: self,
            key: key.to_string(),
        }
    }

    /// Waits for stage `i` to finish.
    pub(crate) fn wait_stage(&self, i: usize) -> Result<Arc<StageOut>, BuildError> {
        let mut r = self.results.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match &r[i] {
                Some(Ok(out)) => return Ok(out.clone()),
                Some(Err(())) => return Err(BuildError::cancelled()),
                None => {
                    r = self.done.wait(r).unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }

    /// The base image of stage `i` if the checks before the build resolved it.
    pub(crate) fn prefetched(&self, i: usize) -> Option<crate::worker::BaseImage> {
        self.bases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&i)
    }

    fn finish_stage(&self, i: usize, out: StageResult) {
        let mut r = self.results.lock().unwrap_or_else(|p| p.into_inner());
        r[i] = Some(out);
        self.done.notify_all();
    }
}

/// Builds `opts` with `worker`, reporting to `progress`, until done or `cancel`.
pub fn build(
    opts: &BuildOptions,
    worker: &dyn Worker,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<BuildOutput, BuildError> {
    let started = Instant::now();
    let counter = AtomicU64::new(0);
    let first = |name: &str, status: String| {
        let id = counter.fetch_add(1, Ordering::SeqCst) + 1;
        progress.event(Event::Start {
            id,
            name: name.to_string(),
            step: None,
        });
        progress.event(Event::Status { id, text: status });
        progress.event(Event::Done {
            id,
            elapsed: started.elapsed(),
        });
    };
    first(
        &format!(
            "[internal] load build definition from {}",
            opts.dockerfile_name
        ),
        format!(
            "transferring dockerfile: {} done",
            crate::progress::human_size(opts.dockerfile.len() as u64)
        ),
    );
    let df = crate::parser::parse(&opts.dockerfile)?;
    // The standard frontend (`docker/dockerfile:1` and its tags) is what hako implements.
    if let Some(s) = df.directives.syntax.as_ref().filter(|s| {
        !s.starts_with("docker/dockerfile") && !s.starts_with("docker.io/docker/dockerfile")
    }) {
        progress.event(Event::Warning {
            message: format!(
                "the syntax directive ({s}) is not used: hako builds with its own Dockerfile frontend"
            ),
        });
    }
    let warnings: Vec<String> = Vec::new();
    first(
        "[internal] load .dockerignore",
        format!(
            "transferring context: {} done",
            crate::progress::human_size(opts.ignore.iter().map(|p| p.len() as u64 + 1).sum())
        ),
    );
    let stages = crate::instructions::stages(&df)?;
    if stages.stages.is_empty() {
        return Err(BuildError::new("the Dockerfile has no FROM instruction"));
    }
    let lex = Lex::new(stages.escape);
    let build_args = BuildArgs::new(opts.build_args.iter().cloned());
    let host = worker.platform();
    let builtin = args::builtins(&host, &host);
    let globals = args::globals(&stages.meta_args, &build_args, &builtin, &lex)
        .map_err(|(line, e)| BuildError::new(e.to_string()).at((line, line)))?;
    let check_opts = checks(&df, &stages, &build_args, &builtin, progress)?;
    let plan = plan::plan(&stages, &globals, &lex, opts.target.as_deref())?;
    let context = context::Context::new(opts)?;
    let n = stages.stages.len();
    let prelinted = prelint::wanted(&check_opts);
    let mut b = Build {
        opts,
        worker,
        progress,
        stop: cancel.child(),
        plan,
        stages,
        globals,
        build_args,
        lex,
        context,
        results: Mutex::new(vec![None; n]),
        done: Condvar::new(),
        vertex: AtomicU64::new(counter.load(Ordering::SeqCst)),
        config_vertex: AtomicU64::new(0),
        running: Mutex::new(std::collections::HashSet::new()),
        running_done: Condvar::new(),
        warnings: Mutex::new(warnings),
        checks: check_opts,
        prelinted: false,
        bases: Mutex::new(std::collections::HashMap::new()),
    };
    if prelinted {
        prelint::run(&b)?;
        b.prelinted = true;
    }
    let outcome: Result<Arc<StageOut>, BuildError> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for i in (0..n).filter(|i| b.plan.needed[*i]) {
            let b = &b;
            handles.push((
                i,
                s.spawn(move || {
                    let r = stage::run(b, i);
                    match &r {
                        Ok(out) => b.finish_stage(i, Ok(out.clone())),
                        Err(_) => {
                            b.stop.cancel();
                            b.finish_stage(i, Err(()));
                        }
                    }
                    r
                }),
            ));
        }
        let mut target = None;
        let mut first_err: Option<BuildError> = None;
        for (i, h) in handles {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(BuildError::new("a build thread panicked")));
            match r {
                Ok(out) if i == b.plan.target => target = Some(out),
                Ok(_) => {}
                // A stage stopped because another failed: the failure itself is reported.
                Err(e) => {
                    if first_err.as_ref().is_none_or(|f| f.cancelled) {
                        first_err = Some(e);
                    }
                }
            }
        }
        match (first_err, target) {
            (Some(e), _) => Err(e),
            (None, Some(t)) => Ok(t),
            (None, None) => Err(BuildError::cancelled()),
        }
    });
    let out = outcome?;
    if b.stopped() {
        return Err(BuildError::cancelled());
    }
    let id = export(&b, &out)?;
    let unused = b.build_args.unused();
    if !unused.is_empty() {
        b.warn(format!(
            "[Warning] One or more build-args [{}] were not consumed",
            unused.join(" ")
        ));
    }
    let warnings = b.warnings.lock().map(|w| w.clone()).unwrap_or_default();
    Ok(BuildOutput { id, warnings })
}

/// Runs the build checks the `# check=` directive (or the `BUILDKIT_DOCKERFILE_CHECK`
/// build arg) leaves on, reporting each; with `error=true` a violation fails the build
/// before anything runs.
fn checks(
    df: &crate::parser::Dockerfile,
    stages: &Stages,
    build_args: &BuildArgs,
    builtin: &[(String, String)],
    progress: &dyn Progress,
) -> Result<crate::lint::CheckOptions, BuildError> {
    let arg = build_args.take("BUILDKIT_DOCKERFILE_CHECK");
    let opts = crate::lint::options(df.directives.check.as_deref(), arg.as_deref())
        .map_err(|e| BuildError::new(e).at((1, 1)))?;
    let found: Vec<crate::lint::Lint> = crate::lint::check(df, stages, builtin)
        .into_iter()
        .filter(|l| opts.enabled(l.rule))
        .collect();
    for l in &found {
        progress.event(Event::Check(l.clone()));
    }
    if opts.error
        && let Some(e) = violation(&found)
    {
        return Err(e);
    }
    Ok(opts)
}

/// The error of a build that `found` violations fail (`error=true`), if any.
fn violation(found: &[crate::lint::Lint]) -> Option<BuildError> {
    let first = found.first()?;
    let mut rules: Vec<&str> = Vec::new();
    for l in found {
        if !rules.contains(&l.rule) {
            rules.push(l.rule);
        }
    }
    Some(
        BuildError::new(format!(
            "lint violation found for rules: {}",
            rules.join(", ")
        ))
        .at((first.line, first.line)),
    )
}

/// Writes the target stage as an image.
fn export(b: &Build<'_>, out: &StageOut) -> Result<String, BuildError> {
    let (vid, started) = b.vertex("exporting to image".into(), None);
    let werr = |e: crate::worker::WorkerError| {
        b.progress.event(Event::Error {
            id: vid,
            message: e.0.clone(),
        });
        BuildError::new(e.0)
    };
    let mut img: ImageConfig = out.state.image.clone();
    img.extra = Default::default();
    img.config.extra = Default::default();
    if !b.opts.labels.is_empty() {
        let labels = img.config.labels.get_or_insert_with(Default::default);
        for (k, v) in &b.opts.labels {
            labels.insert(k.clone(), v.clone());
        }
    }
    img.created = out.created.clone();
    img.rootfs.kind = "layers".into();
    img.rootfs.diff_ids = b.worker.diff_ids(&out.fs.layers).map_err(werr)?;
    b.progress.event(Event::Status {
        id: vid,
        text: "exporting layers done".into(),
    });
    let id = b
        .worker
        .export(&img, &out.fs.layers, &b.opts.tags)
        .map_err(werr)?;
    b.progress.event(Event::Status {
        id: vid,
        text: format!("writing image {id} done"),
    });
    for t in &b.opts.tags {
        b.progress.event(Event::Status {
            id: vid,
            text: format!("naming to {} done", normalize_tag(t)),
        });
        b.progress.event(Event::Tagged {
            name: normalize_tag(t),
        });
    }
    b.done(vid, started);
    b.progress.event(Event::Image { id: id.clone() });
    Ok(id)
}

/// `x` → `docker.io/library/x:latest`, as BuildKit prints names.
pub fn normalize_tag(t: &str) -> String {
    let (name, tag) = match t.rsplit_once(':') {
        Some((n, tag)) if !tag.contains('/') => (n.to_string(), tag.to_string()),
        _ => (t.to_string(), "latest".to_string()),
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_registry {
        name
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    format!("{full}:{tag}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names() {
        assert_eq!(normalize_tag("x"), "docker.io/library/x:latest");
        assert_eq!(normalize_tag("me/x:1"), "docker.io/me/x:1");
        assert_eq!(normalize_tag("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(normalize_tag("reg.io/a/b:t"), "reg.io/a/b:t");
    }
}
