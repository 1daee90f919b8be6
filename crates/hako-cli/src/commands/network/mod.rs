//! `hako network create|ls|inspect|rm|connect|disconnect|prune`: user-defined bridge
//! networks, over the engine's network calls (the API server's `/networks` uses the same).

use std::collections::HashMap;

use anyhow::{Result, bail};
use clap::Args;
use hako_engine::filters::Filters;
use hako_engine::models::{
    EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, NetworkCreateRequest,
};
use serde_json::{Value, json};

use crate::commands::container::prune::confirm;
use crate::commands::container::{engine_err, for_each};
use crate::commands::image::inspect::inspect_each;
use crate::commands::volume::manage::parse_labels;
use crate::context::Global;
use crate::format::{Format, Template};

/// Arguments of `hako network create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Driver to manage the network (bridge)
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long = "subnet", value_name = "SUBNET")]
    pub subnets: Vec<String>,
    /// IPv4 or IPv6 gateway for the master subnet
    #[arg(long = "gateway", value_name = "IP")]
    pub gateways: Vec<String>,
    /// Allocate container IPs from a sub-range
    #[arg(long = "ip-range", value_name = "RANGE")]
    pub ip_ranges: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Enable or disable IPv6 networking (a ULA subnet when none is given)
    #[arg(long)]
    pub ipv6: bool,
    /// Enable manual container attachment (accepted; every hako network is attachable)
    #[arg(long)]
    pub attachable: bool,
    /// Set metadata on a network
    #[arg(long = "label", value_name = "LIST")]
    pub labels: Vec<String>,
    /// Set driver specific options (com.docker.network.bridge.name, com.docker.network.driver.mtu)
    #[arg(short = 'o', long = "opt", value_name = "MAP")]
    pub opts: Vec<String>,
    /// Network name
    pub name: String,
}

/// Arguments of `hako network ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Provide filter values (driver=, id=, label=, name=, type=custom|builtin)
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Format output using a Go template ('table', 'table TEMPLATE', 'json', or TEMPLATE)
    #[arg(long)]
    pub format: Option<String>,
}

/// Arguments of `hako network inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a Go template
    #[arg(short, long)]
    pub format: Option<String>,
    /// Verbose output (accepted)
    #[arg(short, long)]
    pub verbose: bool,
    /// Networks
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
}

/// Arguments of `hako network rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short, long)]
    pub force: bool,
    /// Networks
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
}

/// Arguments of `hako network connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long = "alias", value_name = "LIST")]
    pub aliases: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    pub ip6: Option<String>,
    /// The network
    pub network: String,
    /// The container
    pub container: String,
}

/// Arguments of `hako network disconnect`.
#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    pub force: bool,
    /// The network
    pub network: String,
    /// The container
    pub container: String,
}

/// Arguments of `hako network prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "label=KEY[=VALUE]")
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// `hako network create`: prints the new id.
pub fn create(g: &Global, a: &CreateArgs) -> Result<()> {
    if a.gateways.len() > a.subnets.len() || a.ip_ranges.len() > a.subnets.len() {
        bail!("every --gateway and --ip-range needs a --subnet");
    }
    let mut opts = HashMap::new();
    for o in &a.opts {
        let Some((k, v)) = o.split_once('=') else {
            bail!("invalid option {o:?}: expected KEY=VALUE");
        };
        opts.insert(k.to_string(), v.to_string());
    }
    let config: Vec<IpamConfig> = a
        .subnets
        .iter()
        .enumerate()
        .map(|(i, s)| IpamConfig {
            subnet: Some(s.clone()),
            gateway: a.gateways.get(i).cloned(),
            ip_range: a.ip_ranges.get(i).cloned(),
            auxiliary_addresses: None,
        })
        .collect();
    let engine = g.open_engine()?;
    let n = engine
        .network_create(&NetworkCreateRequest {
            name: a.name.clone(),
            driver: Some(a.driver.clone()),
            internal: Some(a.internal),
            attachable: Some(a.attachable),
            enable_ipv6: Some(a.ipv6),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                config: Some(config),
                options: None,
            }),
            options: Some(opts),
            labels: Some(parse_labels(&a.labels)),
            ..Default::default()
        })
        .map_err(engine_err)?;
    crate::commands::print(&format!("{}\n", n.id.unwrap_or_default()))
}

