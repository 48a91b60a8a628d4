//! `version` and `info`: what berth is and what it holds, in Docker's
//! layout (berth has no server: the "server" facts are the engine's own),
//! or as JSON through `--format`.

use std::path::Path;

use anyhow::Result;
use serde_json::{json, Value};

/// The facts `version` prints.
fn version_json(root: &Path) -> Value {
    let engine = crate::containers::engine(root, None).ok();
    let runtime = engine
        .as_ref()
        .map(|e| e.runtime.display().to_string())
        .unwrap_or_default();
    json!({
        "Client": {
            "Version": env!("CARGO_PKG_VERSION"),
            "Os": std::env::consts::OS,
            "Arch": goarch(),
            "Daemonless": true,
        },
        "Runtime": {"Name": "berth-runtime", "Path": runtime},
    })
}

/// Go's name for this machine's architecture, as Docker prints it.
fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `berth version [-f TEMPLATE]`.
pub fn version_main(root: &Path, format: Option<&str>) -> Result<()> {
    let v = version_json(root);
    if let Some(t) = format {
        println!("{}", engine::inspect::format(t, &v)?);
        return Ok(());
    }
    println!("Client:");
    println!(
        " Version:      {}",
        v["Client"]["Version"].as_str().unwrap_or("")
    );
    println!(" OS/Arch:      {}/{}", std::env::consts::OS, goarch());
    println!(" Daemonless:   true (no server: each berth command is the engine)");
    println!(
        " Runtime:      berth-runtime ({})",
        v["Runtime"]["Path"].as_str().unwrap_or("")
    );
    Ok(())
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

fn total_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

/// The facts `info` prints.
fn info_json(root: &Path) -> Result<Value> {
    let e = crate::containers::engine(root, None)?;
    let containers = e.containers()?;
    let running = containers.iter().filter(|r| r.is_running()).count();
    let paused = containers
        .iter()
        .filter(|r| r.is_running() && engine::restart::ContainerSettings::parse(&r.config).paused)
        .count();
    let images = image::refs::Refs::new(root)
        .load()
        .map(|m| {
            m.values()
                .map(|r| r.config.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        })
        .unwrap_or(0);
    let volumes = e.volumes().map(|v| v.len()).unwrap_or(0);
    let cgroup_version = match cgroups::Hierarchy::detect().map(|h| h.layout()) {
        Ok(cgroups::Layout::Unified) => "2",
        Ok(_) => "1",
        Err(_) => "",
    };
    Ok(json!({
        "Containers": containers.len(),
        "ContainersRunning": running - paused,
        "ContainersPaused": paused,
        "ContainersStopped": containers.len() - running,
        "Images": images,
        "Volumes": volumes,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Driver": "overlay",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "DefaultRuntime": "berth-runtime",
        "KernelVersion": kernel_release(),
        "OperatingSystem": os_name(),
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "MemTotal": total_memory(),
        "BerthRootDir": root,
        "SecurityOptions": ["name=seccomp,profile=builtin"],
    }))
}

/// `berth info [-f TEMPLATE]`.
pub fn info_main(root: &Path, format: Option<&str>) -> Result<()> {
    let v = info_json(root)?;
    if let Some(t) = format {
        println!("{}", engine::inspect::format(t, &v)?);
        return Ok(());
    }
    let s = |k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    println!("Server:");
    println!(" Containers: {}", s("Containers"));
    println!("  Running: {}", s("ContainersRunning"));
    println!("  Paused: {}", s("ContainersPaused"));
    println!("  Stopped: {}", s("ContainersStopped"));
    println!(" Images: {}", s("Images"));
    println!(" Volumes: {}", s("Volumes"));
    println!(" Server Version: {} (daemonless)", s("ServerVersion"));
    println!(" Storage Driver: {}", s("Driver"));
    println!(" Cgroup Driver: {}", s("CgroupDriver"));
    println!(" Cgroup Version: {}", s("CgroupVersion"));
    println!(" Default Runtime: {}", s("DefaultRuntime"));
    println!(" Security Options:\n  seccomp\n   Profile: builtin");
    println!(" Kernel Version: {}", s("KernelVersion"));
    println!(" Operating System: {}", s("OperatingSystem"));
    println!(" OSType: {}", s("OSType"));
    println!(" Architecture: {}", s("Architecture"));
    println!(" CPUs: {}", s("NCPU"));
    println!(
        " Total Memory: {}",
        crate::format::human_binary(v["MemTotal"].as_u64().unwrap_or(0))
    );
    println!(" Berth Root Dir: {}", s("BerthRootDir"));
    Ok(())
}
