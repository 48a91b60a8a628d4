//! Attaching to a running container (`attach`, `start -a`, `run -it`):
//! the client's side of the attach socket that its berth-shim, or the
//! foreground `berth run` that supervises it, serves
//! (framing in `shim::protocol`). Our stdin goes to the container
//! (through its terminal with `-t`, our own terminal raw meanwhile), its
//! output to our stdout and stderr; a SIGWINCH resizes its terminal; with
//! sig-proxy, signals go to the container; the detach keys (default
//! ctrl-p ctrl-q) leave it running.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use shim::protocol;

use crate::error::EngineError;
use crate::run::Engine;

/// What an attach takes.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// Our stdin goes to the container (`-i`; `attach --no-stdin` clears it).
    pub stdin: bool,
    /// `--detach-keys` (default ctrl-p,ctrl-q).
    pub detach_keys: Option<String>,
    /// `--sig-proxy`: signals we get go to the container (not with a terminal,
    /// where ^C is a byte like any other).
    pub sig_proxy: bool,
}

/// How an attach ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachEnd {
    /// The container exited with this status.
    Exited(i32),
    /// The user typed the detach keys; the container runs on.
    Detached,
}

/// Docker's default detach keys.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// Parses detach keys as Docker writes them: comma-separated, each a
/// single character or `ctrl-X` (X a letter or one of `@[\]^_`).
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>, EngineError> {
    let bad = |reason: &str| EngineError::InvalidOption {
        option: "--detach-keys",
        value: s.to_string(),
        reason: reason.to_string(),
    };
    let mut keys = vec![];
    for k in s.split(',') {
        if let Some(c) = k.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b @ b'a'..=b'z'] => b - b'a' + 1,
                [b @ (b'@' | b'[' | b'\\' | b']' | b'^' | b'_')] => b - b'@',
                _ => {
                    return Err(bad(&format!(
                        "{k:?}: ctrl- takes a letter or one of @[\\]^_"
                    )))
                }
            };
            keys.push(b);
        } else if k.len() == 1 {
            keys.push(k.as_bytes()[0]);
        } else {
            return Err(bad(&format!("{k:?} is not a key (a character or ctrl-X)")));
        }
    }
    if keys.is_empty() || s.is_empty() {
        return Err(bad("no keys"));
    }
    Ok(keys)
}

/// Finds the detach keys in a terminal's input, holding back a partial
/// match (used by `berth attach` and by the API's attach and exec).
#[derive(Debug, Clone)]
pub struct Escape {
    keys: Vec<u8>,
    matched: usize,
}

impl Escape {
    /// Watches for `keys` as Docker writes them (None: ctrl-p,ctrl-q).
    pub fn new(keys: Option<&str>) -> Result<Escape, EngineError> {
        Ok(Escape {
            keys: parse_detach_keys(keys.unwrap_or(DEFAULT_DETACH_KEYS))?,
            matched: 0,
        })
    }

