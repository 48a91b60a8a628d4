//! Image names: `<root>/images.json`, a map from reference (`name:tag`) to
//! the imported image, written atomically (temp file, fsync, rename).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::imported::ImportedImage;

/// A stored image as the reference file records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Manifest digest.
    pub manifest: String,
    /// Config digest.
    pub config: String,
    /// (layer blob, diff ID) pairs, bottom first.
    pub layers: Vec<(String, String)>,
    /// Total size of the layer blobs in bytes.
    pub size: u64,
}

impl ImageRecord {
    /// The record of an image imported into `store`. Its size is that of
    /// its unpacked layers when they are unpacked under `root` (what
    /// Docker shows), else that of its layer blobs.
    pub fn of(store: &crate::ContentStore, i: &ImportedImage) -> Self {
        let root = store.root();
        let diffs: Vec<crate::Digest> = i.layers.iter().map(|(_, d)| d.clone()).collect();
        let unpacked: Option<u64> = crate::snapshot::chain_ids(&diffs)
            .iter()
            .map(|c| {
                crate::snapshot::content_size(&root.join("snapshots").join(c.hex()).join("fs"))
            })
            .sum();
        let size = unpacked.unwrap_or_else(|| {
            i.layers
                .iter()
                .map(|(b, _)| {
                    std::fs::metadata(store.path(b))
                        .map(|m| m.len())
                        .unwrap_or(0)
                })
                .sum()
        });
        Self::from_import(i, size)
    }

    /// The record of an imported image of `size` bytes.
    pub fn from_import(i: &ImportedImage, size: u64) -> Self {
        ImageRecord {
            manifest: i.manifest.to_string(),
            config: i.config.to_string(),
            layers: i
                .layers
                .iter()
                .map(|(b, d)| (b.to_string(), d.to_string()))
                .collect(),
            size,
        }
    }

    /// Back to the digests the snapshot code uses.
    pub fn to_import(&self, name: Option<String>) -> Option<ImportedImage> {
        Some(ImportedImage {
            name,
            manifest: self.manifest.parse().ok()?,
            config: self.config.parse().ok()?,
            layers: self
                .layers
                .iter()
                .map(|(b, d)| Some((b.parse::<Digest>().ok()?, d.parse::<Digest>().ok()?)))
                .collect::<Option<_>>()?,
        })
    }
}

/// The reference file of a store root.
pub struct Refs {
    path: PathBuf,
}

impl Refs {
    /// The references under `root`.
    pub fn new(root: &Path) -> Self {
        Refs {
            path: root.join("images.json"),
        }
    }

    /// The references file (`<root>/images.json`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All references.
    pub fn load(&self) -> std::io::Result<BTreeMap<String, ImageRecord>> {
        match std::fs::read(&self.path) {
            Ok(d) => serde_json::from_slice(&d).map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e),
        }
    }

    /// Reads, changes and writes the references under an exclusive lock,
    /// so concurrent commands (two pulls) do not lose each other's names.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, ImageRecord>) -> T,
    ) -> std::io::Result<T> {
        let lock_path = self.path.with_extension("lock");
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| std::io::Error::from(e))?;
        let mut refs = self.load()?;
        let out = change(&mut refs);
        self.save(&refs)?;
        Ok(out)
    }

    /// Replaces all references, atomically.
    pub fn save(&self, refs: &BTreeMap<String, ImageRecord>) -> std::io::Result<()> {
        let tmp = self.path.with_extension(format!(
            "tmp{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(refs).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

/// `name` with `:latest` added when it has no tag (Docker's rule).
pub fn normalize(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// The first 12 hex digits of an image's config digest: its short id.
pub fn short_id(config: &str) -> String {
    config
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect()
}

/// The image `name` names in `refs`: by its reference (`:latest` added
/// when untagged), by a short name under any registry (`localhost/x:1` for
/// `x:1`, when only one matches) or by a prefix of its id (4 digits at
/// least). Returns its reference and record.
pub fn find<'a>(
    refs: &'a BTreeMap<String, ImageRecord>,
    name: &str,
) -> Option<(String, &'a ImageRecord)> {
    let n = normalize(name);
    if let Some(r) = refs.get(&n) {
        return Some((n, r));
    }
    let mut suffix = refs.iter().filter(|(k, _)| k.ends_with(&format!("/{n}")));
    if let (Some((k, r)), None) = (suffix.next(), suffix.next()) {
        return Some((k.clone(), r));
    }
    let id = name.trim_start_matches("sha256:");
    refs.iter()
        .find(|(_, r)| r.config.trim_start_matches("sha256:").starts_with(id) && id.len() >= 4)
        .map(|(k, r)| (k.clone(), r))
}

/// The config (JSON) of image `rec`, read from `store`.
pub fn read_config(
    store: &crate::ContentStore,
    rec: &ImageRecord,
) -> std::io::Result<serde_json::Value> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let d: Digest = rec.config.parse().map_err(|_| {
        bad(format!(
            "images.json: config {:?} is not a digest",
            rec.config
        ))
    })?;
    let data = std::fs::read(store.path(&d))?;
    serde_json::from_slice(&data).map_err(|e| bad(format!("config {d} is not JSON: {e}")))
}

/// Docker's `image inspect` JSON of image `key` (its record `rec`), its
/// other names from `refs`.
pub fn inspect_json(
    store: &crate::ContentStore,
    refs: &BTreeMap<String, ImageRecord>,
    key: &str,
    rec: &ImageRecord,
) -> std::io::Result<serde_json::Value> {
    let config = read_config(store, rec)?;
    // A dangling image's `<none>:ID` is no tag (as dockerd shows it).
    let tags: Vec<&String> = refs
        .iter()
        .filter(|(k, r)| r.config == rec.config && !k.starts_with("<none>"))
        .map(|(k, _)| k)
        .collect();
    let repo = key.rsplit_once(':').map(|(r, _)| r).unwrap_or(key);
    let digests: Vec<String> = if key.starts_with("<none>") {
        vec![]
    } else {
        vec![format!("{repo}@{}", rec.manifest)]
    };
    Ok(serde_json::json!({
        "Id": rec.config,
        "RepoTags": tags,
        "RepoDigests": digests,
        "Created": config["created"],
        "Author": config["author"].as_str().unwrap_or(""),
        "Comment": config["history"].as_array().and_then(|h| h.last()).and_then(|h| h["comment"].as_str()).unwrap_or(""),
        "Architecture": config["architecture"],
        "Os": config["os"],
        "Config": config["config"],
        "Size": rec.size,
        "RootFS": {"Type": "layers", "Layers": rec.layers.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>()},
    }))
}
