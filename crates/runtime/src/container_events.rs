//! `events`: a container's resource statistics (once with `--stats`, or
//! every interval) and its OOM kills, as runc's event JSON objects:
//! `{"type":"stats","id":…,"data":{…}}` and `{"type":"oom","id":…}`.

use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::{json, Value};

use crate::error::{Result, RuntimeError};
use crate::state::{StateStore, Status};

/// Emits events for container `id` until it stops (or once, with `once`).
pub fn events(
    store: &StateStore,
    id: &str,
    interval: Duration,
    once: bool,
    emit: &mut dyn FnMut(&Value),
) -> Result<()> {
    let rec = store.load(id)?;
    let cg = rec.cgroup.clone().ok_or_else(|| RuntimeError::NoCgroup {
        id: id.to_string(),
        operation: "report events",
    })?;
    let stats = |cg: &cgroups::CgroupManager| -> Result<Value> {
        Ok(json!({"type": "stats", "id": id, "data": cg.stats()?}))
    };
    if once {
        emit(&stats(&cg)?);
        return Ok(());
    }
    let mut oom = cg.oom_watch().ok();
    let mut next = Instant::now() + interval;
    loop {
        if store.status(&rec) == Status::Stopped {
            // A last look: the OOM kill may be what stopped it.
            if let Some(w) = oom.as_mut() {
                let mut fds = [PollFd::new(w.fd(), PollFlags::POLLIN)];
                if poll(&mut fds, PollTimeout::ZERO).unwrap_or(0) > 0 && w.consume() {
                    emit(&json!({"type": "oom", "id": id}));
                }
            }
            return Ok(());
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        let ready = match oom.as_ref() {
            Some(w) => {
                let mut fds = [PollFd::new(w.fd(), PollFlags::POLLIN)];
                poll(
                    &mut fds,
                    PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX),
                )
                .unwrap_or(0)
                    > 0
            }
            None => {
                std::thread::sleep(wait);
                false
            }
        };
        if ready {
            if let Some(w) = oom.as_mut() {
                if w.consume() {
                    emit(&json!({"type": "oom", "id": id}));
                }
            }
        }
        if Instant::now() >= next {
            if let Ok(s) = stats(&cg) {
                emit(&s);
            }
            next += interval;
        }
    }
}

/// Parses `5s`, `250ms`, `1m` or a plain number of seconds.
pub fn parse_interval(s: &str) -> Result<Duration> {
    let bad = || RuntimeError::Other(format!("invalid interval {s:?}: use e.g. 5s, 250ms, 1m"));
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    if secs.is_nan() || secs <= 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_interval("2").unwrap(), Duration::from_secs(2));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("fast").is_err());
    }
}
