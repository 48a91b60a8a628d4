//! What an image is once it is in the store: its manifest, its config and
//! its layers (blob and diff ID), all by digest. Shared by loading, pulling,
//! snapshots and the references, so none of them depends on another for it.

use crate::digest::Digest;

/// An image now in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    /// The reference name from the layout (`org.opencontainers.image.ref.name`), if any.
    pub name: Option<String>,
    /// The manifest blob.
    pub manifest: Digest,
    /// The config blob.
    pub config: Digest,
    /// Each layer: (blob digest, digest of its uncompressed tar).
    pub layers: Vec<(Digest, Digest)>,
}
