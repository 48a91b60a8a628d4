//! Snapshots: each layer unpacked once into `<root>/snapshots/<chain id>/fs`
//! (the chain ID names the layer together with everything under it), in
//! parallel across layers, verified against the config's diff IDs, and
//! stacked with overlayfs into an image's or a container's root.
//!
//! Stacking has three ways, picked by [`MountStrategy`]: mount(2) with a
//! `lowerdir=` option string (one page, so about 45 snapshot layers); the
//! new mount API with one `lowerdir+` per layer (Linux 6.8+, up to
//! overlay's 500 layers); and, past that or on kernels without either, a
//! copy: [`flatten_layers`] merges the layers as overlay would show them
//! (whiteouts and opaque directories applied) into one directory that is
//! bound at the target.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_fs::xattr;

use crate::digest::Digest;
use crate::layout::ImportedImage;
use crate::store::ContentStore;
use crate::unpack::{apply_layer, UnpackError};

/// Largest decompressed layer accepted (64 GiB).
pub const MAX_LAYER_BYTES: u64 = 64 << 30;

/// Errors of snapshot preparation and mounting.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A layer failed to unpack.
    #[error("layer {layer}: {err}")]
    Unpack {
        /// The layer blob.
        layer: Digest,
        /// What went wrong.
        err: UnpackError,
    },
    /// The unpacked content does not match the config's diff ID.
    #[error("layer {layer}: uncompressed content has digest {actual}, the config says {expected}")]
    DiffIdMismatch {
        /// The layer blob.
        layer: Digest,
        /// The diff ID in the config.
        expected: Digest,
        /// What it is.
        actual: Digest,
    },
    /// More layers than overlayfs can stack, for a strategy that needs
    /// overlayfs.
    #[error("{layers} layers: overlayfs stacks at most {max}")]
    TooManyLayers {
        /// The layers asked for.
        layers: usize,
        /// overlayfs's limit.
        max: usize,
    },
    /// A file operation failed.
    #[error("{op} {path}: {err}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
}

/// Chain IDs of a stack of diff IDs (OCI image spec: ChainID(L0) = DiffID(L0),
/// ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))).
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// The content size of the unpacked layer in snapshot `fs` directory
/// `fs` (recorded when it was unpacked), if known.
pub fn content_size(fs: &Path) -> Option<u64> {
    let dir = fs.parent()?;
    std::fs::read_to_string(dir.join("size"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Unpacks every missing layer of `image` and returns the snapshot `fs`
/// directories, bottom first.
pub fn prepare(
    store: &ContentStore,
    root: &Path,
    image: &ImportedImage,
) -> Result<Vec<PathBuf>, SnapshotError> {
    prepare_with_progress(store, root, image, &|_, _| {})
}

/// Reports how far a layer's unpacking got: (layer blob, blob bytes read
/// since the last call).
pub type UnpackProgress<'a> = dyn Fn(&Digest, u64) + Sync + 'a;

/// [`prepare`], reporting the bytes of each layer blob as they are read.
pub fn prepare_with_progress(
    store: &ContentStore,
    root: &Path,
    image: &ImportedImage,
    progress: &UnpackProgress<'_>,
) -> Result<Vec<PathBuf>, SnapshotError> {
    let diffs: Vec<Digest> = image.layers.iter().map(|(_, d)| d.clone()).collect();
    let chains = chain_ids(&diffs);
    let dirs: Vec<PathBuf> = chains
        .iter()
        .map(|c| root.join("snapshots").join(c.hex()))
        .collect();
    std::thread::scope(|s| {
        let jobs: Vec<_> = image
            .layers
            .iter()
            .zip(&dirs)
            .filter(|(_, dir)| !dir.join("fs").is_dir())
            .map(|((blob, diff), dir)| {
                s.spawn(move || unpack_one(store, blob, diff, dir, progress))
            })
            .collect();
        jobs.into_iter().try_for_each(|j| {
            j.join()
                .unwrap_or_else(|_| panic!("unpack thread panicked"))
        })
    })?;
    Ok(dirs.into_iter().map(|d| d.join("fs")).collect())
}

/// Unpacks layer `blob` (uncompressed digest `diff`) into the snapshot of
/// chain ID `chain` unless it is there, and returns its `fs` directory.
/// For callers that unpack each layer as soon as its blob arrives (pull).
pub fn prepare_layer(
    store: &ContentStore,
    root: &Path,
    chain: &Digest,
    blob: &Digest,
    diff: &Digest,
) -> Result<PathBuf, SnapshotError> {
    let dir = root.join("snapshots").join(chain.hex());
    if !dir.join("fs").is_dir() {
        unpack_one(store, blob, diff, &dir, &|_, _| {})?;
    }
    Ok(dir.join("fs"))
}

/// A blob reader that reports what it reads.
struct Counted<'a, R> {
    inner: R,
    blob: &'a Digest,
    progress: &'a UnpackProgress<'a>,
}

impl<R: std::io::Read> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(self.blob, n as u64);
        Ok(n)
    }
}

