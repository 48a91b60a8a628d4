//! The output of a container that a plain foreground `berth run`
//! supervises itself (no shim): one thread in that `berth` copies the
//! container's stdout and stderr pipes to its own stdout and stderr, to
//! the container's log ([`crate::log`]) and to clients attached on the
//! bundle's attach socket (output only: such a container's stdin is
//! /dev/null), so `logs` and `attach` work as for any other container.
//!
//! Writes to our own stdout block as a direct descriptor would (the
//! container waits for a slow reader); a client that falls behind is
//! dropped, as the shim drops it. When the init has exited, [`Passthrough::finish`]
//! drains what is left (at most [`DRAIN`]: a process the init left behind
//! may hold the pipes open), sends the clients the exit status and hangs up.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::log::{LogConfig, LogWriter};
use crate::protocol;
use crate::supervise::{flush_lines, say_goodbye, stream_name, Client, Requests};
use crate::StartError;

/// How long output is drained after the init exits.
pub const DRAIN: Duration = Duration::from_secs(1);

/// The pipes and the socket, made before the container is created.
pub struct Pending {
    outputs: Vec<(OwnedFd, u8)>,
    listener: UnixListener,
    log: LogConfig,
}

/// The running copy.
pub struct Passthrough {
    stop: OwnedFd,
    thread: std::thread::JoinHandle<()>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), StartError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| StartError(format!("pipe: {e}")))
}

/// Makes the container's stdout and stderr pipes (their write ends are
/// returned, for the runtime's `create`) and listens on `bundle`'s attach
/// socket.
pub fn prepare(bundle: &Path, log: LogConfig) -> Result<(Pending, OwnedFd, OwnedFd), StartError> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let listener = crate::listen_at(bundle)?;
    let _ = listener.set_nonblocking(true);
    Ok((
        Pending {
            outputs: vec![(out_r, protocol::STDOUT), (err_r, protocol::STDERR)],
            listener,
            log,
        },
        out_w,
        err_w,
    ))
}

impl Pending {
    /// Starts copying on a thread of its own.
    pub fn start(self) -> Result<Passthrough, StartError> {
        let (stop_r, stop) = pipe()?;
        let thread = std::thread::Builder::new()
            .name("output".into())
            .spawn(move || copy(self, stop_r))
            .map_err(|e| StartError(format!("spawn the output thread: {e}")))?;
        Ok(Passthrough { stop, thread })
    }
}

impl Passthrough {
    /// The init exited with `code`: drains, tells the clients, and waits
    /// for the thread.
    pub fn finish(self, code: i32) {
        let _ = nix::unistd::write(&self.stop, &code.to_be_bytes());
        let _ = self.thread.join();
    }
}

/// Writes all of `data` to our descriptor `fd` (1 or 2); a closed reader
/// is ignored (the container's output is still drained and logged).
fn write_ours(fd: i32, data: &[u8]) {
    // SAFETY: our own stdout or stderr, borrowed for this call only.
    let mut f = std::mem::ManuallyDrop::new(unsafe {
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd)
    });
    let _ = f.write_all(data);
}

fn copy(p: Pending, stop: OwnedFd) {
    let Pending {
        outputs,
        listener,
        log,
    } = p;
    let mut log = LogWriter::open(log);
    let mut clients: Vec<Client> = vec![];
    let mut line_bufs = vec![Vec::new(); outputs.len()];
    let mut open = vec![true; outputs.len()];
    let mut chunk = vec![0u8; 32768];
    let mut code: Option<i32> = None;
    let mut deadline: Option<Instant> = None;
    loop {
        let mut fds: Vec<PollFd> = outputs
            .iter()
            .zip(&open)
            .map(|((fd, _), o)| {
                let ev = if *o {
                    PollFlags::POLLIN
                } else {
                    PollFlags::empty()
                };
                PollFd::new(fd.as_fd(), ev)
            })
            .collect();
        fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
        let stop_ev = if code.is_none() {
            PollFlags::POLLIN
        } else {
            PollFlags::empty()
        };
        fds.push(PollFd::new(stop.as_fd(), stop_ev));
        for cl in &clients {
            let mut ev = PollFlags::POLLIN;
            if !cl.outbuf_is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(cl.sock_fd(), ev));
        }
        let timeout = match deadline {
            Some(d) => PollTimeout::try_from(d.saturating_duration_since(Instant::now()))
                .unwrap_or(PollTimeout::ZERO),
            None => PollTimeout::NONE,
        };
        let _ = poll(&mut fds, timeout);
        let ready: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        let mut at = 0;
        for (i, (fd, kind)) in outputs.iter().enumerate() {
            let r = ready[at];
            at += 1;
            if !open[i] || r.is_empty() {
                continue;
            }
            match nix::unistd::read(fd.as_raw_fd(), &mut chunk) {
                Ok(0) => open[i] = false,
                Ok(n) => {
                    write_ours(if *kind == protocol::STDOUT { 1 } else { 2 }, &chunk[..n]);
                    line_bufs[i].extend_from_slice(&chunk[..n]);
                    let frame = protocol::frame(*kind, &chunk[..n]);
                    for cl in clients.iter_mut() {
                        cl.send(&frame);
                    }
                }
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(_) => open[i] = false,
            }
            flush_lines(&mut line_bufs[i], stream_name(*kind), &mut log, !open[i]);
        }
        if !ready[at].is_empty() {
            while let Ok((sock, _)) = listener.accept() {
                clients.push(Client::new(sock));
            }
        }
        at += 1;
        if !ready[at].is_empty() && code.is_none() {
            let mut b = [0u8; 4];
            if let Ok(4) = nix::unistd::read(stop.as_raw_fd(), &mut b) {
                code = Some(i32::from_be_bytes(b));
            } else {
                code = Some(255);
            }
            deadline = Some(Instant::now() + DRAIN);
        }
        at += 1;
        // Clients send nothing this container reads; their hang-ups count.
        let mut ignored = Requests::default();
        for cl in clients.iter_mut() {
            let r = ready[at..].first().copied().unwrap_or(PollFlags::empty());
            at += 1;
            if r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                cl.receive(&mut ignored);
            }
            if r.contains(PollFlags::POLLOUT) {
                cl.flush();
            }
        }
        clients.retain(|cl| !cl.gone);
        let drained = open.iter().all(|o| !o);
        let late = deadline.is_some_and(|d| Instant::now() >= d);
        if code.is_some() && (drained || late) {
            break;
        }
    }
    for (i, (_, kind)) in outputs.iter().enumerate() {
        flush_lines(&mut line_bufs[i], stream_name(*kind), &mut log, true);
    }
    say_goodbye(
        clients,
        &protocol::frame(protocol::EXIT, &code.unwrap_or(255).to_be_bytes()),
    );
}
