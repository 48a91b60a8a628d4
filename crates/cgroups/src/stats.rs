//! Resource usage read back from a container's cgroup, shaped like runc's
//! `events --stats` data, and OOM notification (v1: an eventfd registered
//! on memory.oom_control; v2: inotify on memory.events).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{CgroupError, CgroupManager, Layout};

/// CPU usage in nanoseconds.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CpuUsage {
    /// Total.
    pub total: u64,
    /// Per CPU (v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    /// In kernel mode.
    pub kernel: u64,
    /// In user mode.
    pub user: u64,
}

/// CFS throttling.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    /// Enforcement periods.
    pub periods: u64,
    /// Periods in which the cgroup was throttled.
    pub throttled_periods: u64,
    /// Time throttled, in nanoseconds.
    pub throttled_time: u64,
}

/// CPU statistics.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Cpu {
    /// Usage.
    pub usage: CpuUsage,
    /// Throttling.
    pub throttling: Throttling,
}

/// One memory counter set.
#[derive(Debug, Default, Clone, Serialize)]
pub struct MemoryEntry {
    /// Limit in bytes (0 when unlimited on v2).
    pub limit: u64,
    /// Current usage.
    pub usage: u64,
    /// Peak usage.
    pub max: u64,
    /// Times the limit was hit.
    pub failcnt: u64,
}

/// Memory statistics.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Memory {
    /// Page cache.
    pub cache: u64,
    /// Memory.
    pub usage: MemoryEntry,
    /// Memory + swap (v1) or swap (v2).
    pub swap: MemoryEntry,
    /// OOM kills.
    #[serde(rename = "oomKills")]
    pub oom_kills: u64,
    /// The raw memory.stat.
    pub raw: BTreeMap<String, u64>,
}

/// Pids statistics.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Pids {
    /// Processes now.
    pub current: u64,
    /// Limit (0 when unlimited).
    pub limit: u64,
}

/// One block I/O counter of a device, as runc reports it.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct BlkioEntry {
    /// Device major.
    pub major: u64,
    /// Device minor.
    pub minor: u64,
    /// Read, Write, Sync, Async, Discard or Total.
    pub op: String,
    /// Bytes or operations.
    pub value: u64,
}

/// Block I/O statistics.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Blkio {
    /// Bytes moved, per device and operation.
    #[serde(rename = "ioServiceBytesRecursive")]
    pub service_bytes: Vec<BlkioEntry>,
    /// Operations, per device and operation.
    #[serde(rename = "ioServicedRecursive")]
    pub serviced: Vec<BlkioEntry>,
}

/// All statistics.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    /// CPU.
    pub cpu: Cpu,
    /// Memory.
    pub memory: Memory,
    /// Pids.
    pub pids: Pids,
    /// Block I/O.
    pub blkio: Blkio,
    /// Hugetlb usage by page size.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hugetlb: BTreeMap<String, MemoryEntry>,
}

/// v1 blkio lines: "MAJ:MIN Op value".
fn v1_blkio(dir: &Path, file: &str) -> Vec<BlkioEntry> {
    read(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (maj, min) = f.first()?.split_once(':')?;
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op: f.get(1)?.to_string(),
                value: f.get(2)?.parse().ok()?,
            })
        })
        .collect()
}

/// v2 io.stat lines: "MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..".
fn v2_io(dir: &Path) -> Blkio {
    let mut b = Blkio::default();
    for l in read(dir, "io.stat").unwrap_or_default().lines() {
        let mut f = l.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut b.service_bytes, "Read"),
                "wbytes" => (&mut b.service_bytes, "Write"),
                "dbytes" => (&mut b.service_bytes, "Discard"),
                "rios" => (&mut b.serviced, "Read"),
                "wios" => (&mut b.serviced, "Write"),
                "dios" => (&mut b.serviced, "Discard"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    b
}

/// Hugetlb counters of a cgroup directory, by page size, for v1 (`.limit_in_bytes`) or v2 (`.max`) names.
fn hugetlb(dir: &Path, v2: bool) -> BTreeMap<String, MemoryEntry> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|r| r.strip_suffix(if v2 { ".current" } else { ".usage_in_bytes" }))
        else {
            continue;
        };
        if size.contains('.') {
            continue;
        }
        let entry = if v2 {
            MemoryEntry {
                usage: num(dir, &format!("hugetlb.{size}.current")),
                limit: num(dir, &format!("hugetlb.{size}.max")),
                max: 0,
                failcnt: flat_keyed(dir, &format!("hugetlb.{size}.events"))
                    .get("max")
                    .copied()
                    .unwrap_or(0),
            }
        } else {
            MemoryEntry {
                usage: num(dir, &format!("hugetlb.{size}.usage_in_bytes")),
                limit: num(dir, &format!("hugetlb.{size}.limit_in_bytes")),
                max: num(dir, &format!("hugetlb.{size}.max_usage_in_bytes")),
                failcnt: num(dir, &format!("hugetlb.{size}.failcnt")),
            }
        };
        out.insert(size.to_string(), entry);
    }
    out
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

