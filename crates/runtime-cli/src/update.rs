//! `update`: the resources to change, from `--resources` and the flags.

use anyhow::{Context, Result};

use crate::args::UpdateArgs;

/// Parses 64m / 1g / 1024 / -1.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let lower = s.trim().to_ascii_lowercase();
    if lower == "-1" {
        return Ok(-1);
    }
    let t = lower.strip_suffix('b').unwrap_or(&lower);
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: i64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a size"))?;
    if n < 0 {
        anyhow::bail!("{s:?} is not a size (only -1, unlimited, may be negative)");
    }
    n.checked_mul(mul)
        .with_context(|| format!("{s:?} is too large (the limit is {} bytes)", i64::MAX))
}

/// The resources of an `update`: the JSON of --resources (a file or -
/// for stdin) with the values of the flags over it.
pub fn update_resources(a: &UpdateArgs) -> Result<oci_spec::runtime::LinuxResources> {
    use serde_json::{json, Value};
    let mut v: Value = match &a.resources {
        Some(p) if p.as_os_str() == "-" => {
            serde_json::from_reader(std::io::stdin()).context("resources from stdin")?
        }
        Some(p) => serde_json::from_slice(
            &std::fs::read(p).with_context(|| format!("read {}", p.display()))?,
        )
        .with_context(|| format!("{}: invalid resources", p.display()))?,
        None => json!({}),
    };
    let obj = v
        .as_object_mut()
        .context("resources must be a JSON object")?;
    let mut memory = serde_json::Map::new();
    if let Some(m) = &a.memory {
        memory.insert("limit".into(), json!(parse_bytes(m)?));
    }
    if let Some(m) = &a.memory_swap {
        memory.insert("swap".into(), json!(parse_bytes(m)?));
    }
    if let Some(m) = &a.memory_reservation {
        memory.insert("reservation".into(), json!(parse_bytes(m)?));
    }
    if !memory.is_empty() {
        obj.insert("memory".into(), Value::Object(memory));
    }
    let mut cpu = serde_json::Map::new();
    if let Some(x) = a.cpu_shares {
        cpu.insert("shares".into(), json!(x));
    }
    if let Some(x) = a.cpu_quota {
        cpu.insert("quota".into(), json!(x));
    }
    if let Some(x) = a.cpu_period {
        cpu.insert("period".into(), json!(x));
    }
    if let Some(x) = &a.cpuset_cpus {
        cpu.insert("cpus".into(), json!(x));
    }
    if let Some(x) = &a.cpuset_mems {
        cpu.insert("mems".into(), json!(x));
    }
    if !cpu.is_empty() {
        obj.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = a.pids_limit {
        obj.insert("pids".into(), json!({"limit": p}));
    }
    if let Some(w) = a.blkio_weight {
        obj.insert("blockIO".into(), json!({"weight": w}));
    }
    serde_json::from_value(v).context("invalid resources")
}
