//! The container's root filesystem, step by step: make the mount tree
//! private from the host, bind the rootfs onto itself, mount the spec's
//! mounts in order, create devices and /dev links, pivot_root into it and
//! detach the old root; then mask and protect paths and make the root
//! read-only. Runs in the init, inside its new mount namespace.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use libc::c_ulong;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::devices;
use crate::error::{Result, RuntimeError};
use crate::mount_api;
use crate::mounts::{self, MountContext};
use crate::namespaces::NamespacePlan;
use crate::prepared_binds::PreparedBinds;
use crate::safe_path;

fn propagation_flags(p: Option<&str>) -> c_ulong {
    match p.unwrap_or("") {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => libc::MS_SLAVE | libc::MS_REC,
    }
}

/// Stops mount events from reaching the host: the whole copied tree becomes
/// a slave (or what `linux.rootfsPropagation` says, unbindable excepted).
pub fn isolate_mount_tree(spec: &Spec) -> Result<()> {
    let prop = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone());
    let mut flags = propagation_flags(prop.as_deref());
    // An unbindable tree could not be bound onto itself below: it stays a
    // slave until after the pivot ([`apply_root_propagation`]).
    if flags & libc::MS_UNBINDABLE != 0 {
        flags = libc::MS_SLAVE | libc::MS_REC;
    }
    mount_api::mount(None, Path::new("/"), None, flags, None)
        .map_err(|e| RuntimeError::sys("make / private to the container", "/", e))
}

/// The container root once bound onto itself, and the path that reaches it.
pub struct BoundRoot {
    /// `rootfs` itself, or `/proc/self/fd/N` of [`Self::fd`].
    pub path: PathBuf,
    /// The bound mount, when it is reached through its descriptor.
    _fd: Option<OwnedFd>,
}

/// Binds the rootfs onto itself: pivot_root needs the new root to be a
/// mount point. With `from_cwd`, the root is the working directory (which
/// the runtime entered as the host's root, before the user namespace: the
/// container's root may not be able to walk the path to it), and the
/// bound root is reached through its descriptor from then on.
pub fn bind_rootfs(rootfs: &Path, spec: &Spec, from_cwd: bool) -> Result<BoundRoot> {
    let bound = if from_cwd {
        let here = Path::new(".");
        let tree = mount_api::open_tree(libc::AT_FDCWD, here, true).map_err(|e| {
            RuntimeError::sys("clone rootfs (the working directory)", rootfs.display(), e)
        })?;
        let cwd = nix::fcntl::open(
            here,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| {
            RuntimeError::sys("open rootfs (the working directory)", rootfs.display(), e)
        })?;
        // SAFETY: fresh descriptor from open.
        let cwd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(cwd) };
        mount_api::move_mount(&tree, cwd.as_raw_fd())
            .map_err(|e| RuntimeError::sys("bind rootfs onto itself", rootfs.display(), e))?;
        nix::unistd::fchdir(tree.as_raw_fd())
            .map_err(|e| RuntimeError::sys("chdir", rootfs.display(), e))?;
        BoundRoot {
            path: PathBuf::from(format!("/proc/self/fd/{}", tree.as_raw_fd())),
            _fd: Some(tree),
        }
    } else {
        mount_api::mount(
            Some(rootfs),
            rootfs,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .map_err(|e| RuntimeError::sys("bind rootfs onto itself", rootfs.display(), e))?;
        BoundRoot {
            path: rootfs.to_path_buf(),
            _fd: None,
        }
    };
    // pivot_root refuses a new root, its parent mount, or the current
    // root's parent that is shared, which all are when rootfsPropagation
    // asks for "shared": they become private here, and the propagation is
    // set on / after the pivot ([`apply_root_propagation`]). A slave or
    // private tree (the default is a slave of the host's) passes as it is,
    // and the rootfs keeps that propagation.
    let prop = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone());
    if propagation_flags(prop.as_deref()) & libc::MS_SHARED == 0 {
        return Ok(bound);
    }
    mount_api::mount(None, &bound.path, None, libc::MS_PRIVATE, None)
        .map_err(|e| RuntimeError::sys("make rootfs mount private", rootfs.display(), e))?;
    if let Some(parent) = rootfs.parent().and_then(mount_point_of) {
        mount_api::mount(None, &parent, None, libc::MS_PRIVATE, None).map_err(|e| {
            RuntimeError::sys(
                "make the rootfs's parent mount private",
                parent.display(),
                e,
            )
        })?;
    }
    mount_api::mount(None, Path::new("/"), None, libc::MS_PRIVATE, None)
        .map_err(|e| RuntimeError::sys("make the old root's mount private", "/", e))?;
    Ok(bound)
}

/// The mount point of the mount that holds `path` (the longest mount
/// point in this namespace's mountinfo that is a prefix of it).
fn mount_point_of(path: &Path) -> Option<std::path::PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| std::path::PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| path.starts_with(m))
        .max_by_key(|m| m.as_os_str().len())
}

