//! Running a command for a test, bounded in time: a command that hangs is
//! killed and the test fails naming it and what its processes were blocked
//! on, instead of stalling the suite (or CI).

use std::path::PathBuf;
use std::process::Command;

use crate::Outcome;

/// How long one command a test runs may take before it is killed and the
/// test fails naming it: `BERTH_TEST_TIMEOUT` seconds (default 300; the
/// cgroup v2 lane sets its own).
pub fn command_timeout() -> std::time::Duration {
    let secs = std::env::var("BERTH_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    std::time::Duration::from_secs(secs)
}

/// Runs `cmd` with stdout and stderr going through temp files.
///
/// The command is killed after [`command_timeout`], and the test panics
/// with the command, where its process tree was blocked (each process's
/// state, kernel wait channel and stack) and what it had printed, so a hang
/// fails fast with a diagnosis instead of stalling the suite.
pub fn run_through_files(cmd: &mut Command) -> Outcome {
    run_with_input(cmd, std::process::Stdio::null())
}

/// [`run_through_files`] with `stdin` as the command's input.
pub fn run_with_input(cmd: &mut Command, stdin: std::process::Stdio) -> Outcome {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let mut child = cmd
        .stdin(stdin)
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut s = String::new();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_string(&mut s).unwrap();
        s
    };
    let Some(status) = wait_timeout(&mut child, command_timeout()) else {
        let tree = describe_process_tree(child.id() as i32);
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{cmd:?} did not finish within {:?}; its processes:\n{tree}stdout={:?}\nstderr={:?}",
            command_timeout(),
            read(out),
            read(err)
        );
    };
    Outcome {
        code: status.code().unwrap_or(-1),
        stdout: read(out),
        stderr: read(err),
    }
}

/// Waits for `child` at most `limit`; None when it is still running.
pub fn wait_timeout(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    let deadline = std::time::Instant::now() + limit;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let raw = unsafe { pidfd_open(child.id() as i32) };
    if raw < 0 {
        // No pidfd (old kernel): poll.
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return Some(st);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw) };
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        let mut fds = [nix::poll::PollFd::new(
            pidfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ready =
            nix::poll::poll(&mut fds, nix::poll::PollTimeout::try_from(ms).unwrap()).unwrap_or(0);
        if ready > 0 || left.is_zero() {
            return child.try_wait().unwrap();
        }
    }
}

/// pidfd_open(2).
///
/// # Safety
/// Only makes a system call; the caller owns the returned descriptor.
unsafe fn pidfd_open(pid: i32) -> i32 {
    // SAFETY: the syscall has no memory arguments.
    unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) as i32 }
}

/// One line per process in the tree under `pid`: pid, state, command,
/// kernel wait channel and kernel stack (what a hang is blocked on).
pub fn describe_process_tree(pid: i32) -> String {
    let mut out = String::new();
    let mut queue = vec![pid];
    while let Some(p) = queue.pop() {
        let proc_dir = PathBuf::from(format!("/proc/{p}"));
        let stat = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split(' ').next())
            .unwrap_or("?");
        let cmdline = std::fs::read(proc_dir.join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        let wchan = std::fs::read_to_string(proc_dir.join("wchan")).unwrap_or_default();
        let stack = std::fs::read_to_string(proc_dir.join("stack")).unwrap_or_default();
        out.push_str(&format!(
            "  pid {p} state {state} wchan {wchan} cmd {}\n",
            cmdline.trim()
        ));
        for l in stack.lines().take(12) {
            out.push_str(&format!("    {l}\n"));
        }
        // Children of every thread.
        if let Ok(tasks) = std::fs::read_dir(proc_dir.join("task")) {
            for t in tasks.flatten() {
                let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                queue.extend(
                    kids.split_whitespace()
                        .filter_map(|k| k.parse::<i32>().ok()),
                );
            }
        }
    }
    out
}
