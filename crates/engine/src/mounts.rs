//! Docker's mount flags as OCI mounts: `-v /host:/ctr[:opts]` and
//! `--mount type=bind|tmpfs,...` bind host paths, `--tmpfs /ctr[:opts]`
//! adds a tmpfs, `--read-only` makes the root read-only. Volumes (`-v
//! name:/ctr`, `-v /ctr`, `--mount type=volume`) are parsed here and
//! resolved by the volume store (`volumes.rs`) once the container exists.
//! Destinations resolve inside the container root at start (the runtime's
//! job); here they must be absolute and clean of `..`.

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{Mount, MountBuilder, Spec};

use crate::error::{invalid, EngineError};
use crate::volumes::VolumeMount;

/// One mount flag, parsed.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// A bind or tmpfs, as the spec takes it.
    Oci(Mount),
    /// A volume, for the volume store.
    Volume(VolumeMount),
}

impl Parsed {
    fn destination(&self) -> String {
        match self {
            Parsed::Oci(m) => m.destination().display().to_string(),
            Parsed::Volume(v) => v.destination.clone(),
        }
    }
}

/// `dest` without trailing or doubled slashes (`/data/` is `/data`).
pub(crate) fn clean_destination(dest: &str) -> String {
    let parts: Vec<&str> = dest
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// The mount flags of one run.
#[derive(Debug, Clone, Default)]
pub struct MountFlags {
    /// `-v` / `--volume`.
    pub volumes: Vec<String>,
    /// `--mount`.
    pub mounts: Vec<String>,
    /// `--tmpfs`.
    pub tmpfs: Vec<String>,
    /// `--read-only`.
    pub read_only: bool,
}

fn destination(option: &'static str, value: &str, d: &str) -> Result<String, EngineError> {
    let p = Path::new(d);
    if !p.is_absolute() {
        return Err(invalid(
            option,
            value,
            format!("{d}: the destination must be an absolute path"),
        ));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(invalid(
            option,
            value,
            format!("{d}: the destination must not contain .."),
        ));
    }
    if p == Path::new("/") {
        return Err(invalid(option, value, "the destination cannot be /"));
    }
    Ok(d.to_string())
}

fn build(
    dest: String,
    typ: &str,
    source: &str,
    options: Vec<String>,
) -> Result<Mount, EngineError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options)
        .build()
        .map_err(|e| EngineError::Spec(e.to_string()))
}

/// A bind of `source` (which must exist) at `dest`.
fn bind(
    option: &'static str,
    value: &str,
    source: &str,
    dest: String,
    ro: bool,
) -> Result<Mount, EngineError> {
    let src = PathBuf::from(source);
    if !src.is_absolute() {
        return Err(invalid(
            option,
            value,
            format!("{source}: the source must be an absolute path"),
        ));
    }
    if !src.exists() {
        return Err(invalid(
            option,
            value,
            format!("{source}: no such file or directory on the host"),
        ));
    }
    let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
    options.push(if ro { "ro" } else { "rw" }.to_string());
    build(dest, "bind", source, options)
}

/// `-v SRC:DST[:OPTS]`: a bind mount when SRC is a host path, else the
/// volume SRC; `-v DST` alone is a new anonymous volume.
pub fn parse_volume(v: &str) -> Result<Parsed, EngineError> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [dst] => ("", *dst, ""),
        [src, dst] => (*src, *dst, ""),
        [src, dst, opts] => (*src, *dst, *opts),
        _ => {
            return Err(invalid(
                "--volume",
                v,
                "expected [SOURCE:]DESTINATION[:OPTIONS]",
            ))
        }
    };
    let (mut ro, mut nocopy) = (false, false);
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => ro = true,
            "rw" => ro = false,
            "nocopy" => nocopy = true,
            // SELinux relabelling: this kernel has no SELinux; accepted as Docker does.
            "z" | "Z" => {}
            // Propagation of a bind: binds are private here.
            "private" | "rprivate" => {}
            _ => return Err(invalid("--volume", v, format!("unknown option {o:?}"))),
        }
    }
    let dest = destination("--volume", v, dst)?;
    if src.starts_with('/') {
        if nocopy {
            return Err(invalid("--volume", v, "nocopy is for volumes, not binds"));
        }
        return bind("--volume", v, src, dest, ro).map(Parsed::Oci);
    }
    if !src.is_empty() {
        crate::volumes::check_name(src)?;
    }
    Ok(Parsed::Volume(VolumeMount {
        name: (!src.is_empty()).then(|| src.to_string()),
        destination: clean_destination(&dest),
        read_only: ro,
        nocopy,
        ..Default::default()
    }))
}

