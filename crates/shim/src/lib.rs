//! berth-shim: the supervisor of one detached container. It outlives the
//! `berth` command that started it, and it is small and synchronous.
//!
//! 1. It starts a session of its own and becomes a child subreaper, so the
//!    container's init (forked by the runtime) is its child.
//! 2. It makes pipes for the container's stdout and stderr and runs
//!    `<runtime> create` with them (stdin /dev/null), then `start`.
//! 3. It tells the engine `ok <pid>` (or `error: <why>`) on its own stdout,
//!    then points its stdio at /dev/null: the engine stops listening.
//! 4. It copies the container's output into a json-file log, one
//!    `{"log":…,"stream":…,"time":…}` object per line, as Docker's json-file
//!    driver writes them, until the init exits.
//! 5. It writes the exit status to the exit file (temp file, rename) and
//!    execs the cleanup command (`berth container cleanup ID`), which
//!    records the status and takes the container down.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// What one shim supervises.
#[derive(Debug, Clone)]
pub struct Config {
    /// The OCI runtime binary.
    pub runtime: PathBuf,
    /// Its `--root`.
    pub runtime_root: PathBuf,
    /// The container id.
    pub id: String,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The json-file log.
    pub log: PathBuf,
    /// Where the exit status goes.
    pub exit_file: PathBuf,
    /// Run (exec'd) when the container has exited.
    pub cleanup: Vec<String>,
}

/// Why the container could not be started.
#[derive(Debug)]
pub struct StartError(pub String);

fn runtime(c: &Config) -> Command {
    let mut cmd = Command::new(&c.runtime);
    cmd.arg("--root")
        .arg(&c.runtime_root)
        .arg("--log")
        .arg(c.bundle.join("runtime.log"))
        .arg("--log-format")
        .arg("json");
    cmd
}

/// The last error the runtime logged.
fn runtime_error(c: &Config, step: &str) -> StartError {
    let log = std::fs::read_to_string(c.bundle.join("runtime.log")).unwrap_or_default();
    let msg = log
        .lines()
        .rev()
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["level"] == "error").then(|| v["msg"].as_str().unwrap_or("").to_string())
        })
        .unwrap_or_else(|| "no error in its log".into());
    StartError(format!("OCI runtime {step} failed: {msg}"))
}

/// Waits for child `pid` (a runtime command), reaping others meanwhile.
fn wait_for(pid: i32) -> Option<i32> {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Some(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Some(128 + sig as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return None,
        }
    }
}

/// Creates and starts the container; returns the init's pid and the read
/// ends of its stdout and stderr pipes.
pub fn start(c: &Config) -> Result<(i32, OwnedFd, OwnedFd), StartError> {
    let io = |what: &str, e: &dyn std::fmt::Display| StartError(format!("{what}: {e}"));
    let (out_r, out_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io("pipe", &e))?;
    let (err_r, err_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io("pipe", &e))?;
    let pid_file = c.bundle.join("init.pid");
    let child = runtime(c)
        .arg("create")
        .arg("--bundle")
        .arg(&c.bundle)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&c.id)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w))
        .spawn()
        .map_err(|e| io(&format!("run {}", c.runtime.display()), &e))?;
    // The write ends went to the child; the container's init keeps them.
    if wait_for(child.id() as i32) != Some(0) {
        return Err(runtime_error(c, "create"));
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| runtime_error(c, "create"))?;
    let child = runtime(c)
        .arg("start")
        .arg(&c.id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| io(&format!("run {}", c.runtime.display()), &e))?;
    if wait_for(child.id() as i32) != Some(0) {
        return Err(runtime_error(c, "start"));
    }
    Ok((pid, out_r, err_r))
}

/// One json-file log line.
fn log_line(stream: &str, text: &[u8]) -> String {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let line = serde_json::json!({
        "log": String::from_utf8_lossy(text),
        "stream": stream,
        "time": now,
    });
    format!("{line}\n")
}

/// Splits `buf` into complete lines written to `log`; keeps the rest.
fn flush_lines(buf: &mut Vec<u8>, stream: &str, log: &mut std::fs::File, all: bool) {
    while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = buf.drain(..=nl).collect();
        let _ = log.write_all(log_line(stream, &line).as_bytes());
    }
    // A partial line longer than 16 KiB, or the end of the stream, goes out as it is.
    if (all && !buf.is_empty()) || buf.len() > 16 << 10 {
        let _ = log.write_all(log_line(stream, buf).as_bytes());
        buf.clear();
    }
}

/// Copies the container's output to the log until `pid` exits; returns
/// its status as Docker reports it.
pub fn supervise(c: &Config, pid: i32, out: OwnedFd, err: OwnedFd) -> i32 {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&c.log)
        .ok();
    let streams = [(out, "stdout"), (err, "stderr")];
    let mut bufs = [Vec::new(), Vec::new()];
    let mut open = [true, true];
    let mut status = None;
    loop {
        let mut fds: Vec<PollFd> = streams
            .iter()
            .zip(open)
            .filter(|(_, o)| *o)
            .map(|((fd, _), _)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        if !fds.is_empty() {
            let _ = poll(&mut fds, PollTimeout::from(100u16));
        } else {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        for (i, (fd, name)) in streams.iter().enumerate() {
            if !open[i] {
                continue;
            }
            // Only what is there: a read must not block the reaping below.
            if !readable(fd) {
                continue;
            }
            let mut chunk = [0u8; 16384];
            match nix::unistd::read(fd.as_raw_fd(), &mut chunk) {
                Ok(0) | Err(_) => open[i] = false,
                Ok(n) => bufs[i].extend_from_slice(&chunk[..n]),
            }
            if let Some(l) = log.as_mut() {
                flush_lines(&mut bufs[i], name, l, !open[i]);
            }
        }
        // Reap: the init, and anything else reparented to us.
        loop {
            match waitpid(nix::unistd::Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => status = Some(code),
                Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                    status = Some(128 + sig as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        // Done when the init has exited and its output is drained (a
        // process it left behind may hold the pipes open: no data waiting
        // is enough).
        let idle = streams
            .iter()
            .zip(open)
            .all(|((fd, _), o)| !o || !readable(fd));
        if status.is_some() && idle {
            break;
        }
    }
    for (i, (_, name)) in streams.iter().enumerate() {
        if let Some(l) = log.as_mut() {
            flush_lines(&mut bufs[i], name, l, true);
        }
    }
    status.unwrap_or(255)
}

/// Whether `fd` has data or its end waiting (a read will not block).
fn readable(fd: &OwnedFd) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    poll(&mut p, PollTimeout::ZERO).unwrap_or(0) > 0
}

/// Writes the exit status atomically.
pub fn write_exit(c: &Config, code: i32) {
    let tmp = c.exit_file.with_extension("tmp");
    if std::fs::write(&tmp, format!("{code}\n")).is_ok() {
        let _ = std::fs::rename(&tmp, &c.exit_file);
    }
}
