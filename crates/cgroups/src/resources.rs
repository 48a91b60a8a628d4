//! `linux.resources` as cgroup file writes, per layout. Pure functions: a
//! spec section in, `(controller, file, value)` triples out, in the order
//! they must be written. The v1 → v2 conversions follow runc's published
//! formulas (see docs/cgroups.md).
//!
//! Zero means "not set" wherever runc reads it so: Docker sends every
//! resource field, most of them 0, on create and on `docker update`
//! (`cpu.shares: 0`, `blockIO.weight: 0`, `memory.limit: 0`, …), and
//! writing those zeros would give every container the minimum CPU weight
//! or a zero memory limit. Kernel memory limits (`memory.kernel`,
//! `memory.kernelTCP`) are ignored with a debug line, as runc ignores them
//! on kernels without kmem accounting (every kernel since 6.1).

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

/// `Some(v)` unless `v` is absent or zero ("not set", as runc reads it).
fn set<T: Default + PartialEq>(v: Option<T>) -> Option<T> {
    v.filter(|v| *v != T::default())
}

/// Logs, at debug level, kernel memory fields that are present and ignored.
fn ignore_kernel_memory(m: &oci_spec::runtime::LinuxMemory) {
    if let Some(k) = m.kernel() {
        tracing::debug!(
            value = k,
            "memory.kernel ignored: kernel memory limits were removed from Linux"
        );
    }
    if let Some(k) = m.kernel_tcp() {
        tracing::debug!(
            value = k,
            "memory.kernelTCP ignored: kernel memory limits were removed from Linux"
        );
    }
}

