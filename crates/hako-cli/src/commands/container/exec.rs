//! `hako exec`: run a process in a running container through the OCI runtime's `exec`.

use anyhow::Result;
use clap::Args;
use hako_engine::ExecOptions;

use super::{EngineError, engine_err};
use crate::context::Global;

/// Arguments of `hako exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "LIST")]
    pub env: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Command and arguments
    #[arg(
        required = true,
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// `hako exec`.
pub fn run(g: &Global, a: &ExecArgs) -> Result<()> {
    let engine = g.open_engine()?;
    let env = a
        .env
        .iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e.clone())
            } else {
                std::env::var(e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect();
    let code = engine
        .exec(
            &a.container,
            &ExecOptions {
                cmd: a.command.clone(),
                tty: a.tty,
                interactive: a.interactive,
                detach: a.detach,
                env,
                user: a.user.clone(),
                workdir: a.workdir.clone(),
                privileged: a.privileged,
            },
        )
        .map_err(engine_err)?;
    match code {
        0 => Ok(()),
        c => Err(EngineError::exit(c)),
    }
}