fn num(dir: &Path, file: &str) -> u64 {
    read(dir, file).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// "key value" lines.
fn flat_keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    read(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

impl CgroupManager {
    fn dir_for(&self, controller: &str) -> Option<PathBuf> {
        if self.layout == Layout::Unified {
            return self.dirs.first().cloned();
        }
        self.v1_dirs
            .iter()
            .find(|(c, _)| c.iter().any(|c| c == controller))
            .map(|(_, d)| d.clone())
    }

    /// Reads the container's resource usage.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        let mut s = Stats::default();
        if self.layout == Layout::Unified {
            let d = self.dirs[0].clone();
            let cpu = flat_keyed(&d, "cpu.stat");
            s.cpu.usage.total = cpu.get("usage_usec").copied().unwrap_or(0) * 1000;
            s.cpu.usage.user = cpu.get("user_usec").copied().unwrap_or(0) * 1000;
            s.cpu.usage.kernel = cpu.get("system_usec").copied().unwrap_or(0) * 1000;
            s.cpu.throttling.periods = cpu.get("nr_periods").copied().unwrap_or(0);
            s.cpu.throttling.throttled_periods = cpu.get("nr_throttled").copied().unwrap_or(0);
            s.cpu.throttling.throttled_time =
                cpu.get("throttled_usec").copied().unwrap_or(0) * 1000;
            let raw = flat_keyed(&d, "memory.stat");
            s.memory.cache = raw.get("file").copied().unwrap_or(0);
            s.memory.raw = raw;
            s.memory.usage.usage = num(&d, "memory.current");
            s.memory.usage.max = num(&d, "memory.peak");
            s.memory.usage.limit = num(&d, "memory.max");
            s.memory.swap.usage = num(&d, "memory.swap.current");
            s.memory.swap.limit = num(&d, "memory.swap.max");
            let events = flat_keyed(&d, "memory.events");
            s.memory.usage.failcnt = events.get("max").copied().unwrap_or(0);
            s.memory.oom_kills = events.get("oom_kill").copied().unwrap_or(0);
            s.pids.current = num(&d, "pids.current");
            s.pids.limit = num(&d, "pids.max");
            s.blkio = v2_io(&d);
            s.hugetlb = hugetlb(&d, true);
            return Ok(s);
        }
        if let Some(d) = self.dir_for("cpuacct") {
            s.cpu.usage.total = num(&d, "cpuacct.usage");
            s.cpu.usage.percpu = read(&d, "cpuacct.usage_percpu")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            // cpuacct.stat is in clock ticks.
            let ticks = flat_keyed(&d, "cpuacct.stat");
            // SAFETY: sysconf takes an integer.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
            s.cpu.usage.user = ticks.get("user").copied().unwrap_or(0) * 1_000_000_000 / hz;
            s.cpu.usage.kernel = ticks.get("system").copied().unwrap_or(0) * 1_000_000_000 / hz;
        }
        if let Some(d) = self.dir_for("cpu") {
            let t = flat_keyed(&d, "cpu.stat");
            s.cpu.throttling.periods = t.get("nr_periods").copied().unwrap_or(0);
            s.cpu.throttling.throttled_periods = t.get("nr_throttled").copied().unwrap_or(0);
            s.cpu.throttling.throttled_time = t.get("throttled_time").copied().unwrap_or(0);
        }
        if let Some(d) = self.dir_for("memory") {
            let raw = flat_keyed(&d, "memory.stat");
            s.memory.cache = raw.get("cache").copied().unwrap_or(0);
            s.memory.raw = raw;
            s.memory.usage = MemoryEntry {
                limit: num(&d, "memory.limit_in_bytes"),
                usage: num(&d, "memory.usage_in_bytes"),
                max: num(&d, "memory.max_usage_in_bytes"),
                failcnt: num(&d, "memory.failcnt"),
            };
            s.memory.swap = MemoryEntry {
                limit: num(&d, "memory.memsw.limit_in_bytes"),
                usage: num(&d, "memory.memsw.usage_in_bytes"),
                max: num(&d, "memory.memsw.max_usage_in_bytes"),
                failcnt: num(&d, "memory.memsw.failcnt"),
            };
            s.memory.oom_kills = flat_keyed(&d, "memory.oom_control")
                .get("oom_kill")
                .copied()
                .unwrap_or(0);
        }
        if let Some(d) = self.dir_for("pids") {
            s.pids.current = num(&d, "pids.current");
            s.pids.limit = num(&d, "pids.max");
        }
        if let Some(d) = self.dir_for("blkio") {
            s.blkio.service_bytes = v1_blkio(&d, "blkio.throttle.io_service_bytes_recursive");
            s.blkio.serviced = v1_blkio(&d, "blkio.throttle.io_serviced_recursive");
        }
        if let Some(d) = self.dir_for("hugetlb") {
            s.hugetlb = hugetlb(&d, false);
        }
        Ok(s)
    }

    /// Starts watching for OOM kills in this cgroup.
    pub fn oom_watch(&self) -> Result<OomWatch, CgroupError> {
        let dir = self
            .dir_for("memory")
            .ok_or_else(|| CgroupError::Unsupported {
                field: "memory".into(),
                reason: "no memory controller on this host".into(),
            })?;
        if self.layout == Layout::Unified {
            let file = dir.join("memory.events");
            let fd = nix::sys::inotify::Inotify::init(nix::sys::inotify::InitFlags::IN_CLOEXEC)
                .map_err(|e| io_err("inotify_init", &file, e))?;
            fd.add_watch(&file, nix::sys::inotify::AddWatchFlags::IN_MODIFY)
                .map_err(|e| io_err("inotify_add_watch", &file, e))?;
            let seen = flat_keyed(&dir, "memory.events")
                .get("oom_kill")
                .copied()
                .unwrap_or(0);
            return Ok(OomWatch {
                source: Source::Inotify(fd),
                events_file: Some(file),
                seen,
            });
        }
        let control = dir.join("memory.oom_control");
        let efd: OwnedFd = nix::sys::eventfd::EventFd::from_value_and_flags(
            0,
            nix::sys::eventfd::EfdFlags::EFD_CLOEXEC,
        )
        .map_err(|e| io_err("eventfd", &control, e))?
        .into();
        let cfd = std::fs::File::open(&control).map_err(|e| CgroupError::Io {
            op: "open",
            path: control.clone(),
            err: e,
        })?;
        let ec = dir.join("cgroup.event_control");
        std::fs::write(&ec, format!("{} {}", efd.as_raw_fd(), cfd.as_raw_fd())).map_err(|e| {
            CgroupError::Io {
                op: "write",
                path: ec,
                err: e,
            }
        })?;
        Ok(OomWatch {
            source: Source::EventFd(efd),
            events_file: None,
            seen: 0,
        })
    }
}

fn io_err(op: &'static str, path: &Path, e: nix::errno::Errno) -> CgroupError {
    CgroupError::Io {
        op,
        path: path.to_path_buf(),
        err: std::io::Error::from(e),
    }
}

enum Source {
    /// v1: an eventfd the kernel signals on OOM.
    EventFd(OwnedFd),
    /// v2: inotify on memory.events.
    Inotify(nix::sys::inotify::Inotify),
}

/// A pollable OOM notification source.
pub struct OomWatch {
    source: Source,
    events_file: Option<PathBuf>,
    seen: u64,
}

impl OomWatch {
    /// The descriptor to poll for readability.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match &self.source {
            Source::EventFd(f) => f.as_fd(),
            Source::Inotify(i) => i.as_fd(),
        }
    }

    /// After the descriptor polled readable: whether an OOM kill happened.
    pub fn consume(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        let _ = nix::unistd::read(self.fd().as_raw_fd(), &mut buf);
        match &self.events_file {
            None => true,
            Some(f) => {
                let dir = f.parent().unwrap_or(Path::new("/"));
                let now = flat_keyed(dir, "memory.events")
                    .get("oom_kill")
                    .copied()
                    .unwrap_or(0);
                let fired = now > self.seen;
                self.seen = now;
                fired
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkio_and_hugetlb_files_parse_on_both_layouts() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("blkio.throttle.io_service_bytes_recursive"),
            "254:0 Read 4096\n254:0 Write 8192\nTotal 12288\n",
        )
        .unwrap();
        let v1 = v1_blkio(d.path(), "blkio.throttle.io_service_bytes_recursive");
        assert_eq!(
            v1,
            vec![
                BlkioEntry {
                    major: 254,
                    minor: 0,
                    op: "Read".into(),
                    value: 4096
                },
                BlkioEntry {
                    major: 254,
                    minor: 0,
                    op: "Write".into(),
                    value: 8192
                },
            ]
        );
        std::fs::write(
            d.path().join("io.stat"),
            "254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
        )
        .unwrap();
        let v2 = v2_io(d.path());
        assert_eq!(
            v2.service_bytes[1],
            BlkioEntry {
                major: 254,
                minor: 0,
                op: "Write".into(),
                value: 8192
            }
        );
        assert_eq!(v2.serviced[1].value, 2);
        std::fs::write(d.path().join("hugetlb.2MB.current"), "0").unwrap();
        std::fs::write(d.path().join("hugetlb.2MB.max"), "4194304").unwrap();
        let h = hugetlb(d.path(), true);
        assert_eq!(h["2MB"].limit, 4194304);
    }
}
