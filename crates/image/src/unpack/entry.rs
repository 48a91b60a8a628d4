//! Making one entry of a layer inside a snapshot directory without ever
//! following a link an earlier entry left: creation by `*at` calls relative
//! to an open parent, replacement of what is in the way, and owner, mode,
//! times and extended attributes set through the entry's own descriptor.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Opens a directory of the snapshot, resolving inside it (berth_fs).
pub(super) fn open_dir_in_root(root: RawFd, rel: &Path) -> io::Result<OwnedFd> {
    berth_fs::open_in_root(root, rel, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(io::Error::from)
}

/// Runs `create` (a *at call making `name` in `parent`; it returns a
/// negative value and sets errno on failure); when `name` exists, removes
/// it and runs `create` again (a later entry replaces an earlier one).
pub(super) fn create_replacing(
    parent: &OwnedFd,
    name: &CString,
    mut create: impl FnMut() -> libc::c_int,
) -> io::Result<libc::c_int> {
    let rc = create();
    if rc >= 0 {
        return Ok(rc);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EEXIST) {
        return Err(err);
    }
    remove_any(parent, name);
    let rc = create();
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// Creates `rel`'s directories inside `root` (following links only inside
/// it) and opens the last.
pub(super) fn mkdir_all(root: RawFd, rel: &Path) -> io::Result<OwnedFd> {
    // Usually the directory is there already: one lookup.
    if let Ok(fd) = open_dir_in_root(root, rel) {
        return Ok(fd);
    }
    let mut dir = open_dir_in_root(root, Path::new(""))?;
    let mut prefix = PathBuf::new();
    for c in rel.components() {
        prefix.push(c);
        let name = CString::new(c.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: valid descriptor and C string.
        unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755) };
        dir = open_dir_in_root(root, &prefix)?;
    }
    Ok(dir)
}

pub(super) fn remove_any(parent: &OwnedFd, name: &CString) {
    // SAFETY: valid descriptor and C string; unlinkat never follows links.
    unsafe {
        if libc::unlinkat(parent.as_raw_fd(), name.as_ptr(), 0) != 0 {
            libc::unlinkat(parent.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR);
        }
    }
}

pub(super) fn set_opaque(dir: &OwnedFd) -> io::Result<()> {
    berth_fs::xattr::set_on_fd(dir, c"trusted.overlay.opaque", b"y")
}

/// Sets one extended attribute on `name` in `parent` without following it if
/// it is a symlink (through the directory's /proc/self/fd link). Returns
/// false when the filesystem does not store extended attributes.
pub(super) fn set_xattr(
    parent: &OwnedFd,
    name: &CString,
    attr: &CString,
    value: &[u8],
) -> io::Result<bool> {
    let mut path = format!("/proc/self/fd/{}/", parent.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.as_bytes());
    berth_fs::xattr::set(Path::new(std::ffi::OsStr::from_bytes(&path)), attr, value)
}

pub(super) fn set_time(parent: &OwnedFd, name: &CString, mtime: u64) {
    let t = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: valid descriptor, C string and two timespecs.
    unsafe {
        libc::utimensat(
            parent.as_raw_fd(),
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
}

/// Makes directory `name` in `parent`. An existing directory is kept (a
/// layer may name one twice, and a later layer's entry restates a lower
/// one); any other existing entry, a symlink above all, is replaced: a
/// directory entry must never end up acting on what a link points to.
pub(super) fn make_directory(parent: &OwnedFd, name: &CString) -> io::Result<()> {
    // SAFETY: valid descriptor and C string.
    if unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o700) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EEXIST) {
        return Err(err);
    }
    // SAFETY: an all-zero stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, C string and out-buffer; the entry itself is examined.
    if unsafe {
        libc::fstatat(
            parent.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Ok(());
    }
    remove_any(parent, name);
    // SAFETY: valid descriptor and C string.
    if unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o700) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets owner, mode and time of `name` in `parent` without ever following
/// it: a symlink is changed itself (its mode is not kept on Linux); any
/// other entry is opened O_PATH|O_NOFOLLOW, checked to be what was just
/// created, and changed through that descriptor.
pub(super) fn set_metadata(
    parent: &OwnedFd,
    name: &CString,
    symlink: bool,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
) -> io::Result<()> {
    if symlink {
        // SAFETY: valid descriptor and C string; AT_SYMLINK_NOFOLLOW acts on the link itself.
        if unsafe {
            libc::fchownat(
                parent.as_raw_fd(),
                name.as_ptr(),
                uid,
                gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
        set_time(parent, name, mtime);
        return Ok(());
    }
    // SAFETY: valid descriptor and C string; O_NOFOLLOW never resolves a final symlink.
    let raw = unsafe {
        libc::openat(
            parent.as_raw_fd(),
            name.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: an all-zero stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and out-buffer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a symlink took the entry's place",
        ));
    }
    set_metadata_fd(fd.as_raw_fd(), true, mode, uid, gid, mtime)
}

/// Sets owner, mode and time through `fd`, the entry's own descriptor (an
/// O_PATH one when `o_path`: chmod and utimens then go through its
/// /proc/self/fd link, which names the opened inode, never a path).
pub(super) fn set_metadata_fd(
    fd: RawFd,
    o_path: bool,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
) -> io::Result<()> {
    // SAFETY: valid descriptor and an empty C string with AT_EMPTY_PATH: the descriptor's own inode.
    if unsafe { libc::fchownat(fd, c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let t = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    // chmod after chown: chown clears setuid bits.
    if o_path {
        let link = CString::new(format!("/proc/self/fd/{fd}"))
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: valid C string; the magic link resolves to the descriptor's inode.
        if unsafe { libc::chmod(link.as_ptr(), mode) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: valid C string and two timespecs.
        unsafe { libc::utimensat(libc::AT_FDCWD, link.as_ptr(), times.as_ptr(), 0) };
    } else {
        // SAFETY: valid descriptor.
        if unsafe { libc::fchmod(fd, mode) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: valid descriptor and two timespecs.
        unsafe { libc::futimens(fd, times.as_ptr()) };
    }
    Ok(())
}
