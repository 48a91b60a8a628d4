//! `berth-shim RUNTIME RUNTIME_ROOT ID BUNDLE LOG EXIT_FILE -- CLEANUP...`:
//! started by the engine for a detached container; see the library for
//! what it does. It answers on stdout (`ok <pid>` or `error: <why>`), then
//! goes quiet.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(sep) = args.iter().position(|a| a == "--") else {
        eprintln!("usage: berth-shim RUNTIME RUNTIME_ROOT ID BUNDLE LOG EXIT_FILE -- CLEANUP...");
        return ExitCode::from(2);
    };
    if sep != 6 || args.len() == sep + 1 {
        eprintln!("usage: berth-shim RUNTIME RUNTIME_ROOT ID BUNDLE LOG EXIT_FILE -- CLEANUP...");
        return ExitCode::from(2);
    }
    let c = shim::Config {
        runtime: PathBuf::from(&args[0]),
        runtime_root: PathBuf::from(&args[1]),
        id: args[2].clone(),
        bundle: PathBuf::from(&args[3]),
        log: PathBuf::from(&args[4]),
        exit_file: PathBuf::from(&args[5]),
        cleanup: args[sep + 1..].to_vec(),
    };
    // A session of our own: the engine's terminal and process group are
    // not ours; the container's init becomes our child.
    let _ = nix::unistd::setsid();
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let (pid, out, err) = match shim::start(&c) {
        Ok(started) => started,
        // The engine is still listening, and takes the container down.
        Err(e) => {
            println!("error: {}", e.0);
            return ExitCode::from(1);
        }
    };
    println!("ok {pid}");
    let _ = std::io::stdout().flush();
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
    let code = shim::supervise(&c, pid, out, err);
    shim::write_exit(&c, code);
    let e = std::process::Command::new(&c.cleanup[0])
        .args(&c.cleanup[1..])
        .exec();
    let _ = e;
    ExitCode::from(1)
}
