//! Container root filesystems: a fresh writable root for each container,
//! made from an image's snapshot layers (as [`image::snapshot::prepare`]
//! returns them). `<root>/containers/<id>/` holds `upper` (the container's
//! writes), `work` (overlay's scratch) and `rootfs`, where the layers and
//! the upper are mounted: overlayfs read-write, or, where overlay cannot
//! stack the layers, a writable flattened copy of them made in `upper`
//! (see [`MountStrategy`]). The image's snapshots are never written.
//!
//! Teardown unmounts `rootfs` and removes the three directories and the
//! container's directory, and nothing else: it refuses to go on while
//! something is still mounted inside the root, removes `rootfs` only once it
//! is an empty directory again, and keeps the container's directory if
//! something else was put in it. It is idempotent.

use std::io;
use std::path::{Path, PathBuf};

use image::overlay::{mount_overlay_with, MountKind, MountStrategy};
use image::snapshot::SnapshotError;

/// Why a container root could not be prepared or torn down.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The container ID cannot name a directory.
    #[error("container id {id:?}: {reason}")]
    InvalidId {
        /// The ID given.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The container already has a directory.
    #[error("container {id}: {path} already exists")]
    Exists {
        /// The container ID.
        id: String,
        /// Its directory.
        path: PathBuf,
    },
    /// The root is still in use (something is mounted inside it).
    #[error("container root {path} is busy (something is mounted inside it): {err}")]
    Busy {
        /// The container's rootfs.
        path: PathBuf,
        /// The error of the unmount.
        err: io::Error,
    },
    /// The layers could not be mounted.
    #[error("container {id}: {err}")]
    Mount {
        /// The container ID.
        id: String,
        /// What went wrong.
        err: SnapshotError,
    },
    /// The idmapped layers of a remapped container could not be made.
    #[error("container {id}: idmapped root: {err}")]
    Idmap {
        /// The container ID.
        id: String,
        /// What went wrong.
        err: berth_fs::idmap::IdmapError,
    },
    /// A file operation failed.
    #[error("{op} {path}: {err}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        err: io::Error,
    },
}

/// Checks that `id` can name the container's directory (the one rule,
/// [`berth_fs::check_container_id`], that the runtime applies too).
pub fn validate_id(id: &str) -> Result<(), RootfsError> {
    berth_fs::check_container_id(id).map_err(|reason| RootfsError::InvalidId {
        id: id.to_string(),
        reason,
    })
}

/// The container's directory, `<root>/containers/<id>`, once `id` is valid.
pub fn container_dir(root: &Path, id: &str) -> Result<PathBuf, RootfsError> {
    validate_id(id)?;
    Ok(root.join("containers").join(id))
}

/// Prepares a fresh writable root for container `id` from `lowers` (bottom
/// first) and returns the path of its root filesystem.
pub fn prepare_rootfs(root: &Path, id: &str, lowers: &[PathBuf]) -> Result<PathBuf, RootfsError> {
    prepare_rootfs_with(root, id, lowers, MountStrategy::Auto).map(|(path, _)| path)
}

/// [`prepare_rootfs`] for a container that is removed when it exits
/// (`--rm`): the overlay is `volatile`, so its unmount syncs nothing.
pub fn prepare_rootfs_volatile(
    root: &Path,
    id: &str,
    lowers: &[PathBuf],
) -> Result<PathBuf, RootfsError> {
    prepare(root, id, lowers, &|l, u, t| {
        image::overlay::mount_overlay_volatile(l, u, t)
    })
    .map(|(path, _)| path)
}

/// [`prepare_rootfs`] with a chosen strategy; also says how the root was
/// mounted. Fails if the container already has a directory; on failure,
/// whatever was made is removed again.
pub fn prepare_rootfs_with(
    root: &Path,
    id: &str,
    lowers: &[PathBuf],
    strategy: MountStrategy,
) -> Result<(PathBuf, MountKind), RootfsError> {
    prepare(root, id, lowers, &|l, u, t| {
        mount_overlay_with(l, Some(u), t, strategy)
    })
}

/// How [`prepare`] mounts the layers: (lowers, (upper, work), target).
type Mounter<'a> =
    &'a dyn Fn(&[PathBuf], (&Path, &Path), &Path) -> Result<MountKind, SnapshotError>;

fn prepare(
    root: &Path,
    id: &str,
    lowers: &[PathBuf],
    mount: Mounter,
) -> Result<(PathBuf, MountKind), RootfsError> {
    let dir = container_dir(root, id)?;
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |err| RootfsError::Io { op, path, err }
    };
    let parent = root.join("containers");
    std::fs::create_dir_all(&parent).map_err(io("create", &parent))?;
    // create_dir, not create_dir_all: the directory is this container's only if made here.
    if let Err(err) = std::fs::create_dir(&dir) {
        if err.kind() == io::ErrorKind::AlreadyExists {
            return Err(RootfsError::Exists {
                id: id.to_string(),
                path: dir,
            });
        }
        return Err(io("create", &dir)(err));
    }
    let (upper, work, rootfs) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
    let made = [&upper, &work, &rootfs]
        .into_iter()
        .try_for_each(|d| std::fs::create_dir(d).map_err(io("create", d)))
        .and_then(|_| {
            mount(lowers, (&upper, &work), &rootfs).map_err(|err| RootfsError::Mount {
                id: id.to_string(),
                err,
            })
        });
    match made {
        Ok(kind) => Ok((rootfs, kind)),
        Err(e) => {
            let _ = teardown_rootfs(root, id);
            Err(e)
        }
    }
}

