//! `hako serve`: the Docker Engine API on a unix socket (or TCP with TLS client
//! verification, as dockerd's `--tlsverify`), over the same engine the CLI uses.
//! Containers made through it are the ones `hako ps` shows.
//!
//! The server runs in a fresh image of this program: once the options are parsed and
//! checked, `hako serve` execs itself with them in `HAKO_SERVE_EXEC` (same pid, same
//! arguments in `ps`), and `main` starts the server from there before any command-line
//! parsing. A long-lived process keeps every page of code it ever ran mapped; this one
//! never runs the parser of hako's ~100 commands and their help.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;
use serde::{Deserialize, Serialize};

use hako_api::{Listen, ServeOptions, TlsFiles};

use crate::context::{CgroupManager, Global, LogLevel};

/// Carries [`Exec`] (JSON) into the server's own image; removed from the environment
/// before anything else runs there (the shims and their exit commands must not see it).
const EXEC_ENV: &str = "HAKO_SERVE_EXEC";

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

/// What the server's image needs: hako's global options (after the rootless setup) and
/// the checked serve options.
#[derive(Debug, Serialize, Deserialize)]
struct Exec {
    root: PathBuf,
    exec_root: PathBuf,
    storage_driver: Option<String>,
    log_level: LogLevel,
    cgroup_manager: Option<CgroupManager>,
    host: String,
    insecure: bool,
    tls: Option<[PathBuf; 3]>,
}

/// In the image `hako serve` exec'd: serves with the options it was handed (`None` in
/// every other hako process). Called first thing in `main`, before any thread exists.
pub fn exec_main() -> Option<ExitCode> {
    let json = hako_sys::process::take_env_at_start(EXEC_ENV)?;
    let res = serde_json::from_slice::<Exec>(json.as_encoded_bytes())
        .context("read the options hako serve was exec'd with")
        .and_then(|o| {
            let g = Global {
                root: o.root,
                exec_root: o.exec_root,
                storage_driver: o.storage_driver,
                debug: false,
                log_level: o.log_level,
                cgroup_manager: o.cgroup_manager,
            };
            crate::context::init_daemon_logging(&g);
            let tls = o.tls.map(|[ca, cert, key]| TlsFiles { ca, cert, key });
            serve(&g, &o.host, o.insecure, tls)
        });
    Some(match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => crate::error::report(&e, 1),
    })
}

/// Serves until SIGTERM or SIGINT: checks the options, then execs the server's own image
/// (see the module's comment); serves in this process if that exec fails.
pub fn run(g: &Global, a: &ServeArgs) -> Result<()> {
    let listen = Listen::parse(&a.host).map_err(anyhow::Error::msg)?;
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("hako serve must run as root (it runs containers for its clients)");
    }
    let tls = match (&a.tlscacert, &a.tlscert, &a.tlskey) {
        (Some(ca), Some(cert), Some(key)) if a.tlsverify => {
            Some([ca.clone(), cert.clone(), key.clone()])
        }
        _ => None,
    };
    drop(listen);
    let exec = Exec {
        root: g.root.clone(),
        exec_root: g.exec_root.clone(),
        storage_driver: g.storage_driver.clone(),
        log_level: if g.debug {
            LogLevel::Debug
        } else {
            g.log_level
        },
        cgroup_manager: g.cgroup_manager,
        host: a.host.clone(),
        insecure: a.insecure,
        tls: tls.clone(),
    };
    if let Ok(exe) = std::env::current_exe() {
        let mut args = std::env::args_os();
        let mut cmd = std::process::Command::new(exe);
        if let Some(argv0) = args.next() {
            cmd.arg0(argv0);
        }
        let err = cmd
            .args(args)
            .env(EXEC_ENV, serde_json::to_string(&exec)?)
            .exec();
        tracing::warn!("serving without a fresh image: exec of hako failed: {err}");
    }
    let tls = tls.map(|[ca, cert, key]| TlsFiles { ca, cert, key });
    serve(g, &a.host, a.insecure, tls)
}

fn serve(g: &Global, host: &str, insecure: bool, tls: Option<TlsFiles>) -> Result<()> {
    let listen = Listen::parse(host).map_err(anyhow::Error::msg)?;
    let engine = g.open_engine()?;
    hako_api::serve(
        engine,
        &ServeOptions {
            listen,
            insecure,
            tls,
        },
    )
    .map_err(anyhow::Error::msg)
}
