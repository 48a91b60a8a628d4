//! Directories that must be the caller's alone: a store or state root that
//! other local users may not read, traverse, or plant things in. Made 0700
//! when missing; when present, opened without following a symlink and
//! accepted only if the caller owns it, then tightened to 0700.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// Why a private directory could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PrivateDirError {
    /// A system call on the directory failed.
    #[error("{call} {path}: {errno}")]
    Sys {
        /// The call.
        call: &'static str,
        /// The directory.
        path: PathBuf,
        /// The error.
        errno: Errno,
    },
    /// The path is a symlink, or not a directory.
    #[error(
        "{path} is not a directory (a symlink or another file is in its place); refusing to use it"
    )]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// Someone else owns the directory: it may hold what they planted.
    #[error("{path} is owned by uid {owner}, not by uid {caller}; refusing to use it (remove it, or choose another directory)")]
    NotOwned {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The caller's effective uid.
        caller: u32,
    },
}

/// Makes `path` (and missing parents, with the default mode) a directory
/// of mode 0700 owned by the caller, and returns it opened (O_PATH is not
/// used: the descriptor can list and fchmod). An existing directory is
/// accepted only if the caller owns it and it is not a symlink; group and
/// other permission bits are then removed.
pub fn private_dir(path: &Path) -> Result<OwnedFd, PrivateDirError> {
    let sys = |call: &'static str| {
        let path = path.to_path_buf();
        move |errno: Errno| PrivateDirError::Sys { call, path, errno }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| PrivateDirError::Sys {
            call: "mkdir -p",
            path: parent.to_path_buf(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })?;
    }
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| sys("open")(Errno::EINVAL))?;
    // SAFETY: a valid C string; mkdir creates nothing else.
    if unsafe { libc::mkdir(c.as_ptr(), 0o700) } != 0 && Errno::last() != Errno::EEXIST {
        return Err(sys("mkdir")(Errno::last()));
    }
    check_private_dir(path)?.ok_or_else(|| sys("open")(Errno::ENOENT))
}

/// Checks an existing `path` as [`private_dir`] does, without creating
/// anything: opened without following a symlink, refused unless the
/// caller owns it, tightened to 0700. `None` when there is nothing there.
pub fn check_private_dir(path: &Path) -> Result<Option<OwnedFd>, PrivateDirError> {
    let sys = |call: &'static str| {
        let path = path.to_path_buf();
        move |errno: Errno| PrivateDirError::Sys { call, path, errno }
    };
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| sys("open")(Errno::EINVAL))?;
    // SAFETY: a valid C string; O_NOFOLLOW refuses a symlink in the last component.
    let raw = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        return match Errno::last() {
            Errno::ENOENT => Ok(None),
            Errno::ELOOP | Errno::ENOTDIR => Err(PrivateDirError::NotADirectory {
                path: path.to_path_buf(),
            }),
            e => Err(sys("open")(e)),
        };
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(sys("fstat"))?;
    let caller = nix::unistd::geteuid().as_raw();
    if st.st_uid != caller {
        return Err(PrivateDirError::NotOwned {
            path: path.to_path_buf(),
            owner: st.st_uid,
            caller,
        });
    }
    if st.st_mode & 0o077 != 0 {
        // SAFETY: a valid descriptor.
        if unsafe { libc::fchmod(fd.as_raw_fd(), 0o700) } != 0 {
            return Err(sys("fchmod")(Errno::last()));
        }
    }
    Ok(Some(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn a_new_directory_is_0700_with_its_parents() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a/b/store");
        private_dir(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o700);
    }

    #[test]
    fn an_open_directory_is_tightened() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("store");
        std::fs::create_dir(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
        private_dir(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o700);
    }

    #[test]
    fn a_symlink_is_refused_and_its_target_untouched() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("elsewhere");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = t.path().join("store");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = private_dir(&link).unwrap_err();
        assert!(matches!(e, PrivateDirError::NotADirectory { .. }), "{e}");
        assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o7777, 0o755);
    }

    #[test]
    fn a_directory_of_another_owner_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("squatted");
        std::fs::create_dir(&p).unwrap();
        std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
        let e = private_dir(&p).unwrap_err();
        assert!(
            matches!(e, PrivateDirError::NotOwned { owner: 65534, .. }),
            "{e}"
        );
    }
}
