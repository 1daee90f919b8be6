//! `hako run`, `hako create`, `hako start`: Docker's flow. `run` = create, then (unless
//! `-d`) attach before start so no output is lost, then wait and exit with the
//! container's status; with `--rm` the shim removes the container when it exits.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use hako_engine::{AttachOptions, Engine};

use super::create_args::CreateArgs;
use super::stream::{self, End};
use super::{EngineError, engine_err};
use crate::context::Global;

/// Arguments of `hako run`.
#[derive(Debug, Args)]
#[command(
    disable_help_flag = true,
    override_usage = "hako run [OPTIONS] IMAGE [COMMAND] [ARG...]"
)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short, long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    #[command(flatten)]
    pub create: CreateArgs,
}

/// Arguments of `hako create`.
#[derive(Debug, Args)]
#[command(
    disable_help_flag = true,
    override_usage = "hako create [OPTIONS] IMAGE [COMMAND] [ARG...]"
)]
pub struct CreateCmdArgs {
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    #[command(flatten)]
    pub create: CreateArgs,
}

/// Arguments of `hako start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// Containers to start
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Pulls `image` for `run`/`create` the way Docker does: progress and status lines on
/// stderr (stdout belongs to the container).
fn pull(engine: &Engine, image: &str, insecure: bool, quiet: bool) -> Result<()> {
    use hako_image::registry::{PullOptions, load_credentials};
    let r = hako_image::Reference::parse(image).map_err(crate::error::image_error)?;
    let what = r.digest().map_or_else(
        || r.tag().unwrap_or("latest").to_string(),
        ToString::to_string,
    );
    // "Pulling from" once the registry answered (Docker prints it after the manifest).
    // Progress comes from the download threads: the first one prints, the others wait.
    let header = std::sync::Mutex::new(quiet);
    let say_pulling = || {
        let mut shown = header
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*shown {
            *shown = true;
            eprintln!("{what}: Pulling from {}", r.path());
        }
    };
    let show = crate::commands::registry::progress::LayerProgress::on_stderr();
    let callback = |e| {
        say_pulling();
        show.event(e);
    };
    let opts = PullOptions {
        insecure,
        credentials: load_credentials(&crate::commands::registry::config_path(), r.domain())?,
        progress: (!quiet).then_some(&callback as _),
        ..PullOptions::default()
    };
    let report = engine
        .images()
        .pull(image, &opts)
        .map_err(crate::error::image_error)?;
    say_pulling();
    if !quiet {
        eprintln!("Digest: {}", report.digest);
        eprintln!("Status: Downloaded newer image for {}", report.reference);
    }
    Ok(())
}

fn create(
    engine: &Engine,
    a: &CreateArgs,
    verb: &str,
    detach: bool,
) -> Result<hako_engine::Record> {
    // Flags that do not make a valid container fail with 125 for `create` too (Docker's
    // CLI checks them before it asks the daemon); `run` fails with 125 anyway.
    let mut opts = a.to_options(verb).map_err(|e| {
        if e.is::<EngineError>() {
            e
        } else {
            EngineError::with_code(crate::error::chain_line(&e), 125)
        }
    })?;
    if detach {
        if !a.attach.is_empty() {
            anyhow::bail!("Conflicting options: -a and -d");
        }
        // `run -d` attaches nothing (Docker clears these).
        let c = &mut opts.config;
        c.attach_stdin = Some(false);
        c.attach_stdout = Some(false);
        c.attach_stderr = Some(false);
        c.stdin_once = Some(false);
    }
    let image = opts.config.image.clone().unwrap_or_default();
    if a.pull == "always" && a.rootfs.is_none() {
        pull(engine, &image, a.insecure_registry, a.quiet)?;
    }
    // `run` starts what it creates: the root filesystem stays mounted for that start.
    let make = |opts| {
        if verb == "run" {
            engine.create_to_start(opts)
        } else {
            engine.create(opts)
        }
    };
    let rec = match make(opts.clone()) {
        Err(hako_engine::Error::NoSuchImage(name)) if a.pull == "missing" => {
            eprintln!("Unable to find image '{name}' locally");
            pull(engine, &image, a.insecure_registry, a.quiet)?;
            make(opts).map_err(engine_err)?
        }
        Err(hako_engine::Error::NoSuchImage(name)) => {
            return Err(engine_err(hako_engine::Error::InvalidArgument(format!(
                "No such image: {name}"
            ))));
        }
        other => other.map_err(engine_err)?,
    };
    if let Some(f) = &a.cidfile {
        std::fs::write(f, &rec.id)?;
    }
    Ok(rec)
}

