//! The last step of every container process: exec the user's program
//! through `berth-exec`, a few-kilobyte static program held in a sealed
//! memfd, so that the host's `berth-runtime` binary is never reachable
//! through `/proc/<pid>/exe` of a container process (CVE-2019-5736).
//!
//! Why it is needed: the init and exec's process are forks of the runtime,
//! so up to their final `execve` their executable is the host binary. A
//! program whose interpreter line is `#!/proc/self/exe` would make that
//! `execve` run the host binary inside the container, and another process
//! of the container could then open it for writing once it stopped. Exec'ing
//! `berth-exec` first (by descriptor, `execveat(AT_EMPTY_PATH)`) replaces
//! the executable with the sealed memfd before the user's program is exec'd;
//! see `trampoline/main.rs` for the program itself. The memfd is made before
//! the seccomp filter is loaded and costs one small write and one extra exec.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

use crate::error::{Result, RuntimeError};

/// The `berth-exec` program, built by build.rs from `trampoline/main.rs`.
static PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-exec"));

/// argv[0] that `berth-exec` requires (a script's interpreter line cannot pass it).
const MARKER: &str = "berth-exec:run";

/// `berth-exec` in a sealed, close-on-exec memfd, ready to exec.
pub(crate) struct ExecTrampoline {
    fd: OwnedFd,
}

impl ExecTrampoline {
    /// Writes the program into a new memfd and seals it against any change.
    pub(crate) fn prepare() -> Result<ExecTrampoline> {
        let name = c"berth-exec";
        // MFD_EXEC (Linux 6.3) keeps the memfd executable where
        // vm.memfd_noexec would otherwise make it not; older kernels refuse
        // the flag and make every memfd executable.
        const MFD_EXEC: libc::c_uint = 0x10;
        let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
        // SAFETY: a valid C string and flags.
        let mut raw = unsafe { libc::memfd_create(name.as_ptr(), base | MFD_EXEC) };
        if raw < 0 && Errno::last() == Errno::EINVAL {
            // SAFETY: as above.
            raw = unsafe { libc::memfd_create(name.as_ptr(), base) };
        }
        if raw < 0 {
            return Err(RuntimeError::sys(
                "memfd_create",
                "berth-exec",
                Errno::last(),
            ));
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut written = 0;
        while written < PROGRAM.len() {
            let rest = &PROGRAM[written..];
            // SAFETY: a valid descriptor and buffer of rest.len() bytes.
            let n = unsafe { libc::write(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
            if n < 0 {
                if Errno::last() == Errno::EINTR {
                    continue;
                }
                return Err(RuntimeError::sys(
                    "write",
                    "berth-exec memfd",
                    Errno::last(),
                ));
            }
            written += n as usize;
        }
        let seals =
            libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        // SAFETY: fcntl with integer arguments on a valid descriptor.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(RuntimeError::sys(
                "fcntl(F_ADD_SEALS)",
                "berth-exec memfd",
                Errno::last(),
            ));
        }
        Ok(ExecTrampoline { fd })
    }

    /// Replaces the process with `program` (args and env as given) by way
    /// of `berth-exec`; returns only on failure, after saying so on stderr,
    /// since nobody may be listening on the channel, and exiting 127.
    pub(crate) fn exec(&self, program: &Path, args: &[String], env: &[String]) -> Result<()> {
        let to_c = |s: &str| {
            CString::new(s)
                .map_err(|_| RuntimeError::spec("process", format!("{s:?} contains NUL")))
        };
        let prog = CString::new(program.as_os_str().as_bytes())
            .map_err(|_| RuntimeError::spec("process.args[0]", "contains NUL"))?;
        let mut argv: Vec<CString> = Vec::with_capacity(args.len() + 2);
        argv.push(to_c(MARKER)?);
        argv.push(prog);
        for a in args {
            argv.push(to_c(a)?);
        }
        let envp: Vec<CString> = env.iter().map(|e| to_c(e)).collect::<Result<_>>()?;
        let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_p.push(std::ptr::null());
        let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
        envp_p.push(std::ptr::null());
        default_signals();
        // SAFETY: a valid descriptor, an empty C string with AT_EMPTY_PATH,
        // and NULL-terminated arrays of C strings that outlive the call.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                self.fd.as_raw_fd(),
                c"".as_ptr(),
                argv_p.as_ptr(),
                envp_p.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        let errno = Errno::last();
        let err = RuntimeError::sys("execveat(berth-exec)", program.display(), errno);
        eprintln!("berth-runtime: {err}");
        // SAFETY: _exit in a forked child.
        unsafe { libc::_exit(127) }
    }
}

/// Gives the program every signal's default disposition and an empty
/// mask, as Docker's containers start: an ignored signal survives
/// `execve`, and the runtime (a Rust program, which ignores SIGPIPE) or
/// whoever started it (a shell's background job ignores SIGINT and
/// SIGQUIT) must not hand theirs on; a container whose `yes | head` gets
/// EPIPE instead of SIGPIPE prints errors.
fn default_signals() {
    /// The kernel's `struct sigaction` (the C library's differs, and its
    /// wrapper refuses the signals it reserves for itself, 32 and 33).
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a valid kernel sigaction (SIG_DFL, no flags) and the
        // size of the kernel's signal set; the old action is not asked for.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memfd_is_sealed_against_writes() {
        let t = ExecTrampoline::prepare().unwrap();
        // SAFETY: fcntl with integer arguments on a valid descriptor.
        let seals = unsafe { libc::fcntl(t.fd.as_raw_fd(), libc::F_GET_SEALS) };
        assert_eq!(
            seals,
            libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE
        );
        // Even through a new open of /proc/self/fd/N for writing, no byte changes.
        let path = format!("/proc/self/fd/{}", t.fd.as_raw_fd());
        let w = std::fs::OpenOptions::new().write(true).open(&path);
        if let Ok(mut f) = w {
            use std::io::Write;
            assert!(f.write_all(b"x").is_err(), "a sealed memfd took a write");
        }
        assert_eq!(std::fs::read(&path).unwrap(), PROGRAM);
    }
}
