//! `linux.resources` as cgroup file writes, per layout. Pure functions: a
//! spec section in, `(controller, file, value)` triples out, in the order
//! they must be written. The v1 → v2 conversions follow runc's published
//! formulas (see docs/cgroups.md).

use oci_spec::runtime::LinuxResources;

use crate::CgroupError;

/// One write: the v1 controller whose hierarchy holds `file` ("" on v2), the file, the value.
pub type Write = (&'static str, String, String);

fn unsupported(field: &str, reason: &str) -> CgroupError {
    CgroupError::Unsupported {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

/// cpu.shares (2..262144) → cpu.weight (1..10000), as runc converts it.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// blkio.weight (10..1000) → io.weight (1..10000), as runc converts it.
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (weight.clamp(10, 1000) as u64 - 10) * 9999 / 990
}

/// v1 memory+swap limit → v2 memory.swap.max (swap only), as runc converts it.
pub fn memsw_to_swap_max(memsw: i64, limit: Option<i64>) -> Result<String, CgroupError> {
    if memsw == -1 {
        return Ok("max".into());
    }
    match limit {
        None | Some(-1) => Err(unsupported(
            "memory.swap",
            "a swap limit needs a memory limit",
        )),
        Some(l) if memsw < l => Err(unsupported(
            "memory.swap",
            &format!("memory+swap {memsw} is below the memory limit {l}"),
        )),
        Some(l) => Ok((memsw - l).to_string()),
    }
}

/// An rdma.max line (same format on v1 and v2).
fn rdma_max(dev: &str, l: &oci_spec::runtime::LinuxRdma) -> String {
    let mut parts = vec![dev.to_string()];
    if let Some(h) = l.hca_handles() {
        parts.push(format!("hca_handle={h}"));
    }
    if let Some(o) = l.hca_objects() {
        parts.push(format!("hca_object={o}"));
    }
    parts.join(" ")
}

fn limit(v: i64) -> String {
    if v < 0 {
        "-1".into()
    } else {
        v.to_string()
    }
}

fn max(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// The writes for a v1 (or hybrid) host.
pub fn v1_writes(r: &LinuxResources) -> Result<Vec<Write>, CgroupError> {
    let mut w: Vec<Write> = vec![];
    let mut push = |c: &'static str, f: &str, v: String| w.push((c, f.to_string(), v));
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            push("memory", "memory.limit_in_bytes", limit(l));
        }
        if let Some(s) = m.swap() {
            push("memory", "memory.memsw.limit_in_bytes", limit(s));
        }
        if let Some(res) = m.reservation() {
            push("memory", "memory.soft_limit_in_bytes", limit(res));
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return Err(unsupported(
                    "memory.swappiness",
                    &format!("{s} is above 100"),
                ));
            }
            push("memory", "memory.swappiness", s.to_string());
        }
        if m.disable_oom_killer() == Some(true) {
            push("memory", "memory.oom_control", "1".into());
        }
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            return Err(unsupported(
                "memory.kernel",
                "kernel memory limits were removed from Linux",
            ));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares() {
            push("cpu", "cpu.shares", s.to_string());
        }
        if let Some(p) = c.period() {
            push("cpu", "cpu.cfs_period_us", p.to_string());
        }
        if let Some(q) = c.quota() {
            push("cpu", "cpu.cfs_quota_us", limit(q));
        }
        if let Some(b) = c.burst() {
            push("cpu", "cpu.cfs_burst_us", b.to_string());
        }
        if let Some(p) = c.realtime_period() {
            push("cpu", "cpu.rt_period_us", p.to_string());
        }
        if let Some(rt) = c.realtime_runtime() {
            push("cpu", "cpu.rt_runtime_us", rt.to_string());
        }
        if let Some(cpus) = c.cpus().as_ref().filter(|s| !s.is_empty()) {
            push("cpuset", "cpuset.cpus", cpus.clone());
        }
        if let Some(mems) = c.mems().as_ref().filter(|s| !s.is_empty()) {
            push("cpuset", "cpuset.mems", mems.clone());
        }
        if c.idle().is_some() {
            return Err(unsupported("cpu.idle", "cpu.idle exists only on cgroup v2"));
        }
    }
    if let Some(p) = r.pids() {
        push(
            "pids",
            "pids.max",
            max(if p.limit() > 0 { p.limit() } else { -1 }),
        );
    }
    if let Some(b) = r.block_io() {
        if let Some(wt) = b.weight() {
            push("blkio", "blkio.weight", wt.to_string());
        }
        if let Some(lw) = b.leaf_weight() {
            push("blkio", "blkio.leaf_weight", lw.to_string());
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(wt) = d.weight() {
                push(
                    "blkio",
                    "blkio.weight_device",
                    format!("{}:{} {wt}", d.major(), d.minor()),
                );
            }
        }
        let throttles = [
            (
                b.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
            ),
            (
                b.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
            ),
            (
                b.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
            ),
            (
                b.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
            ),
        ];
        for (list, file) in throttles {
            for d in list.iter().flatten() {
                push(
                    "blkio",
                    file,
                    format!("{}:{} {}", d.major(), d.minor(), d.rate()),
                );
            }
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        push(
            "hugetlb",
            &format!("hugetlb.{}.limit_in_bytes", h.page_size()),
            h.limit().to_string(),
        );
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            push("net_cls", "net_cls.classid", id.to_string());
        }
        for p in n.priorities().iter().flatten() {
            push(
                "net_prio",
                "net_prio.ifpriomap",
                format!("{} {}", p.name(), p.priority()),
            );
        }
    }
    for (dev, l) in r.rdma().iter().flatten() {
        push("rdma", "rdma.max", rdma_max(dev, l));
    }
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(unsupported(
            "unified",
            "raw cgroup v2 keys cannot be applied on a cgroup v1 host",
        ));
    }
    Ok(w)
}