    /// What of `data` goes to the container, and whether the keys were typed.
    pub fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(data.len());
        for &b in data {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = usize::from(b == self.keys[0]);
                if self.matched == 0 {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

/// Connects to the attach socket in `bundle` (through a descriptor, so
/// the path's length does not matter).
pub(crate) fn connect(bundle: &Path, name: &str) -> Result<UnixStream, EngineError> {
    let dir = nix::fcntl::open(
        bundle,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| EngineError::Io {
        op: "open",
        path: bundle.to_path_buf(),
        err: e.into(),
    })?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    let dir = unsafe { OwnedFd::from_raw_fd(dir) };
    let path = format!("/proc/self/fd/{}/{}", dir.as_raw_fd(), protocol::SOCKET);
    UnixStream::connect(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            EngineError::NotAttachable(name.to_string())
        }
        _ => EngineError::Io {
            op: "connect to",
            path: bundle.join(protocol::SOCKET),
            err: e,
        },
    })
}

/// Our terminal's size, when stdin or stdout is one.
fn window_size() -> Option<(u16, u16)> {
    // SAFETY: winsize is plain integers; all zero is a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    for fd in [0, 1] {
        // SAFETY: TIOCGWINSZ writes a winsize.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

fn resize_frame((rows, cols): (u16, u16)) -> Vec<u8> {
    let mut p = rows.to_be_bytes().to_vec();
    p.extend(cols.to_be_bytes());
    protocol::frame(protocol::RESIZE, &p)
}

/// The signals sig-proxy passes on, as `docker attach` does.
const PROXIED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

impl Engine {
    /// `attach`: connects our stdio to running container `key` until it
    /// exits or we detach. Blocks signals in the calling thread while it
    /// runs (call it from the main thread).
    pub fn attach(&self, key: &str, opts: &AttachOptions) -> Result<AttachEnd, EngineError> {
        let rec = self.container(key)?;
        if !rec.is_running() {
            return Err(EngineError::NotRunning(rec.name));
        }
        let settings = crate::restart::ContainerSettings::parse(&rec.config);
        if settings.paused {
            return Err(EngineError::Paused(rec.name));
        }
        let bundle = crate::rootfs::container_dir(&self.root, &rec.id)?.join("bundle");
        let sock = connect(&bundle, &rec.name)?;
        let opts = AttachOptions {
            stdin: opts.stdin && settings.open_stdin,
            ..opts.clone()
        };
        self.relay(&rec.id, sock, settings.tty, &opts)
    }

    /// Copies between our stdio and the attach socket `sock` of container
    /// `id` until it exits or we detach.
    pub(crate) fn relay(
        &self,
        id: &str,
        mut sock: UnixStream,
        tty: bool,
        opts: &AttachOptions,
    ) -> Result<AttachEnd, EngineError> {
        let mut escape = Escape::new(opts.detach_keys.as_deref())?;
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGWINCH);
        if opts.sig_proxy && !tty {
            for s in PROXIED {
                mask.add(s);
            }
        }
        let old = mask
            .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
            .map_err(|e| EngineError::Io {
                op: "block signals",
                path: "sigprocmask".into(),
                err: e.into(),
            })?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK);
        let _raw = (tty && opts.stdin).then(runtime::console_client::RawTerminal::enter);
        let io_err = |op: &'static str| {
            move |e: std::io::Error| EngineError::Io {
                op,
                path: "attach socket".into(),
                err: e,
            }
        };
        let result = (|| {
            let signals = signals.map_err(|e| io_err("signalfd")(e.into()))?;
            if tty {
                if let Some(size) = window_size() {
                    sock.write_all(&resize_frame(size))
                        .map_err(io_err("write"))?;
                }
            }
            let stdin = std::io::stdin();
            let mut stdin_open = opts.stdin;
            let mut inbuf = Vec::new();
            let mut buf = vec![0u8; 32768];
            loop {
                let mut fds = vec![
                    PollFd::new(sock.as_fd(), PollFlags::POLLIN),
                    PollFd::new(signals.as_fd(), PollFlags::POLLIN),
                ];
                if stdin_open {
                    fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
                }
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(io_err("poll")(e.into())),
                }
                let ready = |i: usize| {
                    fds.get(i)
                        .and_then(|f| f.revents())
                        .is_some_and(|r| !r.is_empty())
                };
                let (sock_ready, sig_ready, stdin_ready) = (ready(0), ready(1), ready(2));
                drop(fds);
                if sock_ready {
                    let n = match sock.read(&mut buf) {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(io_err("read")(e)),
                    };
                    if n == 0 {
                        return Err(EngineError::Runtime {
                            step: "attach",
                            message: "berth-shim hung up before the container's exit".into(),
                        });
                    }
                    inbuf.extend_from_slice(&buf[..n]);
                    while let Some((kind, payload)) = protocol::take(&mut inbuf)
                        .map_err(|e| io_err("read")(std::io::Error::other(e.to_string())))?
                    {
                        match kind {
                            protocol::STDOUT => write_out(&mut std::io::stdout(), &payload),
                            protocol::STDERR => write_out(&mut std::io::stderr(), &payload),
                            protocol::EXIT if payload.len() == 4 => {
                                let code = i32::from_be_bytes([
                                    payload[0], payload[1], payload[2], payload[3],
                                ]);
                                return Ok(AttachEnd::Exited(code));
                            }
                            protocol::ERROR => {
                                return Err(EngineError::Runtime {
                                    step: "start",
                                    message: String::from_utf8_lossy(&payload).into_owned(),
                                })
                            }
                            _ => {}
                        }
                    }
                }
                if sig_ready {
                    while let Ok(Some(info)) = signals.read_signal() {
                        let sig = info.ssi_signo as i32;
                        if sig == libc::SIGWINCH {
                            if let Some(size) = window_size() {
                                let _ = sock.write_all(&resize_frame(size));
                            }
                        } else {
                            let _ = self.kill_container(id, &sig.to_string());
                        }
                    }
                }
                if stdin_ready {
                    match nix::unistd::read(stdin.as_raw_fd(), &mut buf) {
                        Ok(0) | Err(Errno::EIO | Errno::EBADF) => {
                            stdin_open = false;
                            let _ = sock.write_all(&protocol::frame(protocol::CLOSE_STDIN, &[]));
                        }
                        Ok(n) => {
                            let (data, detach) = escape.feed(&buf[..n]);
                            if !data.is_empty() {
                                let _ = sock.write_all(&protocol::frame(protocol::STDIN, &data));
                            }
                            if detach {
                                return Ok(AttachEnd::Detached);
                            }
                        }
                        Err(_) => {}
                    }
                }
            }
        })();
        let _ = nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&old),
            None,
        );
        result
    }
}

