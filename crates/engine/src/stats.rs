//! `stats`: one sample of a running container's resource use, from the
//! runtime's `events --stats` (its cgroup) and the container's own
//! `/proc/<pid>/net/dev`; two samples give the CPU share, as Docker
//! computes it.

use std::process::Stdio;

use crate::error::EngineError;
use crate::run::Engine;

/// One sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// CPU time used so far (ns).
    pub cpu_ns: u64,
    /// When the sample was taken (ns since an arbitrary start).
    pub at_ns: u64,
    /// Memory in use, without the page cache the kernel can drop (bytes).
    pub memory: u64,
    /// The memory limit, or the machine's memory when unlimited (bytes).
    pub memory_limit: u64,
    /// Processes (and threads) in the container.
    pub pids: u64,
    /// Bytes read from and written to block devices.
    pub block_io: (u64, u64),
    /// Bytes received and sent on the container's network devices (not lo).
    pub net_io: (u64, u64),
}

impl Sample {
    /// The CPU share between `before` and `self`, in percent of one CPU
    /// (Docker's: 200% is two CPUs busy).
    pub fn cpu_percent(&self, before: &Sample) -> f64 {
        let wall = self.at_ns.saturating_sub(before.at_ns);
        if wall == 0 {
            return 0.0;
        }
        self.cpu_ns.saturating_sub(before.cpu_ns) as f64 / wall as f64 * 100.0
    }

    /// Memory use in percent of the limit.
    pub fn memory_percent(&self) -> f64 {
        if self.memory_limit == 0 {
            return 0.0;
        }
        self.memory as f64 / self.memory_limit as f64 * 100.0
    }
}

fn monotonic_ns() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

fn host_memory() -> u64 {
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

/// Received and sent bytes of every device but lo in `/proc/<pid>/net/dev`.
fn net_io(pid: i64) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    let mut total = (0, 0);
    for line in text.lines().skip(2) {
        let Some((dev, rest)) = line.split_once(':') else {
            continue;
        };
        if dev.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() >= 9 {
            total.0 += f[0];
            total.1 += f[8];
        }
    }
    total
}

/// A sample from the runtime's stats event (`data` of `events --stats`).
pub fn parse_event(data: &serde_json::Value, host_mem: u64) -> Sample {
    let u = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let mem = &data["memory"];
    let raw = &mem["raw"];
    // Docker's "usage": minus the inactive page cache (v1's total_, v2's plain name).
    let inactive = raw
        .get("total_inactive_file")
        .or_else(|| raw.get("inactive_file"))
        .map_or(0, u);
    let usage = u(&mem["usage"]["usage"]);
    let limit = u(&mem["usage"]["limit"]);
    let sum = |list: &serde_json::Value, op: &str| -> u64 {
        list.as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["op"].as_str().is_some_and(|o| o.eq_ignore_ascii_case(op)))
                    .map(|e| u(&e["value"]))
                    .sum()
            })
            .unwrap_or(0)
    };
    let io = &data["blkio"]["ioServiceBytesRecursive"];
    Sample {
        cpu_ns: u(&data["cpu"]["usage"]["total"]),
        at_ns: 0,
        memory: usage.saturating_sub(inactive),
        memory_limit: if limit == 0 || limit >= host_mem {
            host_mem
        } else {
            limit
        },
        pids: u(&data["pids"]["current"]),
        block_io: (sum(io, "read"), sum(io, "write")),
        net_io: (0, 0),
    }
}

impl Engine {
    /// One sample of running container `key`.
    pub fn stats_sample(&self, key: &str) -> Result<Sample, EngineError> {
        let rec = self.container(key)?;
        if !rec.is_running() {
            return Err(EngineError::NotRunning(rec.name.clone()));
        }
        let out = std::process::Command::new(&self.runtime)
            .arg("--root")
            .arg(self.root.join("runtime"))
            .args(["events", "--stats", &rec.id])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| EngineError::Io {
                op: "run",
                path: self.runtime.clone(),
                err: e,
            })?;
        let at_ns = monotonic_ns();
        let event: serde_json::Value = serde_json::from_slice(&out.stdout)
            .ok()
            .filter(|_| out.status.success())
            .ok_or_else(|| EngineError::Runtime {
                step: "events --stats",
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })?;
        let mut s = parse_event(&event["data"], host_memory());
        s.at_ns = at_ns;
        s.net_io = net_io(rec.pid);
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stats_event_becomes_dockers_numbers() {
        let data = serde_json::json!({
            "cpu": {"usage": {"total": 2_000_000_000u64}},
            "memory": {"usage": {"usage": 10_000_000u64, "limit": 64u64 << 20},
                       "raw": {"total_inactive_file": 2_000_000u64}},
            "pids": {"current": 3},
            "blkio": {"ioServiceBytesRecursive": [
                {"major": 7, "minor": 0, "op": "Read", "value": 4096},
                {"major": 7, "minor": 0, "op": "Write", "value": 8192},
                {"major": 7, "minor": 1, "op": "read", "value": 1}]}
        });
        let mut s = parse_event(&data, 1 << 34);
        assert_eq!((s.memory, s.memory_limit, s.pids), (8_000_000, 64 << 20, 3));
        assert_eq!(s.block_io, (4097, 8192));
        let before = Sample {
            cpu_ns: 1_000_000_000,
            at_ns: 0,
            ..Default::default()
        };
        s.at_ns = 2_000_000_000;
        assert!((s.cpu_percent(&before) - 50.0).abs() < 1e-9);
        // No limit: the machine's memory.
        let data = serde_json::json!({"memory": {"usage": {"usage": 1, "limit": u64::MAX}}});
        assert_eq!(parse_event(&data, 1 << 30).memory_limit, 1 << 30);
    }
}