/// Unmounts container `id`'s root and removes its directories. Nothing to
/// do if it has none. Refuses (Busy), removing nothing, while something is
/// mounted inside the root.
pub fn teardown_rootfs(root: &Path, id: &str) -> Result<(), RootfsError> {
    let dir = container_dir(root, id)?;
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |err| RootfsError::Io { op, path, err }
    };
    match std::fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("stat", &dir)(e)),
        Ok(m) if !m.is_dir() => {
            return Err(io("tear down (not a directory)", &dir)(
                io::ErrorKind::InvalidInput.into(),
            ))
        }
        Ok(_) => {}
    }
    let rootfs = dir.join("rootfs");
    unmount(&rootfs)?;
    remove_helpers(&dir)?;
    // rmdir, never a recursive removal: an empty mount point is all preparation made.
    match std::fs::remove_dir(&rootfs) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io("remove", &rootfs)(e)),
        _ => {}
    }
    for d in [dir.join("work"), dir.join("upper")] {
        match std::fs::symlink_metadata(&d) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&d).map_err(io("remove", &d))?,
            Ok(_) => std::fs::remove_file(&d).map_err(io("remove", &d))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("stat", &d)(e)),
        }
    }
    match std::fs::remove_dir(&dir) {
        // Something else put files there: they stay, and so does the directory.
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Ok(()),
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io("remove", &dir)(e)),
        _ => Ok(()),
    }
}

