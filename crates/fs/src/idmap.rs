//! Idmapped mounts: a detached clone of a tree whose files show their
//! owners through a user namespace's mapping (`mount_setattr(2)` with
//! `MOUNT_ATTR_IDMAP`). A file that the disk says uid `k` owns shows as
//! the mapping's host id for `k`, and a process with that host id writes
//! files the disk records as `k`: so a container whose root is host uid
//! 100000 sees the image's files as its own while the disk keeps them as
//! they are in the image.
//!
//! [`UserNamespace`] makes the namespace that carries a mapping (a child
//! that unshares one and waits while its maps are written; the namespace
//! outlives it through the descriptor). [`with_fs_ids`] runs code with the
//! filesystem ids of a mapped root, which overlayfs needs of whoever
//! mounts it over idmapped layers.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;

use crate::mount_api::{self, MountAttr};

/// `MOUNT_ATTR_IDMAP`.
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// One range of a mapping: `size` ids from `container` inside are host ids
/// from `host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id inside.
    pub container: u32,
    /// First id on the host.
    pub host: u32,
    /// How many.
    pub size: u32,
}

/// The host id that container id `id` maps to, if any.
pub fn to_host(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges.iter().find_map(|r| {
        let off = id.checked_sub(r.container)?;
        (off < r.size).then(|| r.host + off)
    })
}

/// The container id that host id `id` maps to, if any.
pub fn to_container(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges.iter().find_map(|r| {
        let off = id.checked_sub(r.host)?;
        (off < r.size).then(|| r.container + off)
    })
}

/// Why an idmapped mount could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IdmapError {
    /// A system call failed.
    #[error("{step}: {err}")]
    Sys {
        /// What was being done.
        step: &'static str,
        /// The error.
        err: Errno,
    },
    /// Writing the namespace's maps failed.
    #[error("write {path}: {err}")]
    Map {
        /// `/proc/<pid>/uid_map` or `gid_map`.
        path: String,
        /// The error.
        err: io::Error,
    },
    /// The mapping has no range.
    #[error("an idmapped mount needs a uid and a gid mapping")]
    Empty,
}

/// A user namespace that holds a mapping and nothing else, kept by its
/// descriptor (`/proc/<pid>/ns/user` of a child that is gone).
pub struct UserNamespace {
    fd: OwnedFd,
}

fn sys(step: &'static str) -> impl FnOnce(Errno) -> IdmapError {
    move |err| IdmapError::Sys { step, err }
}

fn map_text(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.container, r.host, r.size))
        .collect()
}

impl UserNamespace {
    /// A user namespace with `uids` and `gids` as its maps. The caller
    /// needs CAP_SETUID and CAP_SETGID over the host ids (root).
    pub fn new(uids: &[IdRange], gids: &[IdRange]) -> Result<Self, IdmapError> {
        if uids.is_empty() || gids.is_empty() {
            return Err(IdmapError::Empty);
        }
        // Both texts are made before the fork: the child may not allocate.
        let (uid_text, gid_text) = (map_text(uids), map_text(gids));
        let (ready_r, ready_w) = nix::unistd::pipe().map_err(sys("pipe"))?;
        let (hold_r, hold_w) = nix::unistd::pipe().map_err(sys("pipe"))?;
        // SAFETY: the child only makes raw system calls (unshare, write,
        // read, _exit), which are async-signal-safe, so forking a process
        // that may have other threads is sound.
        match unsafe { nix::unistd::fork() }.map_err(sys("fork"))? {
            nix::unistd::ForkResult::Child => {
                drop(ready_r);
                drop(hold_w);
                // SAFETY: plain system calls on descriptors this child owns.
                unsafe {
                    let ok = libc::unshare(libc::CLONE_NEWUSER) == 0;
                    let byte = [u8::from(ok)];
                    libc::write(ready_w.as_raw_fd(), byte.as_ptr().cast(), 1);
                    let mut b = [0u8; 1];
                    // Returns at EOF: the parent holds the namespace by then.
                    libc::read(hold_r.as_raw_fd(), b.as_mut_ptr().cast(), 1);
                    libc::_exit(0)
                }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(ready_w);
                drop(hold_r);
                let made = (|| {
                    let mut b = [0u8; 1];
                    let n = nix::unistd::read(ready_r.as_raw_fd(), &mut b).map_err(sys("read"))?;
                    if n != 1 || b[0] != 1 {
                        return Err(IdmapError::Sys {
                            step: "unshare a user namespace",
                            err: Errno::EPERM,
                        });
                    }
                    for (file, text) in [("uid_map", &uid_text), ("gid_map", &gid_text)] {
                        let path = format!("/proc/{child}/{file}");
                        std::fs::write(&path, text).map_err(|err| IdmapError::Map { path, err })?;
                    }
                    let ns = format!("/proc/{child}/ns/user");
                    let fd = nix::fcntl::open(
                        ns.as_str(),
                        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                        nix::sys::stat::Mode::empty(),
                    )
                    .map_err(sys("open the user namespace"))?;
                    // SAFETY: a fresh descriptor from open.
                    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
                })();
                drop(hold_w);
                if made.is_err() {
                    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                }
                let _ = nix::sys::wait::waitpid(child, None);
                Ok(Self { fd: made? })
            }
        }
    }

