//! The caller's side of a container's terminal: the `--console-socket`
//! listener that receives the pty master, the raw mode of the caller's own
//! terminal while it is attached, and its window size. Used by the
//! runtime's foreground `run` and by the engine.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

use crate::error::Result;

/// Tells apart the listeners of one process.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A listening socket in a private directory of its own, for the pty
/// master; the directory goes with it.
pub struct ConsoleListener {
    dir: PathBuf,
    /// The socket's path, for `--console-socket`.
    pub path: PathBuf,
    listener: UnixListener,
}

impl ConsoleListener {
    /// Listens in a new directory (mode 0700) under `parent`.
    pub fn new_in(parent: &Path) -> Result<Self> {
        let dir = parent.join(format!(
            "berth-console-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| crate::RuntimeError::io("create", &dir, e))?;
        let path = dir.join("sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(|e| crate::RuntimeError::io("bind console socket", &path, e))?;
        Ok(ConsoleListener {
            dir,
            path,
            listener,
        })
    }

    /// The pty master the runtime sent (it has connected by the time
    /// `create` returns).
    pub fn receive(&self) -> Result<OwnedFd> {
        let (conn, _) = self
            .listener
            .accept()
            .map_err(|e| crate::RuntimeError::io("accept console socket", &self.path, e))?;
        Self::take_master(&conn)
    }

    /// [`ConsoleListener::receive`] for a runtime that may fail before it
    /// connects: checks `gone` every 50 ms while it waits, and gives up
    /// (None) once `gone` says the runtime has ended.
    pub fn receive_unless(&self, mut gone: impl FnMut() -> bool) -> Result<Option<OwnedFd>> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        loop {
            let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(50u8)) {
                Ok(n) if n > 0 => return self.receive().map(Some),
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(crate::RuntimeError::sys("poll", "console socket", e)),
            }
            if gone() {
                return Ok(None);
            }
        }
    }

    fn take_master(conn: &std::os::unix::net::UnixStream) -> Result<OwnedFd> {
        let mut buf = [0u8; 256];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| crate::RuntimeError::sys("recvmsg", "console socket", e))?;
        for c in msg
            .cmsgs()
            .map_err(|e| crate::RuntimeError::sys("recvmsg", "console socket", e))?
        {
            if let ControlMessageOwned::ScmRights(fds) = c {
                if let Some(fd) = fds.first() {
                    // SAFETY: the kernel installed this descriptor for us.
                    return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
                }
            }
        }
        Err(crate::RuntimeError::Other(
            "console socket: no pty master received".into(),
        ))
    }
}

impl Drop for ConsoleListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Puts our stdin in raw mode while it lives, restoring it after.
pub struct RawTerminal(Option<Termios>);

impl RawTerminal {
    /// Makes stdin raw, if it is a terminal.
    pub fn enter() -> Self {
        let stdin = std::io::stdin();
        let Ok(orig) = tcgetattr(&stdin) else {
            return RawTerminal(None);
        };
        let mut raw = orig.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        RawTerminal(Some(orig))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, t);
        }
    }
}

/// Gives the pty `master` the window size of our stdin's terminal (or of
/// stdout's when stdin is not one).
pub fn copy_window_size(master: &OwnedFd) {
    // SAFETY: winsize is plain integers; all zero is a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    for fd in [0, 1] {
        // SAFETY: TIOCGWINSZ writes a winsize; TIOCSWINSZ reads one.
        unsafe {
            if libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0 {
                libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
                return;
            }
        }
    }
}
