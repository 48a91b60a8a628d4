//! Stacking snapshots into one root filesystem, in three ways picked by
//! [`MountStrategy`]: mount(2) with a `lowerdir=` option string (one page,
//! so about 45 snapshot layers); the new mount API with one `lowerdir+` per
//! layer (Linux 6.8+, up to overlay's 500 layers); and, past that or on
//! kernels without either, a copy ([`crate::flatten`]) bound at the target.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::flatten::{flat_copy, flatten_layers};
use crate::snapshot::SnapshotError;

/// overlayfs's limit on stacked lower layers (`OVL_MAX_STACK`).
pub const OVERLAY_MAX_LOWERS: usize = 500;

/// The size of the option page mount(2) copies: a legacy option string must
/// be shorter (it ends with a NUL).
const LEGACY_OPTIONS_MAX: usize = 4096;

/// The longest value fsconfig(2) takes as a string (it copies it with
/// `strndup_user(_, 256)`, which counts the NUL); longer paths are passed as
/// `/proc/self/fd/N` of an O_PATH descriptor.
const FSCONFIG_VALUE_MAX: usize = 255;

/// How [`mount_overlay_with`] stacks the layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountStrategy {
    /// The cheapest that works: the legacy option string when it fits, else
    /// the new mount API, else (more than [`OVERLAY_MAX_LOWERS`] layers, or
    /// a kernel without `lowerdir+` or without overlayfs) a copy.
    Auto,
    /// mount(2) with `lowerdir=top:…:bottom` in one option page (4096
    /// bytes, so about 40 snapshot layers).
    Legacy,
    /// fsopen("overlay") and one fsconfig `lowerdir+` per layer, top first
    /// (Linux 6.8 and later): no limit but overlay's own 500 layers.
    MountApi,
    /// The layers flattened into one directory ([`flatten_layers`]) that is
    /// bound at the target: read-only without an upper, else the copy is
    /// made in the upper directory and bound writable.
    Copy,
}

/// How a stack was mounted, as [`mount_overlay_with`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    /// A single layer without an upper, bound read-only (overlay needs two
    /// layers then).
    Bind,
    /// overlayfs through mount(2) and an option string.
    Legacy,
    /// overlayfs through fsopen/fsconfig/fsmount/move_mount.
    MountApi,
    /// A flattened copy, bound.
    Copy,
}

/// Makes the mount at `target` read-only, nosuid and nodev (a bind
/// remount changes only that mount's flags): for mounts that people look
/// at rather than run, such as `berth image mount`.
pub fn restrict_mount(target: &Path) -> Result<(), SnapshotError> {
    use nix::mount::MsFlags;
    nix::mount::mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(|e| SnapshotError::Io {
        op: "remount read-only, nosuid, nodev",
        path: target.to_path_buf(),
        err: e.into(),
    })
}

/// Mounts `lowers` (bottom first) at `target`: read-only when `upper` is
/// None, else with the given (upper, work) directories. Picks the strategy
/// as [`MountStrategy::Auto`] says.
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), SnapshotError> {
    mount_overlay_with(lowers, upper, target, MountStrategy::Auto).map(|_| ())
}

/// Mounts `lowers` (bottom first) at `target` with `strategy`, and says how
/// it was done. Read-only when `upper` is None; with an upper, the stack is
/// writable and writes land in the upper directory (which the copy
/// strategy requires to be empty). A read-only copy is kept beside the top
/// layer (`<top>/../flat-<hash of the layer paths>`, so it goes with the
/// snapshot when it is collected) and reused by later mounts.
pub fn mount_overlay_with(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
    strategy: MountStrategy,
) -> Result<MountKind, SnapshotError> {
    // A single lower without an upper is not allowed by overlayfs: bind it read-only instead.
    if upper.is_none() && lowers.len() == 1 && strategy != MountStrategy::Copy {
        bind(&lowers[0], target, true)?;
        return Ok(MountKind::Bind);
    }
    if lowers.is_empty() {
        // overlayfs needs a layer; an empty stack with an upper is the upper alone.
        return match (upper, strategy) {
            (Some(_), MountStrategy::Auto | MountStrategy::Copy) => {
                mount_copy(lowers, upper, target).map(|_| MountKind::Copy)
            }
            _ => Err(SnapshotError::Io {
                op: "mount (overlayfs needs at least one layer)",
                path: target.to_path_buf(),
                err: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            }),
        };
    }
    match strategy {
        MountStrategy::Legacy => {
            let opts = legacy_options(lowers, upper).ok_or_else(|| SnapshotError::Io {
                op: "mount overlay (the layer paths do not fit overlay's one-page option string, or hold ':' ',' or '\\')",
                path: target.to_path_buf(),
                err: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            })?;
            mount_legacy(&opts, upper.is_none(), target).map(|_| MountKind::Legacy)
        }
        MountStrategy::MountApi => {
            too_many(lowers.len())?;
            match mount_api(lowers, upper, target) {
                Ok(()) => Ok(MountKind::MountApi),
                Err(ApiFailure::Failed(e)) => Err(e),
                Err(ApiFailure::Unsupported(err)) => Err(SnapshotError::Io {
                    op: "mount overlay with the new mount API (the kernel lacks fsopen or overlay's lowerdir+, Linux 6.8+) on",
                    path: target.to_path_buf(),
                    err,
                }),
            }
        }
        MountStrategy::Copy => mount_copy(lowers, upper, target).map(|_| MountKind::Copy),
        MountStrategy::Auto => {
            if lowers.len() > OVERLAY_MAX_LOWERS {
                return mount_copy(lowers, upper, target).map(|_| MountKind::Copy);
            }
            if let Some(opts) = legacy_options(lowers, upper) {
                return mount_legacy(&opts, upper.is_none(), target).map(|_| MountKind::Legacy);
            }
            match mount_api(lowers, upper, target) {
                Ok(()) => Ok(MountKind::MountApi),
                Err(ApiFailure::Failed(e)) => Err(e),
                Err(ApiFailure::Unsupported(_)) => {
                    mount_copy(lowers, upper, target).map(|_| MountKind::Copy)
                }
            }
        }
    }
}

