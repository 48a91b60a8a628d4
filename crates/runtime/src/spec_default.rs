//! `spec`: the default config.json, as strict as Docker's defaults:
//! Docker's capability list, no_new_privs, the masked and read-only /proc
//! and /sys paths, a private namespace of every kind but user and time, and
//! `--rootless` mappings for an unprivileged user.

use oci_spec::runtime::{
    Capabilities, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxIdMappingBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, MountBuilder, PosixRlimitBuilder, PosixRlimitType,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::capabilities::DOCKER_DEFAULT;
use crate::error::{Result, RuntimeError};

/// Paths Docker masks.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// Paths Docker makes read-only.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn mount(dest: &str, typ: &str, source: &str, opts: &[&str]) -> Result<oci_spec::runtime::Mount> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(|e| RuntimeError::Other(format!("build default mount {dest}: {e}")))
}

/// Builds the default spec; with `rootless`, for the calling unprivileged user.
pub fn default_spec(rootless: bool) -> Result<Spec> {
    let err = |e: oci_spec::OciSpecError| RuntimeError::Other(format!("build default spec: {e}"));
    let caps: Capabilities = DOCKER_DEFAULT.iter().copied().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()
        .map_err(err)?;
    // The builder's defaults would grant inheritable and ambient capabilities.
    let mut capabilities = capabilities;
    capabilities.set_inheritable(None);
    capabilities.set_ambient(None);
    let process = ProcessBuilder::default()
        .terminal(true)
        .user(
            UserBuilder::default()
                .uid(0u32)
                .gid(0u32)
                .build()
                .map_err(err)?,
        )
        .args(vec!["sh".to_string()])
        .env(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            "TERM=xterm".to_string(),
        ])
        .cwd("/")
        .capabilities(capabilities)
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(1024u64)
            .soft(1024u64)
            .build()
            .map_err(err)?])
        .no_new_privileges(true)
        .build()
        .map_err(err)?;
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &[])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?,
    ];
    let mut namespaces: Vec<LinuxNamespaceType> = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ];
    let mut linux = LinuxBuilder::default()
        .seccomp(crate::seccomp::default_profile::docker_default())
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        );
    if rootless {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        namespaces.retain(|n| *n != LinuxNamespaceType::Network);
        namespaces.push(LinuxNamespaceType::User);
        linux = linux
            .uid_mappings(vec![LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(uid)
                .size(1u32)
                .build()
                .map_err(err)?])
            .gid_mappings(vec![LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(gid)
                .size(1u32)
                .build()
                .map_err(err)?]);
        // Without a network namespace of its own a rootless container cannot
        // mount sysfs: bind the host's read-only instead.
        mounts.retain(|m| {
            m.destination().to_str() != Some("/sys")
                && m.destination().to_str() != Some("/sys/fs/cgroup")
        });
        mounts.push(mount(
            "/sys",
            "none",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )?);
        mounts.retain(|m| m.destination().to_str() != Some("/dev/mqueue"));
        // gid 5 (tty) is not mapped in a one-id user namespace.
        for m in mounts
            .iter_mut()
            .filter(|m| m.destination().to_str() == Some("/dev/pts"))
        {
            m.set_options(Some(
                [
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ));
        }
    }
    let linux = linux
        .namespaces(
            namespaces
                .into_iter()
                .map(|t| LinuxNamespaceBuilder::default().typ(t).build().map_err(err))
                .collect::<Result<Vec<_>>>()?,
        )
        .build()
        .map_err(err)?;
    SpecBuilder::default()
        .version(crate::state::OCI_VERSION)
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(true)
                .build()
                .map_err(err)?,
        )
        .process(process)
        .hostname("berth")
        .mounts(mounts)
        .linux(linux)
        .build()
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_is_strict() {
        let s = default_spec(false).unwrap();
        let p = s.process().as_ref().unwrap();
        assert_eq!(p.no_new_privileges(), Some(true));
        let caps = p.capabilities().as_ref().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert!(caps.ambient().is_none());
        let l = s.linux().as_ref().unwrap();
        assert!(l
            .masked_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/kcore".to_string()));
        assert!(l
            .readonly_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/sys".to_string()));
        assert!(l
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .all(|n| n.typ() != LinuxNamespaceType::User));
    }

    #[test]
    fn rootless_spec_maps_the_caller() {
        let s = default_spec(true).unwrap();
        let l = s.linux().as_ref().unwrap();
        assert!(l
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::User));
        assert_eq!(
            l.uid_mappings().as_ref().unwrap()[0].host_id(),
            nix::unistd::geteuid().as_raw()
        );
    }
}
