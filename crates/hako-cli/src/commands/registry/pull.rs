//! `hako pull NAME[:TAG|@DIGEST]`.

use anyhow::Result;
use clap::Args;
use hako_image::registry::{PullOptions, load_credentials};
use hako_image::{Platform, Reference};

use super::progress::LayerProgress;
use crate::commands::container::engine_err;
use crate::context::Global;
use crate::error::image_error;

/// Arguments of `hako pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Set platform if server is multi-platform capable (os/arch[/variant])
    #[arg(long)]
    pub platform: Option<String>,

    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,

    /// Allow plain http to this registry (loopback registries always may)
    #[arg(long)]
    pub insecure: bool,

    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,

    /// The image to pull
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub name: String,
}

/// Pulls, printing Docker's lines; `--all-tags`: every tag the registry lists, one after
/// the other, each with its own "Pulling from" and "Digest" lines, and one status at the end.
pub fn run(g: &Global, a: &PullArgs) -> Result<()> {
    let r = Reference::parse(&a.name).map_err(image_error)?;
    let platform = a.platform.as_deref().map(Platform::parse).transpose()?;
    let engine = g.open_engine()?;
    let credentials = load_credentials(&super::config_path(), r.domain())?;
    let pull = |name: &str, what: &str| {
        pull_one(
            &engine,
            name,
            what,
            r.path(),
            a,
            platform.clone(),
            credentials.clone(),
        )
    };
    if a.all_tags {
        let base = PullOptions {
            insecure: a.insecure,
            credentials: credentials.clone(),
            ..PullOptions::default()
        };
        let tags = engine.registry_tags(&a.name, &base).map_err(engine_err)?;
        let mut new = false;
        for t in &tags {
            new |= pull(&format!("{}:{t}", a.name), t)?.new;
        }
        if !a.quiet {
            let repo = r.familiar_repository();
            if new {
                println!("Status: Downloaded newer image for {repo}");
            } else {
                println!("Status: Image is up to date for {repo}");
            }
        }
        println!("{r}");
        return Ok(());
    }
    if !a.quiet && r.tag().is_none() && r.digest().is_none() {
        println!("Using default tag: latest");
    }
    let what = r.digest().map_or_else(
        || r.tag().unwrap_or("latest").to_string(),
        ToString::to_string,
    );
    let report = pull(&a.name, &what)?;
    let full = r.with_default_tag().to_string();
    if !a.quiet {
        if report.new {
            println!("Status: Downloaded newer image for {}", report.reference);
        } else {
            println!("Status: Image is up to date for {}", report.reference);
        }
    }
    println!("{full}");
    Ok(())
}

/// One image: "WHAT: Pulling from PATH" once the registry answered with it (Docker prints
/// it after the manifest: an unreachable registry or a missing image shows only the
/// error), the layers' progress, then its digest.
fn pull_one(
    engine: &hako_engine::Engine,
    name: &str,
    what: &str,
    path: &str,
    a: &PullArgs,
    platform: Option<Platform>,
    credentials: Option<hako_image::registry::Credentials>,
) -> Result<hako_image::registry::PullReport> {
    let show = LayerProgress::new(a.quiet);
    // Progress comes from the download threads: the first one prints, the others wait.
    let header = std::sync::Mutex::new(a.quiet);
    let say_pulling = || {
        let mut shown = header
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*shown {
            *shown = true;
            println!("{what}: Pulling from {path}");
        }
    };
    let callback = |e| {
        say_pulling();
        show.event(e);
    };
    let opts = PullOptions {
        platform,
        insecure: a.insecure,
        credentials,
        progress: Some(&callback),
        ..PullOptions::default()
    };
    let report = engine.image_pull(name, &opts).map_err(engine_err)?;
    say_pulling();
    if !a.quiet {
        println!("Digest: {}", report.digest);
    }
    Ok(report)
}
