//! `hako build` (also `hako image build`, `hako builder build`) and `hako builder prune`.
//!
//! The context is a directory (read in place), `-` (a tar on stdin, unpacked as it
//! arrives, or a Dockerfile with no context), and the output is BuildKit's: plain lines
//! (`--progress=plain`, or when stderr is not a terminal), a live view on a terminal, or
//! just the image id with `-q`. A failed build exits 1 and shows the Dockerfile lines of
//! the failing instruction; ctrl-c stops the build cleanly.

mod render;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use hako_build::build::BuildError;
use hako_build::progress::{Cancel, Progress, Silent};
use hako_engine::{BuildContext, BuildRequest, Dockerfile};

use crate::commands::container::EngineError;
use crate::context::Global;

/// Arguments of `hako build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name of the Dockerfile (default: "PATH/Dockerfile"; "-" reads it from stdin)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<String>,
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,
    /// Set build-time variables
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Set metadata for an image
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Always attempt to pull all referenced images
    #[arg(long)]
    pub pull: bool,
    /// Set the target build stage to build
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Write the image ID to the file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Secret to expose to the build (format: "id=mysecret[,src=/local/secret]" or
    /// "id=mysecret,env=VAR")
    #[arg(long = "secret", value_name = "SPEC")]
    pub secrets: Vec<String>,
    /// Set the networking mode for the RUN instructions during build (default: the bridge; none, host)
    #[arg(long, value_name = "MODE", default_value = "default")]
    pub network: String,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    pub quiet: bool,
    /// Set type of progress output ("auto", "plain", "tty", "quiet"). Use plain to show
    /// container output
    #[arg(long, value_name = "TYPE", default_value = "auto")]
    pub progress: String,
    /// Set target platform for build (only the host's platform is supported)
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Remove intermediate containers after a successful build (always true)
    #[arg(long, hide = true, default_value_t = true, action = clap::ArgAction::Set)]
    pub rm: bool,
    /// Always remove intermediate containers (always true)
    #[arg(long = "force-rm", hide = true)]
    pub force_rm: bool,
    /// Build context: a directory, or "-" to read a tar archive or a Dockerfile from stdin
    #[arg(value_name = "PATH | -")]
    pub context: String,
}

/// `hako builder ...`
#[derive(Debug, Subcommand)]
pub enum BuilderCommand {
    /// Build an image from a Dockerfile
    Build(Box<BuildArgs>),
    /// Remove build cache
    Prune(PruneArgs),
}

/// Arguments of `hako builder prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused build cache, not just dangling ones (all of it, in hako)
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. "until=24h")
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// `KEY=VALUE`, or `KEY` taking the value from the environment (skipped when unset).
fn key_values(items: &[String], what: &str, from_env: bool) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for it in items {
        match it.split_once('=') {
            Some(("", _)) => bail!("invalid {what} {it:?}: the name is empty"),
            Some((k, v)) => out.push((k.to_string(), v.to_string())),
            None if from_env => {
                if let Ok(v) = std::env::var(it) {
                    out.push((it.clone(), v));
                }
            }
            None => out.push((it.clone(), String::new())),
        }
    }
    Ok(out)
}

/// `--secret id=x,src=path` / `id=x,env=VAR` / `id=x` (from `$x` or a file named x).
fn secrets(specs: &[String]) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for spec in specs {
        let mut id = None;
        let mut src = None;
        let mut env = None;
        for field in spec.split(',') {
            match field.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(v.to_string()),
                Some(("env", v)) => env = Some(v.to_string()),
                Some(("type", "file" | "env")) => {}
                _ => bail!("invalid secret {spec:?}: expected id=ID[,src=FILE|,env=VAR]"),
            }
        }
        let Some(id) = id.or_else(|| src.clone()) else {
            bail!("invalid secret {spec:?}: id is required");
        };
        let value = match (src, env) {
            (Some(p), _) => {
                std::fs::read(&p).with_context(|| format!("read secret {id} from {p}"))?
            }
            (None, Some(v)) => std::env::var(&v)
                .with_context(|| format!("secret {id}: environment variable {v} is not set"))?
                .into_bytes(),
            (None, None) => match std::env::var(&id) {
                Ok(v) => v.into_bytes(),
                Err(_) => std::fs::read(&id)
                    .with_context(|| format!("secret {id}: give src=FILE or env=VAR"))?,
            },
        };
        out.insert(id, value);
    }
    Ok(out)
}

