//! `delete`: removes a stopped container (or, with `force`, kills a running
//! one first): its processes, cgroup and state directory, then runs the
//! poststop hooks.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::error::{Result, RuntimeError};
use crate::hooks;
use crate::state::{process_matches, StateStore, Status};

/// Deletes container `id`. With `force`, a container that does not exist
/// is already deleted: success, as runc answers (containerd's shim and
/// Podman force-delete after every exit and log runc's answer otherwise).
pub fn delete(store: &StateStore, id: &str, force: bool) -> Result<()> {
    let lock = match store.lock(id) {
        Ok(l) => l,
        Err(RuntimeError::NotFound(_)) if force => return Ok(()),
        Err(RuntimeError::NotFound(_)) => return Err(RuntimeError::NotFound(id.to_string())),
        Err(e) => return Err(e),
    };
    let rec = match store.load(id) {
        Ok(r) => r,
        // A directory without state: a create that crashed before saving anything.
        Err(RuntimeError::NotFound(_)) => {
            store.remove(id)?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let status = store.status(&rec);
    match status {
        Status::Stopped | Status::Created => {}
        _ if force => {}
        _ => {
            return Err(RuntimeError::WrongState {
                id: id.to_string(),
                status: status.to_string(),
                operation: "delete (stop it first or use --force)",
            })
        }
    }
    if status != Status::Stopped {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(rec.pid), Signal::SIGKILL);
        if let Some(cg) = &rec.cgroup {
            let _ = cg.kill_all(libc::SIGKILL);
            if status == Status::Paused {
                let _ = cg.thaw();
            }
        }
        wait_gone(rec.pid, rec.pid_start_time, Duration::from_secs(10));
    }
    let state = store.oci_state(&rec);
    if let Some(cg) = &rec.cgroup {
        crate::container_cgroup::destroy_cgroup(cg)?;
    }
    store.remove(id)?;
    drop(lock);
    if let Some(h) = rec
        .config
        .hooks()
        .as_ref()
        .and_then(|h| h.poststop().clone())
    {
        hooks::run_all_warn("poststop", &h, &state);
    }
    Ok(())
}

fn wait_gone(pid: i32, start: u64, limit: Duration) {
    // A pidfd turns readable the moment the process exits: no polling delay.
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd >= 0 && process_matches(pid, start) {
        // SAFETY: a fresh descriptor from the kernel.
        let pidfd =
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&pidfd),
            nix::poll::PollFlags::POLLIN,
        )];
        let ms = u16::try_from(limit.as_millis()).unwrap_or(u16::MAX);
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
    }
    let end = Instant::now() + limit;
    let mut pause = Duration::from_micros(100);
    while process_matches(pid, start) && Instant::now() < end {
        // Reap it if it is our child (run --rm); harmless otherwise.
        let _ = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}