/// Unpacks one layer from the store into a temp dir beside its snapshot
/// and renames it into place, so a snapshot directory is always complete.
fn unpack_one(
    store: &ContentStore,
    blob: &Digest,
    diff: &Digest,
    dir: &Path,
    progress: &UnpackProgress<'_>,
) -> Result<(), SnapshotError> {
    let file = store.open_blob(blob).map_err(|e| SnapshotError::Unpack {
        layer: blob.clone(),
        err: UnpackError::Format(e.to_string()),
    })?;
    let file = Counted {
        inner: std::io::BufReader::with_capacity(256 * 1024, file),
        blob,
        progress,
    };
    unpack_pending(dir, file, blob, diff)?.install()
}

/// A layer unpacked and verified beside its snapshot directory but not yet
/// in place: [`PendingSnapshot::install`] renames it there; dropped, it is
/// removed. Lets a caller that unpacks a blob while it stores it (load)
/// make the snapshot visible only once the blob is verified too.
pub struct PendingSnapshot {
    tmp: tempfile::TempDir,
    dir: PathBuf,
}

/// Unpacks the layer in `stream` into a temp dir beside snapshot `dir`
/// (`<root>/snapshots/<chain id>`) and checks it against diff ID `diff`.
/// `layer` names the layer in errors.
pub fn unpack_pending(
    dir: &Path,
    stream: impl std::io::Read,
    layer: &Digest,
    diff: &Digest,
) -> Result<PendingSnapshot, SnapshotError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |err| SnapshotError::Io { op, path, err }
    };
    let parent = dir.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(parent)
        .map_err(io("create temp dir in", parent))?;
    let stats = apply_layer(&tmp.path().join("fs"), stream, MAX_LAYER_BYTES).map_err(|err| {
        SnapshotError::Unpack {
            layer: layer.clone(),
            err,
        }
    })?;
    if &stats.diff_id != diff {
        return Err(SnapshotError::DiffIdMismatch {
            layer: layer.clone(),
            expected: diff.clone(),
            actual: stats.diff_id,
        });
    }
    // The layer's content size, which `images` reports as Docker does.
    let _ = std::fs::write(tmp.path().join("size"), stats.bytes.to_string());
    Ok(PendingSnapshot {
        tmp,
        dir: dir.to_path_buf(),
    })
}

impl PendingSnapshot {
    /// Renames the unpacked layer into its snapshot directory (when another
    /// preparation of the same layer got there first, its copy is kept).
    pub fn install(self) -> Result<(), SnapshotError> {
        let kept = self.tmp.keep();
        match std::fs::rename(&kept, &self.dir) {
            Ok(()) => Ok(()),
            Err(_) if self.dir.join("fs").is_dir() => {
                let _ = std::fs::remove_dir_all(&kept);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&kept);
                Err(SnapshotError::Io {
                    op: "rename into",
                    path: self.dir,
                    err: e,
                })
            }
        }
    }
}

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

/// The read-only flattened copy of `lowers`, made once (in a temp directory
/// renamed into place, like a snapshot) beside the top layer.
fn flat_copy(lowers: &[PathBuf]) -> Result<PathBuf, SnapshotError> {
    use sha2::Digest as _;
    let top = lowers.last().expect("a copy of no layers has an upper");
    let parent = top.parent().unwrap_or(Path::new("/"));
    let mut h = sha2::Sha256::new();
    for l in lowers {
        h.update(l.as_os_str().as_bytes());
        h.update([0]);
    }
    let hex: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let flat = parent.join(format!("flat-{hex}"));
    if flat.is_dir() {
        return Ok(flat);
    }
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |err| SnapshotError::Io { op, path, err }
    };
    let tmp = tempfile::Builder::new()
        .prefix(".flatten-")
        .tempdir_in(parent)
        .map_err(io("create temp dir in", parent))?;
    flatten_layers(lowers, tmp.path())?;
    let kept = tmp.keep();
    match std::fs::rename(&kept, &flat) {
        Ok(()) => Ok(flat),
        // Another mount of the same stack made it first: use that one.
        Err(_) if flat.is_dir() => {
            let _ = std::fs::remove_dir_all(&kept);
            Ok(flat)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&kept);
            Err(io("rename into", &flat)(e))
        }
    }
}