fn too_many(layers: usize) -> Result<(), SnapshotError> {
    if layers > OVERLAY_MAX_LOWERS {
        return Err(SnapshotError::TooManyLayers {
            layers,
            max: OVERLAY_MAX_LOWERS,
        });
    }
    Ok(())
}

/// [`mount_overlay`] with overlayfs's `volatile` option where the legacy
/// option string fits (the writes are never synced: no syncfs when it is
/// unmounted, so for a root thrown away with its container, `run --rm`).
/// Once unmounted, the work directory's `work/incompat/volatile` must go before
/// it is mounted again (overlayfs refuses it otherwise). Elsewhere it is
/// a plain [`mount_overlay_with`] (`MountStrategy::Auto`).
pub fn mount_overlay_volatile(
    lowers: &[PathBuf],
    upper: (&Path, &Path),
    target: &Path,
) -> Result<MountKind, SnapshotError> {
    if !lowers.is_empty() {
        if let Some(mut opts) = legacy_options(lowers, Some(upper)) {
            opts.push_str(",volatile");
            if opts.len() < LEGACY_OPTIONS_MAX && mount_legacy(&opts, false, target).is_ok() {
                return Ok(MountKind::Legacy);
            }
        }
    }
    mount_overlay_with(lowers, Some(upper), target, MountStrategy::Auto)
}

/// `lowerdir=top:…:bottom[,upperdir=…,workdir=…]` if it fits in mount(2)'s
/// page and needs no escaping.
fn legacy_options(lowers: &[PathBuf], upper: Option<(&Path, &Path)>) -> Option<String> {
    if lowers.len() > OVERLAY_MAX_LOWERS {
        return None;
    }
    fn plain(p: &Path) -> Option<&str> {
        let s = p.to_str()?;
        (!s.contains([':', ',', '\\'])).then_some(s)
    }
    // overlayfs lists lowerdirs top first.
    let mut opts = String::from("lowerdir=");
    for (i, l) in lowers.iter().rev().enumerate() {
        if i > 0 {
            opts.push(':');
        }
        opts.push_str(plain(l)?);
    }
    if let Some((u, w)) = upper {
        opts.push_str(",upperdir=");
        opts.push_str(plain(u)?);
        opts.push_str(",workdir=");
        opts.push_str(plain(w)?);
    }
    (opts.len() < LEGACY_OPTIONS_MAX).then_some(opts)
}

fn mount_legacy(opts: &str, readonly: bool, target: &Path) -> Result<(), SnapshotError> {
    let flags = if readonly {
        nix::mount::MsFlags::MS_RDONLY
    } else {
        nix::mount::MsFlags::empty()
    };
    nix::mount::mount(Some("overlay"), target, Some("overlay"), flags, Some(opts)).map_err(|e| {
        SnapshotError::Io {
            op: "mount overlay on",
            path: target.to_path_buf(),
            err: e.into(),
        }
    })
}

/// Binds `src` at `target`, then makes the bind read-only if asked.
fn bind(src: &Path, target: &Path, readonly: bool) -> Result<(), SnapshotError> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let err = |op: &'static str| {
        move |e: nix::Error| SnapshotError::Io {
            op,
            path: target.to_path_buf(),
            err: e.into(),
        }
    };
    mount(
        Some(src),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(err("bind the layers on"))?;
    if readonly {
        if let Err(e) = mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        ) {
            // Never leave a writable view of a snapshot behind.
            let _ = umount2(target, MntFlags::MNT_DETACH);
            return Err(err("make read-only the bind on")(e));
        }
    }
    Ok(())
}

