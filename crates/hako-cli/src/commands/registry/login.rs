//! `hako login` / `hako logout`: credentials in Docker's `config.json`.

use std::io::Read;

use anyhow::{Result, bail};
use clap::Args;
use hako_image::registry::{Credentials, login, logout};

/// Arguments of `hako login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,

    /// Password (prefer --password-stdin: this one shows in `ps`)
    #[arg(short, long)]
    pub password: Option<String>,

    /// Take the password from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,

    /// Allow plain http to this registry (loopback registries always may)
    #[arg(long)]
    pub insecure: bool,

    /// The registry (default: docker.io)
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

/// Arguments of `hako logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (default: docker.io)
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

fn server(s: Option<&str>) -> String {
    let s = s.unwrap_or("docker.io");
    let s = s
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    s.split('/').next().unwrap_or(s).to_string()
}

/// Checks the credentials with the registry and stores them.
pub fn run_login(a: &LoginArgs) -> Result<()> {
    let Some(username) = a.username.clone() else {
        bail!("username is required: use -u (hako does not prompt)");
    };
    let password = match (&a.password, a.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => p.clone(),
        (None, true) => {
            let mut p = String::new();
            std::io::stdin().read_to_string(&mut p)?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => bail!("password is required: use --password-stdin or -p"),
    };
    if password.is_empty() {
        bail!("password is empty");
    }
    let registry = server(a.server.as_deref());
    login(
        &registry,
        &Credentials { username, password },
        &super::config_path(),
        a.insecure,
    )?;
    crate::commands::print("Login Succeeded\n")
}

/// Forgets the credentials.
pub fn run_logout(a: &LogoutArgs) -> Result<()> {
    let registry = server(a.server.as_deref());
    let shown = hako_image::registry::config_key(&registry);
    if logout(&registry, &super::config_path())? {
        crate::commands::print(&format!("Removing login credentials for {shown}\n"))
    } else {
        crate::commands::print(&format!("Not logged in to {shown}\n"))
    }
}
