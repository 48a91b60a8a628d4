//! The image side of the command line: finding an image by name, id
//! prefix or short name, `images` (table and JSON), load progress bars, an
//! image's config and its read-only mount directory.

use std::path::Path;

use anyhow::{Context, Result};
use image::refs::{ImageRecord, Refs};
use image::ContentStore;

use crate::progress;

use crate::format::{self, human};

pub(crate) use image::refs::short_id;

pub(crate) fn find<'a>(
    refs: &'a std::collections::BTreeMap<String, ImageRecord>,
    name: &str,
) -> Result<(String, &'a ImageRecord)> {
    image::refs::find(refs, name).with_context(|| format!("no such image: {name}"))
}

/// Load's layers as bars (on a terminal only, as docker load).
pub(crate) struct LoadBars(pub(crate) progress::Bars);

impl image::load::LoadProgress for LoadBars {
    fn layer_started(&self, layer: &image::Digest, size: u64) {
        use registry::Progress as _;
        self.0
            .start(&short_id(&layer.to_string()), "Loading layer", Some(size));
    }

    fn layer_read(&self, layer: &image::Digest, bytes: u64) {
        use registry::Progress as _;
        self.0.advance(&short_id(&layer.to_string()), bytes);
    }

    fn layer_done(&self, layer: &image::Digest) {
        use registry::Progress as _;
        self.0.done(&short_id(&layer.to_string()), "Loaded");
    }
}

pub(crate) fn read_config(store: &ContentStore, rec: &ImageRecord) -> Result<serde_json::Value> {
    image::refs::read_config(store, rec).with_context(|| format!("read config {}", rec.config))
}

pub(crate) fn list(root: &Path, quiet: bool, digests: bool, format: &str) -> Result<()> {
    let refs = Refs::new(root).load().context("read images.json")?;
    if quiet {
        for r in refs.values() {
            println!("{}", short_id(&r.config));
        }
        return Ok(());
    }
    let store = ContentStore::open(root)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let created = |r: &ImageRecord| -> (String, String) {
        let stamp = read_config(&store, r)
            .ok()
            .and_then(|c| c["created"].as_str().map(str::to_string))
            .unwrap_or_default();
        let ago = format::parse_rfc3339(&stamp)
            .map(|t| format::ago(t, now))
            .unwrap_or_else(|| "N/A".into());
        (stamp, ago)
    };
    if format == "json" {
        let v: Vec<serde_json::Value> = refs
            .iter()
            .map(|(name, r)| {
                let (repo, tag) = name.rsplit_once(':').unwrap_or((name, "latest"));
                let (stamp, ago) = created(r);
                serde_json::json!({"Repository": repo, "Tag": tag, "ID": short_id(&r.config), "Digest": r.manifest, "CreatedAt": stamp, "CreatedSince": ago, "Size": human(r.size)})
            })
            .collect();
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    if digests {
        println!(
            "{:<30} {:<10} {:<72} {:<14} {:<20} SIZE",
            "REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED"
        );
    } else {
        println!(
            "{:<30} {:<10} {:<14} {:<20} SIZE",
            "REPOSITORY", "TAG", "IMAGE ID", "CREATED"
        );
    }
    for (name, r) in &refs {
        let (repo, tag) = name.rsplit_once(':').unwrap_or((name, "latest"));
        let (_, ago) = created(r);
        if digests {
            println!(
                "{:<30} {:<10} {:<72} {:<14} {:<20} {}",
                repo,
                tag,
                r.manifest,
                short_id(&r.config),
                ago,
                human(r.size)
            );
        } else {
            println!(
                "{:<30} {:<10} {:<14} {:<20} {}",
                repo,
                tag,
                short_id(&r.config),
                ago,
                human(r.size)
            );
        }
    }
    Ok(())
}

/// Image `name` as `image inspect` shows it.
pub(crate) fn inspect_json(
    store: &ContentStore,
    refs: &std::collections::BTreeMap<String, ImageRecord>,
    name: &str,
) -> Result<serde_json::Value> {
    let (key, rec) = find(refs, name)?;
    image::refs::inspect_json(store, refs, &key, rec).with_context(|| format!("image {key}"))
}
