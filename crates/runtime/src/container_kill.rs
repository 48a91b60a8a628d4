//! `kill`: sends a signal to a container's init, or with `all` to every
//! process in its cgroup.

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::error::{Result, RuntimeError};
use crate::state::{StateStore, Status};

/// Parses a signal given as a number, `KILL`, or `SIGKILL`.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(RuntimeError::InvalidSignal {
            value: s.to_string(),
            reason: "out of range (1-64)",
        });
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    if let Some(off) = name.strip_prefix("SIGRTMIN+") {
        let off: i32 = off.parse().map_err(|_| RuntimeError::InvalidSignal {
            value: s.to_string(),
            reason: "not SIGRTMIN+N",
        })?;
        return Ok(libc::SIGRTMIN() + off);
    }
    name.parse::<Signal>()
        .map(|s| s as i32)
        .map_err(|_| RuntimeError::InvalidSignal {
            value: s.to_string(),
            reason: "no such signal",
        })
}

/// Sends `signal` to container `id`.
pub fn kill(store: &StateStore, id: &str, signal: i32, all: bool) -> Result<()> {
    let rec = store.load(id)?;
    let status = store.status(&rec);
    if status == Status::Stopped {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status: status.to_string(),
            operation: "kill (container not running)",
        });
    }
    if all {
        if let Some(cg) = &rec.cgroup {
            cg.kill_all(signal)?;
            if status == Status::Paused {
                // A frozen process only acts on the signal once thawed.
                cg.thaw()?;
            }
            return Ok(());
        }
    }
    // SAFETY: kill with a pid and a signal number.
    if unsafe { libc::kill(Pid::from_raw(rec.pid).as_raw(), signal) } != 0 {
        return Err(RuntimeError::sys(
            "kill",
            format!("container {id:?} (pid {})", rec.pid),
            nix::errno::Errno::last(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("sigterm").unwrap(), 15);
        assert_eq!(parse_signal("SIGUSR1").unwrap(), 10);
        assert!(parse_signal("SIGBOGUS").is_err());
        assert!(parse_signal("0").is_err());
    }
}
