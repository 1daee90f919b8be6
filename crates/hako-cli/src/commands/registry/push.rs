//! `hako push NAME[:TAG]`.

use anyhow::Result;
use clap::Args;
use hako_image::Reference;
use hako_image::registry::{PushOptions, load_credentials};

use super::progress::LayerProgress;
use crate::commands::container::engine_err;
use crate::context::Global;
use crate::error::image_error;

/// Arguments of `hako push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,

    /// Allow plain http to this registry (loopback registries always may)
    #[arg(long)]
    pub insecure: bool,

    /// Push all tags of an image to the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,

    /// The image to push (its name says where: registry/repository:tag)
    #[arg(value_name = "NAME[:TAG]")]
    pub name: String,
}

/// Pushes, printing Docker's lines; `--all-tags`: every local tag of the repository, one
/// "TAG: digest" line each.
pub fn run(g: &Global, a: &PushArgs) -> Result<()> {
    let r = Reference::parse(&a.name).map_err(image_error)?;
    let engine = g.open_engine()?;
    let names = if a.all_tags {
        let tags = engine.local_tags(&a.name).map_err(engine_err)?;
        tags.iter().map(|t| format!("{}:{t}", a.name)).collect()
    } else {
        // Fail on an unknown image before talking to the registry.
        engine.images().resolve(&a.name).map_err(image_error)?;
        vec![a.name.clone()]
    };
    if !a.quiet {
        println!(
            "The push refers to repository [{}]",
            r.familiar_repository()
        );
    }
    let credentials = load_credentials(&super::config_path(), r.domain())?;
    for name in &names {
        let show = LayerProgress::new(a.quiet);
        let callback = |e| show.event(e);
        let opts = PushOptions {
            insecure: a.insecure,
            credentials: credentials.clone(),
            progress: Some(&callback),
            ..PushOptions::default()
        };
        let report = engine.image_push(name, &opts).map_err(engine_err)?;
        if a.quiet {
            let pushed = Reference::parse(name).map_err(image_error)?;
            println!("{}", pushed.with_default_tag().familiar());
        } else {
            println!(
                "{}: digest: {} size: {}",
                report.tag, report.digest, report.size
            );
        }
    }
    Ok(())
}