/// `--tmpfs DST[:OPTS]` (OPTS as mount(8) takes them for tmpfs).
pub fn parse_tmpfs(t: &str) -> Result<Mount, EngineError> {
    let (dst, opts) = t.split_once(':').unwrap_or((t, ""));
    let mut options = vec![
        "nosuid".to_string(),
        "nodev".to_string(),
        "noexec".to_string(),
    ];
    options.extend(
        opts.split(',')
            .filter(|o| !o.is_empty())
            .map(str::to_string),
    );
    build(destination("--tmpfs", t, dst)?, "tmpfs", "tmpfs", options)
}

/// Every mount flag, parsed, with no two at one destination.
fn parse_all(f: &MountFlags) -> Result<Vec<Parsed>, EngineError> {
    let mut all = vec![];
    for v in &f.volumes {
        all.push(parse_volume(v)?);
    }
    for m in &f.mounts {
        all.push(parse_mount(m)?);
    }
    for t in &f.tmpfs {
        all.push(parse_tmpfs(t).map(Parsed::Oci)?);
    }
    let mut seen = std::collections::HashSet::new();
    for m in &all {
        let dest = clean_destination(&m.destination());
        if !seen.insert(dest.clone()) {
            return Err(EngineError::InvalidOption {
                option: "--volume/--mount/--tmpfs",
                value: dest,
                reason: "two mounts at the same destination".into(),
            });
        }
    }
    Ok(all)
}

/// The volumes the flags ask for, and the destinations of every mount
/// flag (which an image's `VOLUME` at the same place gives way to).
pub fn volume_mounts(f: &MountFlags) -> Result<(Vec<VolumeMount>, Vec<String>), EngineError> {
    let all = parse_all(f)?;
    let taken = all
        .iter()
        .map(|m| clean_destination(&m.destination()))
        .collect();
    let volumes = all
        .into_iter()
        .filter_map(|m| match m {
            Parsed::Volume(v) => Some(v),
            Parsed::Oci(_) => None,
        })
        .collect();
    Ok((volumes, taken))
}

/// `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly]`, with
/// `tmpfs-size=`/`tmpfs-mode=` for a tmpfs and `volume-nocopy`,
/// `volume-opt=K=V`, `volume-label=K=V` for a volume.
pub fn parse_mount(m: &str) -> Result<Parsed, EngineError> {
    let (mut typ, mut src, mut dst, mut ro) = ("volume".to_string(), None, None, false);
    let mut tmpfs_opts = vec![];
    let (mut nocopy, mut volume_opts, mut volume_labels) = (false, vec![], vec![]);
    for field in m.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k {
            "type" => typ = v.to_string(),
            "source" | "src" => src = Some(v.to_string()),
            "target" | "destination" | "dst" => dst = Some(v.to_string()),
            "readonly" | "ro" => ro = matches!(v, "" | "true" | "1"),
            "tmpfs-size" => tmpfs_opts.push(format!("size={v}")),
            "tmpfs-mode" => tmpfs_opts.push(format!("mode={v}")),
            "bind-propagation" | "consistency" => {}
            "volume-nocopy" => nocopy = matches!(v, "" | "true" | "1"),
            "volume-opt" => volume_opts.push(v.to_string()),
            "volume-label" => volume_labels.push(v.to_string()),
            "volume-driver" if v == "local" => {}
            _ => return Err(invalid("--mount", m, format!("unknown field {k:?}"))),
        }
    }
    let dst = dst.ok_or_else(|| invalid("--mount", m, "target= is required"))?;
    let dest = destination("--mount", m, &dst)?;
    match typ.as_str() {
        "bind" => {
            let src = src.ok_or_else(|| invalid("--mount", m, "a bind needs source="))?;
            bind("--mount", m, &src, dest, ro).map(Parsed::Oci)
        }
        "tmpfs" => {
            if src.is_some() {
                return Err(invalid("--mount", m, "a tmpfs has no source"));
            }
            let mut options = vec![
                "nosuid".to_string(),
                "nodev".to_string(),
                "noexec".to_string(),
            ];
            if ro {
                options.push("ro".into());
            }
            options.extend(tmpfs_opts);
            build(dest, "tmpfs", "tmpfs", options).map(Parsed::Oci)
        }
        "volume" => {
            let name = src.filter(|s| !s.is_empty());
            if let Some(n) = &name {
                crate::volumes::check_name(n)?;
            }
            Ok(Parsed::Volume(VolumeMount {
                name,
                destination: clean_destination(&dest),
                read_only: ro,
                nocopy,
                options: volume_opts,
                labels: volume_labels,
            }))
        }
        other => Err(invalid("--mount", m, format!("unknown type {other:?}"))),
    }
}

