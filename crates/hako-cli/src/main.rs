//! `hako`: Docker's command line over hako's libraries, no daemon.
//!
//! ```text
//! main.rs          parse (clap), set up logging, run, map the error to an exit code
//! cli.rs           the command tree: top-level shortcuts (`images`, `rmi`, ...) and the
//!                  `image` / `system` groups (containers join as `container` later)
//! context.rs       global flags -> logging, the image store
//! rootless.rs      a normal user's hako: its user namespace (pause process), its dirs
//! commands/        one file per command, grouped by object (image/, system/)
//! hako-format      (crate) the Go-template engine behind every `--format`
//! units.rs         human sizes and times; progress.rs: progress bars on a terminal
//! error.rs         Docker's error lines and exit codes
//! ```

mod cli;
mod commands;
mod context;
mod error;
mod progress;
mod rootless;
mod units;

use std::process::ExitCode;

// `crate::format` for the commands; the engine is its own crate so that fuzz targets reach it.
use hako_format as format;

use clap::Parser;

fn main() -> ExitCode {
    if let Some(code) = rootless::pause_main() {
        return code;
    }
    if let Some(code) = commands::system::serve::exec_main() {
        return code;
    }
    if let Some(code) = exit_command_fast_path() {
        return code;
    }
    let mut cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return error::report_usage(&e),
    };
    context::init_logging(&cli.global);
    let failed = error::failure_status(&cli.command);
    // Before any thread exists (setns of a user namespace needs a single thread).
    if let Err(e) = rootless::enter(&mut cli.global) {
        return error::report(&e, failed);
    }
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => error::report(&e, failed),
    }
}

/// The shim's exit command, exactly as the engine gives it (`--root R --exec-root E
/// container cleanup ID`: `cleanup_command` in context.rs), when whoever waited for the
/// exit removed the container already (most runs): done before the command line parser
/// builds its tree of every command (~1.3 ms of CPU, beside the next container's start on
/// a small machine).
/// Anything else, or a container still there, takes the ordinary path.
fn exit_command_fast_path() -> Option<ExitCode> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let [
        root_flag,
        root,
        exec_flag,
        exec_root,
        container,
        cleanup,
        id,
    ] = args.as_slice()
    else {
        return None;
    };
    if root_flag != "--root"
        || exec_flag != "--exec-root"
        || container != "container"
        || cleanup != "cleanup"
    {
        return None;
    }
    let id = id.to_str()?;
    match hako_engine::cleanup_needed(root.as_ref(), exec_root.as_ref(), id) {
        Ok(false) => Some(ExitCode::SUCCESS),
        _ => None,
    }
}
