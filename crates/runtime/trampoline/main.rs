//! `berth-exec`: the tiny static program a container's process is exec'd
//! through, so the host's `berth-runtime` binary is never the process's
//! executable when the user's program is exec'd (CVE-2019-5736).
//!
//! The init (or exec's process) is a fork of `berth-runtime`, so until it
//! execs, `/proc/self/exe` is the host binary. Were the user's program a
//! script starting `#!/proc/self/exe`, the kernel would run the host binary
//! inside the container, and another container process could then open it
//! through `/proc/<pid>/exe` for writing. Instead the runtime writes this
//! program into a sealed memfd and execs that (`execveat(fd, "",
//! AT_EMPTY_PATH)`); this program then execs the user's program. During its
//! exec `/proc/self/exe` is the sealed memfd: a script naming it as its
//! interpreter runs this program again, which refuses to go on, and the
//! memfd cannot be written.
//!
//! Invocation: `argv = [MARKER, PROGRAM, ARGV0, ARGV1, ...]`, the
//! environment passed on as it is. Anything else is refused. On failure it
//! prints `berth-runtime: exec PROGRAM: ERROR` and exits 127, as the
//! runtime did before.
//!
//! Built by the runtime crate's build.rs with `rustc` alone: no_std, no
//! libc, a static ELF of a few kilobytes, linked into the runtime with
//! `include_bytes!`. Supports x86_64 and aarch64.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};

/// argv[0] that the runtime passes; a script's interpreter line cannot.
const MARKER: &[u8] = b"berth-exec:run";

#[cfg(target_arch = "x86_64")]
global_asm!(
    ".globl _start",
    "_start:",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym entry,
);

#[cfg(target_arch = "aarch64")]
global_asm!(
    ".globl _start",
    "_start:",
    "mov x0, sp",
    "bl {entry}",
    "brk #0",
    entry = sym entry,
);

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const WRITE: usize = 1;
    pub const EXECVE: usize = 59;
    pub const EXIT_GROUP: usize = 231;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const WRITE: usize = 64;
    pub const EXECVE: usize = 221;
    pub const EXIT_GROUP: usize = 94;
}

#[cfg(target_arch = "x86_64")]
unsafe fn syscall3(n: usize, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller passes arguments valid for syscall `n`.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b, in("rdx") c,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

#[cfg(target_arch = "aarch64")]
unsafe fn syscall3(n: usize, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller passes arguments valid for syscall `n`.
    unsafe {
        asm!("svc #0", in("x8") n, inlateout("x0") a as isize => ret, in("x1") b, in("x2") c,
             options(nostack));
    }
    ret
}

fn write_err(bytes: &[u8]) {
    // SAFETY: a valid buffer of bytes.len() bytes.
    unsafe { syscall3(nr::WRITE, 2, bytes.as_ptr() as usize, bytes.len()) };
}

fn exit(code: usize) -> ! {
    // SAFETY: exit_group takes an integer and does not return.
    unsafe { syscall3(nr::EXIT_GROUP, code, 0, 0) };
    loop {}
}

/// The NUL-terminated string at `p`.
///
/// # Safety
/// `p` points to a NUL-terminated string that lives as long as the process.
unsafe fn c_str(p: *const u8) -> &'static [u8] {
    let mut n = 0;
    // A volatile read keeps the compiler from turning the loop into a call
    // to strlen, which this program (without libc) does not have.
    // SAFETY: the string is NUL-terminated (the kernel built it).
    while unsafe { p.add(n).read_volatile() } != 0 {
        n += 1;
    }
    // SAFETY: `n` bytes were just read.
    unsafe { core::slice::from_raw_parts(p, n) }
}

/// Writes `n` in decimal.
fn write_number(mut n: usize) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    write_err(&buf[i..]);
}

/// The messages Rust's std gives the errors an exec commonly fails with.
fn describe(errno: usize) -> &'static [u8] {
    match errno {
        1 => b"Operation not permitted",
        2 => b"No such file or directory",
        7 => b"Argument list too long",
        8 => b"Exec format error",
        12 => b"Out of memory",
        13 => b"Permission denied",
        20 => b"Not a directory",
        21 => b"Is a directory",
        26 => b"Text file busy",
        40 => b"Too many levels of symbolic links",
        _ => b"error",
    }
}

/// The process's entry: `sp` is the initial stack (argc, argv..., NULL, envp..., NULL).
extern "C" fn entry(sp: *const usize) -> ! {
    // SAFETY: the kernel lays out argc, then argc pointers and a NULL, then
    // the environment's pointers and a NULL.
    let (argc, argv, envp) = unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *const *const u8;
        (argc, argv, argv.add(argc + 1))
    };
    // SAFETY: argv[0] exists when argc > 0.
    if argc < 3 || unsafe { c_str(*argv) } != MARKER {
        write_err(b"berth-exec: this program only starts a container's process; it is not to be run\n");
        exit(126);
    }
    // SAFETY: argv[1] and argv[2..] are the program and its NULL-terminated argv.
    let (program, rest) = unsafe { (*argv.add(1), argv.add(2)) };
    // SAFETY: valid NUL-terminated strings and NULL-terminated arrays from the kernel.
    let rc = unsafe { syscall3(nr::EXECVE, program as usize, rest as usize, envp as usize) };
    write_err(b"berth-runtime: exec ");
    // SAFETY: argv[1] is a NUL-terminated string.
    write_err(unsafe { c_str(program) });
    write_err(b": ");
    let errno = rc.unsigned_abs();
    write_err(describe(errno));
    write_err(b" (os error ");
    write_number(errno);
    write_err(b")\n");
    exit(127)
}

/// Referenced by the prebuilt `core`'s unwind tables; never called, since
/// this program aborts on panic and never unwinds.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(127)
}
