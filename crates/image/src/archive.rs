//! Archives of images: an OCI layout packed in a tar (`podman save --format
//! oci-archive`, `skopeo copy … oci-archive:`) is unpacked with the same
//! confined extraction as layers, then imported.

use std::io::Read;
use std::path::Path;

use crate::layout::{import_oci_layout, ImportedImage, LayoutError};
use crate::store::ContentStore;
use crate::unpack::{apply_layer, UnpackError};

/// Why an archive could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The tar itself.
    #[error("archive: {0}")]
    Unpack(#[from] UnpackError),
    /// The layout inside.
    #[error("archive: {0}")]
    Layout(#[from] LayoutError),
    /// Not an OCI layout.
    #[error(
        "archive: not an OCI image layout (no index.json); docker-archive is not supported yet"
    )]
    NotOci,
    /// A temp directory could not be made.
    #[error("archive: temp dir in {path}: {err}")]
    Temp {
        /// Where.
        path: String,
        /// Why.
        err: std::io::Error,
    },
}

/// Loads every image of the OCI archive in `input`.
pub fn load_oci_archive(
    store: &ContentStore,
    root: &Path,
    input: impl Read,
) -> Result<Vec<ImportedImage>, ArchiveError> {
    let tmp = tempfile::Builder::new()
        .prefix(".load-")
        .tempdir_in(root)
        .map_err(|err| ArchiveError::Temp {
            path: root.display().to_string(),
            err,
        })?;
    apply_layer(tmp.path(), input, u64::MAX)?;
    if !tmp.path().join("index.json").is_file() {
        return Err(ArchiveError::NotOci);
    }
    Ok(import_oci_layout(store, tmp.path())?)
}
