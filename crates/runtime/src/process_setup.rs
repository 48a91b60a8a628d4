//! Turning a forked process into the spec's process: the one sequence that
//! both the container's init and an `exec`'d process go through, so the two
//! cannot drift apart. In order: personality, rlimits, scheduler, I/O
//! priority, the final CPU affinity, the environment (with HOME from the
//! container's /etc/passwd when unset), the program found in the
//! container's PATH, descriptors (the preserved ones kept, the rest
//! close-on-exec), the exec trampoline, seccomp (early without
//! no_new_privs, since loading then needs CAP_SYS_ADMIN), the bounding set,
//! user and groups, capabilities, umask, cwd, no_new_privs and seccomp.
//! What comes between this and the exec (the init waits for `start`) is the
//! caller's.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::{LinuxPersonality, Process};

use crate::capabilities::{self, CapSets};
use crate::error::{Result, RuntimeError};
use crate::exec_trampoline::ExecTrampoline;
use crate::process_attrs;

/// What [`ProcessSetup::become_process`] needs beyond the process itself.
pub(crate) struct ProcessSetup<'a> {
    /// The spec's (or exec's) process.
    pub process: &'a Process,
    /// The container's `linux.personality`.
    pub personality: Option<&'a LinuxPersonality>,
    /// Variables added to the process's environment (LISTEN_FDS…).
    pub extra_env: &'a [String],
    /// How many descriptors from 3 up are passed on.
    pub preserved_fds: u32,
    /// "init" or "exec", for errors.
    pub role: &'static str,
}

/// A process set up and ready to exec its program.
pub(crate) struct PreparedProcess {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<String>,
    trampoline: ExecTrampoline,
}

impl ProcessSetup<'_> {
    /// Applies every attribute of the process, in the order the module
    /// comment gives; `load_seccomp` loads the container's filter (the
    /// caller knows where it and its notify listener come from).
    pub(crate) fn become_process(
        &self,
        mut load_seccomp: impl FnMut() -> Result<()>,
    ) -> Result<PreparedProcess> {
        let process = self.process;
        if let Some(p) = self.personality {
            process_attrs::set_personality(p.domain())?;
        }
        process_attrs::set_rlimits(process)?;
        process_attrs::set_scheduler(process)?;
        process_attrs::set_io_priority(process)?;
        if let Some(list) = process
            .exec_cpu_affinity()
            .as_ref()
            .and_then(|a| a.cpu_affinity_final().clone())
        {
            process_attrs::set_affinity(&list, "process.execCPUAffinity.final")?;
        }

        let mut env = process.env().clone().unwrap_or_default();
        env.extend(self.extra_env.iter().cloned());
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", home_of(process.user().uid())));
        }
        let program = lookup_program(process, &env)?;

        // Descriptors passed on keep their numbers; all others close at exec.
        for fd in 3..3 + self.preserved_fds as i32 {
            let _ = nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
            );
        }
        mark_cloexec_from(3 + self.preserved_fds as i32);
        // Before seccomp, which may not allow memfd_create.
        let trampoline = ExecTrampoline::prepare()?;

        // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it
        // while we still have it. With no_new_privs, as late as possible.
        let nnp = process.no_new_privileges().unwrap_or(false);
        if !nnp {
            load_seccomp()?;
        }
        let caps = match process.capabilities() {
            Some(c) => Some(CapSets::from_spec(c)?),
            None => None,
        };
        if let Some(c) = &caps {
            capabilities::drop_bounding(c)?;
        }
        let setgroups = std::fs::read_to_string("/proc/self/setgroups")
            .map(|s| s.trim() != "deny")
            .unwrap_or(true);
        process_attrs::set_user(process, setgroups)?;
        if let Some(c) = &caps {
            capabilities::apply(c)?;
        }
        if let Some(mask) = process.user().umask() {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
        }
        enter_cwd(process.cwd())?;
        if nnp {
            // SAFETY: prctl with integer arguments.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return Err(RuntimeError::sys(
                    "prctl(PR_SET_NO_NEW_PRIVS)",
                    self.role,
                    Errno::last(),
                ));
            }
            load_seccomp()?;
        }
        Ok(PreparedProcess {
            program,
            args: process.args().clone().unwrap_or_default(),
            env,
            trampoline,
        })
    }
}

impl PreparedProcess {
    /// Replaces this process with the program (through the trampoline);
    /// returns only on failure.
    pub(crate) fn exec(&self) -> Result<()> {
        self.trampoline.exec(&self.program, &self.args, &self.env)
    }
}

/// chdir into the process's cwd and make sure it is inside the container's
/// root: a cwd reached through a leaked descriptor would be outside it, and
/// the kernel then reports it as "(unreachable)" (CVE-2024-21626).
pub(crate) fn enter_cwd(cwd: &Path) -> Result<()> {
    nix::unistd::chdir(cwd)
        .map_err(|e| RuntimeError::sys("chdir", format!("process.cwd {}", cwd.display()), e))?;
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        Ok(p) => Err(RuntimeError::spec(
            "process.cwd",
            format!(
                "{} resolves outside the container ({})",
                cwd.display(),
                p.display()
            ),
        )),
        Err(e) => Err(RuntimeError::sys(
            "getcwd",
            format!("process.cwd {}", cwd.display()),
            e,
        )),
    }
}

pub(crate) fn mark_cloexec_from(first: i32) {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc != 0 {
        if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<i32> = rd
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect();
            for fd in fds.into_iter().filter(|fd| *fd >= first) {
                let _ = nix::fcntl::fcntl(
                    fd,
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
                );
            }
        }
    }
}

/// The home directory of `uid` from the container's /etc/passwd, or `/`.
fn home_of(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
            })
        })
        .unwrap_or_else(|| "/".to_string())
}

/// Finds `args[0]` in the container (PATH lookup as execvp does), so a
/// missing program fails `create`, not the container later.
pub(crate) fn lookup_program(p: &Process, env: &[String]) -> Result<PathBuf> {
    let arg0 = &p
        .args()
        .as_ref()
        .ok_or_else(|| RuntimeError::spec("process.args", "missing"))?[0];
    let executable = |path: &Path| {
        nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok() && path.is_file()
    };
    if arg0.contains('/') {
        let path = if Path::new(arg0).is_absolute() {
            PathBuf::from(arg0)
        } else {
            p.cwd().join(arg0)
        };
        if !executable(&path) {
            return Err(RuntimeError::spec(
                "process.args[0]",
                format!("{arg0}: no such executable in the container"),
            ));
        }
        return Ok(PathBuf::from(arg0));
    }
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let cand = Path::new(dir).join(arg0);
        let cand = if cand.is_absolute() {
            cand
        } else {
            p.cwd().join(cand)
        };
        if executable(&cand) {
            return Ok(cand);
        }
    }
    Err(RuntimeError::spec(
        "process.args[0]",
        format!("{arg0}: executable file not found in $PATH"),
    ))
}