/// Merges `lowers` (bottom first, in overlay's format) into `dest`, which is
/// created if missing: what overlayfs would show, as plain files. A 0:0
/// character device deletes what the layers below had at its path; a
/// directory with `trusted.overlay.opaque=y` hides what they had inside it.
/// Modes, owners, times (nanoseconds), symlinks, device nodes, fifos and
/// extended attributes (but `trusted.overlay.*`) are kept; hardlinks within
/// a layer stay hardlinks. A directory takes the metadata of the topmost
/// layer that has it, as in overlay.
pub fn flatten_layers(lowers: &[PathBuf], dest: &Path) -> Result<(), SnapshotError> {
    std::fs::create_dir_all(dest).map_err(|err| SnapshotError::Io {
        op: "create",
        path: dest.to_path_buf(),
        err,
    })?;
    let mut dir_times: HashMap<PathBuf, (libc::timespec, libc::timespec)> = HashMap::new();
    for lower in lowers {
        let meta = std::fs::symlink_metadata(lower).map_err(|err| SnapshotError::Io {
            op: "stat",
            path: lower.clone(),
            err,
        })?;
        let mut f = Flattener {
            lower,
            dest,
            links: HashMap::new(),
            dir_times: &mut dir_times,
        };
        f.copy_meta(Path::new(""), &meta, true)?;
        f.merge(Path::new(""))?;
    }
    // Directory times last, deepest first: filling them changed them.
    let mut dirs: Vec<_> = dir_times.into_iter().collect();
    dirs.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.components().count()));
    for (rel, (atime, mtime)) in dirs {
        let path = dest.join(&rel);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            set_times(&path, atime, mtime).map_err(|err| SnapshotError::Io {
                op: "set the times of",
                path,
                err,
            })?;
        }
    }
    Ok(())
}

/// One layer being merged into the flattened tree.
struct Flattener<'a> {
    lower: &'a Path,
    dest: &'a Path,
    /// (device, inode) of a multiply linked file of this layer -> its copy.
    links: HashMap<(u64, u64), PathBuf>,
    dir_times: &'a mut HashMap<PathBuf, (libc::timespec, libc::timespec)>,
}

