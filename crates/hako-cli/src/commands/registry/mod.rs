//! Registry commands: `pull`, `push`, `login`, `logout` (over `hako_image::registry`).

pub mod login;
pub mod progress;
pub mod pull;
pub mod push;

use std::path::PathBuf;

/// Docker's client config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
/// credentials are shared with the docker CLI.
pub fn config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => PathBuf::from(d).join("config.json"),
        None => std::env::var_os("HOME")
            .map_or_else(|| PathBuf::from("/root"), PathBuf::from)
            .join(".docker/config.json"),
    }
}
