//! Docker's mount flags as OCI mounts: `-v /host:/ctr[:opts]` and
//! `--mount type=bind|tmpfs,...` bind host paths, `--tmpfs /ctr[:opts]`
//! adds a tmpfs, `--read-only` makes the root read-only. Named volumes
//! (`-v name:/ctr`, `--mount type=volume`) need the volume store and are
//! refused as not implemented yet. Destinations resolve inside the
//! container root at start (the runtime's job); here they must be
//! absolute and clean of `..`.

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{Mount, MountBuilder, Spec};

use crate::error::EngineError;

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

fn invalid(option: &'static str, value: &str, reason: impl Into<String>) -> EngineError {
    EngineError::InvalidOption {
        option,
        value: value.to_string(),
        reason: reason.into(),
    }
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

/// `-v SRC:DST[:OPTS]`: a bind mount when SRC is a host path.
pub fn parse_volume(v: &str) -> Result<Mount, EngineError> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [src, dst] => (*src, *dst, ""),
        [src, dst, opts] => (*src, *dst, *opts),
        [_] => {
            return Err(EngineError::NotImplemented(
                "anonymous volumes (-v /path without a source)",
            ))
        }
        _ => {
            return Err(invalid(
                "--volume",
                v,
                "expected SOURCE:DESTINATION[:OPTIONS]",
            ))
        }
    };
    if !src.starts_with('/') {
        return Err(EngineError::NotImplemented(
            "named volumes (-v NAME:/path; the volume store comes with the container store)",
        ));
    }
    let mut ro = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => ro = true,
            "rw" => ro = false,
            // SELinux relabelling: this kernel has no SELinux; accepted as Docker does.
            "z" | "Z" => {}
            _ => return Err(invalid("--volume", v, format!("unknown option {o:?}"))),
        }
    }
    bind("--volume", v, src, destination("--volume", v, dst)?, ro)
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

/// `--mount type=bind|tmpfs,source=…,target=…[,readonly][,tmpfs-size=…][,tmpfs-mode=…]`.
pub fn parse_mount(m: &str) -> Result<Mount, EngineError> {
    let (mut typ, mut src, mut dst, mut ro) = ("volume".to_string(), None, None, false);
    let mut tmpfs_opts = vec![];
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
            _ => return Err(invalid("--mount", m, format!("unknown field {k:?}"))),
        }
    }
    let dst = dst.ok_or_else(|| invalid("--mount", m, "target= is required"))?;
    let dest = destination("--mount", m, &dst)?;
    match typ.as_str() {
        "bind" => {
            let src = src.ok_or_else(|| invalid("--mount", m, "a bind needs source="))?;
            bind("--mount", m, &src, dest, ro)
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
            build(dest, "tmpfs", "tmpfs", options)
        }
        "volume" => Err(EngineError::NotImplemented(
            "--mount type=volume (the volume store comes with the container store)",
        )),
        other => Err(invalid("--mount", m, format!("unknown type {other:?}"))),
    }
}

/// Adds the flags' mounts to `spec` (after its defaults, so they win) and
/// makes the root read-only for `--read-only`.
pub fn apply(spec: &mut Spec, f: &MountFlags) -> Result<(), EngineError> {
    let mut added = vec![];
    for v in &f.volumes {
        added.push(parse_volume(v)?);
    }
    for m in &f.mounts {
        added.push(parse_mount(m)?);
    }
    for t in &f.tmpfs {
        added.push(parse_tmpfs(t)?);
    }
    let mut seen = std::collections::HashSet::new();
    for m in &added {
        if !seen.insert(m.destination().clone()) {
            return Err(EngineError::InvalidOption {
                option: "--volume/--mount/--tmpfs",
                value: m.destination().display().to_string(),
                reason: "two mounts at the same destination".into(),
            });
        }
    }
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
        let m = parse_volume("/tmp:/data:ro,z").unwrap();
        assert_eq!(m.destination(), Path::new("/data"));
        assert_eq!(m.source().as_deref(), Some(Path::new("/tmp")));
        assert!(m.options().as_ref().unwrap().contains(&"ro".to_string()));
        assert!(matches!(
            parse_volume("named:/data"),
            Err(EngineError::NotImplemented(_))
        ));
        assert!(parse_volume("/no/such/host/dir:/data").is_err());
        assert!(parse_volume("/tmp:relative").is_err());
        assert!(parse_volume("/tmp:/a/../b").is_err());
        let t = parse_tmpfs("/run:size=1m,mode=700").unwrap();
        assert_eq!(t.typ().as_deref(), Some("tmpfs"));
        assert!(t
            .options()
            .as_ref()
            .unwrap()
            .contains(&"size=1m".to_string()));
        let b = parse_mount("type=bind,source=/tmp,target=/x,readonly").unwrap();
        assert!(b.options().as_ref().unwrap().contains(&"ro".to_string()));
        let t = parse_mount("type=tmpfs,target=/t,tmpfs-size=1048576").unwrap();
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
            tmpfs: vec!["/d".into()],
            ..Default::default()
        };
        assert!(apply(&mut spec, &f).is_err());
    }
}
