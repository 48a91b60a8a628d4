//! `pause`, `unpause`, `rename`, `top`, `update` and `diff`: Docker's
//! commands that change or look into a container in place.

use std::path::Path;

use anyhow::Result;
use clap::Args;

use crate::containers::{engine, for_each};

/// Containers, as `pause` and `unpause` take them.
#[derive(Args)]
pub struct Containers {
    /// Names, ids or id prefixes.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `docker rename` arguments.
#[derive(Args)]
pub struct RenameArgs {
    /// The container.
    container: String,
    /// Its new name.
    new_name: String,
}

/// `docker top` arguments.
#[derive(Args)]
pub struct TopArgs {
    /// The container.
    container: String,
    /// ps(1) options (default `-ef`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

/// `docker update` flags.
#[derive(Args)]
pub struct UpdateArgs {
    /// Memory limit (`64m`, `1g`, …).
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Memory plus swap limit (`-1`: unlimited swap).
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long)]
    memory_reservation: Option<String>,
    /// Number of CPUs (`0.5`, `2`).
    #[arg(long)]
    cpus: Option<String>,
    /// CPU weight (relative; 1024 is the default).
    #[arg(short = 'c', long)]
    cpu_shares: Option<u64>,
    /// CFS period (µs).
    #[arg(long)]
    cpu_period: Option<u64>,
    /// CFS quota (µs per period).
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CPUs the container may use (`0-1`, `0,2`).
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Memory nodes the container may use.
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// Process limit (`-1`: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Restart policy: no, on-failure[:N], always, unless-stopped.
    #[arg(long)]
    restart: Option<String>,
    /// Containers.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `berth pause`.
pub fn pause_main(root: &Path, a: &Containers) -> Result<()> {
    let e = engine(root, None)?;
    for_each(&a.containers, |c| {
        e.pause_container(c)?;
        Ok(c.to_string())
    })
}

/// `berth unpause`.
pub fn unpause_main(root: &Path, a: &Containers) -> Result<()> {
    let e = engine(root, None)?;
    for_each(&a.containers, |c| {
        e.unpause_container(c)?;
        Ok(c.to_string())
    })
}

/// `berth rename` (prints nothing, as Docker).
pub fn rename_main(root: &Path, a: &RenameArgs) -> Result<()> {
    engine(root, None)?.rename_container(&a.container, &a.new_name)?;
    Ok(())
}

/// `berth top`.
pub fn top_main(root: &Path, a: &TopArgs) -> Result<()> {
    print!("{}", engine(root, None)?.top(&a.container, &a.ps_args)?);
    Ok(())
}

/// `berth update`.
pub fn update_main(root: &Path, a: &UpdateArgs) -> Result<()> {
    let e = engine(root, None)?;
    let opts = engine::manage::UpdateOptions {
        limits: engine::limits::Limits {
            memory: a.memory.clone(),
            memory_swap: a.memory_swap.clone(),
            memory_reservation: a.memory_reservation.clone(),
            cpus: a.cpus.clone(),
            cpu_shares: a.cpu_shares,
            cpu_period: a.cpu_period,
            cpu_quota: a.cpu_quota,
            cpuset_cpus: a.cpuset_cpus.clone(),
            cpuset_mems: a.cpuset_mems.clone(),
            pids_limit: a.pids_limit,
            ..Default::default()
        },
        restart: a.restart.clone(),
    };
    for_each(&a.containers, |c| {
        e.update_container(c, &opts)?;
        Ok(c.to_string())
    })
}

/// `berth diff`: `A`dded, `C`hanged and `D`eleted paths of the container's
/// writable layer.
pub fn diff_main(root: &Path, container: &str) -> Result<()> {
    for (kind, path) in engine(root, None)?.diff(container)? {
        println!("{kind} {path}");
    }
    Ok(())
}

/// `berth port`: a container's published ports while it runs
/// (`80/tcp -> 0.0.0.0:32768`), or the host sides of one port.
/// `ADDR:PORT`, an IPv6 address in brackets.
fn host_side(b: &engine::ports::HostBinding) -> String {
    if b.host_ip.contains(':') {
        format!("[{}]:{}", b.host_ip, b.host_port)
    } else {
        format!("{}:{}", b.host_ip, b.host_port)
    }
}

pub fn port_main(root: &Path, container: &str, port: Option<&str>) -> Result<()> {
    let rec = engine(root, None)?.container(container)?;
    let settings = engine::restart::ContainerSettings::parse(&rec.config);
    let ports = if rec.is_running() {
        settings.ports
    } else {
        Default::default()
    };
    match port {
        Some(p) => {
            let key = if p.contains('/') {
                p.to_string()
            } else {
                format!("{p}/tcp")
            };
            let bound = ports.get(&key).filter(|b| !b.is_empty());
            let Some(bound) = bound else {
                anyhow::bail!("no public port '{key}' published for {}", rec.name);
            };
            for b in bound {
                println!("{}", host_side(b));
            }
        }
        None => {
            for (key, bound) in &ports {
                for b in bound {
                    println!("{key} -> {}", host_side(b));
                }
            }
        }
    }
    Ok(())
}
