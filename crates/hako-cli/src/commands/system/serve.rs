//! `hako serve`: the Docker Engine API on a unix socket (or TCP with TLS client
//! verification, as dockerd's `--tlsverify`), over the same engine the CLI uses.
//! Containers made through it are the ones `hako ps` shows.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

use hako_api::{Listen, ServeOptions, TlsFiles};

use crate::context::Global;

/// Arguments of `hako serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen: unix:///PATH, tcp://IP:PORT with --tlsverify, or
    /// tcp://127.0.0.1:PORT with --insecure
    #[arg(
        short = 'H',
        long = "host",
        default_value = "unix:///run/hako/hako.sock"
    )]
    pub host: String,
    /// Allow plain TCP (loopback only; anyone who can connect controls hako)
    #[arg(long, conflicts_with = "tlsverify")]
    pub insecure: bool,
    /// Serve TCP with TLS and accept only clients with a certificate signed by --tlscacert
    #[arg(long, requires_all = ["tlscacert", "tlscert", "tlskey"])]
    pub tlsverify: bool,
    /// Trust client certificates signed only by this CA (PEM)
    #[arg(long, value_name = "FILE", requires = "tlsverify")]
    pub tlscacert: Option<PathBuf>,
    /// The server's TLS certificate (PEM)
    #[arg(long, value_name = "FILE", requires = "tlsverify")]
    pub tlscert: Option<PathBuf>,
    /// The server's TLS private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tlsverify")]
    pub tlskey: Option<PathBuf>,
}

/// Serves until SIGTERM or SIGINT.
pub fn run(g: &Global, a: &ServeArgs) -> Result<()> {
    let listen = Listen::parse(&a.host).map_err(anyhow::Error::msg)?;
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("hako serve must run as root (it runs containers for its clients)");
    }
    let tls = match (&a.tlscacert, &a.tlscert, &a.tlskey) {
        (Some(ca), Some(cert), Some(key)) if a.tlsverify => Some(TlsFiles {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let engine = g.open_engine()?;
    hako_api::serve(
        engine,
        &ServeOptions {
            listen,
            insecure: a.insecure,
            tls,
        },
    )
    .map_err(anyhow::Error::msg)
}
