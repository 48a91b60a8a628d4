//! Path resolution inside a container root that cannot escape it.
//!
//! Every path that comes from a spec or an image (mount destinations, masked
//! paths, device nodes) is resolved with `openat2(RESOLVE_IN_ROOT)`, so `..`
//! and symlinks (absolute or relative, even ones swapped in by a racing
//! process) stay inside the root. Callers get an `O_PATH` descriptor and act
//! on it through `/proc/self/fd/N`, never by re-walking the path string.
//! This module must not do anything but resolve and create.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::Mode;

use crate::error::{Result, RuntimeError};

pub use berth_fs::{open_in_root, relative};

/// Creates every missing directory of `path` inside `root` and returns an
/// `O_PATH` descriptor of the last one. Symlinks met on the way are followed
/// only inside `root`.
pub fn mkdir_all_in_root(root: RawFd, path: &Path, mode: u32) -> Result<OwnedFd> {
    mkdir_all_depth(root, path, mode, 0)
}

/// Symlinks followed at most while creating one path (as the kernel's MAXSYMLINKS).
const MAX_LINKS: u32 = 40;

fn mkdir_all_depth(root: RawFd, path: &Path, mode: u32, depth: u32) -> Result<OwnedFd> {
    if depth > MAX_LINKS {
        return Err(RuntimeError::sys("mkdir", path.display(), Errno::ELOOP));
    }
    let rel = relative(path);
    let mut prefix = PathBuf::new();
    let mut dir = open_in_root(root, Path::new("."), libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| RuntimeError::sys("open container root", path.display(), e))?;
    for comp in rel.components() {
        prefix.push(comp);
        if let Component::Normal(name) = comp {
            let cname = CString::new(name.as_bytes())
                .map_err(|_| RuntimeError::sys("mkdir", path.display(), Errno::EINVAL))?;
            // SAFETY: `dir` is an open directory descriptor and `cname` a valid C string.
            let rc = unsafe { libc::mkdirat(dir.as_raw_fd(), cname.as_ptr(), mode) };
            if rc != 0 {
                let e = Errno::last();
                if e != Errno::EEXIST {
                    return Err(RuntimeError::sys("mkdir", root_display(&prefix), e));
                }
            }
        }
        dir = match open_in_root(root, &prefix, libc::O_PATH | libc::O_DIRECTORY, 0) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                // A dangling symlink: create its target, inside the root, first.
                let parent = prefix.parent().unwrap_or(Path::new("")).to_path_buf();
                let parent_fd = open_in_root(root, &parent, libc::O_PATH | libc::O_DIRECTORY, 0)
                    .map_err(|e| RuntimeError::sys("open directory", root_display(&parent), e))?;
                let name = prefix.file_name().unwrap_or_default();
                let target = nix::fcntl::readlinkat(Some(parent_fd.as_raw_fd()), name)
                    .map_err(|e| RuntimeError::sys("readlink", root_display(&prefix), e))?;
                let target = Path::new(&target);
                let resolved = if target.is_absolute() {
                    target.to_path_buf()
                } else {
                    Path::new("/").join(&parent).join(target)
                };
                mkdir_all_depth(root, &resolved, mode, depth + 1)?;
                open_in_root(root, &prefix, libc::O_PATH | libc::O_DIRECTORY, 0)
                    .map_err(|e| RuntimeError::sys("open directory", root_display(&prefix), e))?
            }
            Err(e) => {
                return Err(RuntimeError::sys(
                    "open directory",
                    root_display(&prefix),
                    e,
                ))
            }
        };
    }
    Ok(dir)
}

/// Creates (if missing) a regular file at `path` inside `root`, creating its
/// parents, and returns an `O_PATH` descriptor of it (or of whatever already
/// stands there).
pub fn create_file_in_root(root: RawFd, path: &Path, mode: u32) -> Result<OwnedFd> {
    if let Some(parent) = Path::new("/").join(relative(path)).parent() {
        mkdir_all_in_root(root, parent, 0o755)?;
    }
    match open_in_root(root, path, libc::O_PATH, 0) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(RuntimeError::sys("open", root_display(path), e)),
    }
    let fd = open_in_root(
        root,
        path,
        libc::O_CREAT | libc::O_WRONLY | libc::O_NOCTTY,
        mode,
    )
    .map_err(|e| RuntimeError::sys("create file", root_display(path), e))?;
    drop(fd);
    open_in_root(root, path, libc::O_PATH, 0)
        .map_err(|e| RuntimeError::sys("open", root_display(path), e))
}

/// The `/proc/self/fd/N` path through which the kernel acts on `fd`.
pub fn proc_fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn root_display(p: &Path) -> String {
    Path::new("/").join(relative(p)).display().to_string()
}

/// Reads the file type of an `O_PATH` descriptor.
pub fn is_dir(fd: &OwnedFd) -> bool {
    nix::sys::stat::fstat(fd.as_raw_fd())
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .unwrap_or(false)
}

/// Default permission bits for directories the runtime creates.
pub const DIR_MODE: Mode = Mode::from_bits_truncate(0o755);

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_symlink_resolves_inside_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), root.path().join("escape")).unwrap();
        let rootfd =
            nix::fcntl::open(root.path(), nix::fcntl::OFlag::O_PATH, Mode::empty()).unwrap();
        let fd = mkdir_all_in_root(rootfd, Path::new("/escape/sub"), 0o755).unwrap();
        drop(fd);
        assert!(
            !outside.path().join("sub").exists(),
            "mkdir followed a symlink out of the root"
        );
        assert!(root
            .path()
            .join(outside.path().strip_prefix("/").unwrap())
            .join("sub")
            .is_dir());
        nix::unistd::close(rootfd).unwrap();
    }

    #[test]
    fn dotdot_is_clamped_at_root() {
        let root = tempfile::tempdir().unwrap();
        let rootfd =
            nix::fcntl::open(root.path(), nix::fcntl::OFlag::O_PATH, Mode::empty()).unwrap();
        create_file_in_root(rootfd, Path::new("../../../etc/berth-escape-test"), 0o644).unwrap();
        assert!(!Path::new("/etc/berth-escape-test").exists());
        assert!(root.path().join("etc/berth-escape-test").is_file());
        nix::unistd::close(rootfd).unwrap();
    }
}
