//! What `inspect` shows of a container beyond its record, worked out once
//! from the spec its bundle was written with and the run's flags: its
//! volumes and binds as Docker's `Mounts` (MountPoint objects),
//! `Config.Env`, `WorkingDir`, `User` and `Hostname`, and `HostConfig`
//! with every key Docker shows. The engine's own binds (hosts, resolv.conf,
//! hostname, the init) and the kernel filesystems are not shown, as Docker
//! does not show its own.

use std::path::Path;

use oci_spec::runtime::Spec;
use serde_json::{json, Map, Value};

/// The spec's volumes (binds of `<root>/volumes/NAME/_data`) and host
/// binds (binds from outside `root`), in Docker's MountPoint shape.
pub(crate) fn mount_points(spec: &Spec, root: &Path) -> Vec<Value> {
    let volumes = root.join("volumes");
    let mut out = vec![];
    for m in spec.mounts().iter().flatten() {
        let options = m.options().clone().unwrap_or_default();
        let bind = m.typ().as_deref() == Some("bind")
            || options.iter().any(|o| o == "bind" || o == "rbind");
        let Some(source) = m.source().as_ref().filter(|_| bind) else {
            continue;
        };
        let rw = !options.iter().any(|o| o == "ro");
        let destination = m.destination().display().to_string();
        if let Ok(rest) = source.strip_prefix(&volumes) {
            let mut parts = rest.components();
            let (Some(name), Some(data)) = (parts.next(), parts.next()) else {
                continue;
            };
            if data.as_os_str() != "_data" {
                continue;
            }
            out.push(json!({
                "Type": "volume",
                "Name": name.as_os_str().to_string_lossy(),
                "Source": source.display().to_string(),
                "Destination": destination,
                "Driver": "local",
                "Mode": if rw { "z" } else { "ro" },
                "RW": rw,
                "Propagation": "",
            }));
        } else if !source.starts_with(root) {
            let propagation = options
                .iter()
                .find(|o| {
                    matches!(
                        o.as_str(),
                        "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave"
                    )
                })
                .cloned()
                .unwrap_or_else(|| "rprivate".into());
            out.push(json!({
                "Type": "bind",
                "Source": source.display().to_string(),
                "Destination": destination,
                "Mode": if rw { "" } else { "ro" },
                "RW": rw,
                "Propagation": propagation,
            }));
        }
    }
    out
}

/// `Config.Env`, `WorkingDir`, `User` (as asked, not resolved) and
/// `Hostname` from the spec.
pub(crate) fn config_fields(spec: &Spec, user: &str) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(p) = spec.process() {
        out.insert("Env".into(), json!(p.env().clone().unwrap_or_default()));
        out.insert("WorkingDir".into(), json!(p.cwd().display().to_string()));
    }
    out.insert("User".into(), json!(user));
    out.insert(
        "Hostname".into(),
        json!(spec.hostname().clone().unwrap_or_default()),
    );
    out
}

/// `HostConfig` as Docker always shows it, from the run's flags: every
/// key a template may name is there (null or zero when not set), so
/// `{{.HostConfig.Binds}}` prints rather than fails. The resource limits
/// are added over these by `inspect` (`limits::host_config`).
pub(crate) fn host_config(opts: &crate::spec::RunOptions, spec: &Spec) -> Map<String, Value> {
    let list = |v: &[String]| if v.is_empty() { Value::Null } else { json!(v) };
    let ns = &opts.namespaces;
    let c = &opts.confinement;
    let tmpfs: Map<String, Value> = opts
        .mounts
        .tmpfs
        .iter()
        .map(|t| {
            let (dest, options) = t.split_once(':').unwrap_or((t.as_str(), ""));
            (dest.to_string(), json!(options))
        })
        .collect();
    let shm = spec
        .mounts()
        .iter()
        .flatten()
        .find(|m| m.destination() == Path::new("/dev/shm"))
        .and_then(|m| {
            m.options()
                .iter()
                .flatten()
                .find_map(|o| tmpfs_size(o.strip_prefix("size=")?))
        })
        .unwrap_or(64 << 20);
    let mut m = Map::new();
    for (k, v) in [
        ("Binds", list(&opts.mounts.volumes)),
        ("Privileged", json!(c.privileged)),
        ("ReadonlyRootfs", json!(opts.mounts.read_only)),
        ("PublishAllPorts", json!(opts.publish_all)),
        ("CapAdd", list(&c.cap_add)),
        ("CapDrop", list(&c.cap_drop)),
        ("SecurityOpt", list(&c.security_opt)),
        ("GroupAdd", list(&c.group_add)),
        ("Dns", json!(opts.dns)),
        ("DnsSearch", json!(opts.dns_search)),
        ("DnsOptions", json!(opts.dns_options)),
        ("ExtraHosts", list(&opts.add_hosts)),
        ("VolumesFrom", list(&opts.volumes_from)),
        (
            "IpcMode",
            json!(ns.ipc.clone().unwrap_or_else(|| "private".into())),
        ),
        ("PidMode", json!(ns.pid.clone().unwrap_or_default())),
        ("UTSMode", json!(ns.uts.clone().unwrap_or_default())),
        ("UsernsMode", json!(ns.userns.clone().unwrap_or_default())),
        (
            "CgroupnsMode",
            json!(ns.cgroupns.clone().unwrap_or_else(|| "private".into())),
        ),
        ("ShmSize", json!(shm)),
        ("OomScoreAdj", json!(opts.limits.oom_score_adj.unwrap_or(0))),
        ("Memory", json!(0)),
        ("MemorySwap", json!(0)),
        ("MemoryReservation", json!(0)),
        ("NanoCpus", json!(0)),
        ("CpuShares", json!(0)),
        ("CpuPeriod", json!(0)),
        ("CpuQuota", json!(0)),
        ("CpusetCpus", json!("")),
        ("CpusetMems", json!("")),
        ("BlkioWeight", json!(0)),
        ("PidsLimit", Value::Null),
        ("OomKillDisable", json!(false)),
        ("Ulimits", ulimits(&opts.limits.ulimits)),
        ("Devices", devices(&opts.devices)),
        ("Runtime", json!("berth-runtime")),
        ("Isolation", json!("")),
    ] {
        m.insert(k.into(), v);
    }
    if !tmpfs.is_empty() {
        m.insert("Tmpfs".into(), Value::Object(tmpfs));
    }
    if !c.sysctl.is_empty() {
        let sysctls: Map<String, Value> = c
            .sysctl
            .iter()
            .filter_map(|s| s.split_once('='))
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        m.insert("Sysctls".into(), Value::Object(sysctls));
    }
    m
}

