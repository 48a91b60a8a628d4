//! An `exec -t` process's terminal: the pty master
//! the runtime hands over, copied to our stdout and, with `-i`, fed from
//! our stdin, by a thread that runs until the container has exited.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::error::EngineError;

/// The copying thread and the pipe that tells it to stop.
pub(crate) struct Relay {
    stop: OwnedFd,
    thread: JoinHandle<()>,
}

/// The end-of-file character of a terminal in its default (cooked) mode:
/// what a pty's reader gets to see as the end of our stdin.
const VEOF: u8 = 0x04;

impl Relay {
    /// Starts copying `master` to stdout, and stdin to `master` when
    /// `input`.
    pub(crate) fn start(master: OwnedFd, input: bool) -> Result<Self, EngineError> {
        let (stop_read, stop) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| EngineError::Io {
                op: "pipe",
                path: "terminal relay".into(),
                err: e.into(),
            })?;
        let thread = std::thread::spawn(move || copy_until_stopped(&master, &stop_read, input));
        Ok(Relay { stop, thread })
    }

    /// Tells the thread the container has exited: it copies what is left
    /// in the pty (without waiting on a process that still holds it) and
    /// ends.
    pub(crate) fn finish(self) {
        let _ = nix::unistd::write(&self.stop, b"x");
        let _ = self.thread.join();
    }
}

fn copy_until_stopped(master: &OwnedFd, stop: &OwnedFd, input: bool) {
    let stdin = std::io::stdin();
    let mut stdin_open = input;
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = vec![
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (master_ready, stop_ready, stdin_ready) = (ready(0), ready(1), ready(2));
        drop(fds);
        if master_ready {
            match nix::unistd::read(master.as_raw_fd(), &mut buf) {
                Ok(n) if n > 0 => write_all_stdout(&buf[..n]),
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                // EIO: every holder of the slave is gone.
                _ => return,
            }
        }
        if stop_ready {
            drain(master, &mut buf);
            return;
        }
        if stdin_ready {
            match nix::unistd::read(stdin.as_raw_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    if write_all(master, &buf[..n]).is_err() {
                        stdin_open = false;
                    }
                }
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                _ => {
                    // Our stdin ended: the program reading the terminal
                    // sees its end of file.
                    let _ = write_all(master, &[VEOF]);
                    stdin_open = false;
                }
            }
        }
    }
}

/// Copies what the pty holds now, without waiting for more.
fn drain(master: &OwnedFd, buf: &mut [u8]) {
    let _ = nix::fcntl::fcntl(
        master.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    while let Ok(n) = nix::unistd::read(master.as_raw_fd(), buf) {
        if n == 0 {
            break;
        }
        write_all_stdout(&buf[..n]);
    }
}

fn write_all(fd: &OwnedFd, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn write_all_stdout(data: &[u8]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(data);
    let _ = out.flush();
}
