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
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| fail(format!("cannot run: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state);
    }
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    if let Some(t) = h.timeout() {
        if t <= 0 {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!("timeout must be positive, got {t}")));
        }
    }
    let mut pause = Duration::from_micros(200);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(fail(format!("exited with {status}"))),
            Ok(None) => {}
            Err(e) => return Err(fail(format!("wait: {e}"))),
        }
        if let Some(d) = deadline {
            if Instant::now() >= d {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "timed out after {}s",
                    h.timeout().unwrap_or(0)
                )));
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}
