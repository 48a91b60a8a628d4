//! Loading images from where another tool left them: an OCI image layout
//! (a directory, or packed in a tar: `skopeo copy … oci-archive:`, `podman
//! save --format oci-archive`, recent `docker save`) or a docker-archive
//! (`docker save`, `podman save`: a `manifest.json` naming config and layer
//! files, for which an OCI manifest is written).
//!
//! A [`Source`] hands out members by name: a directory's files, or a tar
//! file's members read in place at the offsets one pass over its headers
//! found (nothing is extracted). Each layer member is then read once, on
//! its own thread, and that one stream is hashed, written to the blob
//! store and unpacked into its snapshot at the same time; the snapshot is
//! renamed into place only after both the blob digest and the diff ID have
//! been checked. Blobs and snapshots the store already has are not read.

mod error;
mod jobs;
mod plan;
mod progress;
mod source;

use std::path::Path;

use crate::digest::Digest;
use crate::imported::ImportedImage;
use crate::manifest::Platform;
use crate::store::ContentStore;

pub use error::LoadError;
pub use progress::LoadProgress;
pub use source::{DirSource, Source, TarSource};

use jobs::{jobs, run_jobs};
use plan::{docker_manifest, plan_docker, plan_oci};

/// Loads every image in `source` into `store`; with `root`, unpacks their
/// layers into `<root>/snapshots` in the same pass. From multi-platform
/// indexes, the manifest for `platform` is taken.
pub fn load(
    store: &ContentStore,
    root: Option<&Path>,
    source: &dyn Source,
    platform: &Platform,
    progress: &dyn LoadProgress,
) -> Result<Vec<ImportedImage>, LoadError> {
    let plans = if source.has("index.json") {
        plan_oci(store, source, platform)?
    } else if source.has("manifest.json") {
        plan_docker(store, source)?
    } else {
        return Err(LoadError::Unknown {
            from: source.describe(),
        });
    };
    let (jobs, mut blobs) = jobs(store, source, root, &plans);
    blobs.extend(run_jobs(store, source, &jobs, progress)?);
    let mut images = vec![];
    for plan in &plans {
        let layers: Vec<(Digest, Digest)> = plan
            .layers
            .iter()
            .map(|l| {
                let blob = l
                    .blob
                    .clone()
                    .or_else(|| blobs.get(&l.member).cloned())
                    .expect("every layer of unknown digest was read");
                (blob, l.diff.clone())
            })
            .collect();
        let manifest = match &plan.manifest {
            Some(m) => m.clone(),
            None => docker_manifest(store, plan, &layers)?,
        };
        images.push(ImportedImage {
            name: plan.name.clone(),
            manifest,
            config: plan.config.clone(),
            layers,
        });
    }
    Ok(images)
}
