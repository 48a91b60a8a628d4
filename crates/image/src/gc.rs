//! Garbage collection by reference: blobs and snapshots that no named image
//! refers to are removed (`image prune`). It fails closed: when the set of
//! images to keep cannot be read whole, nothing is removed.

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;

use crate::imported::ImportedImage;
use crate::snapshot::chain_ids;
use crate::store::{ContentStore, StoreError};

/// The store-wide lock: writers (pull, load, import) hold it shared for
/// as long as they add blobs that no name refers to yet; garbage
/// collection holds it exclusively, so it never removes their work.
fn lock(root: &Path, arg: nix::fcntl::FlockArg) -> Result<nix::fcntl::Flock<File>, StoreError> {
    let path = root.join("gc.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| StoreError::Io {
            op: "open",
            path: path.clone(),
            err,
        })?;
    nix::fcntl::Flock::lock(file, arg).map_err(|(_, e)| StoreError::Io {
        op: "lock",
        path,
        err: e.into(),
    })
}

/// Held by a command that adds content: garbage collection waits for it.
pub fn hold_shared(root: &Path) -> Result<nix::fcntl::Flock<File>, StoreError> {
    lock(root, nix::fcntl::FlockArg::LockShared)
}

/// Why garbage collection removed nothing.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// The store could not be locked or listed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The image references could not be read: what is in use is unknown.
    #[error("cannot read the image references {path}: {err}; nothing was removed")]
    UnreadableReferences {
        /// The references file.
        path: std::path::PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// A reference names something that is not a digest: what it uses is unknown.
    #[error("image {name}: its record in the references is corrupt; nothing was removed")]
    CorruptReference {
        /// The image's name.
        name: String,
    },
}

/// What a [`collect`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Collected {
    /// Content-store blobs removed.
    pub blobs: usize,
    /// Unpacked layer snapshots removed.
    pub snapshots: usize,
    /// The bytes of the regular files those held.
    pub bytes: u64,
}

/// Removes what `keep` does not refer to and says what went. Waits for
/// commands that are adding content (see [`hold_shared`]), then asks
/// `keep` for the images to keep, so the references it reads are current.
/// When `keep` fails, nothing is removed.
pub fn collect(
    store: &ContentStore,
    root: &Path,
    keep: impl FnOnce() -> Result<Vec<ImportedImage>, GcError>,
) -> Result<Collected, GcError> {
    let _exclusive = lock(root, nix::fcntl::FlockArg::LockExclusive)?;
    let keep = keep()?;
    let mut blobs: HashSet<String> = HashSet::new();
    let mut snaps: HashSet<String> = HashSet::new();
    for img in &keep {
        blobs.insert(img.manifest.hex().to_string());
        blobs.insert(img.config.hex().to_string());
        for (b, _) in &img.layers {
            blobs.insert(b.hex().to_string());
        }
        let diffs: Vec<_> = img.layers.iter().map(|(_, d)| d.clone()).collect();
        snaps.extend(chain_ids(&diffs).iter().map(|c| c.hex().to_string()));
    }
    let mut removed = Collected::default();
    let blob_dir = store
        .path(&crate::Digest::of(b""))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    for e in std::fs::read_dir(&blob_dir)
        .map_err(|err| StoreError::Io {
            op: "list",
            path: blob_dir.clone(),
            err,
        })?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            // Leftovers of interrupted writers (no writer runs now).
            let _ = std::fs::remove_file(e.path());
        } else if !blobs.contains(&name) {
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            if std::fs::remove_file(e.path()).is_ok() {
                removed.blobs += 1;
                removed.bytes += size;
            }
        }
    }
    let snap_dir = root.join("snapshots");
    if let Ok(rd) = std::fs::read_dir(&snap_dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".unpack-") {
                // An interrupted unpack (no writer runs now).
                let _ = std::fs::remove_dir_all(e.path());
            } else if !name.starts_with('.') && !snaps.contains(&name) {
                let size = berth_fs::tree_bytes(&e.path());
                if std::fs::remove_dir_all(e.path()).is_ok() {
                    removed.snapshots += 1;
                    removed.bytes += size;
                }
            }
        }
    }
    // Archives spooled (or, before, unpacked) by an interrupted load.
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(".load-") {
                let _ =
                    std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
            }
        }
    }
    Ok(removed)
}
