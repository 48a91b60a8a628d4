//! SIGCHLD as a descriptor: the shim's loop waits on it with its other
//! descriptors in poll(2), so an idle shim sleeps until output, a client
//! or a child's exit wakes it, rather than waking every so often to reap.
//!
//! The signal is blocked for the (only) thread and read from a signalfd;
//! dropping the value gives the thread its old mask back, before the shim
//! execs its cleanup callback (a mask survives execve).

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// SIGCHLD, readable on a descriptor while this lives.
pub(crate) struct ChildExits {
    fd: SignalFd,
    old_mask: SigSet,
}

impl ChildExits {
    /// Blocks SIGCHLD and opens its signalfd; None when either fails (the
    /// caller then polls on a timer as before). Children spawned through
    /// `std::process::Command` start with an empty mask whatever ours is.
    pub(crate) fn new() -> Option<ChildExits> {
        let mut chld = SigSet::empty();
        chld.add(Signal::SIGCHLD);
        let mut old_mask = SigSet::empty();
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&chld), Some(&mut old_mask)).ok()?;
        match SignalFd::with_flags(&chld, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
            Ok(fd) => Some(ChildExits { fd, old_mask }),
            Err(_) => {
                let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
                None
            }
        }
    }

    /// Reads every SIGCHLD waiting (they coalesce; the caller reaps with
    /// WNOHANG until nothing is left).
    pub(crate) fn drain(&self) {
        while let Ok(Some(_)) = self.fd.read_signal() {}
    }
}

impl AsFd for ChildExits {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for ChildExits {
    fn drop(&mut self) {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.old_mask), None);
    }
}
