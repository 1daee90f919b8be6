//! How errors reach the user: one line on stderr, `Error: ` and Docker's wording, and
//! Docker's exit codes: 125 when `run` fails before its container does and for usage
//! errors of any command, 126/127 when the container's command cannot be run, the
//! container's own status, and 1 when any other command fails (as the docker CLI).

use std::process::ExitCode;

/// Exit status for usage errors and for a failing `run` (and `create`'s bad flags).
pub const EXIT_HAKO: u8 = 125;
/// Exit status for every other failing command.
pub const EXIT_FAILURE: u8 = 1;

/// Errors already printed (one line each, like `rmi a b` with two failures): only the
/// exit code is left to set.
#[derive(Debug, thiserror::Error)]
#[error("{0} of the operations failed")]
pub struct AlreadyReported(pub usize);

/// Prints `e` as one line and returns the exit code: the one `e` carries, else
/// `default` (the failing command's, [`failure_status`]).
pub fn report(e: &anyhow::Error, default: u8) -> ExitCode {
    if is_broken_pipe(e) {
        // `hako images | head -1`: the reader left, nothing to say.
        return ExitCode::SUCCESS;
    }
    if let Some(ee) = e.downcast_ref::<crate::commands::container::EngineError>() {
        if let Some(m) = &ee.message {
            eprintln!("Error: {}", one_line(m));
        }
        return match ee.code {
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(default)),
            None => ExitCode::from(default),
        };
    }
    if e.downcast_ref::<AlreadyReported>().is_some() {
        return ExitCode::from(default);
    }
    eprintln!("Error: {}", chain_line(e));
    ExitCode::from(default)
}

/// The status a failing `command` leaves with: 125 for `run` (Docker wraps all of run's
/// errors so that they differ from the container's own statuses), 1 for the others.
pub fn failure_status(command: &crate::cli::Command) -> u8 {
    use crate::cli::{Command, ContainerCommand};
    match command {
        Command::Run(_) | Command::Container(ContainerCommand::Run(_)) => EXIT_HAKO,
        _ => EXIT_FAILURE,
    }
}

/// `e` and its causes as one line, `context: cause: cause`, each cause once: an error
/// whose message already ends with its source's text (common with `thiserror`'s
/// `"{context}: {source}"`) does not print that source again.
pub fn chain_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    one_line(&line)
}

/// Clap's errors: help and version are printed with status 0; a usage error is one line
/// (`Error: unexpected argument '--x' found; see 'hako images --help'`), naming what is
/// missing (`hako stop`) or the command meant (`hako pss`). The status is Docker's: 125
/// for a bad flag (unknown, or a value it cannot take), 1 for a missing or extra argument
/// and an unknown command.
pub fn report_usage(e: &clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        // `hako network` alone prints the group's help on stdout and succeeds, as
        // `docker network` does (clap would print it on stderr).
        if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            print!("{}", e.render());
        } else {
            let _ = e.print();
        }
        return ExitCode::SUCCESS;
    }
    let text = e.to_string();
    let usage = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))
        .and_then(|u| {
            let words: Vec<&str> = u
                .split_whitespace()
                .take_while(|w| {
                    !w.starts_with('[')
                        && !w.starts_with('<')
                        && !w.starts_with('-')
                        && w.chars().any(|c| c.is_ascii_lowercase())
                })
                .collect();
            (!words.is_empty()).then(|| words.join(" "))
        });
    let strings = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::Strings(v)) => v.clone(),
        _ => Vec::new(),
    };
    let first = match e.kind() {
        ErrorKind::InvalidSubcommand => {
            let name = strings(ContextKind::InvalidSubcommand).join(" ");
            // clap orders its suggestions by confidence, the best last.
            match strings(ContextKind::SuggestedSubcommand).last() {
                None => format!("unknown command '{name}'"),
                Some(s) => format!("unknown command '{name}' (did you mean '{s}'?)"),
            }
        }
        ErrorKind::MissingRequiredArgument => format!(
            "missing argument {}",
            strings(ContextKind::InvalidArg).join(" ")
        ),
        _ => text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid arguments")
            .trim_start_matches("error: ")
            .to_string(),
    };
    match usage {
        Some(cmd) => eprintln!("Error: {first}; see '{cmd} --help'"),
        None => eprintln!("Error: {first}"),
    }
    let flag_error = match e.kind() {
        ErrorKind::MissingRequiredArgument
        | ErrorKind::InvalidSubcommand
        | ErrorKind::MissingSubcommand => false,
        // clap says "unexpected argument" for an extra positional argument too.
        ErrorKind::UnknownArgument => strings(ContextKind::InvalidArg)
            .first()
            .is_none_or(|a| a.starts_with('-')),
        _ => true,
    };
    ExitCode::from(if flag_error { EXIT_HAKO } else { EXIT_FAILURE })
}

pub fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || matches!(
                c.downcast_ref::<hako_image::Error>(),
                Some(hako_image::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe
            )
    })
}

/// An image-store error in Docker's words: `No such image: foo:latest` names the
/// reference as Docker normalizes it (tag `latest` added, short form).
pub fn image_error(e: hako_image::Error) -> anyhow::Error {
    match e {
        hako_image::Error::NoSuchImage(name) => {
            anyhow::anyhow!("No such image: {}", familiar(&name))
        }
        other => anyhow::Error::new(other),
    }
}

/// `foo` -> `foo:latest`, `docker.io/library/foo:1` -> `foo:1`; ids stay as given.
pub fn familiar(name: &str) -> String {
    if name.starts_with("sha256:") {
        return name.to_string();
    }
    match hako_image::Reference::parse(name) {
        Ok(r) => r.with_default_tag().familiar(),
        Err(_) => name.to_string(),
    }
}
