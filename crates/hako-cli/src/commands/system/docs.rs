//! `hako completion SHELL` (Docker's command: a completion script on stdout, clap_complete)
//! and the hidden `hako manpages DIR` (one page per command, clap_mangen) that
//! `scripts/install.sh` runs.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, CommandFactory, ValueEnum};

/// Shells `hako completion` writes for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    /// bash (bash-completion)
    Bash,
    /// zsh
    Zsh,
    /// fish
    Fish,
}

/// Arguments of `hako completion`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Arguments of the hidden `hako manpages`.
#[derive(Debug, Args)]
pub struct ManpagesArgs {
    /// Where to write hako.1, hako-run.1, hako-image-ls.1, ...
    pub dir: PathBuf,
}

/// `hako completion SHELL`.
pub fn completion(a: &CompletionArgs) -> Result<()> {
    use clap_complete::Shell as S;
    let shell = match a.shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
    };
    let mut cmd = crate::cli::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "hako", &mut out);
    std::io::stdout().write_all(&out)?;
    Ok(())
}

/// `hako manpages DIR`: `hako.1` and one page per (sub)command, hidden ones left out.
pub fn manpages(a: &ManpagesArgs) -> Result<()> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("create {}", a.dir.display()))?;
    let mut cmd = crate::cli::Cli::command();
    cmd.build();
    write_pages(&a.dir, &cmd)
}

/// The page of `cmd` (named by its display name once built: `hako-image-ls`) and of its
/// subcommands.
fn write_pages(dir: &std::path::Path, cmd: &clap::Command) -> Result<()> {
    let name = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    let file = dir.join(format!("{name}.1"));
    std::fs::write(&file, buf).with_context(|| format!("write {}", file.display()))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(dir, sub)?;
    }
    Ok(())
}
