//! What loading reports as it goes, for progress bars.

use crate::digest::Digest;

/// How a load reports its layers: each is named by its blob digest (OCI)
/// or its diff ID (docker-archive, whose blob digests are learnt by
/// reading them).
pub trait LoadProgress: Sync {
    /// A layer of `size` bytes is about to be read.
    fn layer_started(&self, _layer: &Digest, _size: u64) {}
    /// `bytes` more of it were read.
    fn layer_read(&self, _layer: &Digest, _bytes: u64) {}
    /// It is stored and unpacked.
    fn layer_done(&self, _layer: &Digest) {}
}

/// No reporting.
impl LoadProgress for () {}