const DEFAULT: &str = r"table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";

fn header() -> Value {
    json!({
        "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
        "CreatedAt": "CREATED AT",
    })
}

/// `hako network ls`.
pub fn ls(g: &Global, a: &LsArgs) -> Result<()> {
    let filters = Filters::from_args(&a.filters).map_err(engine_err)?;
    let engine = g.open_engine()?;
    let mut rows = Vec::new();
    let mut ids = String::new();
    for n in engine.networks(&filters).map_err(engine_err)? {
        let id = n.id.clone().unwrap_or_default();
        let name = n.name.clone().unwrap_or_default();
        let labels = n.labels.clone().unwrap_or_default();
        let shown = if a.no_trunc {
            id.clone()
        } else {
            id[..12.min(id.len())].to_string()
        };
        ids.push_str(&shown);
        ids.push('\n');
        let mut lv: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lv.sort();
        rows.push(json!({
            "ID": shown, "Name": name, "Driver": n.driver.clone().unwrap_or_default(),
            "Scope": "local", "IPv4": n.enable_ipv4.unwrap_or(false).to_string(),
            "IPv6": n.enable_ipv6.unwrap_or(false).to_string(),
            "Internal": n.internal.unwrap_or(false).to_string(), "Labels": lv.join(","),
            "CreatedAt": n.created.as_deref().map(crate::units::go_time_string).unwrap_or_default(),
            "Label": labels,
        }));
    }
    if a.quiet {
        return crate::commands::print(&ids);
    }
    let format = Format::parse(a.format.as_deref().unwrap_or(""), DEFAULT)?;
    crate::commands::print(&format.render(&header(), &rows)?)
}

/// `hako network inspect`.
pub fn inspect(g: &Global, a: &InspectArgs) -> Result<()> {
    let template = a.format.as_deref().map(Template::parse).transpose()?;
    let engine = g.open_engine()?;
    inspect_each(
        template.as_ref(),
        &a.names,
        "Error response from daemon: ",
        |n| engine.network_inspect(n),
    )
}

/// `hako network rm`: prints each removed name.
pub fn rm(g: &Global, a: &RmArgs) -> Result<()> {
    let engine = g.open_engine()?;
    for_each(&a.names, |n| {
        match engine.network_remove(n) {
            Ok(()) => {}
            Err(hako_engine::Error::NoSuchNetwork(_)) if a.force => return Ok(()),
            Err(e) => return Err(engine_err(e)),
        }
        println!("{n}");
        Ok(())
    })
}

/// `hako network connect`.
pub fn connect(g: &Global, a: &ConnectArgs) -> Result<()> {
    let engine = g.open_engine()?;
    let e = EndpointSettings {
        aliases: (!a.aliases.is_empty()).then(|| a.aliases.clone()),
        ipam_config: (a.ip.is_some() || a.ip6.is_some()).then(|| EndpointIpamConfig {
            ipv4_address: a.ip.clone(),
            ipv6_address: a.ip6.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    engine
        .network_connect(&a.network, &a.container, Some(&e))
        .map_err(engine_err)
}

/// `hako network disconnect`.
pub fn disconnect(g: &Global, a: &DisconnectArgs) -> Result<()> {
    let engine = g.open_engine()?;
    engine
        .network_disconnect(&a.network, &a.container, a.force)
        .map_err(engine_err)
}

/// `hako network prune`.
pub fn prune(g: &Global, a: &PruneArgs) -> Result<()> {
    let filters = Filters::from_args(&a.filters).map_err(engine_err)?;
    filters
        .validate(hako_engine::NETWORK_PRUNE_FILTERS)
        .map_err(engine_err)?;
    if !a.force
        && !confirm(
            "WARNING! This will remove all custom networks not used by at least one container.",
        )?
    {
        return Ok(());
    }
    let engine = g.open_engine()?;
    let removed = engine.networks_prune(&filters).map_err(engine_err)?;
    let mut out = String::new();
    if !removed.is_empty() {
        out.push_str("Deleted Networks:\n");
        for n in removed {
            out.push_str(&n);
            out.push('\n');
        }
    }
    crate::commands::print(&out)
}