/// Gives the container's / the propagation `linux.rootfsPropagation` asks
/// for, as the last mount step: after the pivot (before it, the mounts
/// involved had to be private) and after the masks and read-only binds (an
/// unbindable tree refuses them). Without the field, the tree stays as
/// [`isolate_mount_tree`] left it: a slave of the host's.
pub fn apply_root_propagation(spec: &Spec) -> Result<()> {
    let Some(prop) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
    else {
        return Ok(());
    };
    mount_api::mount(
        None,
        Path::new("/"),
        None,
        propagation_flags(Some(&prop)),
        None,
    )
    .map_err(|e| RuntimeError::sys("set rootfsPropagation on /", prop, e))
}

/// Mounts everything the spec lists, then devices and /dev links.
pub fn mount_all(
    spec: &Spec,
    rootfs: &Path,
    ns: &NamespacePlan,
    cgroup: Option<&cgroups::CgroupManager>,
    prepared: Option<&PreparedBinds>,
) -> Result<()> {
    let root = nix::fcntl::open(
        rootfs,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| RuntimeError::sys("open rootfs", rootfs.display(), e))?;
    // SAFETY: fresh descriptor from open.
    let root = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(root) };
    let ctx = MountContext {
        root: root.as_raw_fd(),
        cgroup,
        cgroupns: ns.creates(LinuxNamespaceType::Cgroup),
        prepared,
    };
    let mounts = spec.mounts().clone().unwrap_or_default();
    let mut dev_is_host_bind = false;
    let mut has_proc = false;
    for (i, m) in mounts.iter().enumerate() {
        mounts::mount_entry(&ctx, m, i)?;
        let dest = mounts::clean(m.destination());
        let typ = m.typ().as_deref().unwrap_or("");
        let bind = typ == "bind"
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind");
        if dest == Path::new("/dev") && bind {
            dev_is_host_bind = true;
        }
        if dest == Path::new("/proc") && typ == "proc" {
            has_proc = true;
        }
    }
    let userns = ns.has(LinuxNamespaceType::User);
    if !dev_is_host_bind {
        for d in devices::default_devices() {
            devices::create(ctx.root, &d, userns)?;
        }
        devices::create_symlinks(ctx.root, has_proc)?;
        devices::link_ptmx(ctx.root)?;
    }
    let linux = spec.linux().clone().unwrap_or_default();
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        let node = devices::from_spec(d, i)?;
        devices::create(ctx.root, &node, userns)?;
    }
    // The working directory must exist before the user's program starts.
    if let Some(p) = spec.process() {
        safe_path::mkdir_all_in_root(ctx.root, p.cwd(), 0o755)?;
    }
    Ok(())
}

/// Makes the rootfs `/` and detaches the host's tree, leaving no path back.
pub fn pivot_root(rootfs: &Path) -> Result<()> {
    let open_dir = |p: &Path| {
        nix::fcntl::open(
            p,
            nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| RuntimeError::sys("open", p.display(), e))
    };
    let old = open_dir(Path::new("/"))?;
    let new = open_dir(rootfs)?;
    let result = (|| {
        nix::unistd::fchdir(new).map_err(|e| RuntimeError::sys("chdir", rootfs.display(), e))?;
        // pivot_root(".", ".") stacks the old root under the new one at the
        // same place, so no put_old directory has to exist in the image.
        nix::unistd::pivot_root(".", ".")
            .map_err(|e| RuntimeError::sys("pivot_root", rootfs.display(), e))?;
        nix::unistd::fchdir(old).map_err(|e| RuntimeError::sys("chdir", "old root", e))?;
        // Keep the unmount of the old root from propagating to the host.
        mount_api::mount(
            None,
            Path::new("."),
            None,
            libc::MS_SLAVE | libc::MS_REC,
            None,
        )
        .map_err(|e| RuntimeError::sys("make old root a slave", "/", e))?;
        nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| RuntimeError::sys("detach old root", "/", e))?;
        nix::unistd::chdir("/").map_err(|e| RuntimeError::sys("chdir", "/", e))
    })();
    let _ = nix::unistd::close(old);
    let _ = nix::unistd::close(new);
    result
}

/// `--no-pivot`: move the rootfs over / and chroot into it (for ramdisk roots,
/// where pivot_root is refused). Weaker: the old root stays reachable to a
/// process that can escape a chroot.
pub fn move_root(rootfs: &Path) -> Result<()> {
    nix::unistd::chdir(rootfs).map_err(|e| RuntimeError::sys("chdir", rootfs.display(), e))?;
    mount_api::mount(Some(rootfs), Path::new("/"), None, libc::MS_MOVE, None)
        .map_err(|e| RuntimeError::sys("move rootfs to /", rootfs.display(), e))?;
    nix::unistd::chroot(".").map_err(|e| RuntimeError::sys("chroot", rootfs.display(), e))?;
    nix::unistd::chdir("/").map_err(|e| RuntimeError::sys("chdir", "/", e))
}

fn root_fd() -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        "/",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| RuntimeError::sys("open", "/", e))?;
    // SAFETY: fresh descriptor from open.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Makes each of `linux.readonlyPaths` a read-only bind of itself.
