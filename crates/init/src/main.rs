//! berth-init: `run --init`'s PID 1, as `berth-init -- COMMAND [ARG...]`.
//!
//! A process that is PID 1 in its namespace gets no default signal
//! actions (SIGTERM does nothing unless it installs a handler) and
//! inherits every orphan, which only it can reap. berth-init takes that
//! role for the command: it blocks every signal, forks and execs the
//! command with the signal mask cleared, passes each signal it receives on to the
//! command (SIGCHLD excepted), reaps every child that exits, and when the
//! command has exited, exits with its status (128+N for signal N).
//!
//! It uses only std and a few libc functions declared here: the engine's
//! build script compiles this one file with `+crt-static`, so the binary
//! runs in any container, with no loader or library of the container's.

use std::ffi::{c_char, CString};

/// glibc's `sigset_t` (1024 bits).
#[repr(C)]
struct SigSet([u64; 16]);

/// The parts of `siginfo_t` read here; the kernel writes 128 bytes.
#[repr(C)]
struct SigInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _rest: [u8; 116],
}

#[repr(C)]
struct TimeSpec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn fork() -> i32;
    fn execvp(file: *const c_char, argv: *const *const c_char) -> i32;
    fn _exit(code: i32) -> !;
    fn sigemptyset(set: *mut SigSet) -> i32;
    fn sigfillset(set: *mut SigSet) -> i32;
    fn sigprocmask(how: i32, set: *const SigSet, old: *mut SigSet) -> i32;
    fn sigtimedwait(set: *const SigSet, info: *mut SigInfo, timeout: *const TimeSpec) -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
}

const SIG_BLOCK: i32 = 0;
const SIG_SETMASK: i32 = 2;
const SIGCHLD: i32 = 17;
const WNOHANG: i32 = 1;

/// How a wait status reads as an exit code, as a shell reports it.
fn exit_code(status: i32) -> i32 {
    let sig = status & 0x7f;
    if sig == 0 {
        (status >> 8) & 0xff
    } else {
        128 + sig
    }
}

/// The command after `--` (or all arguments when there is none).
fn command(args: &[String]) -> &[String] {
    match args.iter().position(|a| a == "--") {
        Some(i) => &args[i + 1..],
        None => args,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = command(&args);
    if cmd.is_empty() {
        eprintln!("usage: berth-init -- COMMAND [ARG...]");
        std::process::exit(2);
    }
    let mut all = SigSet([0; 16]);
    // SAFETY: `all` is a sigset_t-sized buffer; the calls only write it
    // and read it.
    unsafe {
        sigfillset(&mut all);
        sigprocmask(SIG_BLOCK, &all, std::ptr::null_mut());
    }
    let argv: Vec<CString> = match cmd.iter().map(|a| CString::new(a.as_bytes())).collect() {
        Ok(v) => v,
        Err(_) => {
            eprintln!("berth-init: an argument holds a NUL byte");
            std::process::exit(126);
        }
    };
    let mut ptrs: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: this process is single-threaded, so the child may run any
    // code until it execs; `argv` and `ptrs` outlive the exec.
    let pid = unsafe { fork() };
    if pid == 0 {
        // SAFETY: as above; the mask is a sigset_t-sized buffer.
        unsafe {
            let mut none = SigSet([0; 16]);
            sigemptyset(&mut none);
            sigprocmask(SIG_SETMASK, &none, std::ptr::null_mut());
            execvp(ptrs[0], ptrs.as_ptr());
        }
        let e = std::io::Error::last_os_error();
        eprintln!("berth-init: {}: {e}", cmd[0]);
        let code = match e.kind() {
            std::io::ErrorKind::NotFound => 127,
            _ => 126,
        };
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { _exit(code) };
    }
    if pid < 0 {
        eprintln!("berth-init: fork: {}", std::io::Error::last_os_error());
        std::process::exit(126);
    }
    let wait = TimeSpec {
        sec: 0,
        nsec: 200_000_000,
    };
    loop {
        let mut info = SigInfo {
            signo: 0,
            errno: 0,
            code: 0,
            _rest: [0; 116],
        };
        // SAFETY: `all`, `info` and `wait` are valid for the call.
        let sig = unsafe { sigtimedwait(&all, &mut info, &wait) };
        if sig > 0 && sig != SIGCHLD {
            // SAFETY: kill with plain integers.
            unsafe { kill(pid, sig) };
        }
        // Reap whatever has exited (the command, orphans); a lost SIGCHLD
        // is covered by the timeout.
        loop {
            let mut status = 0;
            // SAFETY: `status` is a valid int to write.
            let p = unsafe { waitpid(-1, &mut status, WNOHANG) };
            if p <= 0 {
                break;
            }
            if p == pid {
                // Orphans it left go with the namespace when we exit.
                std::process::exit(exit_code(status));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_a_shell_reports_them() {
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(9), 137);
        assert_eq!(exit_code(15), 143);
    }

    #[test]
    fn the_command_follows_the_separator() {
        let a: Vec<String> = ["--", "sh", "-c", "x"].map(String::from).to_vec();
        assert_eq!(command(&a), &a[1..]);
        let b: Vec<String> = ["sh", "--", "x"].map(String::from).to_vec();
        assert_eq!(command(&b), &b[2..]);
    }

    #[test]
    fn the_siginfo_layout_is_the_kernels() {
        assert_eq!(std::mem::size_of::<SigInfo>(), 128);
        assert_eq!(std::mem::size_of::<SigSet>(), 128);
    }
}
