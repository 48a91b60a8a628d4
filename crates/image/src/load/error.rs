//! Why loading failed: one error type for every part of loading.

use std::io::{self};
use std::path::PathBuf;

use crate::snapshot::SnapshotError;
use crate::store::StoreError;

/// Why images could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Neither an OCI layout nor a docker-archive.
    #[error(
        "{from}: neither an OCI image layout (index.json) nor a docker-archive (manifest.json)"
    )]
    Unknown {
        /// What was being loaded.
        from: String,
    },
    /// A member is missing, not a regular file, or outside the source.
    #[error("{from}: {name}: {reason}")]
    Member {
        /// What was being loaded.
        from: String,
        /// The member.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A JSON document is malformed or inconsistent.
    #[error("{what}: {reason}")]
    Invalid {
        /// Which document.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The tar holding the images is malformed.
    #[error("{from}: not a readable tar: {reason}")]
    Tar {
        /// The archive.
        from: String,
        /// What is wrong.
        reason: String,
    },
    /// A blob failed verification or could not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A layer failed to unpack or is not its diff ID.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Reading the source failed.
    #[error("{op} {path}: {err}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        err: io::Error,
    },
}
