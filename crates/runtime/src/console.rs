//! The container's terminal: a pty opened from the container's own devpts,
//! its slave made the init's controlling terminal and stdio and bind-mounted
//! on /dev/console, its master sent to the `--console-socket` listener over
//! SCM_RIGHTS (the protocol runc, conmon and containerd speak).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::error::{Result, RuntimeError};
use crate::mount_api;

/// A pty pair created inside the container.
pub struct Pty {
    /// The master side, for the console socket.
    pub master: OwnedFd,
    /// The slave side, the container's terminal.
    pub slave: OwnedFd,
}

/// Opens a new pty from /dev/ptmx (after pivot_root, so from the container's devpts).
pub fn open_pty(width: u16, height: u16) -> Result<Pty> {
    let master = nix::fcntl::open(
        "/dev/ptmx",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| RuntimeError::sys("open", "/dev/ptmx", e))?;
    // SAFETY: fresh descriptor from open.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK takes a pointer to an int; `master` is a pty master.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) } != 0 {
        return Err(RuntimeError::sys("unlockpt", "/dev/ptmx", Errno::last()));
    }
    // TIOCGPTPEER opens the slave through the master, with no path lookup
    // that a container could race.
    // SAFETY: ioctl on a pty master with integer flags; returns a new fd.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(RuntimeError::sys("TIOCGPTPEER", "/dev/ptmx", Errno::last()));
    }
    // SAFETY: fresh descriptor from the kernel.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    if width > 0 || height > 0 {
        let ws = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize struct.
        if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
            return Err(RuntimeError::sys("TIOCSWINSZ", "console", Errno::last()));
        }
    }
    Ok(Pty { master, slave })
}

/// Bind-mounts the pty slave on /dev/console (creating the mount point).
pub fn mount_console(pty: &Pty) -> Result<()> {
    let console = Path::new("/dev/console");
    let _ = std::fs::remove_file(console);
    std::fs::File::create(console).map_err(|e| RuntimeError::io("create", console, e))?;
    let slave_path = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))
        .map_err(|e| RuntimeError::io("readlink pty slave", "/proc/self/fd", e))?;
    let tree = mount_api::open_tree(libc::AT_FDCWD, &slave_path, false)
        .map_err(|e| RuntimeError::sys("open_tree", slave_path.display(), e))?;
    let target = nix::fcntl::open(
        console,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| RuntimeError::sys("open", "/dev/console", e))?;
    // SAFETY: fresh descriptor.
    let target = unsafe { OwnedFd::from_raw_fd(target) };
    mount_api::move_mount(&tree, target.as_raw_fd())
        .map_err(|e| RuntimeError::sys("bind pty on", "/dev/console", e))
}

/// Sends the master over the connected console socket.
pub fn send_master(socket: RawFd, master: &OwnedFd) -> Result<()> {
    let fds = [master.as_raw_fd()];
    let name = b"/dev/ptmx";
    let iov = [IoSlice::new(name)];
    sendmsg::<()>(
        socket,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| RuntimeError::sys("sendmsg", "console socket", e))?;
    Ok(())
}

/// Makes the slave the calling process's controlling terminal and stdio.
pub fn make_controlling(slave: &OwnedFd) -> Result<()> {
    nix::unistd::setsid().map_err(|e| RuntimeError::sys("setsid", "init", e))?;
    // SAFETY: TIOCSCTTY with an integer argument on a tty descriptor.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(RuntimeError::sys("TIOCSCTTY", "console", Errno::last()));
    }
    for fd in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), fd)
            .map_err(|e| RuntimeError::sys("dup2", format!("console to fd {fd}"), e))?;
    }
    Ok(())
}