/// `hako create`.
pub fn run_create(g: &Global, a: &CreateCmdArgs) -> Result<()> {
    let engine = g.open_engine()?;
    let rec = create(&engine, &a.create, "create", false)?;
    println!("{}", rec.id);
    Ok(())
}

/// Forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to the container (`--sig-proxy`).
fn proxy_signals(engine: &Engine, id: &str) -> Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        set.add(s);
    }
    set.thread_block()?;
    let kill = engine.signal_command(id).map_err(engine_err)?;
    std::thread::spawn(move || {
        while let Ok(sig) = set.wait() {
            let _ = kill.send(sig.as_str());
        }
    });
    Ok(())
}

/// Attaches, starts and waits; returns the exit code to leave with.
fn attached_run(
    engine: &Engine,
    id: &str,
    streams: AttachOptions,
    keys: &str,
    sig_proxy: bool,
    tty: bool,
) -> Result<i32> {
    let keys = stream::detach_keys(keys)?;
    let (rec, mut att, waiter) = engine
        .start_attached(id, &streams, stream::terminal_size())
        .map_err(engine_err)?;
    // Held until this CLI has removed an `--rm` container: the shim's exit command waits
    // for it (instead of a second process racing this one for the removal).
    let _removal = att.take_removal_lock();
    if sig_proxy && !tty {
        proxy_signals(engine, &rec.id)?;
    }
    let end = stream::pump(att, streams.stdin, &keys)?;
    if end == End::Detached {
        eprintln!("\nread escape sequence");
        return Ok(0);
    }
    let code = waiter.wait().map_err(engine_err)?;
    if rec.host_config.auto_remove == Some(true) {
        // The shim's exit command removes it too (that is what makes `--rm` work when this
        // CLI is gone); whoever claims the removal first does it, and `run --rm` returns
        // once the container is gone either way.
        match engine.remove(&rec.id, true, true) {
            Ok(_) | Err(hako_engine::Error::NoSuchContainer(_)) => {}
            Err(e) => return Err(engine_err(e)),
        }
        if !engine.wait_removed(&rec.id, Duration::from_secs(30)) {
            anyhow::bail!("container {} was not removed within 30 s", &rec.id[..12]);
        }
    }
    Ok(code)
}

/// `hako run`.
pub fn run(g: &Global, a: &RunArgs) -> Result<()> {
    if !a.detach {
        let stdin = a.create.interactive || a.create.attach.iter().any(|s| s == "stdin");
        stream::check_tty(stdin, a.create.tty)?;
    }
    let engine = g.open_engine()?;
    let rec = create(&engine, &a.create, "run", a.detach)?;
    if a.detach {
        if let Err(e) = engine.start(&rec.id) {
            if rec.host_config.auto_remove == Some(true) {
                let _ = engine.remove(&rec.id, true, true);
            }
            return Err(engine_err(e));
        }
        println!("{}", rec.id);
        return Ok(());
    }
    // The streams `-a` chose (stdout and stderr without it; stdin with -i).
    let c = &rec.config;
    let streams = AttachOptions {
        stdin: c.attach_stdin == Some(true) && c.open_stdin == Some(true),
        stdout: c.attach_stdout != Some(false),
        stderr: c.attach_stderr != Some(false),
    };
    match attached_run(
        &engine,
        &rec.id,
        streams,
        &a.detach_keys,
        a.sig_proxy,
        a.create.tty,
    ) {
        Ok(0) => Ok(()),
        Ok(code) => Err(EngineError::exit(code)),
        Err(e) => {
            if rec.host_config.auto_remove == Some(true) {
                let _ = engine.remove(&rec.id, true, true);
            }
            Err(e)
        }
    }
}

/// `hako start`.
pub fn run_start(g: &Global, a: &StartArgs) -> Result<()> {
    let engine = g.open_engine()?;
    if a.attach || a.interactive {
        let [one] = a.containers.as_slice() else {
            anyhow::bail!("you cannot start and attach multiple containers at once");
        };
        let rec = engine.get(one).map_err(engine_err)?;
        let tty = rec.config.tty.unwrap_or(false);
        stream::check_tty(a.interactive && rec.config.open_stdin.unwrap_or(false), tty)?;
        // Docker's `start -a`: stdout and stderr, stdin with -i if it is open.
        let streams = AttachOptions {
            stdin: a.interactive && rec.config.open_stdin.unwrap_or(false),
            stdout: true,
            stderr: true,
        };
        return match attached_run(&engine, one, streams, &a.detach_keys, true, tty)? {
            0 => Ok(()),
            code => Err(EngineError::exit(code)),
        };
    }
    super::for_each(&a.containers, |c| {
        engine.start(c).map_err(engine_err)?;
        println!("{c}");
        Ok(())
    })
}
