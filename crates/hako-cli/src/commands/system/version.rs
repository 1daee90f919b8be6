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

/// Prints the version block, or the template on `{Client, Server}` (Docker's
/// `types.VersionResponse`).
pub fn run(_g: &Global, a: &VersionArgs) -> Result<()> {
    let data = json!({
        "Client": hako_engine::version::client_version(),
        "Server": hako_engine::version::server_version(),
    });
    let text = match a.format.as_deref() {
        Some(f) => format!("{}\n", Template::parse(f)?.execute(&data)?),
        None => {
            let (c, sv) = (&data["Client"], &data["Server"]);
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            format!(
                "Client:\n Version:           {}\n API version:       {}\n OS/Arch:           {}/{}\n Context:           default\n\nServer: hako engine (in-process, no daemon)\n Engine:\n  Version:          {}\n  API version:      {} (minimum version {})\n  OS/Arch:          {}/{}\n  Kernel Version:   {}\n",
                s(&c["Version"]),
                s(&c["ApiVersion"]),
                s(&c["Os"]),
                s(&c["Arch"]),
                s(&sv["Version"]),
                s(&sv["ApiVersion"]),
                s(&sv["MinAPIVersion"]),
                s(&sv["Os"]),
                s(&sv["Arch"]),
                s(&sv["KernelVersion"]),
            )
        }
    };
    super::super::print(&text)
}
