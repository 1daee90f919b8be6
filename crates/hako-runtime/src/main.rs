//! The `hako-runtime` binary: parse runc's command line, call the library, map the error to
//! one line on stderr (and the log) and an exit code.

use std::process::ExitCode;

use clap::Parser;
use hako_runtime::cli::{Cli, Command, ListFormat};
use hako_runtime::container::{self, create::CreateOptions};
use hako_runtime::output;

fn main() -> ExitCode {
    // Only the verbs that put a process into a container need the sealed image; the check
    // runs before argument parsing so the re-exec happens as early as possible.
    if needs_seal()
        && let Err(e) = hako_runtime::seal::ensure_sealed()
    {
        output::stderr_line(&e.to_string());
        return ExitCode::from(1);
    }
    let cli = Cli::parse();
    if let Err(e) = hako_runtime::logging::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        output::stderr_line(&format!(
            "cannot open log {}: {e}",
            cli.log
                .as_deref()
                .unwrap_or(std::path::Path::new(""))
                .display()
        ));
        return ExitCode::from(1);
    }
    match dispatch(&cli) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        // runc's exec exits 255 on its own failures ("exec failed: ..."), so a caller can
        // tell them from the program's exit status.
        Err(e) if matches!(cli.command, Command::Exec(_)) => {
            tracing::error!("exec failed: {e}");
            // `exec` shares its stderr with the process it runs: with a log file the caller
            // reads the error there (as crun does) and the user sees it once, not twice.
            if cli.log.is_none() {
                output::stderr_line(&format!("exec failed: {e}"));
            }
            ExitCode::from(255)
        }
        Err(e) => {
            tracing::error!("{e}");
            output::stderr_line(&e.to_string());
            ExitCode::from(1)
        }
    }
}

/// Is the subcommand one that enters a container (create, run, exec)?
fn needs_seal() -> bool {
    const WITH_VALUE: [&str; 5] = ["--root", "--log", "--log-format", "--criu", "--rootless"];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
            continue;
        }
        if a.starts_with('-') {
            continue;
        }
        return matches!(a.as_str(), "create" | "run" | "exec" | "restore");
    }
    false
}

fn create_options(cli: &Cli, a: &hako_runtime::cli::CreateArgs) -> CreateOptions {
    CreateOptions {
        root: cli.root.clone(),
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        systemd_cgroup: cli.systemd_cgroup,
    }
}

fn dispatch(cli: &Cli) -> hako_runtime::Result<i32> {
    let root = cli.root.as_path();
    match &cli.command {
        Command::Spec { bundle, rootless } => {
            container::spec::write_spec(bundle, *rootless).map(|()| 0)
        }
        Command::Create(a) => {
            let opts = create_options(cli, a);
            let console = match &a.console_socket {
                Some(p) => container::create::Console::Path(p.clone()),
                None => container::create::Console::None,
            };
            container::create::create(&opts, console).map(|_| 0)
        }
        Command::Start { id } => container::start::start(root, id).map(|()| 0),
        Command::Run {
            create,
            detach,
            keep,
        } => container::run::run(&create_options(cli, create), *detach, *keep),
        Command::State { id } => {
            output::stdout(&format!("{}\n", container::state::state(root, id)?))?;
            Ok(0)
        }
        Command::Kill { all, id, signal } => {
            let sig = container::kill::parse_signal(signal)?;
            container::kill::kill(root, id, sig, *all).map(|()| 0)
        }
        Command::Delete { force, id } => container::delete::delete(root, id, *force).map(|()| 0),
        Command::List { format, quiet } => {
            let rows = container::list::collect(root)?;
            let text = if *quiet {
                rows.iter().map(|r| format!("{}\n", r.id)).collect()
            } else if *format == ListFormat::Json {
                format!("{}\n", serde_json::to_string(&rows).expect("json"))
            } else {
                container::list::table(&rows)
            };
            output::stdout(&text)?;
            Ok(0)
        }
        Command::Exec(a) => container::exec::exec(root, a),
        Command::Ps {
            format,
            id,
            ps_args,
        } => {
            output::stdout(&container::ps::ps(
                root,
                id,
                *format == ListFormat::Json,
                ps_args,
            )?)?;
            Ok(0)
        }
        Command::Pause { id } => container::pause::pause(root, id).map(|()| 0),
        Command::Resume { id } => container::pause::resume(root, id).map(|()| 0),
        Command::Update(a) => container::update::update(root, a).map(|()| 0),
        Command::Events {
            interval,
            stats,
            id,
        } => container::events::events(root, id, interval, *stats).map(|()| 0),
        Command::Checkpoint(a) => container::checkpoint::checkpoint(root, a).map(|()| 0),
        Command::Restore(a) => container::checkpoint::restore(root, a),
        Command::Features => {
            output::stdout(&format!(
                "{}\n",
                serde_json::to_string_pretty(&container::features::features()).expect("json")
            ))?;
            Ok(0)
        }
    }
}
