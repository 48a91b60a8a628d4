//! Docker's resource flags as `linux.resources` and `process.rlimits`:
//! `--memory`, `--memory-swap`, `--memory-reservation`, `--cpus`,
//! `--cpu-shares`, `--cpu-period`, `--cpu-quota`, `--cpuset-cpus`,
//! `--cpuset-mems`, `--pids-limit`, `--ulimit`. Values are parsed as the
//! docker CLI parses them, and a bad one is an error naming the flag.

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, PosixRlimit, PosixRlimitBuilder,
    PosixRlimitType, Spec,
};

use crate::error::EngineError;

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
}

fn invalid(option: &'static str, value: &str, reason: impl Into<String>) -> EngineError {
    EngineError::InvalidOption {
        option,
        value: value.to_string(),
        reason: reason.into(),
    }
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
    if memory.is_some() || swap.is_some() || reservation.is_some() {
        let mut b = LinuxMemoryBuilder::default();
        if let Some(m) = memory {
            b = b.limit(m);
            // Docker: swap defaults to twice the memory limit.
            b = b.swap(swap.unwrap_or(m * 2));
        } else if let Some(s) = swap {
            b = b.swap(s);
        }
        if let Some(r) = reservation {
            b = b.reservation(r);
        }
        res.set_memory(Some(b.build().map_err(err)?));
    }
    let mut cpu = LinuxCpuBuilder::default();
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
        cpu = cpu.period(100_000u64).quota((n * 100_000.0) as i64);
        cpu_set = true;
    }
    if let Some(p) = l.cpu_period {
        cpu = cpu.period(p);
        cpu_set = true;
    }
    if let Some(q) = l.cpu_quota {
        cpu = cpu.quota(q);
        cpu_set = true;
    }
    if let Some(s) = l.cpu_shares {
        cpu = cpu.shares(s);
        cpu_set = true;
    }
    if let Some(c) = &l.cpuset_cpus {
        cpu = cpu.cpus(c.clone());
        cpu_set = true;
    }
    if let Some(m) = &l.cpuset_mems {
        cpu = cpu.mems(m.clone());
        cpu_set = true;
    }
    if cpu_set {
        res.set_cpu(Some(cpu.build().map_err(err)?));
    }
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
