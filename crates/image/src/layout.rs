//! OCI image layouts (a directory with `oci-layout`, `index.json` and
//! `blobs/`): what an imported image is, and importing every image a
//! layout directory holds (the work is [`crate::load`]'s).

use std::path::Path;

use crate::load::{load, DirSource, LoadError, LoadProgress};
use crate::manifest::Platform;
use crate::store::ContentStore;

pub use crate::imported::ImportedImage;

/// Imports every image named in `dir/index.json` (for multi-platform
/// indexes, the manifest for `platform`) into the store, verifying each
/// blob, without unpacking.
pub fn import_oci_layout(
    store: &ContentStore,
    dir: &Path,
    platform: &Platform,
) -> Result<Vec<ImportedImage>, LoadError> {
    load(store, None, &DirSource::new(dir), platform, &())
}

/// Imports every image of the layout in `dir` and unpacks its layers into
/// `<root>/snapshots` in the same read.
pub fn load_oci_layout(
    store: &ContentStore,
    root: &Path,
    dir: &Path,
    platform: &Platform,
    progress: &dyn LoadProgress,
) -> Result<Vec<ImportedImage>, LoadError> {
    load(store, Some(root), &DirSource::new(dir), platform, progress)
}