impl Engine {
    /// Attaches to container `id`, whose shim waits for us to start it
    /// (`--wait-attach`). Once it has exited, waits until its exit is
    /// recorded (with `--rm`, until it is removed), as `docker run` does.
    pub(crate) fn attach_new(
        &self,
        db: &crate::store::Store,
        id: &str,
        bundle: &Path,
        tty: bool,
        opts: &AttachOptions,
    ) -> Result<AttachEnd, EngineError> {
        let rec = db.find(id)?;
        let sock = connect(bundle, &rec.name)?;
        let code = match self.relay(id, sock, tty, opts)? {
            AttachEnd::Detached => return Ok(AttachEnd::Detached),
            AttachEnd::Exited(code) => code,
        };
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < end {
            match db.find(id) {
                Err(EngineError::NoSuchContainer(_)) => break,
                Err(e) => return Err(e),
                // The exit recorded (by the shim's callback), or a new run.
                Ok(r)
                    if !rec.auto_remove
                        && (r.state != crate::store::State::Running || r.pid != rec.pid) =>
                {
                    break
                }
                Ok(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
        Ok(AttachEnd::Exited(code))
    }
}

fn write_out(out: &mut impl Write, data: &[u8]) {
    let _ = out.write_all(data);
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_as_docker_writes_them() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), [0x10, 0x11]);
        assert_eq!(
            parse_detach_keys("a,ctrl-@,ctrl-_").unwrap(),
            [b'a', 0, 0x1f]
        );
        for bad in ["", "ctrl-", "ctrl-1", "ab", "ctrl-p,,"] {
            assert!(parse_detach_keys(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_escape_holds_back_a_partial_match_and_gives_it_back_on_a_miss() {
        let mut e = Escape {
            keys: vec![0x10, 0x11],
            matched: 0,
        };
        assert_eq!(e.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(e.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(e.feed(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(e.feed(b"\x11rest"), (vec![], true));
    }
}
