//! OCI image layouts (a directory with `oci-layout`, `index.json` and
//! `blobs/`): importing every image they hold into the content store,
//! verifying each blob, choosing the requested platform (linux/amd64 by
//! default) from multi-platform indexes.
//! Docker's schema2 media types are accepted beside OCI's.

use std::path::Path;

use serde::Deserialize;

use crate::digest::Digest;
use crate::manifest::{is_index, select, Config, Descriptor, Index, Manifest, Platform};
use crate::store::{ContentStore, StoreError};

/// Why a layout could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A JSON document is missing or malformed.
    #[error("{what}: {reason}")]
    Invalid {
        /// Which document.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A blob failed verification or could not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

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

fn parse<T: for<'de> Deserialize<'de>>(what: &str, data: &[u8]) -> Result<T, LayoutError> {
    serde_json::from_slice(data).map_err(|e| LayoutError::Invalid {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

fn digest(what: &str, s: &str) -> Result<Digest, LayoutError> {
    s.parse()
        .map_err(|e: crate::digest::DigestError| LayoutError::Invalid {
            what: what.to_string(),
            reason: e.to_string(),
        })
}

/// What happens to the layout's blob files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blobs {
    /// They are copied (the layout is the user's).
    Copy,
    /// They are moved into the store (the layout is a temp dir of ours
    /// on the store's filesystem: an unpacked archive).
    Move,
}

/// Takes `desc` from the layout into the store (verified; a symlink in
/// the layout is refused, not followed).
fn take(
    store: &ContentStore,
    dir: &Path,
    desc: &Descriptor,
    what: &str,
    blobs: Blobs,
) -> Result<Digest, LayoutError> {
    let d = digest(what, &desc.digest)?;
    if !store.contains(&d) {
        let path = dir.join("blobs").join("sha256").join(d.hex());
        if blobs == Blobs::Move {
            store.adopt(&path, Some(&d), Some(desc.size))?;
            return Ok(d);
        }
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| LayoutError::Invalid {
                what: format!("{what} {d}"),
                reason: format!("{}: {e}", path.display()),
            })?;
        store.ingest(&d, Some(desc.size), f)?;
    }
    Ok(d)
}

fn read_blob(store: &ContentStore, d: &Digest) -> Result<Vec<u8>, LayoutError> {
    let p = store.path(d);
    std::fs::read(&p).map_err(|e| {
        LayoutError::Store(StoreError::Io {
            op: "read",
            path: p,
            err: e,
        })
    })
}

/// Imports every image named in `dir/index.json` (for multi-platform
/// indexes, the manifest for `platform`).
pub fn import_oci_layout(
    store: &ContentStore,
    dir: &Path,
    platform: &Platform,
) -> Result<Vec<ImportedImage>, LayoutError> {
    import_oci_layout_with(store, dir, platform, Blobs::Copy)
}

/// [`import_oci_layout`], choosing whether blob files are copied or moved.
pub fn import_oci_layout_with(
    store: &ContentStore,
    dir: &Path,
    platform: &Platform,
    blobs: Blobs,
) -> Result<Vec<ImportedImage>, LayoutError> {
    let index_path = dir.join("index.json");
    let data = std::fs::read(&index_path).map_err(|e| LayoutError::Invalid {
        what: index_path.display().to_string(),
        reason: e.to_string(),
    })?;
    let index: Index = parse(&index_path.display().to_string(), &data)?;
    let mut images = vec![];
    for top in &index.manifests {
        let name = top
            .annotations
            .get("org.opencontainers.image.ref.name")
            .cloned();
        let mut desc = top.clone();
        if is_index(&desc.media_type) {
            let d = take(store, dir, &desc, "index", blobs)?;
            let nested: Index = parse(&format!("index {d}"), &read_blob(store, &d)?)?;
            desc = select(&nested, platform)
                .cloned()
                .ok_or_else(|| LayoutError::Invalid {
                    what: format!("index {d}"),
                    reason: format!("no {platform} manifest"),
                })?;
        }
        let manifest = take(store, dir, &desc, "manifest", blobs)?;
        let m: Manifest = parse(
            &format!("manifest {manifest}"),
            &read_blob(store, &manifest)?,
        )?;
        let config = take(store, dir, &m.config, "config", blobs)?;
        let c: Config = parse(&format!("config {config}"), &read_blob(store, &config)?)?;
        if c.rootfs.diff_ids.len() != m.layers.len() {
            return Err(LayoutError::Invalid {
                what: format!("config {config}"),
                reason: format!(
                    "{} diff_ids for {} layers",
                    c.rootfs.diff_ids.len(),
                    m.layers.len()
                ),
            });
        }
        let mut layers = vec![];
        for (l, diff) in m.layers.iter().zip(&c.rootfs.diff_ids) {
            layers.push((
                take(store, dir, l, "layer", blobs)?,
                digest(&format!("config {config} diff_id"), diff)?,
            ));
        }
        images.push(ImportedImage {
            name,
            manifest,
            config,
            layers,
        });
    }
    Ok(images)
}
