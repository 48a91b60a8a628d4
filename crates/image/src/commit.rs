//! `commit`: a new image from a parent image and one more layer (a
//! container's changes, as an uncompressed tar), with the config the
//! caller gives (the container's), Docker's `--change` lines, a history
//! entry with the message and author. The manifest is OCI, the parent's
//! layers kept as they are (Docker media types mapped to OCI's).

use serde_json::{json, Value};

use crate::digest::Digest;
use crate::import::{apply_changes, ImportError};
use crate::imported::ImportedImage;
use crate::store::ContentStore;

/// What a commit adds to the parent.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The new image's `config` object (the container's: Cmd, Env, …), or
    /// None to keep the parent's.
    pub config: Option<Value>,
    /// `--change` lines, applied after `config`.
    pub changes: Vec<String>,
    /// `-m`: the history entry's comment.
    pub comment: Option<String>,
    /// `-a`: the author.
    pub author: Option<String>,
    /// The history entry's `created_by` (the container's command).
    pub created_by: String,
    /// When (Unix seconds).
    pub created: i64,
}

fn oci_layer_type(t: &str) -> &str {
    match t {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        }
        "application/vnd.docker.image.rootfs.diff.tar" => "application/vnd.oci.image.layer.v1.tar",
        other => other,
    }
}

/// Stores the image made of `parent` and `layer`; returns it (unnamed:
/// the caller names it in the references).
pub fn commit(
    store: &ContentStore,
    parent: &ImportedImage,
    layer: &mut std::fs::File,
    opts: &CommitOptions,
) -> Result<ImportedImage, ImportError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| ImportError::Io {
        path: what.to_string(),
        err: std::io::Error::other(e.to_string()),
    };
    let read_json = |d: &Digest| -> Result<Value, ImportError> {
        let bytes = std::fs::read(store.path(d)).map_err(|err| ImportError::Io {
            path: store.path(d).display().to_string(),
            err,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| bad(&d.to_string(), &e))
    };
    let mut config = read_json(&parent.config)?;
    let manifest = read_json(&parent.manifest)?;
    let layer_size = layer
        .metadata()
        .map_err(|err| ImportError::Io {
            path: "the new layer".into(),
            err,
        })?
        .len();
    let diff = store.ingest_unknown(&mut *layer)?;

    if let Some(c) = &opts.config {
        config["config"] = c.clone();
    }
    if !config["config"].is_object() {
        config["config"] = json!({});
    }
    apply_changes(&mut config["config"], &opts.changes)?;
    let created = crate::import::rfc3339(opts.created);
    config["created"] = json!(created);
    if let Some(a) = &opts.author {
        config["author"] = json!(a);
    }
    let mut diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    diff_ids.push(json!(diff.to_string()));
    config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    let mut history = config["history"].as_array().cloned().unwrap_or_default();
    let mut entry = json!({"created": created, "created_by": opts.created_by});
    if let Some(m) = &opts.comment {
        entry["comment"] = json!(m);
    }
    if let Some(a) = &opts.author {
        entry["author"] = json!(a);
    }
    history.push(entry);
    config["history"] = json!(history);
    let config_bytes = serde_json::to_vec(&config).map_err(|e| bad("config", &e))?;
    let config_digest = store.ingest_unknown(&config_bytes[..])?;

    let mut layers: Vec<Value> = manifest["layers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut l| {
            let t = l["mediaType"].as_str().unwrap_or("").to_string();
            l["mediaType"] = json!(oci_layer_type(&t));
            l
        })
        .collect();
    layers.push(json!({
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": diff.to_string(),
        "size": layer_size,
    }));
    let manifest_bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": config_bytes.len(),
        },
        "layers": layers,
    }))
    .map_err(|e| bad("manifest", &e))?;
    let manifest_digest = store.ingest_unknown(&manifest_bytes[..])?;
    let mut all = parent.layers.clone();
    all.push((diff.clone(), diff));
    Ok(ImportedImage {
        name: None,
        manifest: manifest_digest,
        config: config_digest,
        layers: all,
    })
}