impl Flattener<'_> {
    fn merge(&mut self, rel: &Path) -> Result<(), SnapshotError> {
        let src_dir = self.lower.join(rel);
        let entries = std::fs::read_dir(&src_dir).map_err(|err| SnapshotError::Io {
            op: "list",
            path: src_dir.clone(),
            err,
        })?;
        for entry in entries {
            let entry = entry.map_err(|err| SnapshotError::Io {
                op: "list",
                path: src_dir.clone(),
                err,
            })?;
            let r = rel.join(entry.file_name());
            let (src, dst) = (self.lower.join(&r), self.dest.join(&r));
            let io = |op: &'static str, path: &Path| {
                let path = path.to_path_buf();
                move |err| SnapshotError::Io { op, path, err }
            };
            // lstat: DirEntry::metadata never follows a symlink.
            let meta = entry.metadata().map_err(io("stat", &src))?;
            let ft = meta.file_type();
            let existing = std::fs::symlink_metadata(&dst).ok();
            if ft.is_char_device() && meta.rdev() == 0 {
                // A whiteout: what the layers below had here is gone.
                if let Some(m) = existing {
                    remove_any(&dst, &m).map_err(io("remove (whiteout)", &dst))?;
                }
                continue;
            }
            if ft.is_dir() {
                match existing {
                    Some(m) if m.is_dir() => {
                        if xattr::get(&src, c"trusted.overlay.opaque")
                            .map_err(io("read the opaque marker of", &src))?
                            .as_deref()
                            == Some(b"y")
                        {
                            clear_dir(&dst).map_err(io("clear (opaque directory)", &dst))?;
                        }
                    }
                    Some(m) => {
                        remove_any(&dst, &m).map_err(io("remove", &dst))?;
                        std::fs::create_dir(&dst).map_err(io("create", &dst))?;
                    }
                    None => std::fs::create_dir(&dst).map_err(io("create", &dst))?,
                }
                self.copy_meta(&r, &meta, true)?;
                self.merge(&r)?;
                continue;
            }
            if let Some(m) = existing {
                remove_any(&dst, &m).map_err(io("remove", &dst))?;
            }
            if ft.is_file() {
                let key = (meta.dev(), meta.ino());
                if meta.nlink() > 1 {
                    if let Some(first) = self.links.get(&key) {
                        std::fs::hard_link(self.dest.join(first), &dst)
                            .map_err(io("link", &dst))?;
                        continue;
                    }
                    self.links.insert(key, r.clone());
                }
                std::fs::copy(&src, &dst).map_err(io("copy", &dst))?;
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&src).map_err(io("read link", &src))?;
                std::os::unix::fs::symlink(&target, &dst).map_err(io("symlink", &dst))?;
            } else {
                // Device nodes, fifos and sockets: the same node.
                let c = cpath(&dst).map_err(io("create", &dst))?;
                // SAFETY: a valid C string; mknod creates a node and follows nothing.
                if unsafe {
                    libc::mknod(
                        c.as_ptr(),
                        (meta.mode() & libc::S_IFMT) | 0o600,
                        meta.rdev(),
                    )
                } != 0
                {
                    return Err(io("create node", &dst)(std::io::Error::last_os_error()));
                }
            }
            self.copy_meta(&r, &meta, false)?;
        }
        Ok(())
    }

    /// Owner, then mode (chown clears setuid), then extended attributes
    /// (chown clears file capabilities), then times (directories' later).
    fn copy_meta(
        &mut self,
        rel: &Path,
        meta: &std::fs::Metadata,
        dir: bool,
    ) -> Result<(), SnapshotError> {
        let (src, dst) = (self.lower.join(rel), self.dest.join(rel));
        let io = |op: &'static str| {
            let path = dst.clone();
            move |err| SnapshotError::Io { op, path, err }
        };
        std::os::unix::fs::lchown(&dst, Some(meta.uid()), Some(meta.gid()))
            .map_err(io("set the owner of"))?;
        let symlink = meta.file_type().is_symlink();
        if !symlink {
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(io("set the mode of"))?;
        }
        let names =
            xattr::list(&src).map_err(io("list the extended attributes of the source of"))?;
        if dir {
            // An earlier layer's directory may have had attributes this one has not.
            for old in xattr::list(&dst).map_err(io("list the extended attributes of"))? {
                if !names.contains(&old) {
                    xattr::remove(&dst, &old).map_err(io("remove an extended attribute of"))?;
                }
            }
        }
        for name in &names {
            if name.as_bytes().starts_with(b"trusted.overlay.") {
                continue;
            }
            if let Some(value) =
                xattr::get(&src, name).map_err(io("read an extended attribute for"))?
            {
                xattr::set(&dst, name, &value)
                    .map(drop)
                    .map_err(io("set an extended attribute of"))?;
            }
        }
        let times = (
            libc::timespec {
                tv_sec: meta.atime() as libc::time_t,
                tv_nsec: meta.atime_nsec() as _,
            },
            libc::timespec {
                tv_sec: meta.mtime() as libc::time_t,
                tv_nsec: meta.mtime_nsec() as _,
            },
        );
        if dir {
            self.dir_times.insert(rel.to_path_buf(), times);
        } else {
            set_times(&dst, times.0, times.1).map_err(io("set the times of"))?;
        }
        Ok(())
    }
}

fn cpath(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| std::io::ErrorKind::InvalidInput.into())
}

fn remove_any(path: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
    if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

fn clear_dir(dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        remove_any(&e.path(), &e.metadata()?)?;
    }
    Ok(())
}

fn set_times(path: &Path, atime: libc::timespec, mtime: libc::timespec) -> std::io::Result<()> {
    let c = cpath(path)?;
    let times = [atime, mtime];
    // SAFETY: a valid C string and two timespecs; the link itself, never its target.
    if unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        assert_eq!(chain[1], Digest::of(format!("{a} {b}").as_bytes()));
    }
}
