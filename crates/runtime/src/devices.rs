//! Device nodes inside the container: the default set every container gets
//! (null, zero, full, random, urandom, tty), the spec's `linux.devices`, and
//! the /dev symlinks (fd, stdin, stdout, stderr, ptmx, core). Without a user
//! namespace nodes are made with mknod; inside one (where mknod is refused)
//! the host's node is bind-mounted onto an empty file, as runc does.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use crate::error::{Result, RuntimeError};
use crate::mount_api;
use crate::mounts::clean;
use crate::safe_path;

/// A device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// Path inside the container.
    pub path: PathBuf,
    /// `S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
    pub kind: libc::mode_t,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner uid inside the container.
    pub uid: u32,
    /// Owner gid inside the container.
    pub gid: u32,
}

/// The devices every container has (runc's and Docker's default set).
pub fn default_devices() -> Vec<DeviceNode> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(name, major, minor)| DeviceNode {
        path: PathBuf::from("/dev").join(name),
        kind: libc::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// The device cgroup rules every container gets after the spec's own, as
/// runc adds them: mknod of anything, and use of the default nodes and ptys.
pub fn default_cgroup_rules() -> Vec<oci_spec::runtime::LinuxDeviceCgroup> {
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = oci_spec::runtime::LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"),
        rule(C, Some(1), Some(5), "rwm"),
        rule(C, Some(1), Some(7), "rwm"),
        rule(C, Some(1), Some(8), "rwm"),
        rule(C, Some(1), Some(9), "rwm"),
        rule(C, Some(5), Some(0), "rwm"),
        rule(C, Some(5), Some(1), "rwm"),
        rule(C, Some(5), Some(2), "rwm"),
        rule(C, Some(136), None, "rwm"),
    ]
}

/// Converts the spec's `linux.devices[index]`.
pub fn from_spec(d: &LinuxDevice, index: usize) -> Result<DeviceNode> {
    let field = format!("linux.devices[{index}]");
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(RuntimeError::spec(
                format!("{field}.type"),
                "\"a\" is only valid in cgroup device rules",
            ))
        }
    };
    if !d.path().is_absolute() {
        return Err(RuntimeError::spec(
            format!("{field}.path"),
            format!("{} is not absolute", d.path().display()),
        ));
    }
    Ok(DeviceNode {
        path: clean(d.path()),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666),
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// Creates `dev` inside the root `root`; with `bind` (user namespaces) the
/// host node at the same path is bind-mounted instead.
pub fn create(root: i32, dev: &DeviceNode, bind: bool) -> Result<()> {
    if bind {
        let target = safe_path::create_file_in_root(root, &dev.path, 0o000)?;
        let tree = mount_api::open_tree(libc::AT_FDCWD, &dev.path, false)
            .map_err(|e| RuntimeError::sys("open_tree host device", dev.path.display(), e))?;
        return mount_api::move_mount(&tree, target.as_raw_fd())
            .map_err(|e| RuntimeError::sys("bind device", dev.path.display(), e));
    }
    let parent = dev.path.parent().unwrap_or(Path::new("/"));
    let dir = safe_path::mkdir_all_in_root(root, parent, 0o755)?;
    let name = dev.path.file_name().ok_or_else(|| {
        RuntimeError::spec(
            "linux.devices",
            format!("{} has no file name", dev.path.display()),
        )
    })?;
    let dirfd = nix::fcntl::open(
        &safe_path::proc_fd_path(&dir),
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| RuntimeError::sys("open", parent.display(), e))?;
    // SAFETY: `open` returned this descriptor; we own it from here.
    let dirfd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dirfd) };
    let cname = CString::new(name.as_bytes())
        .map_err(|_| RuntimeError::spec("linux.devices", "NUL in path"))?;
    // Remove whatever stands there (an image may ship its own /dev/null file).
    // SAFETY: valid descriptor and C string.
    unsafe { libc::unlinkat(dirfd.as_raw_fd(), cname.as_ptr(), 0) };
    let rdev = libc::makedev(dev.major as u32, dev.minor as u32);
    // SAFETY: valid descriptor and C string; mknodat only creates a node.
    let rc = unsafe {
        libc::mknodat(
            dirfd.as_raw_fd(),
            cname.as_ptr(),
            dev.kind | (dev.mode & 0o7777),
            rdev,
        )
    };
    if rc != 0 {
        return Err(RuntimeError::sys(
            "mknod",
            dev.path.display(),
            Errno::last(),
        ));
    }
    // mknod is subject to the umask: set the exact mode and owner.
    // SAFETY: as above.
    unsafe {
        if libc::fchmodat(dirfd.as_raw_fd(), cname.as_ptr(), dev.mode & 0o7777, 0) != 0 {
            return Err(RuntimeError::sys(
                "chmod",
                dev.path.display(),
                Errno::last(),
            ));
        }
        if libc::fchownat(
            dirfd.as_raw_fd(),
            cname.as_ptr(),
            dev.uid,
            dev.gid,
            libc::AT_SYMLINK_NOFOLLOW,
        ) != 0
        {
            return Err(RuntimeError::sys(
                "chown",
                dev.path.display(),
                Errno::last(),
            ));
        }
    }
    Ok(())
}

/// The /dev symlinks every container has.
pub fn create_symlinks(root: i32, with_kcore: bool) -> Result<()> {
    let dev = safe_path::mkdir_all_in_root(root, Path::new("/dev"), 0o755)?;
    let dirfd = nix::fcntl::open(
        &safe_path::proc_fd_path(&dev),
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| RuntimeError::sys("open", "/dev", e))?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if with_kcore {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match nix::unistd::symlinkat(target, Some(dirfd), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                let _ = nix::unistd::close(dirfd);
                return Err(RuntimeError::sys("symlink", format!("/dev/{name}"), e));
            }
        }
    }
    let _ = nix::unistd::close(dirfd);
    Ok(())
}

/// Points /dev/ptmx at the container's own devpts instance.
pub fn link_ptmx(root: i32) -> Result<()> {
    let dev = safe_path::mkdir_all_in_root(root, Path::new("/dev"), 0o755)?;
    let dirfd = nix::fcntl::open(
        &safe_path::proc_fd_path(&dev),
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| RuntimeError::sys("open", "/dev", e))?;
    let _ = nix::unistd::unlinkat(Some(dirfd), "ptmx", nix::unistd::UnlinkatFlags::NoRemoveDir);
    let r = nix::unistd::symlinkat("pts/ptmx", Some(dirfd), "ptmx")
        .map_err(|e| RuntimeError::sys("symlink", "/dev/ptmx", e));
    let _ = nix::unistd::close(dirfd);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_set_has_the_six_nodes() {
        let names: Vec<_> = default_devices()
            .iter()
            .map(|d| d.path.display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty"
            ]
        );
    }
}
