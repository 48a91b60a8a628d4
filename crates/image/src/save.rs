//! `save`: images written as a docker-archive (`manifest.json`, one config
//! file and one uncompressed tar per layer), the format `docker load` and
//! `podman load` read.

use std::io::{Read, Write};

use serde_json::json;

use crate::imported::ImportedImage;
use crate::store::{ContentStore, StoreError};

/// Why a save failed.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// Writing the archive.
    #[error("write archive: {0}")]
    Write(std::io::Error),
    /// Reading a blob.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored blob (or a layer's uncompressed content) no longer has the
    /// digest it is stored under: the store is damaged, nothing is exported.
    #[error("{what} {expected} in the store has digest {actual}: the store is damaged (pull or load the image again)")]
    Corrupt {
        /// Blob, or layer content (diff ID).
        what: &'static str,
        /// The digest it should have.
        expected: crate::Digest,
        /// The digest it has.
        actual: crate::Digest,
    },
}

/// Refuses `data` unless it hashes to `expected`.
fn verify(what: &'static str, expected: &crate::Digest, data: &[u8]) -> Result<(), SaveError> {
    let actual = crate::Digest::of(data);
    if &actual != expected {
        return Err(SaveError::Corrupt {
            what,
            expected: expected.clone(),
            actual,
        });
    }
    Ok(())
}

fn append(b: &mut tar::Builder<impl Write>, name: &str, data: &[u8]) -> Result<(), SaveError> {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, data).map_err(SaveError::Write)
}

/// Writes `images` (each with the names it is saved under) to `out`.
pub fn save_docker_archive(
    store: &ContentStore,
    images: &[(ImportedImage, Vec<String>)],
    out: impl Write,
) -> Result<(), SaveError> {
    let mut b = tar::Builder::new(out);
    let mut manifest = vec![];
    let mut written = std::collections::HashSet::new();
    for (img, names) in images {
        let mut config = vec![];
        store
            .open_blob(&img.config)?
            .read_to_end(&mut config)
            .map_err(SaveError::Write)?;
        verify("config", &img.config, &config)?;
        let config_name = format!("{}.json", img.config.hex());
        if written.insert(config_name.clone()) {
            append(&mut b, &config_name, &config)?;
        }
        let mut layers = vec![];
        for (blob, diff) in &img.layers {
            // docker-archive layers are uncompressed tars named by diff ID.
            let name = format!("{}.tar", diff.hex());
            if written.insert(name.clone()) {
                let mut raw = vec![];
                store
                    .open_blob(blob)?
                    .read_to_end(&mut raw)
                    .map_err(SaveError::Write)?;
                verify("blob", blob, &raw)?;
                let data = if raw.starts_with(&[0x1f, 0x8b]) {
                    let mut out = vec![];
                    flate2::read::GzDecoder::new(&raw[..])
                        .read_to_end(&mut out)
                        .map_err(SaveError::Write)?;
                    out
                } else {
                    raw
                };
                verify("layer content", diff, &data)?;
                append(&mut b, &name, &data)?;
            }
            layers.push(name);
        }
        manifest.push(json!({"Config": config_name, "RepoTags": names, "Layers": layers}));
    }
    let m =
        serde_json::to_vec(&manifest).map_err(|e| SaveError::Write(std::io::Error::other(e)))?;
    append(&mut b, "manifest.json", &m)?;
    b.into_inner()
        .map_err(SaveError::Write)?
        .flush()
        .map_err(SaveError::Write)
}
