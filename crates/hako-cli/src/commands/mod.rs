//! One module per command, grouped by the object they act on.

pub mod build;
pub mod container;
pub mod image;
pub mod network;
pub mod registry;
pub mod system;
pub mod volume;

use std::io::Write;

use anyhow::Result;

use crate::cli::{
    Cli, Command, ContainerCommand as C, ImageCommand, NetworkCommand as N, SystemCommand,
    VolumeCommand as V,
};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Completion(a) => system::docs::completion(&a),
        Command::Manpages(a) => system::docs::manpages(&a),
        Command::Run(a) | Command::Container(C::Run(a)) => container::run::run(g, &a),
        Command::Build(a) | Command::Image(ImageCommand::Build(a)) => build::run(g, &a),
        Command::Builder(build::BuilderCommand::Build(a)) => build::run(g, &a),
        Command::Builder(build::BuilderCommand::Prune(a)) => build::prune(g, &a),
        Command::Create(a) | Command::Container(C::Create(a)) => container::run::run_create(g, &a),
        Command::Start(a) | Command::Container(C::Start(a)) => container::run::run_start(g, &a),
        Command::Ps(a) | Command::Container(C::Ls(a)) => container::ps::run(g, &a),
        Command::Stop(a) | Command::Container(C::Stop(a)) => container::manage::stop(g, &a),
        Command::Restart(a) | Command::Container(C::Restart(a)) => {
            container::manage::restart(g, &a)
        }
        Command::Kill(a) | Command::Container(C::Kill(a)) => container::manage::kill(g, &a),
        Command::Rm(a) | Command::Container(C::Rm(a)) => container::manage::rm(g, &a),
        Command::Pause(a) | Command::Container(C::Pause(a)) => container::manage::pause(g, &a),
        Command::Unpause(a) | Command::Container(C::Unpause(a)) => {
            container::manage::unpause(g, &a)
        }
        Command::Wait(a) | Command::Container(C::Wait(a)) => container::manage::wait(g, &a),
        Command::Rename(a) | Command::Container(C::Rename(a)) => container::manage::rename(g, &a),
        Command::Update(a) | Command::Container(C::Update(a)) => container::update::run(g, &a),
        Command::Attach(a) | Command::Container(C::Attach(a)) => container::manage::attach(g, &a),
        Command::Exec(a) | Command::Container(C::Exec(a)) => container::exec::run(g, &a),
        Command::Logs(a) | Command::Container(C::Logs(a)) => container::logs::run(g, &a),
        Command::Inspect(a) => container::inspect::run(g, &a, false),
        Command::Container(C::Inspect(a)) => container::inspect::run(g, &a, true),
        Command::Container(C::Cleanup(a)) => container::manage::cleanup(g, &a),
        Command::Top(a) | Command::Container(C::Top(a)) => container::top::run(g, &a),
        Command::Stats(a) | Command::Container(C::Stats(a)) => container::stats::run(g, &a),
        Command::Export(a) | Command::Container(C::Export(a)) => container::export::run(g, &a),
        Command::Cp(a) | Command::Container(C::Cp(a)) => container::cp::run(g, &a),
        Command::Port(a) | Command::Container(C::Port(a)) => container::port::run(g, &a),
        Command::Diff(a) | Command::Container(C::Diff(a)) => container::diff::run(g, &a),
        Command::Commit(a) | Command::Container(C::Commit(a)) => container::commit::run(g, &a),
        Command::Container(C::Prune(a)) => container::prune::run(g, &a),
        Command::Volume(V::Create(a)) => volume::manage::create(g, &a),
        Command::Volume(V::Ls(a)) => volume::ls::run(g, &a),
        Command::Volume(V::Inspect(a)) => volume::manage::inspect(g, &a),
        Command::Volume(V::Rm(a)) => volume::manage::rm(g, &a),
        Command::Volume(V::Prune(a)) => volume::prune::run(g, &a),
        Command::Network(N::Create(a)) => network::create(g, &a),
        Command::Network(N::Ls(a)) => network::ls(g, &a),
        Command::Network(N::Inspect(a)) => network::inspect(g, &a),
        Command::Network(N::Rm(a)) => network::rm(g, &a),
        Command::Network(N::Connect(a)) => network::connect(g, &a),
        Command::Network(N::Disconnect(a)) => network::disconnect(g, &a),
        Command::Network(N::Prune(a)) => network::prune(g, &a),
        Command::System(SystemCommand::Prune(a)) => system::prune::run(g, &a),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => image::list::run(g, &a),
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => image::import::run(g, &a),
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => image::load::run(g, &a),
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => image::save::run(g, &a),
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => image::tag::run(g, &a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => image::remove::run(g, &a),
        Command::History(a) | Command::Image(ImageCommand::History(a)) => {
            image::history::run(g, &a)
        }
        Command::Image(ImageCommand::Inspect(a)) => image::inspect::run(g, &a),
        Command::Image(ImageCommand::Prune(a)) => image::prune::run(g, &a),
        Command::Info(a) | Command::System(SystemCommand::Info(a)) => system::info::run(g, &a),
        Command::System(SystemCommand::Df(a)) => system::df::run(g, &a),
        Command::System(SystemCommand::Boot(a)) => system::boot::run(g, &a),
        Command::System(SystemCommand::Check(a)) => system::check::run(g, &a),
        Command::Serve(a) => system::serve::run(g, &a),
        Command::Events(a) | Command::System(SystemCommand::Events(a)) => {
            system::events::run(g, &a)
        }
        Command::Version(a) => system::version::run(g, &a),
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => registry::pull::run(g, &a),
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => registry::push::run(g, &a),
        Command::Login(a) => registry::login::run_login(&a),
        Command::Logout(a) => registry::login::run_logout(&a),
    }
}

/// Writes `text` to stdout (errors, such as a closed pipe, go to the caller).
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
