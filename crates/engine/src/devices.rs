//! Devices: `--device HOST[:CONTAINER][:PERMISSIONS]` (a host device node
//! made in the container and allowed by the device cgroup),
//! `--device-cgroup-rule 'c|b|a MAJOR:MINOR rwm'` (an allow rule alone),
//! and every host device for `--privileged`.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    Spec,
};

use crate::error::{invalid, EngineError};

fn spec_err(e: oci_spec::OciSpecError) -> EngineError {
    EngineError::Spec(e.to_string())
}

fn check_permissions(option: &'static str, value: &str, p: &str) -> Result<(), EngineError> {
    if p.is_empty() || !p.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(invalid(
            option,
            value,
            format!("{p:?}: permissions are some of r, w, m"),
        ));
    }
    Ok(())
}

/// The node and the cgroup rule for host device `host` at `inside`.
fn device(
    option: &'static str,
    value: &str,
    host: &Path,
    inside: &str,
    permissions: &str,
) -> Result<(LinuxDevice, LinuxDeviceCgroup), EngineError> {
    let meta = std::fs::metadata(host)
        .map_err(|e| invalid(option, value, format!("{}: {e}", host.display())))?;
    let ft = meta.file_type();
    let typ = if ft.is_char_device() {
        LinuxDeviceType::C
    } else if ft.is_block_device() {
        LinuxDeviceType::B
    } else {
        return Err(invalid(
            option,
            value,
            format!("{} is not a device", host.display()),
        ));
    };
    let rdev = meta.rdev();
    let (major, minor) = (libc::major(rdev) as i64, libc::minor(rdev) as i64);
    let node = LinuxDeviceBuilder::default()
        .path(inside)
        .typ(typ)
        .major(major)
        .minor(minor)
        .file_mode(meta.mode() & 0o777)
        .uid(0u32)
        .gid(0u32)
        .build()
        .map_err(spec_err)?;
    let rule = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(typ)
        .major(major)
        .minor(minor)
        .access(permissions)
        .build()
        .map_err(spec_err)?;
    Ok((node, rule))
}

/// `--device HOST[:CONTAINER][:PERMISSIONS]` as Docker reads it.
fn parse_device(value: &str) -> Result<(LinuxDevice, LinuxDeviceCgroup), EngineError> {
    let parts: Vec<&str> = value.split(':').collect();
    let (host, inside, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if !p.starts_with('/') => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => {
            return Err(invalid(
                "--device",
                value,
                "expected HOST[:CONTAINER][:PERMISSIONS]",
            ))
        }
    };
    if !host.starts_with('/') || !inside.starts_with('/') {
        return Err(invalid("--device", value, "device paths are absolute"));
    }
    check_permissions("--device", value, perms)?;
    device("--device", value, Path::new(host), inside, perms)
}

/// `--device-cgroup-rule 'TYPE MAJOR:MINOR PERMISSIONS'` (`*` for any number).
fn parse_rule(value: &str) -> Result<LinuxDeviceCgroup, EngineError> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    let [typ, numbers, perms] = fields.as_slice() else {
        return Err(invalid(
            "--device-cgroup-rule",
            value,
            "expected 'c|b|a MAJOR:MINOR rwm'",
        ));
    };
    let typ = match *typ {
        "c" => LinuxDeviceType::C,
        "b" => LinuxDeviceType::B,
        "a" => LinuxDeviceType::A,
        _ => {
            return Err(invalid(
                "--device-cgroup-rule",
                value,
                "the type is c, b or a",
            ))
        }
    };
    let (major, minor) = numbers
        .split_once(':')
        .ok_or_else(|| invalid("--device-cgroup-rule", value, "expected MAJOR:MINOR"))?;
    let number = |n: &str| -> Result<Option<i64>, EngineError> {
        if n == "*" {
            return Ok(None);
        }
        n.parse::<i64>().map(Some).map_err(|_| {
            invalid(
                "--device-cgroup-rule",
                value,
                format!("{n:?} is not a number or *"),
            )
        })
    };
    check_permissions("--device-cgroup-rule", value, perms)?;
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(typ)
        .access(*perms);
    if let Some(m) = number(major)? {
        b = b.major(m);
    }
    if let Some(m) = number(minor)? {
        b = b.minor(m);
    }
    b.build().map_err(spec_err)
}

