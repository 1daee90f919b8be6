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

    /// The image to pull
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub name: String,
}

/// Pulls, printing Docker's lines.
pub fn run(g: &Global, a: &PullArgs) -> Result<()> {
    let r = Reference::parse(&a.name).map_err(image_error)?;
    let platform = a.platform.as_deref().map(Platform::parse).transpose()?;
    let engine = g.open_engine()?;
    let show = LayerProgress::new(a.quiet);
    if !a.quiet && r.tag().is_none() && r.digest().is_none() {
        println!("Using default tag: latest");
    }
    let what = r.digest().map_or_else(
        || r.tag().unwrap_or("latest").to_string(),
        ToString::to_string,
    );
    // "Pulling from" once the registry answered with the image (Docker prints it after the
    // manifest: an unreachable registry or a missing image shows only the error).
    // Progress comes from the download threads: the first one prints, the others wait.
    let header = std::sync::Mutex::new(a.quiet);
    let say_pulling = || {
        let mut shown = header
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*shown {
            *shown = true;
            println!("{what}: Pulling from {}", r.path());
        }
    };
    let callback = |e| {
        say_pulling();
        show.event(e);
    };
    let opts = PullOptions {
        platform,
        insecure: a.insecure,
        credentials: load_credentials(&super::config_path(), r.domain())?,
        progress: Some(&callback),
        ..PullOptions::default()
    };
    let report = engine.image_pull(&a.name, &opts).map_err(engine_err)?;
    say_pulling();
    let full = r.with_default_tag().to_string();
    if a.quiet {
        println!("{full}");
    } else {
        println!("Digest: {}", report.digest);
        if report.new {
            println!("Status: Downloaded newer image for {}", report.reference);
        } else {
            println!("Status: Image is up to date for {}", report.reference);
        }
        println!("{full}");
    }
    Ok(())
}
