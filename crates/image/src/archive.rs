//! Archives of images, unpacked with the same confined extraction as
//! layers, then imported: an OCI layout packed in a tar (`podman save
//! --format oci-archive`, `skopeo copy … oci-archive:`, recent `docker
//! save`), or a docker-archive (`docker save`, `podman save`: a
//! `manifest.json` naming config and layer files), whose images get an OCI
//! manifest written for them.

use std::io::Read;
use std::path::Path;

use crate::layout::{import_oci_layout_with, Blobs, ImportedImage, LayoutError};
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
    /// Neither an OCI layout nor a docker-archive.
    #[error(
        "archive: neither an OCI image layout (index.json) nor a docker-archive (manifest.json)"
    )]
    Unknown,
    /// A docker-archive whose manifest.json is malformed or names missing files.
    #[error("archive: manifest.json: {0}")]
    Docker(String),
    /// A blob could not be stored.
    #[error("archive: {0}")]
    Store(#[from] crate::store::StoreError),
    /// A temp directory could not be made.
    #[error("archive: temp dir in {path}: {err}")]
    Temp {
        /// Where.
        path: String,
        /// Why.
        err: std::io::Error,
    },
}

/// Loads every image of the archive in `input` (from multi-platform
/// indexes, the manifest for `platform`).
pub fn load_archive(
    store: &ContentStore,
    root: &Path,
    input: impl Read,
    platform: &crate::manifest::Platform,
) -> Result<Vec<ImportedImage>, ArchiveError> {
    let tmp = tempfile::Builder::new()
        .prefix(".load-")
        .tempdir_in(root)
        .map_err(|err| ArchiveError::Temp {
            path: root.display().to_string(),
            err,
        })?;
    apply_layer(tmp.path(), input, u64::MAX)?;
    if tmp.path().join("index.json").is_file() {
        return Ok(import_oci_layout_with(
            store,
            tmp.path(),
            platform,
            Blobs::Move,
        )?);
    }
    if tmp.path().join("manifest.json").is_file() {
        return import_docker_archive(store, tmp.path());
    }
    Err(ArchiveError::Unknown)
}

#[derive(serde::Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

#[derive(serde::Deserialize)]
struct DockerConfig {
    rootfs: DockerRootFs,
}

#[derive(serde::Deserialize)]
struct DockerRootFs {
    diff_ids: Vec<String>,
}

/// A file named by manifest.json, which must stay inside the archive.
fn member(dir: &Path, name: &str) -> Result<std::path::PathBuf, ArchiveError> {
    let p = Path::new(name);
    if p.is_absolute()
        || p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(ArchiveError::Docker(format!(
            "{name:?} is outside the archive"
        )));
    }
    let full = dir.join(p);
    let meta = std::fs::symlink_metadata(&full)
        .map_err(|e| ArchiveError::Docker(format!("{name}: {e}")))?;
    if !meta.is_file() {
        return Err(ArchiveError::Docker(format!(
            "{name} is not a regular file"
        )));
    }
    Ok(full)
}

fn import_docker_archive(
    store: &ContentStore,
    dir: &Path,
) -> Result<Vec<ImportedImage>, ArchiveError> {
    let data = std::fs::read(dir.join("manifest.json"))
        .map_err(|e| ArchiveError::Docker(e.to_string()))?;
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(&data).map_err(|e| ArchiveError::Docker(e.to_string()))?;
    // Images of one archive share layer files: each is taken in once.
    let mut taken: std::collections::HashMap<std::path::PathBuf, crate::Digest> =
        std::collections::HashMap::new();
    let mut images = vec![];
    for e in entries {
        let config_path = member(dir, &e.config)?;
        let config_bytes = std::fs::read(&config_path)
            .map_err(|err| ArchiveError::Docker(format!("{}: {err}", e.config)))?;
        let cfg: DockerConfig = serde_json::from_slice(&config_bytes)
            .map_err(|err| ArchiveError::Docker(format!("{}: {err}", e.config)))?;
        if cfg.rootfs.diff_ids.len() != e.layers.len() {
            return Err(ArchiveError::Docker(format!(
                "{} diff_ids for {} layers",
                cfg.rootfs.diff_ids.len(),
                e.layers.len()
            )));
        }
        let config = store.ingest_unknown(&config_bytes[..])?;
        let mut layers = vec![];
        let mut descs = vec![];
        for (l, diff) in e.layers.iter().zip(&cfg.rootfs.diff_ids) {
            let path = member(dir, l)?;
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let blob = match taken.get(&path) {
                Some(d) => d.clone(),
                None => {
                    let d = store.adopt(&path, None, None)?;
                    taken.insert(path.clone(), d.clone());
                    d
                }
            };
            let diff: crate::Digest = diff
                .parse()
                .map_err(|err: crate::digest::DigestError| ArchiveError::Docker(err.to_string()))?;
            descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blob.to_string(), "size": size}));
            layers.push((blob, diff));
        }
        // The image gets an OCI manifest of its own, so it is stored like any other.
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": config_bytes.len()},
            "layers": descs,
        }))
        .map_err(|err| ArchiveError::Docker(err.to_string()))?;
        let manifest = store.ingest_unknown(&manifest[..])?;
        let name = e.repo_tags.and_then(|t| t.into_iter().next());
        images.push(ImportedImage {
            name,
            manifest,
            config,
            layers,
        });
    }
    Ok(images)
}
