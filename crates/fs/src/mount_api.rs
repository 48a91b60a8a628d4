//! Thin, documented wrappers over the kernel's mount system calls, the one
//! copy the runtime and the image store share: the classic `mount(2)` and
//! the fd-based API: `open_tree`, `mount_setattr` and `move_mount`, which
//! let the runtime prepare a bind mount as a detached tree, set its flags,
//! and attach it to a descriptor obtained by safe resolution, with no path
//! re-walk in between; and `fsopen`, `fsconfig`, `fsmount`, with which the
//! image store builds overlays of any number of layers.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

/// `open_tree` flag: clone the mount tree instead of opening the mount itself.
pub const OPEN_TREE_CLONE: u32 = 1;
/// `open_tree` flag: close on exec.
pub const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
/// `*at` flag: act recursively on submounts.
pub const AT_RECURSIVE: u32 = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

/// mount_setattr attribute: read-only.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// mount_setattr attribute: ignore suid and file capabilities.
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// mount_setattr attribute: no device files.
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
/// mount_setattr attribute: no execution.
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
/// mount_setattr attribute mask for the atime mode.
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
/// mount_setattr atime mode: relatime.
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
/// mount_setattr atime mode: noatime.
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
/// mount_setattr atime mode: strictatime.
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
/// mount_setattr attribute: no directory atime updates.
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
/// mount_setattr attribute: do not follow symlinks.
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;

/// The attribute change passed to `mount_setattr(2)`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MountAttr {
    /// Attributes to set.
    pub attr_set: u64,
    /// Attributes to clear.
    pub attr_clr: u64,
    /// Propagation type (MS_PRIVATE, MS_SLAVE, MS_SHARED, MS_UNBINDABLE) or 0.
    pub propagation: u64,
    /// User namespace fd for idmapped mounts.
    pub userns_fd: u64,
}

impl MountAttr {
    /// Whether the change does nothing.
    pub fn is_empty(&self) -> bool {
        self.attr_set == 0 && self.attr_clr == 0 && self.propagation == 0
    }
}

fn cstr(p: &Path) -> Result<CString, Errno> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// Clones the mount at `source` (recursively with `recursive`) into a
/// detached tree and returns its descriptor.
pub fn open_tree(dirfd: RawFd, source: &Path, recursive: bool) -> Result<OwnedFd, Errno> {
    let c = cstr(source)?;
    let mut flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    if source.as_os_str().is_empty() {
        flags |= libc::AT_EMPTY_PATH as u32;
    }
    // SAFETY: `c` is a valid C string; the call only reads it and returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, dirfd, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a fresh descriptor from the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Changes the attributes of the mount behind `fd` (and of its submounts with `recursive`).
pub fn mount_setattr(fd: &OwnedFd, attr: &MountAttr, recursive: bool) -> Result<(), Errno> {
    let empty = c"";
    let mut flags = libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: `attr` is a repr(C) mount_attr of the size we pass; the kernel only reads it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Attaches the detached tree `from` on top of the file or directory `to`.
pub fn move_mount(from: &OwnedFd, to: RawFd) -> Result<(), Errno> {
    let empty = c"";
    // SAFETY: both descriptors are open; empty paths with the EMPTY_PATH flags
    // make the kernel act on the descriptors themselves.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            to,
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Classic `mount(2)`.
pub fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), Errno> {
    nix::mount::mount(
        source,
        target,
        fstype,
        nix::mount::MsFlags::from_bits_retain(flags),
        data,
    )
}

/// `fsopen` flag: close on exec.
const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
/// `fsconfig` command: set a string parameter.
const FSCONFIG_SET_STRING: libc::c_uint = 1;
/// `fsconfig` command: create the superblock.
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
/// `fsmount` flag: close on exec.
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;

/// Opens a filesystem context for `fstype` (`fsopen(2)`).
pub fn fsopen(fstype: &std::ffi::CStr) -> Result<OwnedFd, Errno> {
    // SAFETY: a valid C string; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sets string parameter `key` of filesystem context `fs` (`fsconfig(2)`).
pub fn fsconfig_set_string(
    fs: &OwnedFd,
    key: &std::ffi::CStr,
    value: &std::ffi::CStr,
) -> Result<(), Errno> {
    // SAFETY: a valid descriptor and C strings; aux is unused for strings.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Creates the superblock of filesystem context `fs` (`FSCONFIG_CMD_CREATE`).
pub fn fsconfig_create(fs: &OwnedFd) -> Result<(), Errno> {
    // SAFETY: a valid descriptor; CMD_CREATE takes no key or value.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Makes a detached mount of the created context `fs` with mount
/// attributes `attrs` (`MOUNT_ATTR_*`, `fsmount(2)`).
pub fn fsmount(fs: &OwnedFd, attrs: u64) -> Result<OwnedFd, Errno> {
    // SAFETY: a valid descriptor; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attaches the detached mount `from` at the path `target`.
pub fn move_mount_to_path(from: &OwnedFd, target: &Path) -> Result<(), Errno> {
    let t = cstr(target)?;
    // SAFETY: valid descriptors and C strings; the empty path names `from` itself.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// The messages the kernel left in filesystem context `fs`'s log, joined.
pub fn fs_context_log(fs: &OwnedFd) -> String {
    let mut out = vec![];
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: a valid descriptor and a buffer of buf.len() bytes.
        let n = unsafe { libc::read(fs.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.push(
            String::from_utf8_lossy(&buf[..n as usize])
                .trim_end()
                .to_string(),
        );
    }
    out.join("; ")
}
