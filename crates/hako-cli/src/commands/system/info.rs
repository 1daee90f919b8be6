//! `hako info`: storage driver, root, cgroups, kernel, OS, and which of Docker's storage
//! drivers this machine cannot offer.

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use crate::commands::container::engine_err;
use crate::context::{Global, UNAVAILABLE_DRIVERS};
use crate::format::Template;
use crate::units::bytes_size;

/// Arguments of `hako info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Format output using a Go template (e.g. '{{.Driver}}', '{{json .}}')
    #[arg(short, long)]
    pub format: Option<String>,
}

/// Prints the information, Docker's layout, or the template on Docker's field names.
pub fn run(g: &Global, a: &InfoArgs) -> Result<()> {
    let template = a.format.as_deref().map(Template::parse).transpose()?;
    let engine = g.open_engine()?;
    let (_, cgroup_note) = cgroup_version();
    let unavailable: Vec<Value> = UNAVAILABLE_DRIVERS
        .iter()
        .take(2)
        .map(|(name, _)| json!([name, driver_absence(name)]))
        .collect();
    let mut info = serde_json::to_value(engine.info().map_err(engine_err)?)?;
    info["UnavailableDrivers"] = Value::Array(unavailable);
    info["Debug"] = Value::Bool(g.debug);
    let text = match template {
        Some(t) => format!("{}\n", t.execute(&info)?),
        None => human(&info, &cgroup_note),
    };
    super::super::print(&text)
}

fn human(i: &Value, cgroup_note: &str) -> String {
    let s = |k: &str| match &i[k] {
        Value::String(v) => v.clone(),
        other => other.to_string(),
    };
    let mut out = String::from("Client:\n");
    out.push_str(&format!(" Version:    {}\n", s("ServerVersion")));
    out.push_str(" Context:    in-process (no daemon)\n");
    out.push_str(&format!(" Debug Mode: {}\n\nServer:\n", s("Debug")));
    out.push_str(&format!(
        " Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}\n",
        s("Containers"),
        s("ContainersRunning"),
        s("ContainersPaused"),
        s("ContainersStopped")
    ));
    out.push_str(&format!(" Images: {}\n", s("Images")));
    out.push_str(&format!(" Server Version: {}\n", s("ServerVersion")));
    out.push_str(&format!(" Storage Driver: {}\n", s("Driver")));
    for kv in i["DriverStatus"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {}: {}\n",
            kv[0].as_str().unwrap_or(""),
            kv[1].as_str().unwrap_or("")
        ));
    }
    out.push_str(" Unavailable Storage Drivers:\n");
    for kv in i["UnavailableDrivers"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {}: {}\n",
            kv[0].as_str().unwrap_or(""),
            kv[1].as_str().unwrap_or("")
        ));
    }
    out.push_str(&format!(" Cgroup Driver: {}\n", s("CgroupDriver")));
    out.push_str(&format!(
        " Cgroup Version: {}{cgroup_note}\n",
        s("CgroupVersion")
    ));
    out.push_str(&format!(" Kernel Version: {}\n", s("KernelVersion")));
    out.push_str(&format!(" Operating System: {}\n", s("OperatingSystem")));
    out.push_str(&format!(" OSType: {}\n", s("OSType")));
    out.push_str(&format!(" Architecture: {}\n", s("Architecture")));
    out.push_str(&format!(" CPUs: {}\n", s("NCPU")));
    let mem = i["MemTotal"]
        .as_u64()
        .map_or_else(|| "unknown".into(), bytes_size);
    out.push_str(&format!(" Total Memory: {mem}\n"));
    out.push_str(&format!(" Name: {}\n", s("Name")));
    out.push_str(&format!(" Hako Root Dir: {}\n", s("DockerRootDir")));
    out.push_str(&format!(" Debug Mode: {}\n", s("Debug")));
    out
}

/// Why `aufs` / `devicemapper` cannot be used here (checked, not assumed).
fn driver_absence(name: &str) -> String {
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    match name {
        "aufs" if filesystems.lines().any(|l| l.trim_end().ends_with("aufs")) => {
            "in this kernel, but hako does not implement it".into()
        }
        "aufs" => "not in this kernel".into(),
        "devicemapper"
            if std::fs::read_to_string("/proc/misc")
                .unwrap_or_default()
                .contains("device-mapper") =>
        {
            "in this kernel, but hako does not implement it".into()
        }
        "devicemapper" => "not in this kernel (no device-mapper)".into(),
        _ => "not implemented by hako".into(),
    }
}

/// ("1"/"2", a note for hybrid hosts).
fn cgroup_version() -> (String, String) {
    match hako_cgroups::detect_layout() {
        Ok(hako_cgroups::Layout::V2) => ("2".into(), String::new()),
        Ok(hako_cgroups::Layout::Hybrid) => (
            "1".into(),
            " (hybrid: an empty cgroup2 hierarchy is mounted too)".into(),
        ),
        Ok(hako_cgroups::Layout::V1) => ("1".into(), String::new()),
        Err(e) => ("unknown".into(), format!(" ({e})")),
    }
}
