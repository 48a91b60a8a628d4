//! OCI hooks: each hook is run with its `args` (args[0] is argv[0]) and
//! `env` only, the container's state JSON on stdin, and killed when its
//! `timeout` (seconds) runs out.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::{Result, RuntimeError};
use crate::state::OciState;

/// Runs every hook of the list `kind` in order, stopping at the first failure.
pub fn run_all(kind: &'static str, hooks: &[Hook], state: &OciState) -> Result<()> {
    let json = serde_json::to_vec(state)
        .map_err(|e| RuntimeError::Other(format!("encode state for hooks: {e}")))?;
    for h in hooks {
        run_one(kind, h, &json)?;
    }
    Ok(())
}

/// Runs every hook of the list, logging failures instead of stopping
/// (the spec's rule for poststart and poststop).
pub fn run_all_warn(kind: &'static str, hooks: &[Hook], state: &OciState) {
    let Ok(json) = serde_json::to_vec(state) else {
        return;
    };
    for h in hooks {
        if let Err(e) = run_one(kind, h, &json) {
            tracing::warn!("{e}");
            eprintln!("warning: {e}");
        }
    }
}

fn run_one(kind: &'static str, h: &Hook, state: &[u8]) -> Result<()> {
    let fail = |reason: String| RuntimeError::Hook {
        kind,
        path: h.path().clone(),
        reason,
    };
    let mut cmd = Command::new(h.path());
    let args = h.args().clone().unwrap_or_default();
    if let Some((argv0, rest)) = args.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    if let Some(t) = h.timeout().filter(|t| *t <= 0) {
        return Err(fail(format!("timeout must be positive, got {t}")));
    }
    cmd.stdin(Stdio::piped());
    // The deadline covers everything the hook does, reading its stdin
    // included: the state goes in by non-blocking writes between checks,
    // so a hook that never reads cannot hold the runtime past it.
    let deadline = h
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut child = cmd.spawn().map_err(|e| fail(format!("cannot run: {e}")))?;
    let mut stdin = child.stdin.take();
    if let Some(pipe) = &stdin {
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl with integer arguments on the pipe we own.
        unsafe {
            let fl = libc::fcntl(pipe.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(pipe.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
    let mut written = 0;
    let mut pause = Duration::from_micros(200);
    loop {
        if let Some(pipe) = &mut stdin {
            match pipe.write(&state[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // A hook that does not read its stdin and exits is fine (EPIPE).
                Err(_) => written = state.len(),
            }
            if written >= state.len() {
                // Closing the pipe gives the hook its end of input.
                stdin = None;
            }
        }
        let late = deadline.is_some_and(|d| Instant::now() >= d);
        match child.try_wait() {
            Ok(Some(_)) if late => {
                return Err(fail(format!(
                    "timed out after {}s (it exited only after its deadline)",
                    h.timeout().unwrap_or(0)
                )))
            }
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(fail(format!("exited with {status}"))),
            Ok(None) => {}
            Err(e) => return Err(fail(format!("wait: {e}"))),
        }
        if late {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!(
                "timed out after {}s",
                h.timeout().unwrap_or(0)
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}
