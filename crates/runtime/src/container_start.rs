//! `start`: lets a created container's init exec the user's program by
//! opening the other end of `exec.fifo`, then runs the poststart hooks.

use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::error::{Result, RuntimeError};
use crate::hooks;
use crate::state::{process_matches, StateStore, Status, EXEC_FIFO};

/// How long `start` waits for an init that is still finishing its setup.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts container `id`.
pub fn start(store: &StateStore, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    let rec = store.load(id)?;
    let status = store.status(&rec);
    if status != Status::Created {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status: status.to_string(),
            operation: "start (only a created container can be started)",
        });
    }
    let fifo_path = store.dir(id).join(EXEC_FIFO);
    let fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo_path)
        .map_err(|e| RuntimeError::io("open", &fifo_path, e))?;
    let deadline = Instant::now() + START_TIMEOUT;
    let mut got_byte = false;
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {}
            Ok(_) => {
                let mut b = [0u8; 1];
                match nix::unistd::read(fifo.as_raw_fd(), &mut b) {
                    // The init is going: now wait for its exec to close the fifo.
                    Ok(1) => got_byte = true,
                    // End of file after the byte: the user's program runs.
                    Ok(0) if got_byte => break,
                    Ok(_) | Err(nix::errno::Errno::EAGAIN) => {}
                    Err(e) => return Err(RuntimeError::sys("read", fifo_path.display(), e)),
                }
            }
            Err(e) => return Err(RuntimeError::sys("poll", fifo_path.display(), e)),
        }
        if !process_matches(rec.pid, rec.pid_start_time) {
            if got_byte {
                // It was started and has already finished.
                break;
            }
            return Err(RuntimeError::Init(format!(
                "container {id:?} exited before it could start"
            )));
        }
        if Instant::now() > deadline {
            return Err(RuntimeError::Other(format!(
                "container {id:?} did not start within {}s",
                START_TIMEOUT.as_secs()
            )));
        }
    }
    std::fs::remove_file(&fifo_path).map_err(|e| RuntimeError::io("remove", &fifo_path, e))?;
    if let Some(h) = rec
        .config
        .hooks()
        .as_ref()
        .and_then(|h| h.poststart().clone())
    {
        let state = store.oci_state(&rec);
        hooks::run_all_warn("poststart", &h, &state);
    }
    Ok(())
}

use std::os::unix::fs::OpenOptionsExt;
