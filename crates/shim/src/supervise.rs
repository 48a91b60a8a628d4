//! The shim's one loop, from the container's start to its exit: copies
//! its output to the log and to every attached client, feeds its stdin
//! from the clients, resizes its terminal, accepts new clients on the
//! attach socket and reaps. Single-threaded, on poll(2); nothing in it
//! blocks, so a slow or stuck client cannot stall the container (a client
//! that falls 8 MiB behind is dropped). Children's exits come in on a
//! signalfd ([`crate::child_exits`]), so an idle shim sleeps: its only
//! timer is the next health probe.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::log::LogWriter;
use crate::protocol;
use crate::Config;

/// How far behind a client may fall before it is dropped.
const CLIENT_BACKLOG: usize = 8 << 20;
/// How much stdin waits for the container to read it before the shim
/// stops reading from clients.
const STDIN_BACKLOG: usize = 1 << 20;

/// The container's side of the shim: what it reads and writes.
pub struct ContainerIo {
    /// The container's output: its stdout and stderr pipes, or its
    /// terminal's master; with the frame kind each is sent as.
    pub outputs: Vec<(OwnedFd, u8)>,
    /// Where clients' stdin goes: the stdin pipe, or the terminal's
    /// master. None when the container's stdin is closed.
    pub input: Option<OwnedFd>,
    /// The terminal's master, for resizes.
    pub master: Option<OwnedFd>,
}

/// One attached client.
pub(crate) struct Client {
    sock: UnixStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    /// It hung up, failed or fell too far behind: to be dropped.
    pub(crate) gone: bool,
}

impl Client {
    pub(crate) fn new(sock: UnixStream) -> Client {
        let _ = sock.set_nonblocking(true);
        Client {
            sock,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            gone: false,
        }
    }

    /// Whether everything sent so far has been written.
    pub(crate) fn outbuf_is_empty(&self) -> bool {
        self.outbuf.is_empty()
    }

    /// The client's socket, for poll.
    pub(crate) fn sock_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.sock.as_fd()
    }

    pub(crate) fn send(&mut self, frame: &[u8]) {
        if self.outbuf.len() + frame.len() > CLIENT_BACKLOG {
            self.gone = true;
            return;
        }
        self.outbuf.extend_from_slice(frame);
        self.flush();
    }

    pub(crate) fn flush(&mut self) {
        while !self.outbuf.is_empty() {
            match self.sock.write(&self.outbuf) {
                Ok(0) => {
                    self.gone = true;
                    return;
                }
                Ok(n) => {
                    self.outbuf.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.gone = true;
                    return;
                }
            }
        }
    }
}

/// What the clients asked for in one round.
#[derive(Default)]
pub(crate) struct Requests {
    stdin: Vec<u8>,
    resize: Option<(u16, u16)>,
    close_stdin: bool,
}

impl Client {
    /// Reads what the client sent and parses its frames.
    pub(crate) fn receive(&mut self, req: &mut Requests) {
        let mut chunk = [0u8; 16384];
        match self.sock.read(&mut chunk) {
            Ok(0) => self.gone = true,
            Ok(n) => self.inbuf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => self.gone = true,
        }
        loop {
            match protocol::take(&mut self.inbuf) {
                Ok(Some((protocol::STDIN, data))) => req.stdin.extend(data),
                Ok(Some((protocol::RESIZE, p))) if p.len() == 4 => {
                    req.resize = Some((
                        u16::from_be_bytes([p[0], p[1]]),
                        u16::from_be_bytes([p[2], p[3]]),
                    ))
                }
                Ok(Some((protocol::CLOSE_STDIN, _))) => req.close_stdin = true,
                // Anything else from a client is ignored.
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(_) => {
                    self.gone = true;
                    return;
                }
            }
        }
    }
}

/// Splits `buf` into complete lines written to `log`; keeps the rest.
pub(crate) fn flush_lines(buf: &mut Vec<u8>, stream: &str, log: &mut LogWriter, all: bool) {
    while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = buf.drain(..=nl).collect();
        log.write(stream, &line);
    }
    // A partial line longer than 16 KiB, or the end of the stream, goes out as it is.
    if (all && !buf.is_empty()) || buf.len() > 16 << 10 {
        log.write(stream, buf);
        buf.clear();
    }
}