/// `--ulimit NAME=SOFT[:HARD]`s (checked before) as Docker's objects.
fn ulimits(flags: &[String]) -> Value {
    if flags.is_empty() {
        return Value::Null;
    }
    let number = |v: &str| v.parse::<i64>().unwrap_or(-1);
    flags
        .iter()
        .filter_map(|u| {
            let (name, values) = u.split_once('=')?;
            let (soft, hard) = values.split_once(':').unwrap_or((values, values));
            Some(json!({"Name": name, "Soft": number(soft), "Hard": number(hard)}))
        })
        .collect()
}

/// `--device HOST[:CONTAINER][:PERMISSIONS]`s as Docker's objects.
fn devices(flags: &[String]) -> Value {
    flags
        .iter()
        .map(|d| {
            let mut parts = d.splitn(3, ':');
            let host = parts.next().unwrap_or_default();
            let (mut inside, mut perms) = (host, "rwm");
            match (parts.next(), parts.next()) {
                (Some(p), None) if !p.starts_with('/') => perms = p,
                (Some(c), None) => inside = c,
                (Some(c), Some(p)) => (inside, perms) = (c, p),
                _ => {}
            }
            json!({"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": perms})
        })
        .collect()
}

/// A tmpfs `size=` value (bytes, or with a k, m or g suffix) in bytes.
fn tmpfs_size(v: &str) -> Option<u64> {
    let (digits, unit) = match v.char_indices().last()? {
        (i, 'k' | 'K') => (&v[..i], 1 << 10),
        (i, 'm' | 'M') => (&v[..i], 1 << 20),
        (i, 'g' | 'G') => (&v[..i], 1 << 30),
        _ => (v, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::MountBuilder;

    #[test]
    fn ulimits_and_devices_have_dockers_shapes() {
        let u = ulimits(&["nofile=512:1024".into(), "nproc=-1".into()]);
        assert_eq!(
            u,
            json!([{"Name": "nofile", "Soft": 512, "Hard": 1024}, {"Name": "nproc", "Soft": -1, "Hard": -1}])
        );
        assert_eq!(ulimits(&[]), Value::Null);
        let d = devices(&[
            "/dev/fuse".into(),
            "/dev/null:/dev/mynull".into(),
            "/dev/zero:r".into(),
            "/dev/a:/dev/b:rw".into(),
        ]);
        let pairs: Vec<(&str, &str)> = d
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["PathInContainer"].as_str().unwrap(),
                    x["CgroupPermissions"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            pairs,
            [
                ("/dev/fuse", "rwm"),
                ("/dev/mynull", "rwm"),
                ("/dev/zero", "r"),
                ("/dev/b", "rw")
            ]
        );
    }

    #[test]
    fn tmpfs_sizes_read_as_the_kernel_takes_them() {
        assert_eq!(tmpfs_size("8192k"), Some(8 << 20));
        assert_eq!(tmpfs_size("64m"), Some(64 << 20));
        assert_eq!(tmpfs_size("1g"), Some(1 << 30));
        assert_eq!(tmpfs_size("4096"), Some(4096));
        assert_eq!(tmpfs_size("lots"), None);
    }

    #[test]
    fn volumes_and_host_binds_are_shown_and_the_engines_own_are_not() {
        let root = Path::new("/var/lib/berth");
        let bind = |src: &str, dst: &str, opts: &[&str]| {
            MountBuilder::default()
                .typ("bind")
                .source(src)
                .destination(dst)
                .options(opts.iter().map(|o| o.to_string()).collect::<Vec<_>>())
                .build()
                .unwrap()
        };
        let mut spec = Spec::default();
        spec.set_mounts(Some(vec![
            MountBuilder::default()
                .typ("proc")
                .source("proc")
                .destination("/proc")
                .build()
                .unwrap(),
            bind("/var/lib/berth/volumes/data/_data", "/data", &["rbind"]),
            bind("/srv/site", "/site", &["rbind", "ro", "rslave"]),
            bind(
                "/var/lib/berth/containers/x/bundle/hosts",
                "/etc/hosts",
                &["rbind"],
            ),
        ]));
        let shown = mount_points(&spec, root);
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert_eq!(shown[0]["Type"], "volume");
        assert_eq!(shown[0]["Name"], "data");
        assert_eq!(shown[0]["RW"], true);
        assert_eq!(shown[1]["Type"], "bind");
        assert_eq!(shown[1]["Source"], "/srv/site");
        assert_eq!(shown[1]["RW"], false);
        assert_eq!(shown[1]["Propagation"], "rslave");
    }
}
