//! The host's cgroup layout and mounts: which v1 hierarchies and which
//! cgroup2 mount this host has, read from /proc/self/mountinfo once.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{io, Result};

/// The host's cgroup layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Only v1 hierarchies.
    Legacy,
    /// v1 controllers plus a cgroup2 mount (usually without controllers).
    Hybrid,
    /// Only cgroup2.
    Unified,
}

/// One v1 hierarchy mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Mount {
    /// The controllers (and `name=` option) of the hierarchy, e.g. `["cpu"]` or `["name=systemd"]`.
    pub controllers: Vec<String>,
    /// Where it is mounted.
    pub mountpoint: PathBuf,
}

/// The detected cgroup mounts of this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchy {
    /// v1 hierarchies.
    pub v1: Vec<V1Mount>,
    /// The cgroup2 mount, if any.
    pub unified: Option<PathBuf>,
}

impl Hierarchy {
    /// Reads /proc/self/mountinfo.
    pub fn detect() -> Result<Hierarchy> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(io("read", Path::new("/proc/self/mountinfo")))?;
        Ok(Self::parse(&text))
    }

    /// Parses mountinfo text.
    pub fn parse(text: &str) -> Hierarchy {
        let mut h = Hierarchy {
            v1: vec![],
            unified: None,
        };
        for line in text.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mountpoint = left.split(' ').nth(4).unwrap_or("");
            let mut r = right.split(' ');
            let fstype = r.next().unwrap_or("");
            let _source = r.next();
            let super_opts = r.next().unwrap_or("");
            match fstype {
                "cgroup2" if h.unified.is_none() => h.unified = Some(PathBuf::from(mountpoint)),
                "cgroup" => {
                    let controllers: Vec<String> = super_opts
                        .split(',')
                        .filter(|o| {
                            !matches!(
                                *o,
                                "rw" | "ro"
                                    | "relatime"
                                    | "noatime"
                                    | "nosuid"
                                    | "nodev"
                                    | "noexec"
                                    | "clone_children"
                            ) && !o.starts_with("release_agent")
                                && !o.starts_with("cpuset_v2_mode")
                        })
                        .map(str::to_string)
                        .collect();
                    if !controllers.is_empty() && !h.v1.iter().any(|m| m.controllers == controllers)
                    {
                        h.v1.push(V1Mount {
                            controllers,
                            mountpoint: PathBuf::from(mountpoint),
                        });
                    }
                }
                _ => {}
            }
        }
        h
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        match (self.v1.is_empty(), self.unified.is_some()) {
            (true, _) => Layout::Unified,
            (false, true) => Layout::Hybrid,
            (false, false) => Layout::Legacy,
        }
    }

    /// One line saying what was found.
    pub fn describe(&self) -> String {
        let v1: Vec<String> = self.v1.iter().map(|m| m.controllers.join("+")).collect();
        match self.layout() {
            Layout::Unified => format!(
                "unified: cgroup2 at {}",
                self.unified.as_deref().unwrap_or(Path::new("?")).display()
            ),
            Layout::Legacy => format!("legacy: v1 controllers {}", v1.join(",")),
            Layout::Hybrid => format!(
                "hybrid: v1 controllers {} + cgroup2 at {}",
                v1.join(","),
                self.unified.as_deref().unwrap_or(Path::new("?")).display()
            ),
        }
    }

    /// The cgroup2 mount point.
    pub fn unified_mount(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    /// Each v1 hierarchy as (directory name inside /sys/fs/cgroup, mount point, mount options).
    pub fn v1_mounts(&self) -> Vec<(String, PathBuf, String)> {
        self.v1
            .iter()
            .map(|m| {
                let name = m
                    .mountpoint
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| m.controllers.join(","));
                (name, m.mountpoint.clone(), m.controllers.join(","))
            })
            .collect()
    }
}