pub(crate) fn stream_name(kind: u8) -> &'static str {
    if kind == protocol::STDERR {
        "stderr"
    } else {
        "stdout"
    }
}

fn set_nonblocking(fd: &OwnedFd) {
    let _ = nix::fcntl::fcntl(
        fd.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
}

/// Gives the terminal `master` a size.
fn resize(master: &OwnedFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// Runs the loop until `pid` (the container's init) has exited and its
/// output is drained; returns its status as Docker reports it. `clients`
/// are those already attached (the one a `--wait-attach` start waited for).
pub fn supervise(
    c: &Config,
    pid: i32,
    io: ContainerIo,
    listener: Option<UnixListener>,
    clients: Vec<UnixStream>,
) -> i32 {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let mut log = LogWriter::open(c.log.clone());
    let ContainerIo {
        outputs,
        mut input,
        master,
    } = io;
    if let Some(i) = &input {
        set_nonblocking(i);
    }
    if let Some(l) = &listener {
        let _ = l.set_nonblocking(true);
    }
    let mut clients: Vec<Client> = clients.into_iter().map(Client::new).collect();
    let mut line_bufs = vec![Vec::new(); outputs.len()];
    let mut open = vec![true; outputs.len()];
    let mut pending_in: Vec<u8> = Vec::new();
    let mut close_input = false;
    let mut status = None;
    let mut chunk = vec![0u8; 32768];
    let started = std::time::Instant::now();
    let mut next_probe = c.health.map(|h| started + h.next_after(Duration::ZERO));
    let mut probe: Option<i32> = None;
    // Blocked from here on: a child that exited before is a zombie the
    // first pass (which does not wait) reaps.
    let child_exits = crate::child_exits::ChildExits::new();
    let mut first_pass = true;
    loop {
        // The poll set, in a fixed order: outputs, listener, clients, input.
        let mut fds: Vec<PollFd> = Vec::new();
        for (i, (fd, _)) in outputs.iter().enumerate() {
            let events = if open[i] {
                PollFlags::POLLIN
            } else {
                PollFlags::empty()
            };
            fds.push(PollFd::new(fd.as_fd(), events));
        }
        if let Some(l) = &listener {
            fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
        }
        for cl in &clients {
            let mut ev = PollFlags::empty();
            if pending_in.len() < STDIN_BACKLOG {
                ev |= PollFlags::POLLIN;
            }
            if !cl.outbuf.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(cl.sock.as_fd(), ev));
        }
        if let Some(i) = &input {
            let ev = if pending_in.is_empty() {
                PollFlags::empty()
            } else {
                PollFlags::POLLOUT
            };
            fds.push(PollFd::new(i.as_fd(), ev));
        }
        if let Some(x) = &child_exits {
            fds.push(PollFd::new(x.as_fd(), PollFlags::POLLIN));
        }
        let timeout = if first_pass {
            PollTimeout::ZERO
        } else if child_exits.is_none() {
            // No signalfd: reap on a timer.
            PollTimeout::from(100u16)
        } else {
            match (status, probe, next_probe) {
                (None, None, Some(due)) => {
                    PollTimeout::try_from(due.saturating_duration_since(std::time::Instant::now()))
                        .unwrap_or(PollTimeout::MAX)
                }
                _ => PollTimeout::NONE,
            }
        };
        first_pass = false;
        let _ = poll(&mut fds, timeout);
        let ready: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        let mut at = 0;

        // The container's output, to the log and the clients.
        for (i, (fd, kind)) in outputs.iter().enumerate() {
            let r = ready[at];
            at += 1;
            if !open[i] || r.is_empty() {
                continue;
            }
            match nix::unistd::read(fd.as_raw_fd(), &mut chunk) {
                Ok(0) => open[i] = false,
                Ok(n) => {
                    line_bufs[i].extend_from_slice(&chunk[..n]);
                    let frame = protocol::frame(*kind, &chunk[..n]);
                    for cl in clients.iter_mut() {
                        cl.send(&frame);
                    }
                }
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                // EIO from a terminal: every holder of its slave is gone.
                Err(_) => open[i] = false,
            }
            flush_lines(&mut line_bufs[i], stream_name(*kind), &mut log, !open[i]);
        }

        // New clients.
        if let Some(l) = &listener {
            if !ready[at].is_empty() {
                while let Ok((sock, _)) = l.accept() {
                    clients.push(Client::new(sock));
                }
            }
            at += 1;
        }

        // What the clients sent, and what they are owed.
        let mut req = Requests::default();
        for cl in clients.iter_mut() {
            let r = ready[at..].first().copied().unwrap_or(PollFlags::empty());
            at += 1;
            if r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                cl.receive(&mut req);
            }
            if r.contains(PollFlags::POLLOUT) {
                cl.flush();
            }
        }
        clients.retain(|cl| !cl.gone);
        if let (Some(m), Some((rows, cols))) = (&master, req.resize) {
            resize(m, rows, cols);
        }
        if input.is_some() {
            pending_in.extend(req.stdin);
            close_input |= req.close_stdin && c.stdin_once;
        }

        // The container's stdin.
        if let Some(i) = &input {
            while !pending_in.is_empty() {
                match nix::unistd::write(i, &pending_in) {
                    Ok(n) => {
                        pending_in.drain(..n);
                    }
                    Err(Errno::EINTR) => {}
                    Err(Errno::EAGAIN) => break,
                    // The container closed its stdin.
                    Err(_) => {
                        pending_in.clear();
                        close_input = true;
                    }
                }
            }
            if close_input && pending_in.is_empty() {
                if master.is_some() {
                    // A terminal's reader sees its end of file.
                    let _ = nix::unistd::write(i, &[0x04]);
                }
                input = None;
            }
        }

        // Reap: the init, and anything else reparented to us.
        if let Some(x) = &child_exits {
            x.drain();
        }
        loop {
            match waitpid(nix::unistd::Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => status = Some(code),
                Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                    status = Some(128 + sig as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(WaitStatus::Exited(p, _) | WaitStatus::Signaled(p, _, _))
                    if Some(p.as_raw()) == probe =>
                {
                    probe = None;
                    if let Some(h) = c.health {
                        let now = std::time::Instant::now();
                        next_probe = Some(now + h.next_after(now - started));
                    }
                }
                Ok(_) => {}
            }
        }
        // A health probe when one is due (one at a time, while the init runs).
        if let (None, None, Some(due)) = (status, probe, next_probe) {
            if std::time::Instant::now() >= due {
                let spawned = crate::callback(c, "healthcheck")
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn();
                match spawned {
                    Ok(child) => probe = Some(child.id() as i32),
                    Err(_) => next_probe = c.health.map(|h| due + h.interval),
                }
            }
        }
        // Done when the init has exited and its output is drained (a
        // process it left behind may hold the pipes open: no data waiting
        // is enough).
        let idle = outputs
            .iter()
            .zip(&open)
            .all(|((fd, _), o)| !o || !readable(fd));
        if status.is_some() && idle {
            break;
        }
    }
    // The old signal mask again, before the cleanup callback is exec'd.
    drop(child_exits);
    for (i, (_, kind)) in outputs.iter().enumerate() {
        flush_lines(&mut line_bufs[i], stream_name(*kind), &mut log, true);
    }
    let code = status.unwrap_or(255);
    say_goodbye(
        clients,
        &protocol::frame(protocol::EXIT, &code.to_be_bytes()),
    );
    code
}

/// Sends `last` to every client, waiting a little for slow ones, and
/// hangs up.
pub(crate) fn say_goodbye(clients: Vec<Client>, last: &[u8]) {
    for mut cl in clients {
        let _ = cl.sock.set_nonblocking(false);
        let _ = cl
            .sock
            .set_write_timeout(Some(std::time::Duration::from_secs(2)));
        cl.outbuf.extend_from_slice(last);
        let _ = cl.sock.write_all(&cl.outbuf);
    }
}

/// Sends `last` to clients not yet wrapped (a start that failed).
pub fn refuse(clients: Vec<UnixStream>, last: &[u8]) {
    say_goodbye(clients.into_iter().map(Client::new).collect(), last);
}

/// Whether `fd` has data or its end waiting (a read will not block).
pub(crate) fn readable(fd: &OwnedFd) -> bool {
    let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    poll(&mut p, PollTimeout::ZERO).unwrap_or(0) > 0
}