/// pids.max for a `pids.limit`: nothing for 0 (unset), the limit when
/// positive, "max" when negative.
fn pids_max(limit: i64) -> Option<String> {
    match limit {
        0 => None,
        l if l > 0 => Some(l.to_string()),
        _ => Some("max".into()),
    }
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
        let mem = set(m.limit());
        let mut swap = set(m.swap());
        // runc: an unlimited memory with swap unset makes swap unlimited too.
        if mem == Some(-1) && swap.is_none() {
            swap = Some(-1);
        }
        if let Some(l) = mem {
            push("memory", "memory.limit_in_bytes", limit(l));
        }
        if let Some(s) = swap {
            push("memory", "memory.memsw.limit_in_bytes", limit(s));
        }
        if let Some(res) = set(m.reservation()) {
            push("memory", "memory.soft_limit_in_bytes", limit(res));
        }
        // Swappiness: absent, or -1 as a u64 (Docker's "unset"), writes nothing.
        if let Some(s) = m
            .swappiness()
            .filter(|s| *s != u64::MAX && *s != u32::MAX as u64)
        {
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
        ignore_kernel_memory(m);
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = set(c.shares()) {
            push("cpu", "cpu.shares", s.to_string());
        }
        if let Some(p) = set(c.period()) {
            push("cpu", "cpu.cfs_period_us", p.to_string());
        }
        if let Some(q) = set(c.quota()) {
            push("cpu", "cpu.cfs_quota_us", limit(q));
        }
        if let Some(b) = c.burst() {
            push("cpu", "cpu.cfs_burst_us", b.to_string());
        }
        if let Some(p) = set(c.realtime_period()) {
            push("cpu", "cpu.rt_period_us", p.to_string());
        }
        if let Some(rt) = set(c.realtime_runtime()) {
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
    if let Some(v) = r.pids().as_ref().and_then(|p| pids_max(p.limit())) {
        push("pids", "pids.max", v);
    }
    if let Some(b) = r.block_io() {
        if let Some(wt) = set(b.weight()) {
            push("blkio", "blkio.weight", wt.to_string());
        }
        if let Some(lw) = set(b.leaf_weight()) {
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
        let mem = set(m.limit());
        if let Some(l) = mem {
            push("memory.max", max(l));
        }
        match (set(m.swap()), mem) {
            // runc: an unlimited memory with swap unset makes swap unlimited too.
            (None, Some(-1)) => push("memory.swap.max", "max".into()),
            (None, _) => {}
            (Some(s), _) => push("memory.swap.max", memsw_to_swap_max(s, mem)?),
        }
        if let Some(res) = set(m.reservation()) {
            push("memory.low", max(res));
        }
        if m.swappiness()
            .is_some_and(|s| s != 0 && s != 60 && s != u64::MAX && s != u32::MAX as u64)
        {
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
        ignore_kernel_memory(m);
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = set(c.shares()) {
            push("cpu.weight", shares_to_weight(s).to_string());
        }
        // As runc: quota (or "max") then the period only when one is set,
        // so an update of the quota alone keeps the cgroup's period.
        let (quota, period) = (set(c.quota()), set(c.period()));
        if quota.is_some() || period.is_some() {
            let mut v = quota
                .filter(|q| *q > 0)
                .map_or_else(|| "max".to_string(), |q| q.to_string());
            if let Some(p) = period {
                v.push_str(&format!(" {p}"));
            }
            push("cpu.max", v);
        }
        if let Some(b) = c.burst() {
            push("cpu.max.burst", b.to_string());
        }
        if set(c.realtime_period()).is_some() || set(c.realtime_runtime()).is_some() {
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
    if let Some(v) = r.pids().as_ref().and_then(|p| pids_max(p.limit())) {
        push("pids.max", v);
    }
    if let Some(b) = r.block_io() {
        if let Some(wt) = set(b.weight()) {
            push(
                "io.weight",
                format!("default {}", blkio_weight_to_io_weight(wt)),
            );
        }
        if set(b.leaf_weight()).is_some() {
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

    /// Docker 20.10's create config: every field present, most of them 0.
    const DOCKER_ZEROS: &str = r#"{"memory":{"limit":0,"reservation":0,"swap":0,"kernel":0,"kernelTCP":0},
        "cpu":{"shares":0,"quota":0,"period":0,"realtimeRuntime":0,"realtimePeriod":0,"cpus":"","mems":""},
        "pids":{"limit":0},"blockIO":{"weight":0,"leafWeight":0}}"#;

    #[test]
    fn zero_means_unset_on_both_layouts() {
        assert_eq!(v1_writes(&res(DOCKER_ZEROS)).unwrap(), vec![]);
        assert_eq!(v2_writes(&res(DOCKER_ZEROS)).unwrap(), vec![]);
        // And each field alone at zero.
        for one in [
            r#"{"memory":{"limit":0}}"#,
            r#"{"memory":{"reservation":0}}"#,
            r#"{"memory":{"swap":0}}"#,
            r#"{"cpu":{"shares":0}}"#,
            r#"{"cpu":{"quota":0}}"#,
            r#"{"cpu":{"period":0}}"#,
            r#"{"cpu":{"realtimeRuntime":0,"realtimePeriod":0}}"#,
            r#"{"pids":{"limit":0}}"#,
            r#"{"blockIO":{"weight":0}}"#,
            r#"{"blockIO":{"leafWeight":0}}"#,
        ] {
            assert_eq!(v1_writes(&res(one)).unwrap(), vec![], "v1 {one}");
            assert_eq!(v2_writes(&res(one)).unwrap(), vec![], "v2 {one}");
        }
    }

    #[test]
    fn docker_update_of_the_cpus_alone_writes_only_the_quota() {
        // `docker update --cpus 0.5` sends memory 0 and period 100000.
        let r = res(
            r#"{"memory":{"limit":0,"reservation":0,"swap":0,"kernel":0},"cpu":{"shares":0,"quota":50000,"period":100000},"pids":{"limit":0},"blockIO":{"weight":0}}"#,
        );
        let v1: Vec<String> = v1_writes(&r)
            .unwrap()
            .into_iter()
            .map(|(_, f, v)| format!("{f}={v}"))
            .collect();
        assert_eq!(v1, ["cpu.cfs_period_us=100000", "cpu.cfs_quota_us=50000"]);
        let v2: Vec<String> = v2_writes(&r)
            .unwrap()
            .into_iter()
            .map(|(_, f, v)| format!("{f}={v}"))
            .collect();
        assert_eq!(v2, ["cpu.max=50000 100000"]);
        // A quota alone keeps the period the cgroup has (v2 writes no period).
        let q = v2_writes(&res(r#"{"cpu":{"quota":20000}}"#)).unwrap();
        assert_eq!(q[0].1, "cpu.max");
        assert_eq!(q[0].2, "20000");
    }

    #[test]
    fn kernel_memory_is_ignored_not_refused() {
        for m in [
            r#"{"memory":{"kernel":104857600}}"#,
            r#"{"memory":{"kernelTCP":104857600}}"#,
            r#"{"memory":{"kernel":-1,"kernelTCP":-1}}"#,
        ] {
            assert_eq!(v1_writes(&res(m)).unwrap(), vec![], "v1 {m}");
            assert_eq!(v2_writes(&res(m)).unwrap(), vec![], "v2 {m}");
        }
        let with_limit = res(r#"{"memory":{"limit":1048576,"kernel":1048576}}"#);
        assert_eq!(v1_writes(&with_limit).unwrap().len(), 1);
        assert_eq!(v2_writes(&with_limit).unwrap().len(), 1);
    }

    #[test]
    fn unlimited_memory_makes_swap_unlimited_and_negative_pids_is_max() {
        let r = res(r#"{"memory":{"limit":-1},"pids":{"limit":-1}}"#);
        let v1: Vec<String> = v1_writes(&r)
            .unwrap()
            .into_iter()
            .map(|(_, f, v)| format!("{f}={v}"))
            .collect();
        assert_eq!(
            v1,
            [
                "memory.limit_in_bytes=-1",
                "memory.memsw.limit_in_bytes=-1",
                "pids.max=max"
            ]
        );
        let v2: Vec<String> = v2_writes(&r)
            .unwrap()
            .into_iter()
            .map(|(_, f, v)| format!("{f}={v}"))
            .collect();
        assert_eq!(
            v2,
            ["memory.max=max", "memory.swap.max=max", "pids.max=max"]
        );
    }
}
