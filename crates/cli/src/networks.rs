//! `berth network create|ls|inspect|rm|prune|connect|disconnect`: Docker's network commands,
//! flags and output over the engine's networks (the bridge and cni drivers).

use std::path::Path;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use engine::networks::{Network, NetworkOptions};

/// `docker network …`.
#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Create a network.
    Create(CreateArgs),
    /// List networks.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show networks as JSON.
    Inspect {
        /// Go template (`{{.IPAM.Config}}`, `{{json .Containers}}`).
        #[arg(short, long)]
        format: Option<String>,
        /// Network names or ids.
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks (never one a container is on).
    #[command(visible_alias = "remove")]
    Rm {
        /// A missing network is no error.
        #[arg(short, long)]
        force: bool,
        /// Network names or ids.
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Put a container on a network (a running one at once).
    Connect {
        /// Its IPv4 address on the network.
        #[arg(long)]
        ip: Option<String>,
        /// Its IPv6 address on the network (a dual-stack one).
        #[arg(long)]
        ip6: Option<String>,
        /// Another name it answers to on the network (repeatable).
        #[arg(long)]
        alias: Vec<String>,
        /// Its interface's MAC address on the network.
        #[arg(long = "mac-address")]
        mac_address: Option<String>,
        /// The network.
        network: String,
        /// The container.
        container: String,
    },
    /// Take a container off a network.
    Disconnect {
        /// A container that is not on the network is no error.
        #[arg(short, long)]
        force: bool,
        /// The network.
        network: String,
        /// The container.
        container: String,
    },
    /// Serve a network's DNS (started by the engine; not for users).
    #[command(hide = true)]
    DnsServe {
        /// The network's id.
        id: String,
    },
    /// Remove the networks no container is on.
    Prune {
        /// Do not ask.
        #[arg(short, long)]
        force: bool,
    },
}

/// `network create` flags.
#[derive(Args)]
pub struct CreateArgs {
    /// The network's name.
    name: String,
    /// The driver: `bridge` (the default) or `cni` (a CNI configuration list's plugins).
    #[arg(short, long)]
    driver: Option<String>,
    /// A subnet: IPv4 a.b.c.d/n (default: the first free 10.89.N.0/24), and with --ipv6 an IPv6 one (default: a unique local /64).
    #[arg(long)]
    subnet: Vec<String>,
    /// A gateway, per subnet (default: the subnet's first address).
    #[arg(long)]
    gateway: Vec<String>,
    /// Dual-stack: IPv6 too.
    #[arg(long)]
    ipv6: bool,
    /// Choose containers' addresses from this part of the IPv4 subnet.
    #[arg(long = "ip-range")]
    ip_range: Option<String>,
    /// No default route for its containers.
    #[arg(long)]
    internal: bool,
    /// A label: `KEY=VALUE`.
    #[arg(long)]
    label: Vec<String>,
    /// A driver option: `com.docker.network.bridge.name=NAME`, `com.docker.network.driver.mtu=N`;
    /// for cni: `cni.config=FILE`, `cni.confdir=DIR`, `cni.path=DIR[:DIR]`.
    #[arg(short, long = "opt")]
    opt: Vec<String>,
}

/// `network ls` flags.
#[derive(Args)]
pub struct LsArgs {
    /// Only ids.
    #[arg(short, long)]
    quiet: bool,
    /// Full ids.
    #[arg(long)]
    no_trunc: bool,
    /// `name=…`, `id=…`, `driver=bridge|cni`, `label=KEY[=VALUE]`, `type=custom|builtin`.
    #[arg(short, long)]
    filter: Vec<String>,
    /// Go template for each network (`{{.Name}}`, `{{.ID}}`, `{{.Driver}}`).
    #[arg(long)]
    format: Option<String>,
}

/// A network as `network ls --format` sees it.
fn row_json(n: &Network, no_trunc: bool) -> serde_json::Value {
    serde_json::json!({
        "ID": if no_trunc { n.id.clone() } else { n.id[..12].to_string() },
        "Name": n.name,
        "Driver": n.driver,
        "Scope": "local",
        "IPv6": "false",
        "Internal": n.internal.to_string(),
        "Labels": n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        "CreatedAt": engine::inspect::rfc3339(n.created),
    })
}

/// Runs a `network` subcommand.
pub fn main(root: &Path, command: &NetworkCommand) -> Result<()> {
    let e = crate::containers::engine(root, None)?;
    match command {
        NetworkCommand::Create(a) => {
            let n = e.network_create(
                &a.name,
                &NetworkOptions {
                    driver: a.driver.clone(),
                    subnets: a.subnet.clone(),
                    gateways: a.gateway.clone(),
                    ipv6: a.ipv6,
                    ip_range: a.ip_range.clone(),
                    internal: a.internal,
                    labels: a.label.clone(),
                    options: a.opt.clone(),
                },
            )?;
            println!("{}", n.id);
        }
        NetworkCommand::Ls(a) => {
            let probe = Network {
                id: "0".repeat(64),
                name: String::new(),
                driver: String::new(),
                subnet: String::new(),
                gateway: String::new(),
                bridge: String::new(),
                internal: false,
                labels: Default::default(),
                options: Default::default(),
                created: 0,
                subnet6: String::new(),
                gateway6: String::new(),
                ip_range: String::new(),
            };
            let filters = engine::listing::split_filters(&a.filter);
            engine::listing::network_matches(&filters, &probe)?;
            let mut rows = vec![vec![
                "NETWORK ID".to_string(),
                "NAME".into(),
                "DRIVER".into(),
                "SCOPE".into(),
            ]];
            for n in e.networks()? {
                if !engine::listing::network_matches(&filters, &n)? {
                    continue;
                }
                let id = if a.no_trunc {
                    n.id.clone()
                } else {
                    n.id[..12].to_string()
                };
                if a.quiet {
                    println!("{id}");
                } else if let Some(t) = &a.format {
                    println!("{}", engine::inspect::format(t, &row_json(&n, a.no_trunc))?);
                } else {
                    rows.push(vec![id, n.name.clone(), n.driver.clone(), "local".into()]);
                }
            }
            if !a.quiet && a.format.is_none() {
                crate::containers::table(&rows);
            }
        }
        NetworkCommand::Inspect { format, networks } => {
            let mut all = vec![];
            let mut failed = false;
            for key in networks {
                match e.network_inspect(key) {
                    Ok(v) => all.push(v),
                    Err(err) => {
                        eprintln!("berth: {err}");
                        failed = true;
                    }
                }
            }
            match format {
                Some(t) => {
                    for v in &all {
                        println!("{}", engine::inspect::format(t, v)?);
                    }
                }
                None => println!("{}", serde_json::to_string_pretty(&all)?),
            }
            if failed {
                bail!("some networks do not exist");
            }
        }
        NetworkCommand::Rm { force, networks } => {
            let mut failed = false;
            for key in networks {
                match e.network_remove(key) {
                    Ok(_) => println!("{key}"),
                    Err(engine::error::EngineError::NoSuchNetwork(_)) if *force => {}
                    Err(err) => {
                        eprintln!("berth: {err}");
                        failed = true;
                    }
                }
            }
            if failed {
                bail!("some networks could not be removed");
            }
        }
        NetworkCommand::DnsServe { id } => e.dns_serve(id)?,
        NetworkCommand::Connect {
            ip,
            ip6,
            alias,
            mac_address,
            network,
            container,
        } => {
            let o = engine::connect::ConnectOptions {
                ip: ip.clone(),
                ip6: ip6.clone(),
                aliases: alias.clone(),
                mac: mac_address.clone(),
            };
            e.network_connect(network, container, &o)?;
        }
        NetworkCommand::Disconnect {
            force,
            network,
            container,
        } => e.network_disconnect(network, container, *force)?,
        NetworkCommand::Prune { force } => {
            if !force {
                use std::io::Write;
                print!("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ");
                std::io::stdout().flush()?;
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Ok(());
                }
            }
            let gone = e.network_prune()?;
            if !gone.is_empty() {
                println!("Deleted Networks:");
                for n in gone {
                    println!("{n}");
                }
            }
        }
    }
    Ok(())
}