/// Adds the flags' binds and tmpfs mounts to `spec` (after its defaults,
/// so they win) and makes the root read-only for `--read-only`. Volumes
/// are added by the volume store.
pub fn apply(spec: &mut Spec, f: &MountFlags) -> Result<(), EngineError> {
    let added: Vec<Mount> = parse_all(f)?
        .into_iter()
        .filter_map(|m| match m {
            Parsed::Oci(m) => Some(m),
            Parsed::Volume(_) => None,
        })
        .collect();
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.extend(added);
    spec.set_mounts(Some(mounts));
    if f.read_only {
        let mut root = spec.root().clone().unwrap_or_default();
        root.set_readonly(Some(true));
        spec.set_root(Some(root));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_binds_and_tmpfs_parse_as_docker() {
        let Parsed::Oci(m) = parse_volume("/tmp:/data:ro,z").unwrap() else {
            panic!("a bind")
        };
        assert_eq!(m.destination(), Path::new("/data"));
        assert_eq!(m.source().as_deref(), Some(Path::new("/tmp")));
        assert!(m.options().as_ref().unwrap().contains(&"ro".to_string()));
        let Parsed::Volume(v) = parse_volume("named:/data/:ro,nocopy").unwrap() else {
            panic!("a volume")
        };
        assert_eq!(
            (
                v.name.as_deref(),
                v.destination.as_str(),
                v.read_only,
                v.nocopy
            ),
            (Some("named"), "/data", true, true)
        );
        let Parsed::Volume(v) = parse_volume("/anon").unwrap() else {
            panic!("a volume")
        };
        assert_eq!((v.name, v.destination.as_str()), (None, "/anon"));
        assert!(parse_volume("bad/name:/data").is_err());
        assert!(parse_volume("/tmp:/data:nocopy").is_err());
        let Parsed::Volume(v) =
            parse_mount("type=volume,source=v1,target=/v,volume-nocopy,volume-opt=type=tmpfs")
                .unwrap()
        else {
            panic!("a volume")
        };
        assert_eq!((v.name.as_deref(), v.nocopy), (Some("v1"), true));
        assert_eq!(v.options, vec!["type=tmpfs".to_string()]);
        assert!(parse_volume("/no/such/host/dir:/data").is_err());
        assert!(parse_volume("/tmp:relative").is_err());
        assert!(parse_volume("/tmp:/a/../b").is_err());
        let t = parse_tmpfs("/run:size=1m,mode=700").unwrap();
        let oci = |p: Parsed| match p {
            Parsed::Oci(m) => m,
            Parsed::Volume(v) => panic!("not a volume: {v:?}"),
        };
        assert_eq!(t.typ().as_deref(), Some("tmpfs"));
        assert!(t
            .options()
            .as_ref()
            .unwrap()
            .contains(&"size=1m".to_string()));
        let b = oci(parse_mount("type=bind,source=/tmp,target=/x,readonly").unwrap());
        assert!(b.options().as_ref().unwrap().contains(&"ro".to_string()));
        let t = oci(parse_mount("type=tmpfs,target=/t,tmpfs-size=1048576").unwrap());
        assert!(t
            .options()
            .as_ref()
            .unwrap()
            .contains(&"size=1048576".to_string()));
        assert!(parse_mount("type=bind,target=/x").is_err());
        assert!(parse_mount("type=bogus,target=/x").is_err());
    }

    #[test]
    fn duplicate_destinations_are_refused() {
        let mut spec = Spec::default();
        let f = MountFlags {
            volumes: vec!["/tmp:/d".into()],
            tmpfs: vec!["/d/".into()],
            ..Default::default()
        };
        assert!(apply(&mut spec, &f).is_err());
        let f = MountFlags {
            volumes: vec!["v1:/d".into(), "/d/".into()],
            ..Default::default()
        };
        assert!(volume_mounts(&f).is_err());
    }
}