/// Every device node under the host's /dev (not its subdirectories for
/// pts, shm, mqueue, which the container has its own of), for
/// `--privileged`.
fn host_devices() -> Vec<(LinuxDevice, LinuxDeviceCgroup)> {
    let mut out = vec![];
    let mut stack = vec![std::path::PathBuf::from("/dev")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if !["/dev/pts", "/dev/shm", "/dev/mqueue"].contains(&path.to_str().unwrap_or("")) {
                    stack.push(path);
                }
            } else if ft.is_char_device() || ft.is_block_device() {
                if path == Path::new("/dev/console") || path == Path::new("/dev/ptmx") {
                    continue;
                }
                let inside = path.display().to_string();
                if let Ok(d) = device("--privileged", "", &path, &inside, "rwm") {
                    out.push(d);
                }
            }
        }
    }
    out
}

/// Adds the devices and rules to `spec`; with `privileged`, every host
/// device and a rule that allows all.
pub fn apply(
    spec: &mut Spec,
    devices: &[String],
    rules: &[String],
    privileged: bool,
) -> Result<(), EngineError> {
    let mut nodes = vec![];
    let mut allow = vec![];
    for d in devices {
        let (node, rule) = parse_device(d)?;
        nodes.push(node);
        allow.push(rule);
    }
    for r in rules {
        allow.push(parse_rule(r)?);
    }
    if privileged {
        for (node, _) in host_devices() {
            if !nodes.iter().any(|n| n.path() == node.path()) {
                nodes.push(node);
            }
        }
        allow.push(
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::A)
                .access("rwm")
                .build()
                .map_err(spec_err)?,
        );
    }
    if nodes.is_empty() && allow.is_empty() {
        return Ok(());
    }
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut all = linux.devices().clone().unwrap_or_default();
    all.retain(|n| !nodes.iter().any(|m| m.path() == n.path()));
    all.extend(nodes);
    linux.set_devices(Some(all));
    let mut res = linux.resources().clone().unwrap_or_default();
    let mut cg = res.devices().clone().unwrap_or_default();
    cg.extend(allow);
    res.set_devices(Some(cg));
    linux.set_resources(Some(res));
    spec.set_linux(Some(linux));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_rules_parse_as_docker() {
        let (node, rule) = parse_device("/dev/null:/dev/mynull:rw").unwrap();
        assert_eq!(node.path(), Path::new("/dev/mynull"));
        assert_eq!(
            (node.typ(), node.major(), node.minor()),
            (LinuxDeviceType::C, 1, 3)
        );
        assert_eq!(rule.access().as_deref(), Some("rw"));
        let (node, rule) = parse_device("/dev/zero:r").unwrap();
        assert_eq!(node.path(), Path::new("/dev/zero"));
        assert_eq!(rule.access().as_deref(), Some("r"));
        assert!(parse_device("/dev/null:/x:rwx").is_err());
        assert!(parse_device("/etc/passwd")
            .unwrap_err()
            .to_string()
            .contains("not a device"));
        assert!(parse_device("/dev/no-such-device").is_err());
        let r = parse_rule("c 42:* rmw").unwrap();
        assert_eq!((r.major(), r.minor()), (Some(42), None));
        assert!(parse_rule("x 1:2 r").is_err());
        assert!(parse_rule("c 1 r").is_err());
    }

    #[test]
    fn privileged_allows_every_device() {
        let mut s = runtime::spec_default::default_spec(false).unwrap();
        apply(&mut s, &[], &[], true).unwrap();
        let linux = s.linux().as_ref().unwrap();
        let devices = linux.devices().clone().unwrap();
        assert!(devices.iter().any(|d| d.path() == Path::new("/dev/null")));
        let rules = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .clone()
            .unwrap();
        let last = rules.last().unwrap();
        assert!(last.allow() && last.typ() == Some(LinuxDeviceType::A));
    }
}
