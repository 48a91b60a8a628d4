//! A volume's files on the host: whether its tmpfs is mounted, mounting
//! it, the copy of the image's content into a new volume (by descriptor,
//! inside the container root, never following a link), and its size.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use crate::error::EngineError;

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.to_path_buf();
    move |err| EngineError::Io { op, path, err }
}

/// Whether `path` is the root of a mount (its mount id differs from its
/// parent's).
pub(crate) fn is_mount_point(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let target = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| mp == target)
}

pub(crate) fn mount_tmpfs(data: &Path, options: &str) -> Result<(), EngineError> {
    let opts = if options.is_empty() {
        None
    } else {
        Some(options)
    };
    nix::mount::mount(
        Some("tmpfs"),
        data,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        opts,
    )
    .map_err(|e| EngineError::Io {
        op: "mount a tmpfs on",
        path: data.to_path_buf(),
        err: e.into(),
    })
}

/// Copies what the image has at `dest` (a directory inside `rootfs`,
/// resolved inside it) into the volume's `data` if `data` is empty, as
/// Docker fills a new volume. Nothing there, or not a directory: nothing
/// to copy.
pub(crate) fn copy_up(rootfs: &Path, dest: &str, data: &Path) -> Result<(), EngineError> {
    let is_empty = std::fs::read_dir(data)
        .map_err(io("read", data))?
        .next()
        .is_none();
    if !is_empty {
        return Ok(());
    }
    let open_dir = |p: &Path| -> Result<OwnedFd, EngineError> {
        let f = std::fs::File::open(p).map_err(io("open", p))?;
        Ok(OwnedFd::from(f))
    };
    let root = open_dir(rootfs)?;
    let relative = berth_fs::relative(Path::new(dest));
    let from = match berth_fs::open_in_root(
        root.as_raw_fd(),
        &relative,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    ) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR | nix::errno::Errno::ELOOP) => {
            return Ok(())
        }
        Err(e) => return Err(io("open in the container root", Path::new(dest))(e.into())),
    };
    let to = open_dir(data)?;
    runtime::tmpcopyup::copy_into(&from, &to, Path::new(dest)).map_err(|e| EngineError::Io {
        op: "copy the image's content into the volume at",
        path: data.to_path_buf(),
        err: std::io::Error::other(e.to_string()),
    })?;
    let st = nix::sys::stat::fstat(from.as_raw_fd())
        .map_err(|e| io("stat", Path::new(dest))(e.into()))?;
    nix::sys::stat::fchmod(
        to.as_raw_fd(),
        nix::sys::stat::Mode::from_bits_truncate(st.st_mode & 0o7777),
    )
    .map_err(|e| io("chmod", data)(e.into()))
}

/// The bytes of the regular files under `dir` (not following links).
pub(crate) fn dir_size(dir: &Path) -> u64 {
    berth_fs::tree_bytes(dir)
}
