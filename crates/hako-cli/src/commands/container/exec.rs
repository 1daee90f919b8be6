//! `hako exec`: an exec session (create, start attached or detached, wait), its output
//! and input pumped like `attach`.

use anyhow::Result;
use clap::Args;
use hako_engine::ExecOptions;

use super::stream::{self, End};
use super::{EngineError, engine_err};
use crate::context::Global;

/// Arguments of `hako exec`.
#[derive(Debug, Args)]
#[command(override_usage = "hako exec [OPTIONS] CONTAINER COMMAND [ARG...]")]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "STRING")]
    pub detach_keys: Option<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "LIST", value_parser = super::create_args::env_var)]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<std::path::PathBuf>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// The container, then the command and its arguments: everything after the container
    /// belongs to the command, flags included (Docker's `exec CONTAINER COMMAND [ARG...]`).
    #[arg(value_name = "CONTAINER", trailing_var_arg = true)]
    pub args: Vec<String>,
}

/// `hako exec`.
pub fn run(g: &Global, a: &ExecArgs) -> Result<()> {
    let Some((container, command)) = a.args.split_first().filter(|(_, c)| !c.is_empty()) else {
        anyhow::bail!(
            "'hako exec' requires at least 2 arguments: CONTAINER COMMAND [ARG...]; see 'hako exec --help'"
        );
    };
    let keys = stream::detach_keys(a.detach_keys.as_deref().unwrap_or("ctrl-p,ctrl-q"))?;
    if !a.detach {
        stream::check_tty(a.interactive, a.tty)?;
    }
    let engine = g.open_engine()?;
    // The files first, then -e, as Docker merges them (a later one wins).
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(super::create_args::env_file(f)?);
    }
    env.extend(
        a.env
            .iter()
            .filter_map(|e| super::create_args::expand_env(e)),
    );
    let o = ExecOptions {
        cmd: command.to_vec(),
        tty: a.tty,
        interactive: a.interactive,
        detach: a.detach,
        env,
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        privileged: a.privileged,
        attach_stdout: !a.detach,
        attach_stderr: !a.detach,
        detach_keys: a.detach_keys.clone(),
        console_size: a.tty.then(stream::terminal_size).flatten(),
    };
    let id = engine.exec_create(container, &o).map_err(engine_err)?;
    let Some(att) = engine.exec_start(&id, a.detach).map_err(engine_err)? else {
        return Ok(());
    };
    let end = stream::pump(att, a.interactive, &keys)?;
    if end == End::Detached {
        eprintln!("\nread escape sequence");
        return Ok(());
    }
    match engine.exec_wait(&id).map_err(engine_err)? {
        0 => Ok(()),
        c => Err(EngineError::exit(c)),
    }
}
