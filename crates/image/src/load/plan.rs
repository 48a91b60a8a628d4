//! What to load: the images an OCI layout's index or a docker-archive's
//! `manifest.json` names, each as its manifest, config and layers (for a
//! docker-archive an OCI manifest is written).

use std::io::Read;

use crate::digest::Digest;
use crate::manifest::{is_index, select, Config, Index, Manifest, Platform};
use crate::store::ContentStore;

use super::error::LoadError;
use super::source::Source;

/// One image as the source describes it, before its layers are read.
pub(super) struct Plan {
    pub(super) name: Option<String>,
    /// The stored manifest; None for a docker-archive, which gets one
    /// written once the layer digests are known.
    pub(super) manifest: Option<Digest>,
    pub(super) config: Digest,
    pub(super) config_size: u64,
    pub(super) layers: Vec<PlannedLayer>,
}

pub(super) struct PlannedLayer {
    pub(super) member: String,
    /// The blob digest, when the manifest says it (OCI).
    pub(super) blob: Option<Digest>,
    pub(super) size: Option<u64>,
    pub(super) diff: Digest,
}

pub(super) fn parse<T: for<'de> serde::Deserialize<'de>>(
    what: &str,
    data: &[u8],
) -> Result<T, LoadError> {
    serde_json::from_slice(data).map_err(|e| LoadError::Invalid {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

pub(super) fn digest(what: &str, s: &str) -> Result<Digest, LoadError> {
    s.parse()
        .map_err(|e: crate::digest::DigestError| LoadError::Invalid {
            what: what.to_string(),
            reason: e.to_string(),
        })
}

/// Reads a small member (JSON) whole.
pub(super) fn read_member(source: &dyn Source, name: &str) -> Result<Vec<u8>, LoadError> {
    let (mut r, size) = source.open(name)?;
    let mut data = Vec::with_capacity(size.min(1 << 20) as usize);
    r.read_to_end(&mut data).map_err(|e| LoadError::Member {
        from: source.describe(),
        name: name.to_string(),
        reason: e.to_string(),
    })?;
    Ok(data)
}

pub(super) fn blob_member(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Stores the small blob `d` from an OCI layout (verified) and returns it.
pub(super) fn take_blob(
    store: &ContentStore,
    source: &dyn Source,
    d: &Digest,
    size: u64,
) -> Result<Vec<u8>, LoadError> {
    if !store.contains(d) {
        let data = read_member(source, &blob_member(d))?;
        store.ingest(d, Some(size), &data[..])?;
        return Ok(data);
    }
    let p = store.path(d);
    std::fs::read(&p).map_err(|err| LoadError::Io {
        op: "read",
        path: p,
        err,
    })
}

pub(super) fn plan_oci(
    store: &ContentStore,
    source: &dyn Source,
    platform: &Platform,
) -> Result<Vec<Plan>, LoadError> {
    let what = format!("{}: index.json", source.describe());
    let index: Index = parse(&what, &read_member(source, "index.json")?)?;
    let mut plans = vec![];
    for top in &index.manifests {
        let name = top
            .annotations
            .get("org.opencontainers.image.ref.name")
            .cloned();
        let mut desc = top.clone();
        if is_index(&desc.media_type) {
            let d = digest(&what, &desc.digest)?;
            let nested: Index = parse(
                &format!("index {d}"),
                &take_blob(store, source, &d, desc.size)?,
            )?;
            desc = select(&nested, platform)
                .cloned()
                .ok_or_else(|| LoadError::Invalid {
                    what: format!("index {d}"),
                    reason: format!("no {platform} manifest"),
                })?;
        }
        let manifest = digest(&what, &desc.digest)?;
        let m: Manifest = parse(
            &format!("manifest {manifest}"),
            &take_blob(store, source, &manifest, desc.size)?,
        )?;
        let config = digest(&format!("manifest {manifest}"), &m.config.digest)?;
        let c: Config = parse(
            &format!("config {config}"),
            &take_blob(store, source, &config, m.config.size)?,
        )?;
        if c.rootfs.diff_ids.len() != m.layers.len() {
            return Err(LoadError::Invalid {
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
            let blob = digest(&format!("manifest {manifest}"), &l.digest)?;
            layers.push(PlannedLayer {
                member: blob_member(&blob),
                blob: Some(blob),
                size: Some(l.size),
                diff: digest(&format!("config {config} diff_id"), diff)?,
            });
        }
        plans.push(Plan {
            name,
            manifest: Some(manifest),
            config,
            config_size: m.config.size,
            layers,
        });
    }
    Ok(plans)
}

#[derive(serde::Deserialize)]
pub(super) struct DockerEntry {
    #[serde(rename = "Config")]
    pub(super) config: String,
    #[serde(rename = "RepoTags", default)]
    pub(super) repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    pub(super) layers: Vec<String>,
}

pub(super) fn plan_docker(
    store: &ContentStore,
    source: &dyn Source,
) -> Result<Vec<Plan>, LoadError> {
    let what = format!("{}: manifest.json", source.describe());
    let entries: Vec<DockerEntry> = parse(&what, &read_member(source, "manifest.json")?)?;
    let mut plans = vec![];
    for e in entries {
        let bytes = read_member(source, &e.config)?;
        let c: Config = parse(&format!("{what}: {}", e.config), &bytes)?;
        if c.rootfs.diff_ids.len() != e.layers.len() {
            return Err(LoadError::Invalid {
                what: format!("{what}: {}", e.config),
                reason: format!(
                    "{} diff_ids for {} layers",
                    c.rootfs.diff_ids.len(),
                    e.layers.len()
                ),
            });
        }
        let config = store.ingest_unknown(&bytes[..])?;
        let mut layers = vec![];
        for (member, diff) in e.layers.iter().zip(&c.rootfs.diff_ids) {
            layers.push(PlannedLayer {
                member: member.clone(),
                blob: None,
                size: None,
                diff: digest(&format!("{what}: {} diff_id", e.config), diff)?,
            });
        }
        plans.push(Plan {
            name: e.repo_tags.and_then(|t| t.into_iter().next()),
            manifest: None,
            config,
            config_size: bytes.len() as u64,
            layers,
        });
    }
    Ok(plans)
}

/// The media type of a layer by its first bytes.
pub(super) fn layer_media_type(head: &[u8]) -> &'static str {
    if head.starts_with(&[0x1f, 0x8b]) {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    } else if head.starts_with(&crate::unpack::ZSTD_MAGIC) {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    } else {
        "application/vnd.oci.image.layer.v1.tar"
    }
}

/// Writes the OCI manifest of a docker-archive image, now that its layer
/// blobs are stored.
pub(super) fn docker_manifest(
    store: &ContentStore,
    plan: &Plan,
    layers: &[(Digest, Digest)],
) -> Result<Digest, LoadError> {
    let mut descs = vec![];
    for (blob, _) in layers {
        let mut head = [0u8; 4];
        let mut f = store.open_blob(blob)?;
        let n = f.read(&mut head).unwrap_or(0);
        let size = f.metadata().map(|m| m.len()).map_err(|err| LoadError::Io {
            op: "stat",
            path: store.path(blob),
            err,
        })?;
        descs.push(serde_json::json!({
            "mediaType": layer_media_type(&head[..n]),
            "digest": blob.to_string(),
            "size": size,
        }));
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": plan.config.to_string(), "size": plan.config_size},
        "layers": descs,
    }))
    .map_err(|e| LoadError::Invalid {
        what: "manifest".into(),
        reason: e.to_string(),
    })?;
    Ok(store.ingest_unknown(&manifest[..])?)
}