/// What stdin holds for `hako build -`.
enum Stdin {
    Tar(Box<dyn Read + Send>),
    Dockerfile(String),
}

/// Peeks at stdin: an archive (compressed or a tar header) is a context, anything else a
/// Dockerfile (as Docker decides).
fn read_stdin() -> Result<Stdin> {
    let mut stdin = std::io::stdin().lock();
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while head.len() < 512 {
        let n = stdin
            .read(&mut buf[..512 - head.len()])
            .context("read stdin")?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    drop(stdin);
    let archive = hako_build::archive::detect(&head) != hako_build::archive::Compression::None
        || hako_build::archive::is_tar_header(&head);
    if archive {
        let rest = std::io::stdin();
        return Ok(Stdin::Tar(Box::new(std::io::Cursor::new(head).chain(rest))));
    }
    let mut text = head;
    std::io::stdin()
        .lock()
        .take(16 << 20)
        .read_to_end(&mut text)
        .context("read the Dockerfile from stdin")?;
    Ok(Stdin::Dockerfile(
        String::from_utf8(text).context("the Dockerfile on stdin is not UTF-8 text")?,
    ))
}

fn read_dockerfile(path: &str) -> Result<Dockerfile> {
    let p = Path::new(path);
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("failed to read dockerfile: open {path}"))?;
    Ok(Dockerfile::Text {
        text,
        name: p
            .file_name()
            .map_or_else(|| "Dockerfile".into(), |n| n.to_string_lossy().into_owned()),
        path: Some(std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())),
    })
}

/// ctrl-c, SIGTERM and SIGHUP cancel the build (the signals are blocked in every thread
/// and taken by one).
fn cancel_on_signals() -> Result<Cancel> {
    use nix::sys::signal::{SigSet, Signal};
    let cancel = Cancel::new();
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block()?;
    let c = cancel.clone();
    std::thread::spawn(move || {
        if set.wait().is_ok() {
            c.cancel();
        }
    });
    Ok(cancel)
}