/// Unmounts `rootfs` (every stacked mount on it); nothing if it is not mounted.
fn unmount(rootfs: &Path) -> Result<(), RootfsError> {
    let io = |op: &'static str| {
        let path = rootfs.to_path_buf();
        move |err| RootfsError::Io { op, path, err }
    };
    // Stacked mounts (a retried mount) come off one at a time. EBUSY is
    // tried again for a moment: the copies of the root in a container's
    // mount namespace that was just killed are released by the kernel
    // after the process is gone (their last reference is dropped
    // asynchronously), and an unmount propagating to them fails until then.
    let mut busy_until = None;
    for _ in 0..16 {
        if !is_mount_point(rootfs).map_err(io("check the mounts of"))? {
            break;
        }
        loop {
            match nix::mount::umount2(rootfs, nix::mount::MntFlags::empty()) {
                Ok(()) => break,
                Err(nix::Error::EBUSY)
                    if *busy_until.get_or_insert_with(|| {
                        std::time::Instant::now() + std::time::Duration::from_secs(2)
                    }) > std::time::Instant::now() =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => {
                    let err = io::Error::from(e);
                    return Err(match e {
                        nix::Error::EBUSY => RootfsError::Busy {
                            path: rootfs.to_path_buf(),
                            err,
                        },
                        _ => io("unmount")(err),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Unmounts container `id`'s root and keeps its writable layer (`upper`)
/// for a later [`remount_rootfs`]: what a stopped container keeps. The
/// mark a `volatile` mount leaves in the work directory goes, so the root
/// can be mounted again.
pub fn unmount_rootfs(root: &Path, id: &str) -> Result<(), RootfsError> {
    let dir = container_dir(root, id)?;
    unmount(&dir.join("rootfs"))?;
    let mark = dir.join("work").join("work").join("incompat");
    match std::fs::remove_dir_all(&mark) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(RootfsError::Io {
            op: "remove",
            path: mark,
            err: e,
        }),
        _ => Ok(()),
    }
}

/// Mounts container `id`'s root again over its kept writable layer (after
/// [`unmount_rootfs`]); returns the root's path. Nothing if it is mounted.
pub fn remount_rootfs(root: &Path, id: &str, lowers: &[PathBuf]) -> Result<PathBuf, RootfsError> {
    let dir = container_dir(root, id)?;
    let (upper, work, rootfs) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
    if is_mount_point(&rootfs).map_err(|err| RootfsError::Io {
        op: "check the mounts of",
        path: rootfs.clone(),
        err,
    })? {
        return Ok(rootfs);
    }
    mount_overlay_with(lowers, Some((&upper, &work)), &rootfs, MountStrategy::Auto).map_err(
        |err| RootfsError::Mount {
            id: id.to_string(),
            err,
        },
    )?;
    Ok(rootfs)
}

/// [`remount_rootfs`] for a container with a user namespace of its own
/// (`mappings`; None is plain [`remount_rootfs`]): the layers and the
/// upper are idmapped through the container's mapping, and the overlay is
/// mounted over them with the filesystem ids of the container's root, so
/// the image's files show as the container's own while the disk keeps
/// them (and what the container writes) as they would be without a
/// mapping. The idmapped helper mounts under `<id>/idmap/` are detached
/// as soon as the overlay holds its own references to them.
pub fn remount_rootfs_mapped(
    root: &Path,
    id: &str,
    lowers: &[PathBuf],
    mappings: Option<&crate::userns::IdMappings>,
) -> Result<PathBuf, RootfsError> {
    let Some(m) = mappings else {
        return remount_rootfs(root, id, lowers);
    };
    let dir = container_dir(root, id)?;
    let rootfs = dir.join("rootfs");
    if is_mount_point(&rootfs).map_err(|err| RootfsError::Io {
        op: "check the mounts of",
        path: rootfs.clone(),
        err,
    })? {
        return Ok(rootfs);
    }
    let idmap_err = |err| RootfsError::Idmap {
        id: id.to_string(),
        err,
    };
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |err| RootfsError::Io { op, path, err }
    };
    let (uids, gids) = (m.uid_ranges(), m.gid_ranges());
    let (root_uid, root_gid) = m.host_root().ok_or(RootfsError::Idmap {
        id: id.to_string(),
        err: berth_fs::idmap::IdmapError::Empty,
    })?;
    let ns = berth_fs::idmap::UserNamespace::new(&uids, &gids).map_err(idmap_err)?;
    remove_helpers(&dir)?;
    let helpers = dir.join("idmap");
    std::fs::create_dir(&helpers).map_err(io("create", &helpers))?;
    let mut attached: Vec<PathBuf> = vec![];
    let mut attach = |source: &Path, name: String| -> Result<PathBuf, RootfsError> {
        let at = helpers.join(name);
        std::fs::create_dir(&at).map_err(io("create", &at))?;
        let tree = berth_fs::idmap::idmapped_tree(source, &ns, false).map_err(idmap_err)?;
        berth_fs::mount_api::move_mount_to_path(&tree, &at)
            .map_err(|e| io("attach the idmapped layer at", &at)(e.into()))?;
        attached.push(at.clone());
        Ok(at)
    };
    let made = (|| {
        let rw = attach(&dir, "rw".into())?;
        let layers = lowers
            .iter()
            .enumerate()
            .map(|(i, l)| attach(l, i.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let (upper, work) = (rw.join("upper"), rw.join("work"));
        berth_fs::idmap::with_fs_ids(root_uid, root_gid, || {
            mount_overlay_with(&layers, Some((&upper, &work)), &rootfs, MountStrategy::Auto)
        })
        .map_err(idmap_err)?
        .map_err(|err| RootfsError::Mount {
            id: id.to_string(),
            err,
        })
    })();
    // The overlay took its own references to the layers: the helper
    // mounts go whether it was made or not.
    let cleaned = remove_helpers(&dir);
    made?;
    cleaned?;
    Ok(rootfs)
}

/// Detaches and removes the idmapped helper mounts under `<dir>/idmap/`
/// (left only by a crash between attaching them and mounting the root).
fn remove_helpers(dir: &Path) -> Result<(), RootfsError> {
    let helpers = dir.join("idmap");
    let entries = match std::fs::read_dir(&helpers) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => {
            return Err(RootfsError::Io {
                op: "read",
                path: helpers,
                err,
            })
        }
        Ok(e) => e,
    };
    for entry in entries.flatten() {
        let p = entry.path();
        while nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH).is_ok() {}
        std::fs::remove_dir(&p).map_err(|err| RootfsError::Io {
            op: "remove",
            path: p.clone(),
            err,
        })?;
    }
    std::fs::remove_dir(&helpers).map_err(|err| RootfsError::Io {
        op: "remove",
        path: helpers,
        err,
    })
}

/// Whether something is mounted at `path` (statx's mount-root attribute, or
/// /proc/self/mountinfo where the kernel does not report it).
fn is_mount_point(path: &Path) -> io::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: statx is plain old data; all zeroes is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a statx buffer; the link itself is examined.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            0,
            &mut stx,
        )
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::NotFound {
            return Ok(false);
        }
        return Err(err);
    }
    let bit = libc::STATX_ATTR_MOUNT_ROOT as u64;
    if stx.stx_attributes_mask & bit != 0 {
        return Ok(stx.stx_attributes & bit != 0);
    }
    let want = std::fs::canonicalize(path)?;
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|m| Path::new(&unescape_mountinfo(m)) == want)
    }))
}

/// A mountinfo path with its octal escapes (`\040` for a space…) decoded.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_are_not_one_plain_name_are_refused() {
        for bad in [
            "",
            "a/b",
            "/abs",
            "..",
            ".",
            ".hidden",
            "nul\0",
            "sp ace",
            &"x".repeat(256),
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
        // "a..b" is one plain name (runc's rule, which the runtime shares).
        for good in ["c1", "3f2a9c", "web-1_a.b", "a..b"] {
            validate_id(good).unwrap();
        }
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo(r"/a\040b\134c"), r"/a b\c");
        assert_eq!(unescape_mountinfo(r"/trailing\04"), r"/trailing\04");
    }
}
