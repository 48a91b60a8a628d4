//! The `cgroup` mount of a spec: a read-only view of the container's own
//! cgroup, as a cgroup filesystem in its cgroup namespace, or else bound
//! from the host's hierarchies.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::error::{Result, RuntimeError};
use crate::mount_api;
use crate::mounts::{
    bind_mount, bind_onto, check_resolved_destination, MountContext, MountOptions,
};
use crate::safe_path;

/// A `cgroup` mount: with a cgroup namespace, a fresh cgroupfs rooted at the
/// container's cgroup; without one, a bind mount of the container's own
/// cgroup directories (so the container never sees its siblings).
pub(crate) fn mount_cgroup(
    ctx: &MountContext,
    dest: &Path,
    opts: &MountOptions,
    index: usize,
) -> Result<()> {
    let hier = cgroups::Hierarchy::detect()?;
    let ro = opts.flags & libc::MS_RDONLY;
    let base =
        opts.flags & (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RELATIME);
    if hier.layout() == cgroups::Layout::Unified {
        let target = safe_path::mkdir_all_in_root(ctx.root, dest, 0o755)?;
        let field = format!("mounts[{index}].destination");
        check_resolved_destination(ctx, &target, dest, "cgroup", false, &field)?;
        if ctx.cgroupns {
            return mount_api::mount(
                Some(Path::new("cgroup2")),
                &safe_path::proc_fd_path(&target),
                Some("cgroup2"),
                base | ro,
                None,
            )
            .map_err(|e| RuntimeError::sys("mount cgroup2", dest.display(), e));
        }
        let src = ctx
            .cgroup
            .map(|c| {
                hier.unified_mount()
                    .unwrap_or(Path::new("/sys/fs/cgroup"))
                    .join(c.path().trim_start_matches('/'))
            })
            .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"));
        let o = MountOptions {
            flags: opts.flags,
            bind: true,
            rec: true,
            ..Default::default()
        };
        return bind_mount(ctx, &src, dest, &o, index);
    }
    // v1 or hybrid: a tmpfs holding one mount per hierarchy.
    let target = safe_path::mkdir_all_in_root(ctx.root, dest, 0o755)?;
    let field = format!("mounts[{index}].destination");
    check_resolved_destination(ctx, &target, dest, "cgroup", false, &field)?;
    mount_api::mount(
        Some(Path::new("tmpfs")),
        &safe_path::proc_fd_path(&target),
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )
    .map_err(|e| RuntimeError::sys("mount cgroup tmpfs", dest.display(), e))?;
    // The tmpfs just mounted is empty and no container process runs yet:
    // its mount points are made directly in it, one mkdirat each.
    let tmpfs = safe_path::open_in_root(ctx.root, dest, libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| RuntimeError::sys("open cgroup tmpfs", dest.display(), e))?;
    let subdir = |name: &str| -> Result<OwnedFd> {
        let sub = dest.join(name);
        nix::sys::stat::mkdirat(
            Some(tmpfs.as_raw_fd()),
            name,
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        )
        .map_err(|e| RuntimeError::sys("mkdir", sub.display(), e))?;
        let fd = nix::fcntl::openat(
            Some(tmpfs.as_raw_fd()),
            name,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| RuntimeError::sys("open", sub.display(), e))?;
        // SAFETY: a fresh descriptor from openat.
        Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    };
    for (name, host_mount, options) in hier.v1_mounts() {
        let sub = dest.join(&name);
        let t = subdir(&name)?;
        if ctx.cgroupns {
            mount_api::mount(
                Some(Path::new("cgroup")),
                &safe_path::proc_fd_path(&t),
                Some("cgroup"),
                base | ro,
                Some(&options),
            )
            .map_err(|e| RuntimeError::sys("mount cgroup", sub.display(), e))?;
        } else {
            let src = match ctx.cgroup {
                Some(c) => host_mount.join(c.path().trim_start_matches('/')),
                None => host_mount.clone(),
            };
            let o = MountOptions {
                flags: base | ro,
                bind: true,
                rec: false,
                ..Default::default()
            };
            bind_onto(&src, &t, &sub, &o, index)?;
        }
    }
    if let Some(unified) = hier.unified_mount() {
        let sub = dest.join("unified");
        let t = subdir("unified")?;
        if ctx.cgroupns {
            mount_api::mount(
                Some(Path::new("cgroup2")),
                &safe_path::proc_fd_path(&t),
                Some("cgroup2"),
                base | ro,
                None,
            )
            .map_err(|e| RuntimeError::sys("mount cgroup2", sub.display(), e))?;
        } else {
            let src = match ctx.cgroup {
                Some(c) => unified.join(c.path().trim_start_matches('/')),
                None => unified.to_path_buf(),
            };
            let o = MountOptions {
                flags: base | ro,
                bind: true,
                ..Default::default()
            };
            bind_onto(&src, &t, &sub, &o, index)?;
        }
    }
    if ro != 0 {
        // Make the tmpfs itself read-only once its mount points exist.
        let reopened = safe_path::open_in_root(ctx.root, dest, libc::O_PATH, 0)
            .map_err(|e| RuntimeError::sys("reopen cgroup tmpfs", dest.display(), e))?;
        mount_api::mount(
            None,
            &safe_path::proc_fd_path(&reopened),
            None,
            libc::MS_REMOUNT | libc::MS_BIND | base | ro,
            None,
        )
        .map_err(|e| RuntimeError::sys("remount cgroup tmpfs read-only", dest.display(), e))?;
    }
    Ok(())
}
