//! Linux capabilities: names to numbers, and applying the five sets of
//! `process.capabilities` (bounding, effective, permitted, inheritable,
//! ambient) to the calling process in the order the kernel requires.

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::error::{Result, RuntimeError};

/// The kernel's number for `cap`.
pub fn number(cap: Capability) -> u32 {
    use Capability::*;
    match cap {
        Chown => 0,
        DacOverride => 1,
        DacReadSearch => 2,
        Fowner => 3,
        Fsetid => 4,
        Kill => 5,
        Setgid => 6,
        Setuid => 7,
        Setpcap => 8,
        LinuxImmutable => 9,
        NetBindService => 10,
        NetBroadcast => 11,
        NetAdmin => 12,
        NetRaw => 13,
        IpcLock => 14,
        IpcOwner => 15,
        SysModule => 16,
        SysRawio => 17,
        SysChroot => 18,
        SysPtrace => 19,
        SysPacct => 20,
        SysAdmin => 21,
        SysBoot => 22,
        SysNice => 23,
        SysResource => 24,
        SysTime => 25,
        SysTtyConfig => 26,
        Mknod => 27,
        Lease => 28,
        AuditWrite => 29,
        AuditControl => 30,
        Setfcap => 31,
        MacOverride => 32,
        MacAdmin => 33,
        Syslog => 34,
        WakeAlarm => 35,
        BlockSuspend => 36,
        AuditRead => 37,
        Perfmon => 38,
        Bpf => 39,
        CheckpointRestore => 40,
    }
}

/// Every capability oci-spec names, in the kernel's order (number = index).
pub const ALL: [Capability; 41] = {
    use Capability::*;
    [
        Chown,
        DacOverride,
        DacReadSearch,
        Fowner,
        Fsetid,
        Kill,
        Setgid,
        Setuid,
        Setpcap,
        LinuxImmutable,
        NetBindService,
        NetBroadcast,
        NetAdmin,
        NetRaw,
        IpcLock,
        IpcOwner,
        SysModule,
        SysRawio,
        SysChroot,
        SysPtrace,
        SysPacct,
        SysAdmin,
        SysBoot,
        SysNice,
        SysResource,
        SysTime,
        SysTtyConfig,
        Mknod,
        Lease,
        AuditWrite,
        AuditControl,
        Setfcap,
        MacOverride,
        MacAdmin,
        Syslog,
        WakeAlarm,
        BlockSuspend,
        AuditRead,
        Perfmon,
        Bpf,
        CheckpointRestore,
    ]
};

/// The highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap).
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// A set as a 64-bit mask, refusing capabilities the kernel does not know.
fn mask(set: &Option<Capabilities>, field: &str, last: u32) -> Result<u64> {
    let mut m = 0u64;
    for c in set.iter().flatten() {
        let n = number(*c);
        if n > last {
            return Err(RuntimeError::unsupported(
                format!("process.capabilities.{field}"),
                format!(
                    "CAP_{} (number {n}) is unknown to this kernel (last is {last})",
                    c.to_string().to_uppercase()
                ),
            ));
        }
        m |= 1 << n;
    }
    Ok(m)
}

/// The five sets as masks, validated against the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapSets {
    /// Bounding set.
    pub bounding: u64,
    /// Effective set.
    pub effective: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
    /// Ambient set.
    pub ambient: u64,
}

impl CapSets {
    /// Converts and validates the spec's capabilities.
    pub fn from_spec(c: &LinuxCapabilities) -> Result<Self> {
        let last = last_cap();
        Ok(CapSets {
            bounding: mask(c.bounding(), "bounding", last)?,
            effective: mask(c.effective(), "effective", last)?,
            permitted: mask(c.permitted(), "permitted", last)?,
            inheritable: mask(c.inheritable(), "inheritable", last)?,
            ambient: mask(c.ambient(), "ambient", last)?,
        })
    }
}

/// Drops from the bounding set every capability not in `sets.bounding`.
/// Must run while the process still has CAP_SETPCAP (before changing uid).
pub fn drop_bounding(sets: &CapSets) -> Result<()> {
    for n in 0..=last_cap() {
        if sets.bounding & (1 << n) == 0 {
            // SAFETY: prctl with integer arguments only.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, n as libc::c_ulong, 0, 0, 0) };
            if rc != 0 {
                let e = nix::errno::Errno::last();
                if e != nix::errno::Errno::EINVAL {
                    return Err(RuntimeError::sys(
                        "prctl(PR_CAPBSET_DROP)",
                        format!("capability {n}"),
                        e,
                    ));
                }
            }
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Sets the effective, permitted and inheritable sets, then raises the
/// ambient ones. Runs after the uid change (with PR_SET_KEEPCAPS).
pub fn apply(sets: &CapSets) -> Result<()> {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: sets.effective as u32,
            permitted: sets.permitted as u32,
            inheritable: sets.inheritable as u32,
        },
        CapData {
            effective: (sets.effective >> 32) as u32,
            permitted: (sets.permitted >> 32) as u32,
            inheritable: (sets.inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and data are the v3 structures capset expects (two data elements).
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    if rc != 0 {
        return Err(RuntimeError::sys(
            "capset",
            "process.capabilities",
            nix::errno::Errno::last(),
        ));
    }
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    for n in 0..64u32 {
        if sets.ambient & (1 << n) != 0 {
            // SAFETY: prctl with integer arguments only.
            let rc = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    n as libc::c_ulong,
                    0,
                    0,
                )
            };
            if rc != 0 {
                // runc and crun accept specs whose ambient set is not also
                // inheritable (their own default specs are such); the kernel
                // refuses the raise, so say so and go on, as they do: in
                // the runtime's log (--log), not the container's output.
                tracing::warn!(
                    "ambient capability {n} not raised ({}): it must also be permitted and inheritable",
                    nix::errno::Errno::last()
                );
            }
        }
    }
    Ok(())
}

/// Docker's default capability list, which `spec` puts in every set but ambient.
pub const DOCKER_DEFAULT: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_kernel_order() {
        for (i, c) in ALL.iter().enumerate() {
            assert_eq!(number(*c), i as u32, "{c:?}");
        }
    }

    #[test]
    fn numbers_match_the_kernel_header() {
        assert_eq!(number(Capability::Chown), 0);
        assert_eq!(number(Capability::SysAdmin), 21);
        assert_eq!(number(Capability::AuditWrite), 29);
        assert_eq!(number(Capability::CheckpointRestore), 40);
    }

    #[test]
    fn masks_are_built_from_sets() {
        let set: Capabilities = [Capability::Chown, Capability::Kill].into_iter().collect();
        assert_eq!(mask(&Some(set), "bounding", 40).unwrap(), 0b100001);
        let set: Capabilities = [Capability::Bpf].into_iter().collect();
        assert!(mask(&Some(set), "effective", 38)
            .unwrap_err()
            .to_string()
            .contains("process.capabilities.effective"));
    }
}
