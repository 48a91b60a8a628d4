//! `info`: what the engine holds (containers by state, images, volumes)
//! and how it runs (storage and cgroup drivers, kernel, OS, CPUs and
//! memory), as Docker's `info` fields. The command line prints them and
//! `berth serve` answers `/info` with them.

use serde_json::{json, Value};

use crate::error::EngineError;
use crate::run::Engine;

/// The kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The architecture as Go (and so Docker) names it: `amd64`, `arm64`.
pub fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
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

impl Engine {
    /// The facts `info` shows.
    pub fn info(&self) -> Result<Value, EngineError> {
        let containers = self.containers()?;
        let running = containers.iter().filter(|r| r.is_running()).count();
        let paused = containers
            .iter()
            .filter(|r| {
                r.is_running() && crate::restart::ContainerSettings::parse(&r.config).paused
            })
            .count();
        let images = image::refs::Refs::new(&self.root)
            .load()
            .map(|m| {
                m.values()
                    .map(|r| r.config.clone())
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            })
            .unwrap_or(0);
        let volumes = self.volumes().map(|v| v.len()).unwrap_or(0);
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
            "BerthRootDir": self.root,
            "SecurityOptions": ["name=seccomp,profile=builtin"],
        }))
    }
}
