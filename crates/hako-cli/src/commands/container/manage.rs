//! `stop`, `kill`, `restart`, `rm`, `pause`, `unpause`, `wait`, `rename`, `attach`, and the
//! hidden `container cleanup` the shim runs for `--rm`.

use anyhow::Result;
use clap::Args;

use super::stream::{self, End};
use super::{EngineError, engine_err, for_each};
use crate::context::Global;

/// Arguments of `hako stop` and `hako restart`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "time",
        alias = "timeout",
        allow_hyphen_values = true
    )]
    pub time: Option<i64>,
    /// Signal to send to the container
    #[arg(short, long)]
    pub signal: Option<String>,
    /// Containers
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Arguments of `hako kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    /// Containers
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Arguments of `hako rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    pub volumes: bool,
    /// Containers
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Arguments of commands that take a list of containers.
#[derive(Debug, Args)]
pub struct ContainersArgs {
    /// Containers
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Arguments of `hako rename`.
#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The container
    pub container: String,
    /// Its new name
    pub new_name: String,
}

/// Arguments of `hako attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// The container
    pub container: String,
}

/// Arguments of the hidden `container cleanup`.
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// The container
    pub container: String,
}

/// `hako stop`.
pub fn stop(g: &Global, a: &StopArgs) -> Result<()> {
    let engine = g.open_engine()?;
    for_each(&a.containers, |c| {
        engine
            .stop(c, a.time, a.signal.as_deref())
            .map_err(engine_err)?;
        println!("{c}");
        Ok(())
    })
}

/// `hako restart`.
pub fn restart(g: &Global, a: &StopArgs) -> Result<()> {
    let engine = g.open_engine()?;
    for_each(&a.containers, |c| {
        engine.restart(c, a.time).map_err(engine_err)?;
        println!("{c}");
        Ok(())
    })
}

/// `hako kill`.
pub fn kill(g: &Global, a: &KillArgs) -> Result<()> {
    let engine = g.open_engine()?;
    for_each(&a.containers, |c| {
        engine.kill(c, &a.signal).map_err(engine_err)?;
        println!("{c}");
        Ok(())
    })
}

/// `hako rm`.
pub fn rm(g: &Global, a: &RmArgs) -> Result<()> {
    let engine = g.open_engine()?;
    for_each(&a.containers, |c| {
        engine.rm(c, a.force, a.volumes).map_err(engine_err)?;
        println!("{c}");
        Ok(())
    })
}

/// `hako pause`.
pub fn pause(g: &Global, a: &ContainersArgs) -> Result<()> {
    let engine = g.open_engine()?;
    for_each(&a.containers, |c| {
        engine.pause(c).map_err(engine_err)?;
        println!("{c}");
        Ok(())
    })
}

/// `hako unpause`.
pub fn unpause(g: &Global, a: &ContainersArgs) -> Result<()> {
    let engine = g.open_engine()?;
    for_each(&a.containers, |c| {
        engine.unpause(c).map_err(engine_err)?;
        println!("{c}");
        Ok(())
    })
}

/// `hako wait`: prints each container's exit code once it stops.
pub fn wait(g: &Global, a: &ContainersArgs) -> Result<()> {
    let engine = g.open_engine()?;
    for_each(&a.containers, |c| {
        let code = engine.wait(c).map_err(engine_err)?;
        println!("{code}");
        Ok(())
    })
}

/// `hako rename`.
pub fn rename(g: &Global, a: &RenameArgs) -> Result<()> {
    let engine = g.open_engine()?;
    engine.rename(&a.container, &a.new_name).map_err(engine_err)
}

/// `hako attach`.
pub fn attach(g: &Global, a: &AttachArgs) -> Result<()> {
    let engine = g.open_engine()?;
    let rec = engine.get(&a.container).map_err(engine_err)?;
    let stdin = !a.no_stdin && rec.config.open_stdin.unwrap_or(false);
    stream::check_tty(stdin, rec.config.tty.unwrap_or(false))?;
    let att = engine.attach(&rec.id, stdin).map_err(engine_err)?;
    let keys = stream::detach_keys(&a.detach_keys)?;
    let end = stream::pump(att, stdin, &keys)?;
    if end == End::Detached {
        eprintln!("\nread escape sequence");
        return Ok(());
    }
    match engine.wait(&rec.id).map_err(engine_err)? {
        0 => Ok(()),
        code => Err(EngineError::exit(code)),
    }
}

/// The shim's exit command for `--rm` containers.
pub fn cleanup(g: &Global, a: &CleanupArgs) -> Result<()> {
    // Most runs end here: whoever waited for the exit has removed the container already.
    if !hako_engine::cleanup_needed(&g.root, &g.exec_root, &a.container).map_err(engine_err)? {
        return Ok(());
    }
    let engine = g.open_engine()?;
    engine.cleanup(&a.container).map_err(engine_err)
}
