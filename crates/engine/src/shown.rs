//! What `inspect` shows of a container beyond its record, worked out once
//! from the spec its bundle was written with: its volumes and binds as
//! Docker's `Mounts` (MountPoint objects), and `Config.Env`, `WorkingDir`,
//! `User` and `Hostname`. The engine's own binds (hosts, resolv.conf,
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

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::MountBuilder;

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