/// `hako build`.
pub fn run(g: &Global, a: &BuildArgs) -> Result<()> {
    for t in &a.tags {
        // A flag error (status 125), as Docker's CLI checks -t before it builds.
        hako_image::Reference::parse(t).map_err(|e| {
            EngineError::with_code(
                format!("invalid argument {t:?} for \"-t, --tag\" flag: {e}"),
                125,
            )
        })?;
    }
    if let Some(p) = &a.platform {
        let host = hako_image::Platform::host().to_string();
        if p != &host {
            bail!("--platform {p}: hako builds for the host platform only ({host})");
        }
    }
    // Docker's remote contexts: URLs, and git repositories by the prefixes it knows.
    if ["http://", "https://", "git://", "git@", "github.com/"]
        .iter()
        .any(|p| a.context.starts_with(p))
    {
        bail!(
            "unable to prepare context: remote contexts (URLs, git) are not supported by hako; give a directory or -"
        );
    }
    let mode = match (a.quiet, a.progress.as_str()) {
        (true, _) | (_, "quiet") => render::Mode::Quiet,
        (_, "plain") => render::Mode::Plain,
        (_, "tty") => render::Mode::Tty,
        (_, "auto") => {
            if nix::unistd::isatty(std::io::stderr()).unwrap_or(false) {
                render::Mode::Tty
            } else {
                render::Mode::Plain
            }
        }
        (_, other) => bail!("invalid progress mode {other:?} (auto, plain, tty, quiet)"),
    };
    let (context, dockerfile) = match (a.context.as_str(), a.file.as_deref()) {
        ("-", Some("-")) => {
            bail!("invalid argument: can't use stdin for both build context and dockerfile")
        }
        ("-", f) => match read_stdin()? {
            Stdin::Tar(r) => (
                BuildContext::Tar(r),
                Dockerfile::InContext(f.unwrap_or("Dockerfile").to_string()),
            ),
            Stdin::Dockerfile(text) => {
                if f.is_some() {
                    bail!("-f cannot be used when the Dockerfile itself comes from stdin");
                }
                (
                    BuildContext::None,
                    Dockerfile::Text {
                        text,
                        name: "Dockerfile".into(),
                        path: None,
                    },
                )
            }
        },
        (dir, Some("-")) => {
            let mut text = String::new();
            std::io::stdin()
                .lock()
                .take(16 << 20)
                .read_to_string(&mut text)
                .context("read the Dockerfile from stdin")?;
            (
                BuildContext::Dir(PathBuf::from(dir)),
                Dockerfile::Text {
                    text,
                    name: "Dockerfile".into(),
                    path: None,
                },
            )
        }
        (dir, Some(f)) => (BuildContext::Dir(PathBuf::from(dir)), read_dockerfile(f)?),
        (dir, None) => {
            if !Path::new(dir).is_dir() {
                bail!("unable to prepare context: path {dir:?} not found");
            }
            (
                BuildContext::Dir(PathBuf::from(dir)),
                Dockerfile::InContext("Dockerfile".into()),
            )
        }
    };
    let dockerfile_text = match &dockerfile {
        Dockerfile::Text { text, .. } => Some(text.clone()),
        Dockerfile::InContext(p) => match &context {
            BuildContext::Dir(d) => std::fs::read_to_string(d.join(p)).ok(),
            _ => None,
        },
    };
    let config_path = crate::commands::registry::config_path();
    let credentials: hako_engine::CredentialLookup = Arc::new(move |domain: &str| {
        hako_image::registry::load_credentials(&config_path, domain)
            .ok()
            .flatten()
    });
    let req = BuildRequest {
        context,
        dockerfile,
        build_args: key_values(&a.build_args, "--build-arg", true)?,
        target: a.target.clone(),
        tags: a.tags.clone(),
        labels: key_values(&a.labels, "--label", false)?,
        no_cache: a.no_cache,
        pull: a.pull,
        network: Some(a.network.clone()),
        secrets: secrets(&a.secrets)?,
        credentials: Some(credentials),
    };
    let cancel = cancel_on_signals()?;
    let engine = g.open_engine()?;
    let renderer = render::Renderer::new(mode);
    let progress: &dyn Progress = match mode {
        render::Mode::Quiet => &Silent,
        _ => &renderer,
    };
    let result = engine.build(req, progress, &cancel);
    renderer.finish();
    match result {
        Ok(out) => {
            if let Some(f) = &a.iidfile {
                std::fs::write(f, &out.id).with_context(|| format!("write {}", f.display()))?;
            }
            if mode == render::Mode::Quiet {
                println!("{}", out.id);
            }
            for w in &out.warnings {
                if mode != render::Mode::Plain {
                    eprintln!("WARNING: {w}");
                }
            }
            Ok(())
        }
        Err(e) => {
            report(&renderer, &e, dockerfile_text.as_deref());
            Err(EngineError::exit(1))
        }
    }
}

/// BuildKit's failure summary: the failing step's last output, the Dockerfile lines, the
/// error.
fn report(renderer: &render::Renderer, e: &BuildError, dockerfile: Option<&str>) {
    let mut out = String::new();
    if let Some(step) = &e.step {
        out.push_str("------\n");
        out.push_str(&format!(" > {step}:\n"));
        for l in renderer.tail_of(step, 10) {
            out.push_str(&format!("{l}\n"));
        }
        out.push_str("------\n");
    }
    if let (Some((start, end)), Some(text)) = (e.lines, dockerfile) {
        out.push_str(&render::snippet("Dockerfile", text, start, end));
    }
    if e.cancelled {
        out.push_str("ERROR: failed to solve: Canceled: build cancelled\n");
    } else {
        out.push_str(&format!("ERROR: failed to solve: {}\n", e.message));
    }
    eprint!("{out}");
}

/// `hako builder prune`.
pub fn prune(g: &Global, a: &PruneArgs) -> Result<()> {
    let mut until = None;
    for f in &a.filters {
        match f.split_once('=') {
            Some(("until", v)) => {
                let d = humantime::parse_duration(v).with_context(|| {
                    format!("invalid filter {f:?}: until takes a duration such as 24h")
                })?;
                until = Some(d.as_secs());
            }
            _ => bail!("invalid filter {f:?} (supported: until=DURATION)"),
        }
    }
    if !a.force
        && !crate::commands::container::prune::confirm(
            "WARNING! This will remove all dangling build cache.",
        )?
    {
        return Ok(());
    }
    let engine = g.open_engine()?;
    let r = engine
        .build_prune(until)
        .map_err(crate::commands::container::engine_err)?;
    crate::commands::print(&format!(
        "Deleted build cache objects: {}\nTotal reclaimed space: {}\n",
        r.entries,
        crate::units::human_size(r.space_reclaimed)
    ))
}
