//! Reading a bundle's config.json and refusing, with the offending field
//! named, anything the runtime cannot honour. Nothing here touches the
//! system: validation happens before any namespace, mount or cgroup exists.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Result, RuntimeError};
use crate::namespaces::NamespacePlan;

/// A loaded and validated bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute bundle directory.
    pub dir: PathBuf,
    /// Absolute root filesystem path.
    pub rootfs: PathBuf,
    /// The spec.
    pub spec: Spec,
    /// Its namespace plan.
    pub namespaces: NamespacePlan,
}

/// Reads `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<Bundle> {
    let dir =
        std::fs::canonicalize(bundle).map_err(|e| RuntimeError::io("open bundle", bundle, e))?;
    let path = dir.join("config.json");
    let data = std::fs::read(&path).map_err(|e| RuntimeError::io("read", &path, e))?;
    let spec: Spec = serde_json::from_slice(&data).map_err(|e| RuntimeError::Config {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    validate(&dir, spec)
}

/// Keys of `linux.sysctl` that are namespaced, and the namespace each needs.
fn sysctl_namespace(key: &str) -> Option<LinuxNamespaceType> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

/// Checks a parsed spec against what the runtime and kernel can do.
pub fn validate(dir: &Path, spec: Spec) -> Result<Bundle> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| RuntimeError::spec("root", "missing"))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    let rootfs = std::fs::canonicalize(&rootfs)
        .map_err(|e| RuntimeError::spec("root.path", format!("{}: {e}", rootfs.display())))?;
    if rootfs == Path::new("/") {
        // As runc: the host's own root is never a container's.
        return Err(RuntimeError::spec(
            "root.path",
            "resolves to the host's / (a container needs a root of its own)",
        ));
    }
    for (field, value) in [
        ("hostname", spec.hostname().as_deref()),
        ("domainname", spec.domainname().as_deref()),
    ] {
        // HOST_NAME_MAX: sethostname/setdomainname refuse more.
        if let Some(v) = value.filter(|v| v.len() > 64) {
            return Err(RuntimeError::spec(
                field,
                format!("{} bytes long; at most 64 are allowed", v.len()),
            ));
        }
    }
    if !rootfs.is_dir() {
        return Err(RuntimeError::spec(
            "root.path",
            format!("{} is not a directory", rootfs.display()),
        ));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| RuntimeError::spec("process", "missing"))?;
    match process.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => return Err(RuntimeError::spec("process.args", "must name a program")),
    }
    if !process.cwd().is_absolute() {
        return Err(RuntimeError::spec(
            "process.cwd",
            format!("{:?} is not an absolute path", process.cwd()),
        ));
    }
    let linux = spec.linux().clone().unwrap_or_default();
    let namespaces = NamespacePlan::from_spec(linux.namespaces().as_deref().unwrap_or(&[]))?;

    let userns = namespaces.creates(LinuxNamespaceType::User);
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if userns && !has_maps {
        return Err(RuntimeError::spec(
            "linux.uidMappings",
            "a new user namespace needs uid and gid mappings",
        ));
    }
    if userns && linux.gid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
        return Err(RuntimeError::spec(
            "linux.gidMappings",
            "a new user namespace needs uid and gid mappings",
        ));
    }
    if !userns && has_maps {
        return Err(RuntimeError::spec(
            "linux.uidMappings",
            "mappings need a new user namespace in linux.namespaces",
        ));
    }
    if (spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
        || spec.domainname().as_ref().is_some_and(|h| !h.is_empty()))
        && !namespaces.is_private(LinuxNamespaceType::Uts)
    {
        return Err(RuntimeError::spec(
            "hostname",
            "setting the hostname needs a new uts namespace",
        ));
    }
    for key in linux.sysctl().iter().flat_map(|m| m.keys()) {
        let field = format!("linux.sysctl[{key:?}]");
        match sysctl_namespace(key) {
            None => {
                return Err(RuntimeError::spec(
                    field,
                    "not a namespaced sysctl: it would change the host",
                ))
            }
            Some(ns) if !namespaces.is_private(ns) => {
                return Err(RuntimeError::spec(
                    field,
                    format!(
                        "needs a {} namespace other than the host's, or it would change the host",
                        crate::namespaces::spec_name(ns)
                    ),
                ))
            }
            _ => {}
        }
    }
    if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty())
        && !namespaces.creates(LinuxNamespaceType::Time)
    {
        return Err(RuntimeError::spec(
            "linux.timeOffsets",
            "needs a new time namespace",
        ));
    }
    if let Some(t) = linux.time_offsets() {
        for k in t.keys() {
            if k != "monotonic" && k != "boottime" {
                return Err(RuntimeError::spec(
                    format!("linux.timeOffsets[{k:?}]"),
                    "only monotonic and boottime clocks can be offset",
                ));
            }
        }
    }
    if linux.intel_rdt().is_some() {
        return Err(RuntimeError::unsupported(
            "linux.intelRdt",
            "this host has no resctrl filesystem; Intel RDT is not supported",
        ));
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(RuntimeError::unsupported(
            "linux.netDevices",
            "moving host network devices is not supported yet",
        ));
    }
    if linux.memory_policy().is_some() {
        return Err(RuntimeError::unsupported(
            "linux.memoryPolicy",
            "NUMA memory policies are not supported yet",
        ));
    }
    if process
        .apparmor_profile()
        .as_ref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(RuntimeError::unsupported(
            "process.apparmorProfile",
            "AppArmor is not enabled on this kernel",
        ));
    }
    if process
        .selinux_label()
        .as_ref()
        .is_some_and(|p| !p.is_empty())
        || linux.mount_label().as_ref().is_some_and(|p| !p.is_empty())
    {
        return Err(RuntimeError::unsupported(
            "process.selinuxLabel",
            "SELinux is not enabled on this kernel",
        ));
    }
    // linux.seccomp is checked where it is compiled (through the cache), in create.
    if let Some(p) = linux.rootfs_propagation() {
        if ![
            "",
            "private",
            "rprivate",
            "slave",
            "rslave",
            "shared",
            "rshared",
            "unbindable",
            "runbindable",
        ]
        .contains(&p.as_str())
        {
            return Err(RuntimeError::spec(
                "linux.rootfsPropagation",
                format!("unknown propagation {p:?}"),
            ));
        }
    }
    if !namespaces.has(LinuxNamespaceType::Mount) {
        return Err(RuntimeError::unsupported(
            "linux.namespaces",
            "a container without a mount namespace of its own is refused: every mount made \
             for it (the rootfs bind, linux.mounts, /dev, masked and read-only paths) would \
             land in the host's mount table and outlive the container; add {\"type\": \"mount\"} \
             (runc accepts this and mounts on the host; see docs/interop.md)",
        ));
    }
    Ok(Bundle {
        dir: dir.to_path_buf(),
        rootfs,
        spec,
        namespaces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctls_are_classified() {
        assert_eq!(
            sysctl_namespace("net.ipv4.ip_forward"),
            Some(LinuxNamespaceType::Network)
        );
        assert_eq!(
            sysctl_namespace("kernel.shmmax"),
            Some(LinuxNamespaceType::Ipc)
        );
        assert_eq!(
            sysctl_namespace("fs.mqueue.msg_max"),
            Some(LinuxNamespaceType::Ipc)
        );
        assert_eq!(sysctl_namespace("kernel.panic"), None);
        assert_eq!(sysctl_namespace("vm.swappiness"), None);
    }
}
