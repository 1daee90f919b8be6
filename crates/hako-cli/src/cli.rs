//! The command tree. Docker's names: top-level shortcuts (`hako images`, `hako rmi`) and
//! the same commands under their object (`hako image ls`, `hako image rm`). Container
//! commands (`run`, `ps`, ...) and the `container` group will join this enum.

use clap::{Parser, Subcommand};

use crate::commands::image::{
    history::HistoryArgs, import::ImportArgs, inspect::InspectArgs, list::ListArgs, load::LoadArgs,
    prune::PruneArgs, remove::RemoveArgs, save::SaveArgs, tag::TagArgs,
};
use crate::commands::registry::{
    login::{LoginArgs, LogoutArgs},
    pull::PullArgs,
    push::PushArgs,
};
use crate::commands::system::{df::DfArgs, info::InfoArgs, version::VersionArgs};
use crate::context::Global;

/// A Docker-compatible container engine, without a daemon.
#[derive(Debug, Parser)]
#[command(name = "hako", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage hako
    #[command(subcommand)]
    System(SystemCommand),
}

/// `hako image ...`
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
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
    /// Show hako disk usage
    Df(DfArgs),
    /// Display system-wide information
    Info(InfoArgs),
}
