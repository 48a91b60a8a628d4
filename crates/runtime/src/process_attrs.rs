//! Per-process kernel settings from `process`: rlimits, OOM score,
//! personality, scheduler, I/O priority, CPU affinity, and the user's
//! identity (groups, gid, uid). Applied by the init to itself.

use nix::errno::Errno;
use oci_spec::runtime::{
    IOPriorityClass, LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy,
    PosixRlimitType, Process,
};

use crate::error::{Result, RuntimeError};

fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Applies `process.rlimits`.
pub fn set_rlimits(p: &Process) -> Result<()> {
    for (i, r) in p.rlimits().iter().flatten().enumerate() {
        if r.soft() > r.hard() {
            return Err(RuntimeError::spec(
                format!("process.rlimits[{i}]"),
                format!("soft limit {} exceeds hard limit {}", r.soft(), r.hard()),
            ));
        }
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit reads a valid rlimit struct.
        if unsafe { libc::setrlimit(rlimit_resource(r.typ()), &lim) } != 0 {
            return Err(RuntimeError::sys(
                "setrlimit",
                format!(
                    "process.rlimits[{i}] ({:?} {}:{})",
                    r.typ(),
                    r.soft(),
                    r.hard()
                ),
                Errno::last(),
            ));
        }
    }
    Ok(())
}

/// Writes `process.oomScoreAdj`.
pub fn set_oom_score_adj(p: &Process) -> Result<()> {
    if let Some(v) = p.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", v.to_string()).map_err(|e| {
            RuntimeError::io(
                "write process.oomScoreAdj to",
                "/proc/self/oom_score_adj",
                e,
            )
        })?;
    }
    Ok(())
}

/// Applies `linux.personality`.
pub fn set_personality(domain: LinuxPersonalityDomain) -> Result<()> {
    let persona = match domain {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    // SAFETY: personality takes an integer.
    if unsafe { libc::personality(persona) } == -1 {
        return Err(RuntimeError::sys(
            "personality",
            format!("{domain:?}"),
            Errno::last(),
        ));
    }
    Ok(())
}

#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
}

/// Applies `process.scheduler` with sched_setattr.
pub fn set_scheduler(p: &Process) -> Result<()> {
    let Some(s) = p.scheduler() else {
        return Ok(());
    };
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: policy,
        sched_flags: flags,
        sched_nice: s.nice().unwrap_or(0),
        sched_priority: s.priority().unwrap_or(0) as u32,
        sched_runtime: s.runtime().unwrap_or(0),
        sched_deadline: s.deadline().unwrap_or(0),
        sched_period: s.period().unwrap_or(0),
    };
    // SAFETY: sched_setattr reads a sched_attr of the size it states.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } != 0 {
        return Err(RuntimeError::sys(
            "sched_setattr",
            format!("process.scheduler ({:?})", s.policy()),
            Errno::last(),
        ));
    }
    Ok(())
}

/// Applies `process.ioPriority` with ioprio_set.
pub fn set_io_priority(p: &Process) -> Result<()> {
    let Some(io) = p.io_priority() else {
        return Ok(());
    };
    let class = match io.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&io.priority()) {
        return Err(RuntimeError::spec(
            "process.ioPriority.priority",
            format!("{} is outside 0..7", io.priority()),
        ));
    }
    let value = (class << 13) | io.priority() as i32;
    // SAFETY: ioprio_set takes integers (IOPRIO_WHO_PROCESS = 1, pid 0 = self).
    if unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, value) } != 0 {
        return Err(RuntimeError::sys(
            "ioprio_set",
            "process.ioPriority",
            Errno::last(),
        ));
    }
    Ok(())
}

/// Parses a CPU list such as `0-3,7`.
pub fn parse_cpu_list(s: &str, field: &str) -> Result<Vec<usize>> {
    let mut cpus = vec![];
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || RuntimeError::spec(field, format!("{s:?} is not a CPU list"));
        if let Some((a, b)) = part.split_once('-') {
            let (a, b): (usize, usize) =
                (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            if a > b || b >= 1024 {
                return Err(bad());
            }
            cpus.extend(a..=b);
        } else {
            let c: usize = part.parse().map_err(|_| bad())?;
            if c >= 1024 {
                return Err(bad());
            }
            cpus.push(c);
        }
    }
    Ok(cpus)
}

/// Pins the calling process to `list`.
pub fn set_affinity(list: &str, field: &str) -> Result<()> {
    let cpus = parse_cpu_list(list, field)?;
    let mut set = nix::sched::CpuSet::new();
    for c in cpus {
        set.set(c)
            .map_err(|e| RuntimeError::sys("cpuset", field, e))?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(|e| RuntimeError::sys("sched_setaffinity", format!("{field} = {list}"), e))
}

/// Switches to the spec's user: supplementary groups, gid, uid, keeping the
/// permitted capabilities across the uid change so they can be set next.
pub fn set_user(p: &Process, setgroups_allowed: bool) -> Result<()> {
    let u = p.user();
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err(RuntimeError::sys(
            "prctl(PR_SET_KEEPCAPS)",
            "init",
            Errno::last(),
        ));
    }
    if setgroups_allowed {
        let groups: Vec<libc::gid_t> = u.additional_gids().clone().unwrap_or_default();
        // SAFETY: setgroups reads `groups.len()` gids from a valid buffer.
        if unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } != 0 {
            return Err(RuntimeError::sys(
                "setgroups",
                format!("process.user.additionalGids {groups:?}"),
                Errno::last(),
            ));
        }
    }
    // SAFETY: plain integer syscalls.
    if unsafe { libc::setresgid(u.gid(), u.gid(), u.gid()) } != 0 {
        return Err(RuntimeError::sys(
            "setresgid",
            format!("process.user.gid {} (is it mapped?)", u.gid()),
            Errno::last(),
        ));
    }
    // SAFETY: plain integer syscalls.
    if unsafe { libc::setresuid(u.uid(), u.uid(), u.uid()) } != 0 {
        return Err(RuntimeError::sys(
            "setresuid",
            format!("process.user.uid {} (is it mapped?)", u.uid()),
            Errno::last(),
        ));
    }
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0-2,5", "f").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_cpu_list("3-1", "f").is_err());
        assert!(parse_cpu_list("x", "f")
            .unwrap_err()
            .to_string()
            .contains("f"));
    }
}
