//! Container commands: `run`, `create`, `start`, `ps`, `stop`, ... over `hako-engine`.

pub mod commit;
pub mod cp;
pub mod create_args;
pub mod diff;
pub mod exec;
pub mod export;
pub mod inspect;
pub mod logs;
pub mod manage;
pub mod port;
pub mod prune;
pub mod ps;
pub mod resource_args;
pub mod run;
pub mod stats;
pub mod stream;
pub mod top;
pub mod update;

use crate::error::AlreadyReported;

/// An error with Docker's exit code: the container's status (`message` then is `None`),
/// 126/127 when the command cannot be run, or (`code` None) the failing command's own
/// status: 125 for `run`, 1 for the others, as the docker CLI leaves.
#[derive(Debug, thiserror::Error)]
#[error("{}", message.as_deref().unwrap_or("container exited"))]
pub struct EngineError {
    /// What to print (nothing for a container's own exit status).
    pub message: Option<String>,
    /// The exit code; None for the command's default.
    pub code: Option<i32>,
}

impl EngineError {
    /// Leave with the container's status, printing nothing.
    pub fn exit(code: i32) -> anyhow::Error {
        anyhow::Error::new(EngineError {
            message: None,
            code: Some(code),
        })
    }

    /// Fail with `message` and exactly `code`, whatever the command.
    pub fn with_code(message: impl Into<String>, code: i32) -> anyhow::Error {
        anyhow::Error::new(EngineError {
            message: Some(message.into()),
            code: Some(code),
        })
    }
}

/// An engine error, with its exit code (the runtime's 126/127 when the command could not
/// be run; the command's default otherwise).
pub fn engine_err(e: hako_engine::Error) -> anyhow::Error {
    let code = match &e {
        hako_engine::Error::Runtime { exit_code, .. } if *exit_code != 125 => Some(*exit_code),
        _ => None,
    };
    anyhow::Error::new(EngineError {
        message: Some(e.to_string()),
        code,
    })
}

/// Runs `f` for each container; prints each failure as its own line and fails at the end
/// if any did (Docker's behaviour for `stop a b c`).
pub fn for_each(
    items: &[String],
    mut f: impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut failed = 0;
    for it in items {
        if let Err(e) = f(it) {
            eprintln!("Error: {}", crate::error::chain_line(&e));
            failed += 1;
        }
    }
    if failed > 0 {
        return Err(AlreadyReported(failed).into());
    }
    Ok(())
}
