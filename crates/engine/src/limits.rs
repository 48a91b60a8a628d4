//! Docker's resource flags as `linux.resources` and `process.rlimits`:
//! `--memory`, `--memory-swap`, `--memory-reservation`, `--cpus`,
//! `--cpu-shares`, `--cpu-period`, `--cpu-quota`, `--cpuset-cpus`,
//! `--cpuset-mems`, `--pids-limit`, `--ulimit`, `--oom-kill-disable`,
//! `--oom-score-adj`, `--blkio-weight`, `--device-{read,write}-{bps,iops}`
//! and `--shm-size`. Values are parsed as the docker CLI parses them, and a
//! bad one is an error naming the flag. Set values change what is there
//! (so `update` keeps what it is not given).

use oci_spec::runtime::{LinuxPidsBuilder, PosixRlimit, PosixRlimitBuilder, PosixRlimitType, Spec};

use crate::error::{invalid, EngineError};

/// The resource flags of one run (unset ones stay `None`).
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// `--memory`.
    pub memory: Option<String>,
    /// `--memory-swap` (-1: unlimited).
    pub memory_swap: Option<String>,
    /// `--memory-reservation`.
    pub memory_reservation: Option<String>,
    /// `--cpus`.
    pub cpus: Option<String>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<u64>,
    /// `--cpu-period`.
    pub cpu_period: Option<u64>,
    /// `--cpu-quota`.
    pub cpu_quota: Option<i64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`.
    pub cpuset_mems: Option<String>,
    /// `--pids-limit` (-1 or 0: unlimited).
    pub pids_limit: Option<i64>,
    /// `--ulimit NAME=SOFT[:HARD]`.
    pub ulimits: Vec<String>,
    /// `--kernel-memory` (refused: the kernel removed kernel memory limits).
    pub kernel_memory: Option<String>,
    /// `--oom-kill-disable`.
    pub oom_kill_disable: bool,
    /// `--oom-score-adj` (-1000 to 1000).
    pub oom_score_adj: Option<i32>,
    /// `--blkio-weight` (10 to 1000).
    pub blkio_weight: Option<u16>,
    /// `--device-read-bps DEVICE:RATE`.
    pub device_read_bps: Vec<String>,
    /// `--device-write-bps DEVICE:RATE`.
    pub device_write_bps: Vec<String>,
    /// `--device-read-iops DEVICE:RATE`.
    pub device_read_iops: Vec<String>,
    /// `--device-write-iops DEVICE:RATE`.
    pub device_write_iops: Vec<String>,
    /// `--shm-size` (the size of /dev/shm; 64m by default).
    pub shm_size: Option<String>,
}

/// A size as the docker CLI reads it: a number with an optional unit
/// b, k, m, g (powers of 1024, case-insensitive, an optional trailing b).
pub fn parse_size(option: &'static str, s: &str) -> Result<i64, EngineError> {
    let lower = s.trim().to_ascii_lowercase();
    // "64mb" is "64m"; a bare "b" is bytes.
    let t = match lower.strip_suffix('b') {
        Some(t) if t.ends_with(['k', 'm', 'g', 't']) => t,
        _ => lower.as_str(),
    };
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('b') => (&t[..t.len() - 1], 1),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| {
        invalid(
            option,
            s,
            "not a size (a number with an optional b, k, m or g)",
        )
    })?;
    if !n.is_finite() || n < 0.0 {
        return Err(invalid(option, s, "a size cannot be negative"));
    }
    let v = n * mult as f64;
    if v > i64::MAX as f64 {
        return Err(invalid(option, s, "too large"));
    }
    Ok(v as i64)
}

fn rlimit_type(name: &str) -> Option<PosixRlimitType> {
    use PosixRlimitType::*;
    Some(match name {
        "core" => RlimitCore,
        "cpu" => RlimitCpu,
        "data" => RlimitData,
        "fsize" => RlimitFsize,
        "locks" => RlimitLocks,
        "memlock" => RlimitMemlock,
        "msgqueue" => RlimitMsgqueue,
        "nice" => RlimitNice,
        "nofile" => RlimitNofile,
        "nproc" => RlimitNproc,
        "rss" => RlimitRss,
        "rtprio" => RlimitRtprio,
        "rttime" => RlimitRttime,
        "sigpending" => RlimitSigpending,
        "stack" => RlimitStack,
        "as" => RlimitAs,
        _ => return None,
    })
}

/// `--ulimit NAME=SOFT[:HARD]` (-1: unlimited).
pub fn parse_ulimit(s: &str) -> Result<PosixRlimit, EngineError> {
    let bad = |r: &str| invalid("--ulimit", s, r);
    let (name, values) = s
        .split_once('=')
        .ok_or_else(|| bad("expected NAME=SOFT[:HARD]"))?;
    let typ = rlimit_type(name).ok_or_else(|| bad("unknown limit name"))?;
    let num = |v: &str| -> Result<u64, EngineError> {
        match v.parse::<i64>() {
            Ok(-1) => Ok(u64::MAX),
            Ok(n) if n >= 0 => Ok(n as u64),
            _ => Err(bad("limits are numbers (or -1 for unlimited)")),
        }
    };
    let (soft, hard) = match values.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(values)?, num(values)?),
    };
    if soft > hard {
        return Err(bad("the soft limit is above the hard one"));
    }
    PosixRlimitBuilder::default()
        .typ(typ)
        .soft(soft)
        .hard(hard)
        .build()
        .map_err(|e| bad(&e.to_string()))
}

/// The resources in `spec` as Docker's `HostConfig` names them (what
/// `inspect` shows, after `run` and `update`).
pub fn host_config(spec: &Spec) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    let mut m = serde_json::Map::new();
    let Some(res) = spec.linux().as_ref().and_then(|l| l.resources().clone()) else {
        return m;
    };
    if let Some(mem) = res.memory() {
        m.insert("Memory".into(), json!(mem.limit().unwrap_or(0)));
        m.insert("MemorySwap".into(), json!(mem.swap().unwrap_or(0)));
        m.insert(
            "MemoryReservation".into(),
            json!(mem.reservation().unwrap_or(0)),
        );
        m.insert(
            "OomKillDisable".into(),
            json!(mem.disable_oom_killer().unwrap_or(false)),
        );
    }
    if let Some(cpu) = res.cpu() {
        m.insert("CpuShares".into(), json!(cpu.shares().unwrap_or(0)));
        m.insert("CpuPeriod".into(), json!(cpu.period().unwrap_or(0)));
        m.insert("CpuQuota".into(), json!(cpu.quota().unwrap_or(0)));
        m.insert(
            "CpusetCpus".into(),
            json!(cpu.cpus().clone().unwrap_or_default()),
        );
        m.insert(
            "CpusetMems".into(),
            json!(cpu.mems().clone().unwrap_or_default()),
        );
    }
    if let Some(p) = res.pids() {
        m.insert("PidsLimit".into(), json!(p.limit()));
    }
    if let Some(w) = res.block_io().as_ref().and_then(|b| b.weight()) {
        m.insert("BlkioWeight".into(), json!(w));
    }
    m
}

/// [`host_config`] of the limits `l` alone.
pub fn host_config_of(
    l: &Limits,
) -> Result<serde_json::Map<String, serde_json::Value>, EngineError> {
    let mut spec = Spec::default();
    apply(&mut spec, l)?;
    Ok(host_config(&spec))
}

/// Applies the flags to `spec`.
pub fn apply(spec: &mut Spec, l: &Limits) -> Result<(), EngineError> {
    let err = |e: oci_spec::OciSpecError| EngineError::Spec(e.to_string());
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut res = linux.resources().clone().unwrap_or_default();
    let memory = l
        .memory
        .as_deref()
        .map(|m| parse_size("--memory", m))
        .transpose()?;
    if let Some(m) = memory.filter(|m| *m > 0 && *m < 6 << 20) {
        return Err(invalid(
            "--memory",
            &m.to_string(),
            "the minimum memory limit is 6MB",
        ));
    }
    let swap = match l.memory_swap.as_deref() {
        None => None,
        Some("-1") => Some(-1),
        Some(s) => Some(parse_size("--memory-swap", s)?),
    };
    if let (Some(s), None) = (swap.filter(|s| *s > 0), memory) {
        return Err(invalid(
            "--memory-swap",
            &s.to_string(),
            "needs --memory too",
        ));
    }
    if let (Some(s), Some(m)) = (swap.filter(|s| *s > 0), memory) {
        if s < m {
            return Err(invalid(
                "--memory-swap",
                &s.to_string(),
                "must be at least --memory (it counts memory plus swap)",
            ));
        }
    }
    let reservation = l
        .memory_reservation
        .as_deref()
        .map(|m| parse_size("--memory-reservation", m))
        .transpose()?;
    if memory.is_some() || swap.is_some() || reservation.is_some() || l.oom_kill_disable {
        let mut mem = res.memory().unwrap_or_default();
        if let Some(m) = memory {
            mem.set_limit(Some(m));
            // Docker: swap defaults to twice the memory limit.
            mem.set_swap(Some(swap.unwrap_or(m * 2)));
        } else if let Some(s) = swap {
            mem.set_swap(Some(s));
        }
        if let Some(r) = reservation {
            mem.set_reservation(Some(r));
        }
        if l.oom_kill_disable {
            mem.set_disable_oom_killer(Some(true));
        }
        res.set_memory(Some(mem));
    }
    if let Some(k) = &l.kernel_memory {
        return Err(invalid(
            "--kernel-memory",
            k,
            "kernel memory limits were removed from Linux (5.16): the flag is not supported",
        ));
    }
    let mut cpu = res.cpu().clone().unwrap_or_default();
    let mut cpu_set = false;
    if let Some(c) = &l.cpus {
        let n: f64 = c
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite() && *n > 0.0)
            .ok_or_else(|| invalid("--cpus", c, "a positive number of CPUs"))?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        if n > cpus {
            return Err(invalid(
                "--cpus",
                c,
                format!("this machine has {cpus} CPUs"),
            ));
        }
        if l.cpu_quota.is_some() || l.cpu_period.is_some() {
            return Err(invalid(
                "--cpus",
                c,
                "conflicts with --cpu-period and --cpu-quota",
            ));
        }
        cpu.set_period(Some(100_000));
        cpu.set_quota(Some((n * 100_000.0) as i64));
        cpu_set = true;
    }
    if let Some(p) = l.cpu_period {
        cpu.set_period(Some(p));
        cpu_set = true;
    }
    if let Some(q) = l.cpu_quota {
        cpu.set_quota(Some(q));
        cpu_set = true;
    }
    if let Some(s) = l.cpu_shares {
        cpu.set_shares(Some(s));
        cpu_set = true;
    }
    if let Some(c) = &l.cpuset_cpus {
        cpu.set_cpus(Some(c.clone()));
        cpu_set = true;
    }
    if let Some(m) = &l.cpuset_mems {
        cpu.set_mems(Some(m.clone()));
        cpu_set = true;
    }
    if cpu_set {
        res.set_cpu(Some(cpu));
    }
    crate::blkio::apply(&mut res, l)?;
    if let Some(p) = l.pids_limit {
        let limit = if p <= 0 { -1 } else { p };
        res.set_pids(Some(
            LinuxPidsBuilder::default()
                .limit(limit)
                .build()
                .map_err(err)?,
        ));
    }
    linux.set_resources(Some(res));
    spec.set_linux(Some(linux));
    if !l.ulimits.is_empty() {
        let mut process = spec.process().clone().unwrap_or_default();
        let mut rlimits = process.rlimits().clone().unwrap_or_default();
        for u in &l.ulimits {
            let r = parse_ulimit(u)?;
            rlimits.retain(|x| x.typ() != r.typ());
            rlimits.push(r);
        }
        process.set_rlimits(Some(rlimits));
        spec.set_process(Some(process));
    }
    if let Some(adj) = l.oom_score_adj {
        if !(-1000..=1000).contains(&adj) {
            return Err(invalid(
                "--oom-score-adj",
                &adj.to_string(),
                "the range is -1000 to 1000",
            ));
        }
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_oom_score_adj(Some(adj));
        spec.set_process(Some(process));
    }
    if let Some(size) = &l.shm_size {
        let bytes = parse_size("--shm-size", size)?;
        if bytes <= 0 {
            return Err(invalid("--shm-size", size, "the size must be more than 0"));
        }
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for m in mounts.iter_mut() {
            if m.destination() == std::path::Path::new("/dev/shm")
                && m.typ().as_deref() == Some("tmpfs")
            {
                let mut opts: Vec<String> = m.options().clone().unwrap_or_default();
                opts.retain(|o| !o.starts_with("size="));
                opts.push(format!("size={}k", (bytes + 1023) / 1024));
                m.set_options(Some(opts));
            }
        }
        spec.set_mounts(Some(mounts));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_the_docker_cli() {
        assert_eq!(parse_size("--memory", "64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("--memory", "64MB").unwrap(), 64 << 20);
        assert_eq!(parse_size("--memory", "1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("--memory", "1.5k").unwrap(), 1536);
        assert_eq!(parse_size("--memory", "4096").unwrap(), 4096);
        assert!(parse_size("--memory", "lots").is_err());
        assert!(parse_size("--memory", "-1m").is_err());
    }

    #[test]
    fn flags_become_resources() {
        let mut spec = Spec::default();
        apply(
            &mut spec,
            &Limits {
                memory: Some("64m".into()),
                cpus: Some("0.5".into()),
                pids_limit: Some(20),
                ulimits: vec!["nofile=100:200".into()],
                ..Default::default()
            },
        )
        .unwrap();
        let res = spec.linux().as_ref().unwrap().resources().clone().unwrap();
        let mem = res.memory().unwrap();
        assert_eq!((mem.limit(), mem.swap()), (Some(64 << 20), Some(128 << 20)));
        let cpu = res.cpu().clone().unwrap();
        assert_eq!((cpu.quota(), cpu.period()), (Some(50_000), Some(100_000)));
        assert_eq!(res.pids().unwrap().limit(), 20);
        let r = spec.process().clone().unwrap().rlimits().clone().unwrap();
        let nofile = r
            .iter()
            .find(|r| r.typ() == PosixRlimitType::RlimitNofile)
            .unwrap();
        assert_eq!((nofile.soft(), nofile.hard()), (100, 200));
    }

    #[test]
    fn bad_values_name_the_flag() {
        let mut spec = Spec::default();
        for (l, flag) in [
            (
                Limits {
                    memory: Some("1k".into()),
                    ..Default::default()
                },
                "--memory",
            ),
            (
                Limits {
                    memory_swap: Some("1g".into()),
                    ..Default::default()
                },
                "--memory-swap",
            ),
            (
                Limits {
                    cpus: Some("-1".into()),
                    ..Default::default()
                },
                "--cpus",
            ),
            (
                Limits {
                    ulimits: vec!["nofile=9:1".into()],
                    ..Default::default()
                },
                "--ulimit",
            ),
            (
                Limits {
                    ulimits: vec!["bogus=1".into()],
                    ..Default::default()
                },
                "--ulimit",
            ),
        ] {
            let e = apply(&mut spec, &l).unwrap_err().to_string();
            assert!(e.contains(flag), "{e}");
        }
    }
}