/// The writes for a unified (v2) host.
pub fn v2_writes(r: &LinuxResources) -> Result<Vec<Write>, CgroupError> {
    let mut w: Vec<Write> = vec![];
    let mut push = |f: &str, v: String| w.push(("", f.to_string(), v));
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            push("memory.max", max(l));
        }
        if let Some(s) = m.swap() {
            push("memory.swap.max", memsw_to_swap_max(s, m.limit())?);
        }
        if let Some(res) = m.reservation() {
            push("memory.low", max(res));
        }
        if m.swappiness().is_some_and(|s| s != 0 && s != 60) {
            return Err(unsupported(
                "memory.swappiness",
                "cgroup v2 has no per-cgroup swappiness",
            ));
        }
        if m.disable_oom_killer() == Some(true) {
            return Err(unsupported(
                "memory.disableOOMKiller",
                "cgroup v2 cannot disable the OOM killer",
            ));
        }
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            return Err(unsupported(
                "memory.kernel",
                "kernel memory limits were removed from Linux",
            ));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares() {
            push("cpu.weight", shares_to_weight(s).to_string());
        }
        if c.quota().is_some() || c.period().is_some() {
            let q = c.quota().map(max).unwrap_or_else(|| "max".into());
            push("cpu.max", format!("{q} {}", c.period().unwrap_or(100_000)));
        }
        if let Some(b) = c.burst() {
            push("cpu.max.burst", b.to_string());
        }
        if c.realtime_period().is_some() || c.realtime_runtime().is_some() {
            return Err(unsupported(
                "cpu.realtimeRuntime",
                "realtime CPU limits exist only on cgroup v1",
            ));
        }
        if let Some(cpus) = c.cpus().as_ref().filter(|s| !s.is_empty()) {
            push("cpuset.cpus", cpus.clone());
        }
        if let Some(mems) = c.mems().as_ref().filter(|s| !s.is_empty()) {
            push("cpuset.mems", mems.clone());
        }
        if let Some(i) = c.idle() {
            push("cpu.idle", i.to_string());
        }
    }
    if let Some(p) = r.pids() {
        push("pids.max", max(if p.limit() > 0 { p.limit() } else { -1 }));
    }
    if let Some(b) = r.block_io() {
        if let Some(wt) = b.weight() {
            push(
                "io.weight",
                format!("default {}", blkio_weight_to_io_weight(wt)),
            );
        }
        if b.leaf_weight().is_some() {
            return Err(unsupported(
                "blockIO.leafWeight",
                "cgroup v2 has no leaf weight",
            ));
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(wt) = d.weight() {
                push(
                    "io.weight",
                    format!(
                        "{}:{} {}",
                        d.major(),
                        d.minor(),
                        blkio_weight_to_io_weight(wt)
                    ),
                );
            }
        }
        let throttles = [
            (b.throttle_read_bps_device(), "rbps"),
            (b.throttle_write_bps_device(), "wbps"),
            (b.throttle_read_iops_device(), "riops"),
            (b.throttle_write_iops_device(), "wiops"),
        ];
        for (list, key) in throttles {
            for d in list.iter().flatten() {
                push(
                    "io.max",
                    format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()),
                );
            }
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        push(
            &format!("hugetlb.{}.max", h.page_size()),
            h.limit().to_string(),
        );
    }
    if r.network().as_ref().is_some_and(|n| {
        n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty())
    }) {
        return Err(unsupported(
            "network",
            "net_cls and net_prio exist only on cgroup v1",
        ));
    }
    for (dev, l) in r.rdma().iter().flatten() {
        push("rdma.max", rdma_max(dev, l));
    }
    for (k, v) in r.unified().iter().flatten() {
        if k.contains('/') || k.starts_with("cgroup.") {
            return Err(unsupported(
                &format!("unified[{k:?}]"),
                "not a controller file of this cgroup",
            ));
        }
        push(k, v.clone());
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn conversions_match_runc() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(memsw_to_swap_max(300, Some(100)).unwrap(), "200");
        assert_eq!(memsw_to_swap_max(-1, Some(100)).unwrap(), "max");
        assert!(memsw_to_swap_max(50, Some(100)).is_err());
    }

    #[test]
    fn v1_and_v2_files_for_one_section() {
        let r = res(
            r#"{"memory":{"limit":104857600,"swap":209715200},"cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0"},"pids":{"limit":64},"blockIO":{"weight":500}}"#,
        );
        let v1: Vec<(&str, String)> = v1_writes(&r)
            .unwrap()
            .into_iter()
            .map(|(_, f, v)| (if f.is_empty() { "" } else { "x" }, format!("{f}={v}")))
            .collect();
        let v1: Vec<&str> = v1.iter().map(|(_, s)| s.as_str()).collect();
        assert!(v1.contains(&"memory.limit_in_bytes=104857600"));
        assert!(v1.contains(&"memory.memsw.limit_in_bytes=209715200"));
        assert!(v1.contains(&"cpu.cfs_quota_us=50000"));
        assert!(v1.contains(&"pids.max=64"));
        let v2: Vec<String> = v2_writes(&r)
            .unwrap()
            .into_iter()
            .map(|(_, f, v)| format!("{f}={v}"))
            .collect();
        assert!(v2.contains(&"memory.max=104857600".to_string()));
        assert!(v2.contains(&"memory.swap.max=104857600".to_string()));
        assert!(v2.contains(&"cpu.weight=39".to_string()));
        assert!(v2.contains(&"cpu.max=50000 100000".to_string()));
        assert!(v2.contains(&"io.weight=default 4950".to_string()));
    }

    #[test]
    fn layout_specific_fields_are_refused_by_name() {
        let e = v1_writes(&res(r#"{"unified":{"memory.high":"1G"}}"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unified"), "{e}");
        let e = v2_writes(&res(r#"{"memory":{"disableOOMKiller":true}}"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("disableOOMKiller"), "{e}");
    }
}
