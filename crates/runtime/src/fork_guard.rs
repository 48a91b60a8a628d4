//! The runtime forks and then runs arbitrary code (allocations, locks) in
//! the child, which is only sound when the caller has no other thread: a
//! lock held by another thread at the fork stays locked forever in the
//! child. [`ensure_single_threaded`] makes that contract a checked one, so
//! a multi-threaded caller (an engine with a thread pool) gets an error
//! instead of a child that deadlocks now and then.

use crate::error::{Result, RuntimeError};

/// Fails unless this process has exactly one thread.
pub(crate) fn ensure_single_threaded(operation: &'static str) -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| RuntimeError::io("read", std::path::Path::new("/proc/self/status"), e))?;
    let threads: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if threads != 1 {
        return Err(RuntimeError::NotSingleThreaded { operation, threads });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_thread_is_refused() {
        // The test harness runs tests on threads of its own: this process
        // has several, so the check must refuse.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        let e = ensure_single_threaded("create").unwrap_err();
        assert!(
            matches!(e, RuntimeError::NotSingleThreaded { operation: "create", threads } if threads >= 2),
            "{e}"
        );
        drop(tx);
        let _ = t.join();
    }
}
