//! `hako version`.

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use crate::context::Global;
use crate::format::Template;

/// Arguments of `hako version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Format output using a Go template (e.g. '{{.Client.Version}}', '{{json .}}')
    #[arg(short, long)]
    pub format: Option<String>,
}

/// The Docker Engine API version hako's API server will speak (Docker 28.2's).
pub const API_VERSION: &str = "1.50";

/// Prints the version block, or the template on `{Client, Server}`.
pub fn run(_g: &Global, a: &VersionArgs) -> Result<()> {
    let data = data();
    let text = match a.format.as_deref() {
        Some(f) => format!("{}\n", Template::parse(f)?.execute(&data)?),
        None => {
            let c = &data["Client"];
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            format!(
                "Client:\n Version:           {}\n API version:       {}\n OS/Arch:           {}/{}\n\nServer: hako engine (in-process, no daemon)\n Engine:\n  Version:          {}\n  API version:      {} (minimum version 1.24)\n  OS/Arch:          {}/{}\n",
                s(&c["Version"]),
                s(&c["ApiVersion"]),
                s(&c["Os"]),
                s(&c["Arch"]),
                s(&c["Version"]),
                s(&c["ApiVersion"]),
                s(&c["Os"]),
                s(&c["Arch"]),
            )
        }
    };
    super::super::print(&text)
}

/// Go's architecture name of this build (`amd64`, `arm64`).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn data() -> Value {
    let part = json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": API_VERSION,
        "Os": std::env::consts::OS,
        "Arch": go_arch(),
    });
    json!({ "Client": part.clone(), "Server": part })
}
