//! The command tree. Docker's names: top-level shortcuts (`hako images`, `hako rmi`) and
//! the same commands under their object (`hako image ls`, `hako image rm`,
//! `hako container ps`).

use clap::{Parser, Subcommand};

use crate::commands::build::{BuildArgs, BuilderCommand};
use crate::commands::container::update::UpdateArgs;
use crate::commands::container::{
    commit::CommitArgs,
    cp::CpArgs,
    diff::DiffArgs,
    exec::ExecArgs,
    export::ExportArgs,
    inspect::InspectArgs as ObjectInspectArgs,
    logs::LogsArgs,
    manage::{AttachArgs, CleanupArgs, ContainersArgs, KillArgs, RenameArgs, RmArgs, StopArgs},
    port::PortArgs,
    prune::PruneArgs as ContainerPruneArgs,
    ps::PsArgs,
    run::{CreateCmdArgs, RunArgs, StartArgs},
    stats::StatsArgs,
    top::TopArgs,
};
use crate::commands::image::{
    history::HistoryArgs, import::ImportArgs, inspect::InspectArgs, list::ListArgs, load::LoadArgs,
    prune::PruneArgs, remove::RemoveArgs, save::SaveArgs, tag::TagArgs,
};
use crate::commands::registry::{
    login::{LoginArgs, LogoutArgs},
    pull::PullArgs,
    push::PushArgs,
};
use crate::commands::system::boot::BootArgs;
use crate::commands::system::docs::{CompletionArgs, ManpagesArgs};
use crate::commands::system::{
    df::DfArgs, events::EventsArgs, info::InfoArgs, prune::PruneArgs as SystemPruneArgs,
    serve::ServeArgs, version::VersionArgs,
};
use crate::commands::volume::{
    ls::LsArgs as VolumeLsArgs,
    manage::{
        CreateArgs as VolumeCreateArgs, InspectArgs as VolumeInspectArgs, RmArgs as VolumeRmArgs,
    },
    prune::PruneArgs as VolumePruneArgs,
};
use crate::context::Global;

/// A Docker-compatible container engine, without a daemon.
#[derive(Debug, Parser)]
#[command(name = "hako", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and run a new container from an image
    Run(RunArgs),
    /// Build an image from a Dockerfile
    Build(BuildArgs),
    /// Create a new container
    Create(CreateCmdArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// List containers
    Ps(PsArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Pause all processes within one or more containers
    Pause(ContainersArgs),
    /// Unpause all processes within one or more containers
    Unpause(ContainersArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(ContainersArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Return low-level information on containers or images
    Inspect(ObjectInspectArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(CpArgs),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(DiffArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
    /// List images
    Images(ListArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    Rmi(RemoveArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Display system-wide information
    Info(InfoArgs),
    /// Get real time events from hako (CLI, shims and `hako serve` alike)
    Events(EventsArgs),
    /// Serve the Docker Engine API (for the docker CLI, docker-py, compose)
    Serve(ServeArgs),
    /// Show the hako version information
    Version(VersionArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Log in to a registry (credentials go to Docker's config.json)
    Login(LoginArgs),
    /// Log out from a registry
    Logout(LogoutArgs),
    /// Generate the shell completion script (bash, zsh, fish)
    Completion(CompletionArgs),
    /// Write man pages for hako and each command into a directory (scripts/install.sh)
    #[command(hide = true)]
    Manpages(ManpagesArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage builds
    #[command(subcommand)]
    Builder(BuilderCommand),
    /// Manage hako
    #[command(subcommand)]
    System(SystemCommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCommand),
}

/// `hako network ...`
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create(crate::commands::network::CreateArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(crate::commands::network::LsArgs),
    /// Display detailed information on one or more networks
    Inspect(crate::commands::network::InspectArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(crate::commands::network::RmArgs),
    /// Connect a container to a network
    Connect(crate::commands::network::ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(crate::commands::network::DisconnectArgs),
    /// Remove all unused networks
    Prune(crate::commands::network::PruneArgs),
}

/// `hako volume ...`
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(VolumeCreateArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(VolumeLsArgs),
    /// Display detailed information on one or more volumes
    Inspect(VolumeInspectArgs),
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    Rm(VolumeRmArgs),
    /// Remove unused local volumes
    Prune(VolumePruneArgs),
}

/// `hako image ...`
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build an image from a Dockerfile
    Build(BuildArgs),
    /// List images
    #[command(visible_alias = "list")]
    Ls(ListArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove", visible_alias = "rmi")]
    Rm(RemoveArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Remove unused images
    Prune(PruneArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
}

/// `hako system ...`
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Start the containers whose restart policy brings them back after a reboot
    /// (always, unless-stopped); run once at boot (scripts/hako-boot.service)
    Boot(BootArgs),
    /// Check the store's consistency (and repair it with --repair)
    Check(crate::commands::system::check::CheckArgs),
    /// Show hako disk usage
    Df(DfArgs),
    /// Get real time events from hako
    Events(EventsArgs),
    /// Display system-wide information
    Info(InfoArgs),
    /// Remove unused data
    Prune(SystemPruneArgs),
}

/// `hako container ...`
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Create and run a new container from an image
    Run(RunArgs),
    /// Create a new container
    Create(CreateCmdArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// List containers
    #[command(visible_alias = "ps", visible_alias = "list")]
    Ls(PsArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Pause all processes within one or more containers
    Pause(ContainersArgs),
    /// Unpause all processes within one or more containers
    Unpause(ContainersArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(ContainersArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Display detailed information on one or more containers
    Inspect(ObjectInspectArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(CpArgs),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(DiffArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
    /// Remove all stopped containers
    Prune(ContainerPruneArgs),
    /// Remove a stopped `--rm` container (run by the shim when it exits)
    #[command(hide = true)]
    Cleanup(CleanupArgs),
}