    /// The namespace's descriptor.
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A detached clone of `source` (recursive with `recursive`) that shows
/// its files through `userns`'s mapping; attach it with `move_mount`.
pub fn idmapped_tree(
    source: &Path,
    userns: &UserNamespace,
    recursive: bool,
) -> Result<OwnedFd, IdmapError> {
    let tree = mount_api::open_tree(libc::AT_FDCWD, source, recursive)
        .map_err(sys("open_tree (clone for an idmapped mount)"))?;
    set_idmap(&tree, userns, recursive)?;
    Ok(tree)
}

/// Gives detached tree `tree` `userns`'s mapping.
pub fn set_idmap(
    tree: &OwnedFd,
    userns: &UserNamespace,
    recursive: bool,
) -> Result<(), IdmapError> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        userns_fd: userns.as_raw_fd() as u64,
        ..Default::default()
    };
    mount_api::mount_setattr(tree, &attr, recursive).map_err(sys("mount_setattr (idmap)"))
}

const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;

/// Runs `f` on a thread of its own whose filesystem uid and gid are `uid`
/// and `gid`, its capabilities kept (SECBIT_NO_SETUID_FIXUP): what
/// overlayfs records of its mounter and uses on idmapped layers. The
/// change dies with the thread; no other thread's ids move.
pub fn with_fs_ids<T: Send>(
    uid: u32,
    gid: u32,
    f: impl FnOnce() -> T + Send,
) -> Result<T, IdmapError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: prctl, setfsuid and setfsgid change only this
            // thread's credentials (the kernel's are per thread; glibc
            // does not broadcast these three to other threads).
            unsafe {
                let bits = libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0);
                if bits < 0 {
                    return Err(sys("prctl(PR_GET_SECUREBITS)")(Errno::last()));
                }
                if libc::prctl(
                    libc::PR_SET_SECUREBITS,
                    bits as libc::c_ulong | SECBIT_NO_SETUID_FIXUP,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(sys("prctl(PR_SET_SECUREBITS)")(Errno::last()));
                }
                libc::setfsgid(gid);
                libc::setfsuid(uid);
                // setfs*id report the old id, never an error: ask again.
                if libc::setfsuid(u32::MAX) as u32 != uid || libc::setfsgid(u32::MAX) as u32 != gid
                {
                    return Err(sys("setfsuid")(Errno::EPERM));
                }
            }
            Ok(f())
        })
        .join()
        .map_err(|_| IdmapError::Sys {
            step: "join the mounting thread",
            err: Errno::EINVAL,
        })?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_both_ways_within_their_ranges() {
        let m = [
            IdRange {
                container: 0,
                host: 100_000,
                size: 1000,
            },
            IdRange {
                container: 1000,
                host: 1000,
                size: 1,
            },
        ];
        assert_eq!(to_host(&m, 0), Some(100_000));
        assert_eq!(to_host(&m, 999), Some(100_999));
        assert_eq!(to_host(&m, 1000), Some(1000));
        assert_eq!(to_host(&m, 1001), None);
        assert_eq!(to_container(&m, 100_500), Some(500));
        assert_eq!(to_container(&m, 1000), Some(1000));
        assert_eq!(to_container(&m, 0), None);
    }

    #[test]
    fn fs_ids_change_only_on_the_helper_thread() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let inside = with_fs_ids(4321, 4322, || {
            // SAFETY: reading the ids back (u32::MAX changes nothing).
            unsafe { (libc::setfsuid(u32::MAX), libc::setfsgid(u32::MAX)) }
        })
        .unwrap();
        assert_eq!(inside, (4321, 4322));
        // SAFETY: as above.
        let here = unsafe { libc::setfsuid(u32::MAX) };
        assert_eq!(here, 0);
    }
}