pub fn readonly_paths(paths: &[String]) -> Result<()> {
    let root = root_fd()?;
    for p in paths {
        let fd = match safe_path::open_in_root(root.as_raw_fd(), Path::new(p), libc::O_PATH, 0) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(RuntimeError::sys("open readonly path", p, e)),
        };
        let tree = mount_api::open_tree(fd.as_raw_fd(), Path::new(""), true)
            .map_err(|e| RuntimeError::sys("open_tree readonly path", p, e))?;
        let attr = mount_api::MountAttr {
            attr_set: mount_api::MOUNT_ATTR_RDONLY
                | mount_api::MOUNT_ATTR_NOSUID
                | mount_api::MOUNT_ATTR_NODEV
                | mount_api::MOUNT_ATTR_NOEXEC,
            ..Default::default()
        };
        mount_api::mount_setattr(&tree, &attr, true)
            .map_err(|e| RuntimeError::sys("make read-only", p, e))?;
        mount_api::move_mount(&tree, fd.as_raw_fd())
            .map_err(|e| RuntimeError::sys("mount read-only", p, e))?;
    }
    Ok(())
}

/// Hides each of `linux.maskedPaths`: /dev/null over files, an empty
/// read-only tmpfs over directories.
pub fn mask_paths(paths: &[String]) -> Result<()> {
    let root = root_fd()?;
    let null = mount_api::open_tree(libc::AT_FDCWD, Path::new("/dev/null"), false).ok();
    for p in paths {
        let fd = match safe_path::open_in_root(
            root.as_raw_fd(),
            Path::new(p),
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
        ) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(RuntimeError::sys("open masked path", p, e)),
        };
        if safe_path::is_dir(&fd) {
            mount_api::mount(
                Some(Path::new("tmpfs")),
                &safe_path::proc_fd_path(&fd),
                Some("tmpfs"),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                Some("size=0,mode=0"),
            )
            .map_err(|e| RuntimeError::sys("mask directory", p, e))?;
        } else {
            // Each mask needs its own clone of /dev/null's mount.
            let tree = match &null {
                Some(_) => mount_api::open_tree(libc::AT_FDCWD, Path::new("/dev/null"), false),
                None => Err(nix::errno::Errno::ENOENT),
            }
            .map_err(|e| RuntimeError::sys("open /dev/null to mask", p, e))?;
            mount_api::move_mount(&tree, fd.as_raw_fd())
                .map_err(|e| RuntimeError::sys("mask file", p, e))?;
        }
    }
    Ok(())
}

/// Remounts `/` read-only (`root.readonly`).
pub fn readonly_root() -> Result<()> {
    let root = root_fd()?;
    let tree_attr = mount_api::MountAttr {
        attr_set: mount_api::MOUNT_ATTR_RDONLY,
        ..Default::default()
    };
    // mount_setattr on the root mount itself (not recursive: submounts keep their own mode).
    mount_api::mount_setattr(&root, &tree_attr, false)
        .map_err(|e| RuntimeError::sys("remount / read-only", "/", e))
}

/// Writes `linux.sysctl` through the container's /proc/sys.
pub fn write_sysctls(spec: &Spec) -> Result<()> {
    let Some(map) = spec.linux().as_ref().and_then(|l| l.sysctl().clone()) else {
        return Ok(());
    };
    // Every write goes through /proc/sys opened on procfs and then beneath
    // it without following links or crossing mounts: a mount or symlink an
    // image placed under /proc cannot turn a sysctl into a host file write
    // (CVE-2025-52881 class).
    let proc_sys = std::fs::File::open("/proc/sys")
        .map_err(|e| RuntimeError::io("open", Path::new("/proc/sys"), e))?;
    if !berth_fs::is_procfs(proc_sys.as_raw_fd())
        .map_err(|e| RuntimeError::sys("fstatfs", "/proc/sys", e))?
    {
        return Err(RuntimeError::spec(
            "linux.sysctl",
            "/proc/sys in the container is not procfs; refusing to write sysctls",
        ));
    }
    for (k, v) in map {
        let rel = k.replace('.', "/");
        let shown = format!("/proc/sys/{rel}");
        let fd = berth_fs::open_beneath(proc_sys.as_raw_fd(), Path::new(&rel), libc::O_WRONLY)
            .map_err(|e| match e {
                nix::errno::Errno::EXDEV | nix::errno::Errno::ELOOP => RuntimeError::spec(
                    format!("linux.sysctl.{k}"),
                    format!("{shown} is redirected by a mount or a symlink; refusing to write it"),
                ),
                e => RuntimeError::sys("open sysctl", &shown, e),
            })?;
        if !berth_fs::is_procfs(fd.as_raw_fd())
            .map_err(|e| RuntimeError::sys("fstatfs", &shown, e))?
        {
            return Err(RuntimeError::spec(
                format!("linux.sysctl.{k}"),
                format!("{shown} is not on procfs; refusing to write it"),
            ));
        }
        let mut f = std::fs::File::from(fd);
        std::io::Write::write_all(&mut f, v.as_bytes())
            .map_err(|e| RuntimeError::io("write sysctl", Path::new(&shown), e))?;
    }
    Ok(())
}