/// Why the new mount API did not mount.
enum ApiFailure {
    /// The kernel has no fsopen, no overlayfs, or no `lowerdir+`.
    Unsupported(std::io::Error),
    /// It is there, and refused this mount.
    Failed(SnapshotError),
}

/// `MOUNT_ATTR_RDONLY` for fsmount.
const MOUNT_ATTR_RDONLY: u64 = berth_fs::mount_api::MOUNT_ATTR_RDONLY;

/// A path as fsconfig takes it: itself when short enough, else
/// `/proc/self/fd/N` of an O_PATH descriptor kept in `held`.
fn fsconfig_path(p: &Path, held: &mut Vec<OwnedFd>) -> std::io::Result<CString> {
    let bytes = p.as_os_str().as_bytes();
    if bytes.len() <= FSCONFIG_VALUE_MAX {
        return CString::new(bytes).map_err(|_| std::io::ErrorKind::InvalidInput.into());
    }
    let c =
        CString::new(bytes).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid C string; the result is checked.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    held.push(unsafe { OwnedFd::from_raw_fd(fd) });
    Ok(CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a number"))
}

/// The error `err` with the context's log appended, if it has one.
fn with_log(fsfd: &OwnedFd, err: impl Into<std::io::Error>) -> std::io::Error {
    let err = err.into();
    let log = berth_fs::mount_api::fs_context_log(fsfd);
    if log.is_empty() {
        err
    } else {
        std::io::Error::new(err.kind(), format!("{err} ({log})"))
    }
}

/// overlayfs through fsopen, fsconfig (`lowerdir+` per layer, top first),
/// fsmount and move_mount.
fn mount_api(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), ApiFailure> {
    use berth_fs::mount_api::{fsconfig_create, fsconfig_set_string, fsmount, fsopen};
    let failed = |op: &'static str| {
        move |err: std::io::Error| {
            ApiFailure::Failed(SnapshotError::Io {
                op,
                path: target.to_path_buf(),
                err,
            })
        }
    };
    let fsfd = fsopen(c"overlay").map_err(|e| match e {
        nix::errno::Errno::ENOSYS | nix::errno::Errno::ENODEV => ApiFailure::Unsupported(e.into()),
        e => failed("open an overlay filesystem context for")(e.into()),
    })?;
    let mut held = vec![];
    for (i, lower) in lowers.iter().rev().enumerate() {
        let value = fsconfig_path(lower, &mut held).map_err(failed("open a layer for"))?;
        if let Err(err) = fsconfig_set_string(&fsfd, c"lowerdir+", &value) {
            // Before Linux 6.8 the parameter is unknown: EINVAL on the first one.
            if i == 0 && err == nix::errno::Errno::EINVAL {
                return Err(ApiFailure::Unsupported(with_log(&fsfd, err)));
            }
            return Err(failed("add a layer (lowerdir+) for")(with_log(&fsfd, err)));
        }
    }
    if let Some((u, w)) = upper {
        let u = fsconfig_path(u, &mut held).map_err(failed("open the upper directory for"))?;
        let w = fsconfig_path(w, &mut held).map_err(failed("open the work directory for"))?;
        fsconfig_set_string(&fsfd, c"upperdir", &u)
            .and_then(|_| fsconfig_set_string(&fsfd, c"workdir", &w))
            .map_err(|e| failed("set the upper and work directories for")(with_log(&fsfd, e)))?;
    }
    fsconfig_create(&fsfd).map_err(|e| failed("create the overlay for")(with_log(&fsfd, e)))?;
    let attrs = if upper.is_none() {
        MOUNT_ATTR_RDONLY
    } else {
        0
    };
    let mfd = fsmount(&fsfd, attrs)
        .map_err(|e| failed("make a mount of the overlay for")(with_log(&fsfd, e)))?;
    berth_fs::mount_api::move_mount_to_path(&mfd, target)
        .map_err(|e| failed("attach the overlay on")(e.into()))?;
    Ok(())
}

/// The copy strategy: flatten into the (empty) upper and bind it writable,
/// or into a cached copy beside the top layer and bind it read-only.
fn mount_copy(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), SnapshotError> {
    if let Some((u, _)) = upper {
        let empty = std::fs::read_dir(u)
            .map_err(|err| SnapshotError::Io {
                op: "list",
                path: u.to_path_buf(),
                err,
            })?
            .next()
            .is_none();
        if !empty {
            return Err(SnapshotError::Io {
                op: "flatten the layers into (the upper directory is not empty)",
                path: u.to_path_buf(),
                err: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            });
        }
        flatten_layers(lowers, u)?;
        return bind(u, target, false);
    }
    let flat = flat_copy(lowers)?;
    bind(&flat, target, true)
}
