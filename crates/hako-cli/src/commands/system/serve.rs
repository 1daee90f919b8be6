//! `hako serve`: the Docker Engine API on a unix socket (or loopback TCP), over the same
//! engine the CLI uses. Containers made through it are the ones `hako ps` shows.

use anyhow::Result;
use clap::Args;
use hako_api::{Listen, ServeOptions};

use crate::context::Global;

/// Arguments of `hako serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen: unix:///PATH, or tcp://127.0.0.1:PORT with --insecure
    #[arg(
        short = 'H',
        long = "host",
        default_value = "unix:///run/hako/hako.sock"
    )]
    pub host: String,
    /// Allow plain TCP (loopback only; anyone who can connect controls hako)
    #[arg(long)]
    pub insecure: bool,
}

/// Serves until SIGTERM or SIGINT.
pub fn run(g: &Global, a: &ServeArgs) -> Result<()> {
    let listen = Listen::parse(&a.host).map_err(anyhow::Error::msg)?;
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("hako serve must run as root (it runs containers for its clients)");
    }
    let engine = g.open_engine()?;
    hako_api::serve(
        engine,
        &ServeOptions {
            listen,
            insecure: a.insecure,
        },
    )
    .map_err(anyhow::Error::msg)
}
