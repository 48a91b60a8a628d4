//! Docker's confinement flags on top of the default (Docker's capability
//! list and seccomp profile): `--cap-add`, `--cap-drop` (names with or
//! without `CAP_`, or `ALL`), `--security-opt no-new-privileges[:bool]`,
//! `seccomp=unconfined`, `apparmor=…` and `label=…` (accepted: this kernel
//! has neither LSM), `--group-add`, `--sysctl`, and `--privileged`: every
//! capability, no seccomp filter, no masked or read-only /proc paths, /sys
//! and the cgroup tree writable (the devices are `devices.rs`'s).
//! `seccomp=PROFILE` files are not implemented yet and say so.

use std::collections::{HashMap, HashSet};

use oci_spec::runtime::{Capability, Spec};

use crate::error::{invalid, EngineError};

/// The confinement flags of one run.
#[derive(Debug, Clone, Default)]
pub struct Confinement {
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--security-opt`.
    pub security_opt: Vec<String>,
    /// `--group-add` (numeric gids).
    pub group_add: Vec<String>,
    /// `--sysctl KEY=VALUE`.
    pub sysctl: Vec<String>,
    /// `--privileged`.
    pub privileged: bool,
}

/// A capability by Docker's spelling (`net_admin`, `NET_ADMIN`, `CAP_NET_ADMIN`).
fn capability(option: &'static str, name: &str) -> Result<Capability, EngineError> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    serde_json::from_value(serde_json::Value::String(full))
        .map_err(|_| invalid(option, name, "unknown capability"))
}

/// Every capability this kernel knows and berth holds in its bounding set
/// (for `--cap-add ALL` and `--privileged`): a container cannot get more
/// than its runtime has, and asking for more fails at capset.
pub(crate) fn all_capabilities() -> HashSet<Capability> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    let bounding: u64 = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    runtime::capabilities::ALL
        .iter()
        .filter(|c| {
            let n = runtime::capabilities::number(**c);
            n <= last && bounding & (1u64 << n) != 0
        })
        .copied()
        .collect()
}

/// `--privileged` apart from capabilities and devices: no seccomp filter,
/// no masked or read-only paths, /sys and /sys/fs/cgroup read-write.
fn privileged(spec: &mut Spec) {
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_seccomp(None);
    linux.set_masked_paths(None);
    linux.set_readonly_paths(None);
    spec.set_linux(Some(linux));
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for m in mounts.iter_mut() {
        let d = m.destination().clone();
        if d == std::path::Path::new("/sys") || d == std::path::Path::new("/sys/fs/cgroup") {
            let mut opts = m.options().clone().unwrap_or_default();
            opts.retain(|o| o != "ro");
            opts.push("rw".into());
            m.set_options(Some(opts));
        }
    }
    spec.set_mounts(Some(mounts));
}

/// Applies the flags to `spec`.
pub fn apply(spec: &mut Spec, c: &Confinement) -> Result<(), EngineError> {
    let mut process = spec.process().clone().unwrap_or_default();
    let mut caps = process.capabilities().clone().unwrap_or_default();
    if c.privileged {
        privileged(spec);
        // As Docker: every capability, whatever --cap-add/--cap-drop say.
        let all = all_capabilities();
        caps.set_bounding(Some(all.clone()));
        caps.set_effective(Some(all.clone()));
        caps.set_permitted(Some(all));
        process.set_capabilities(Some(caps.clone()));
    }
    let mut set: HashSet<Capability> = caps
        .bounding()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let is_all = |v: &str| v.eq_ignore_ascii_case("all");
    for d in c.cap_drop.iter().filter(|_| !c.privileged) {
        if is_all(d) {
            set.clear();
        } else {
            set.remove(&capability("--cap-drop", d)?);
        }
    }
    for a in c.cap_add.iter().filter(|_| !c.privileged) {
        if is_all(a) {
            set.extend(all_capabilities());
        } else {
            set.insert(capability("--cap-add", a)?);
        }
    }
    caps.set_bounding(Some(set.clone()));
    caps.set_effective(Some(set.clone()));
    caps.set_permitted(Some(set.clone()));
    process.set_capabilities(Some(caps));
    let mut linux = spec.linux().clone().unwrap_or_default();
    for o in &c.security_opt {
        let (k, v) = o.split_once(['=', ':']).unwrap_or((o, ""));
        match (k, v) {
            ("no-new-privileges", "" | "true") => {
                process.set_no_new_privileges(Some(true));
            }
            ("no-new-privileges", "false") => {
                process.set_no_new_privileges(Some(false));
            }
            ("seccomp", "unconfined") => {
                linux.set_seccomp(None);
            }
            // As Docker: --privileged runs without a filter, whatever is given.
            ("seccomp", _) if c.privileged => {}
            ("seccomp", path) => {
                linux.set_seccomp(Some(crate::seccomp_profile::load(
                    std::path::Path::new(path),
                    &set,
                )?));
            }
            // No AppArmor or SELinux on this kernel: accepted, as Docker
            // accepts them where the LSM is off.
            ("apparmor", _) | ("label", _) => {}
            _ => return Err(invalid("--security-opt", o, "unknown option")),
        }
    }
    if !c.group_add.is_empty() {
        let mut user = process.user().clone();
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        for g in &c.group_add {
            // A name was resolved against the image's /etc/group before
            // (see `user::group_ids`); a name left here is a flag check.
            let Ok(gid) = g.parse::<u32>() else { continue };
            if !gids.contains(&gid) {
                gids.push(gid);
            }
        }
        user.set_additional_gids(Some(gids));
        process.set_user(user);
    }
    if !c.sysctl.is_empty() {
        let mut sysctls: HashMap<String, String> = linux.sysctl().clone().unwrap_or_default();
        for s in &c.sysctl {
            let (k, v) = s
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| invalid("--sysctl", s, "expected KEY=VALUE"))?;
            sysctls.insert(k.to_string(), v.to_string());
        }
        linux.set_sysctl(Some(sysctls));
    }
    spec.set_linux(Some(linux));
    spec.set_process(Some(process));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        runtime::spec_default::default_spec(false).unwrap()
    }

    fn bounding(s: &Spec) -> HashSet<Capability> {
        s.process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .clone()
            .unwrap()
            .into_iter()
            .collect()
    }

    #[test]
    fn capabilities_add_and_drop_as_docker() {
        let mut s = spec();
        apply(
            &mut s,
            &Confinement {
                cap_drop: vec!["ALL".into()],
                cap_add: vec!["net_bind_service".into(), "CAP_CHOWN".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            bounding(&s),
            [Capability::Chown, Capability::NetBindService]
                .into_iter()
                .collect()
        );
        let mut s = spec();
        apply(
            &mut s,
            &Confinement {
                cap_drop: vec!["chown".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert!(!bounding(&s).contains(&Capability::Chown));
        assert!(bounding(&s).contains(&Capability::Kill));
        let e = apply(
            &mut spec(),
            &Confinement {
                cap_add: vec!["bogus".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("--cap-add"), "{e}");
    }

    #[test]
    fn security_options() {
        let mut s = spec();
        apply(
            &mut s,
            &Confinement {
                security_opt: vec![
                    "no-new-privileges".into(),
                    "seccomp=unconfined".into(),
                    "label=disable".into(),
                ],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            s.process().as_ref().unwrap().no_new_privileges(),
            Some(true)
        );
        assert!(s.linux().as_ref().unwrap().seccomp().is_none());
        assert!(apply(
            &mut spec(),
            &Confinement {
                security_opt: vec!["bogus=1".into()],
                ..Default::default()
            }
        )
        .is_err());
        let mut s = spec();
        apply(
            &mut s,
            &Confinement {
                privileged: true,
                cap_drop: vec!["ALL".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(bounding(&s), all_capabilities());
        let linux = s.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_none() && linux.masked_paths().is_none());
    }
}
