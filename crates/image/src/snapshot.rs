//! Snapshots: each layer unpacked once into `<root>/snapshots/<chain id>/fs`
//! (the chain ID names the layer together with everything under it), in
//! parallel across layers, verified against the config's diff IDs, and
//! stacked with overlayfs into an image's or a container's root.
//!
//! Stacking them is [`crate::overlay`]'s; the copy used where overlay
//! cannot stack them is [`crate::flatten`]'s.

use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::imported::ImportedImage;
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
