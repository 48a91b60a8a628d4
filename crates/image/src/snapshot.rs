//! Snapshots: each layer unpacked once into `<root>/snapshots/<chain id>/fs`
//! (the chain ID names the layer together with everything under it), in
//! parallel across layers, verified against the config's diff IDs, and
//! stacked with overlayfs into a container's root.

use std::path::{Path, PathBuf};

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

/// Unpacks every missing layer of `image` and returns the snapshot `fs`
/// directories, bottom first.
pub fn prepare(
    store: &ContentStore,
    root: &Path,
    image: &ImportedImage,
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
            .map(|((blob, diff), dir)| s.spawn(move || unpack_one(store, blob, diff, dir)))
            .collect();
        jobs.into_iter().try_for_each(|j| {
            j.join()
                .unwrap_or_else(|_| panic!("unpack thread panicked"))
        })
    })?;
    Ok(dirs.into_iter().map(|d| d.join("fs")).collect())
}

/// Unpacks one layer into a temp dir beside its snapshot and renames it
/// into place, so a snapshot directory is always complete.
fn unpack_one(
    store: &ContentStore,
    blob: &Digest,
    diff: &Digest,
    dir: &Path,
) -> Result<(), SnapshotError> {
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
    let file = store.open_blob(blob).map_err(|e| SnapshotError::Unpack {
        layer: blob.clone(),
        err: UnpackError::Format(e.to_string()),
    })?;
    let stats = apply_layer(&tmp.path().join("fs"), file, MAX_LAYER_BYTES).map_err(|err| {
        SnapshotError::Unpack {
            layer: blob.clone(),
            err,
        }
    })?;
    if &stats.diff_id != diff {
        return Err(SnapshotError::DiffIdMismatch {
            layer: blob.clone(),
            expected: diff.clone(),
            actual: stats.diff_id,
        });
    }
    let kept = tmp.keep();
    match std::fs::rename(&kept, dir) {
        Ok(()) => Ok(()),
        // Another preparation of the same layer won the race: use its copy.
        Err(_) if dir.join("fs").is_dir() => {
            let _ = std::fs::remove_dir_all(&kept);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&kept);
            Err(SnapshotError::Io {
                op: "rename into",
                path: dir.to_path_buf(),
                err: e,
            })
        }
    }
}

/// Mounts `lowers` (bottom first) with overlayfs at `target`: read-only
/// when `upper` is None, else with the given upper and work directories.
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), SnapshotError> {
    // overlayfs lists lowerdirs top first.
    let lower: Vec<String> = lowers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let mut opts = format!("lowerdir={}", lower.join(":"));
    if let Some((u, w)) = upper {
        opts.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        ));
    }
    if opts.len() >= 4096 {
        return Err(SnapshotError::Io {
            op: "mount overlay (the layer list exceeds the 4096-byte option limit; long chains are not supported yet)",
            path: target.to_path_buf(),
            err: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        });
    }
    let flags = if upper.is_none() {
        nix::mount::MsFlags::MS_RDONLY
    } else {
        nix::mount::MsFlags::empty()
    };
    // A single lower without an upper is not allowed by overlayfs: bind it read-only instead.
    if upper.is_none() && lowers.len() == 1 {
        nix::mount::mount(
            Some(lowers[0].as_path()),
            target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .and_then(|_| {
            nix::mount::mount(
                None::<&str>,
                target,
                None::<&str>,
                nix::mount::MsFlags::MS_BIND
                    | nix::mount::MsFlags::MS_REMOUNT
                    | nix::mount::MsFlags::MS_RDONLY,
                None::<&str>,
            )
        })
        .map_err(|e| SnapshotError::Io {
            op: "bind the single layer on",
            path: target.to_path_buf(),
            err: e.into(),
        })?;
        return Ok(());
    }
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        flags,
        Some(opts.as_str()),
    )
    .map_err(|e| SnapshotError::Io {
        op: "mount overlay on",
        path: target.to_path_buf(),
        err: e.into(),
    })
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
