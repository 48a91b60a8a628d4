//! Opening a path as if `root` were `/`: `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)` keeps `..`, absolute symlinks and relative ones
//! (even ones swapped in by a racing process) inside the root. Used for
//! container roots by the runtime and for snapshots by the image store;
//! it only resolves, it creates nothing. [`private_dir`] makes and checks
//! the directories that must be the caller's alone (stores, state roots);
//! [`mount_api`] wraps the mount system calls, old and new, once for the
//! runtime and the image store; [`idmap`] makes idmapped mounts (user
//! namespace remapping); [`check_container_id`] is the one id rule;
//! [`tree_bytes`] sizes a tree by descriptor.

mod container_id;
pub mod idmap;
pub mod mount_api;
mod private_dir;
mod tree_size;
pub mod xattr;
pub use container_id::{check_container_id, MAX_ID_LEN};
pub use private_dir::{check_private_dir, private_dir, PrivateDirError};
pub use tree_size::tree_bytes;

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;

const RESOLVE_NO_XDEV: u64 = 0x01;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `path` (taken as inside `root` whether absolute or relative) with
/// `flags` (close-on-exec added) and, with O_CREAT, `mode`.
pub fn open_in_root(root: RawFd, path: &Path, flags: i32, mode: u32) -> Result<OwnedFd, Errno> {
    let mode = if flags & libc::O_CREAT != 0 { mode } else { 0 };
    openat2(
        root,
        path,
        flags,
        mode,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    )
}

/// Opens `path` (relative) beneath directory `dir` without following any
/// symlink, crossing any mount, or leaving `dir` (`RESOLVE_BENEATH |
/// RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS`): for
/// writes into a kernel filesystem (procfs) that a bind mount or a link
/// must not redirect.
pub fn open_beneath(dir: RawFd, path: &Path, flags: i32) -> Result<OwnedFd, Errno> {
    openat2(
        dir,
        path,
        flags,
        0,
        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS,
    )
}

/// openat2(2) of `path` (made relative) under `dir` with `resolve`, with
/// close-on-exec added to `flags`.
fn openat2(dir: RawFd, path: &Path, flags: i32, mode: u32, resolve: u64) -> Result<OwnedFd, Errno> {
    let c = CString::new(relative(path).as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    // openat2 returns EAGAIN when a concurrent rename raced the walk (or a
    // mount changed under it). Retrying is right, forever is not: a process
    // that keeps renaming would hold the caller in the loop.
    for _ in 0..OPENAT2_RETRIES {
        // SAFETY: `c` is a valid NUL-terminated string and `how` an
        // initialised open_how of the size passed; the kernel only reads them.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: a fresh descriptor from the kernel, owned by nobody else.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        match Errno::last() {
            Errno::EAGAIN | Errno::EINTR => continue,
            e => return Err(e),
        }
    }
    // Still racing after every retry: EAGAIN, which callers report with the path.
    Err(Errno::EAGAIN)
}

/// Whether `fd` is on procfs (its filesystem's magic is PROC_SUPER_MAGIC).
pub fn is_procfs(fd: RawFd) -> Result<bool, Errno> {
    // SAFETY: an all-zero statfs is a valid out-buffer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and out-buffer.
    if unsafe { libc::fstatfs(fd, &mut st) } != 0 {
        return Err(Errno::last());
    }
    Ok(st.f_type == libc::PROC_SUPER_MAGIC)
}

/// How many times [`open_in_root`] retries a walk that raced a rename.
pub const OPENAT2_RETRIES: usize = 256;

/// `path` without its root and `.` components, for `*at` calls relative to
/// a root descriptor; `..` is kept (the kernel clamps it at the root).
pub fn relative(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => out.push(".."),
            Component::Normal(n) => out.push(n),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn relative_strips_root_and_dots() {
        assert_eq!(relative(Path::new("/a/./b")), PathBuf::from("a/b"));
        assert_eq!(relative(Path::new("/")), PathBuf::from("."));
        assert_eq!(relative(Path::new("../x")), PathBuf::from("../x"));
    }

    #[test]
    fn symlinks_and_dotdot_stay_inside() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/marker"), "inside").unwrap();
        std::os::unix::fs::symlink("/etc", root.path().join("abs")).unwrap();
        let r = std::fs::File::open(root.path()).unwrap();
        for p in ["/abs/marker", "../../../etc/marker", "abs/../etc/marker"] {
            let fd = open_in_root(r.as_raw_fd(), Path::new(p), libc::O_RDONLY, 0).unwrap();
            assert_eq!(
                std::fs::read_to_string(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap(),
                "inside",
                "{p}"
            );
        }
    }
}
