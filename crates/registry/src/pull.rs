//! `pull`: fetch an image's manifest (choosing the platform from an index
//! or manifest list), then its config and layers, concurrently, each
//! verified into the content store under its digest; unpack the layers
//! into snapshots (in parallel), and name the image. A blob already in
//! the store is not fetched, and a blob another pull is fetching is
//! waited for, not fetched twice. Until the name is written at the very
//! end there is no image, so an interrupted pull leaves none, only
//! verified blobs (or a partial download the next pull resumes with a
//! Range request, verifying the whole blob as before).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use image::layout::ImportedImage;
use image::manifest::{self, Config, Index, Manifest, Platform};
use image::refs::{normalize, ImageRecord, Refs};
use image::{ContentStore, Digest};
use oci_client::client::BlobResponse;
use oci_client::manifest::OciDescriptor;
use oci_client::{Reference, RegistryOperation};

use crate::auth::AuthFile;
use crate::connect::{parse_reference, Connection, RegistryError};
use crate::progress::{short, Progress};
use crate::sources::Sources;

/// The largest image config accepted (it is read into memory whole).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// How to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// The platform to pick from a multi-platform image (default
    /// linux/amd64); when given, a single-platform image must match it.
    pub platform: Option<Platform>,
    /// Allow plain HTTP to a registry that is not on loopback.
    pub insecure: bool,
    /// Where stored credentials are.
    pub auth_file: Option<PathBuf>,
    /// How many blobs to download at once (0: 4).
    pub concurrency: usize,
}

/// What a pull produced.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The name the image is stored under (`127.0.0.1:5000/x:latest`).
    pub name: String,
    /// The digest of what the reference points at in the registry (the
    /// index for multi-platform images).
    pub digest: String,
    /// The image.
    pub image: ImportedImage,
    /// Whether the name now points at another image than before (a new
    /// name, or a newer image): Docker's "Downloaded newer image" against
    /// "Image is up to date".
    pub downloaded: bool,
}

fn content(what: impl Into<String>, reason: impl std::fmt::Display) -> RegistryError {
    RegistryError::Content {
        what: what.into(),
        reason: reason.to_string(),
    }
}

fn parse_json<T: for<'de> serde::Deserialize<'de>>(
    what: &str,
    data: &[u8],
) -> Result<T, RegistryError> {
    serde_json::from_slice(data).map_err(|e| content(what, e))
}

fn parse_digest(what: &str, s: &str) -> Result<Digest, RegistryError> {
    s.parse().map_err(|e| content(what, e))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Fetches the manifest `reference` names and stores it; returns its bytes and digest.
async fn fetch_manifest(
    conn: &Connection,
    store: &ContentStore,
    reference: &Reference,
) -> Result<(Vec<u8>, Digest), RegistryError> {
    let (data, claimed) =
        crate::manifest_fetch::fetch(conn, reference, &manifest::ACCEPTED).await?;
    let actual = Digest::of(&data);
    let expected = match reference.digest() {
        Some(d) => Some(d.to_string()),
        None if !claimed.is_empty() => Some(claimed),
        None => None,
    };
    if let Some(expected) = expected {
        if expected != actual.to_string() {
            return Err(content(
                format!("manifest {}", reference.whole()),
                format!("content has digest {actual}, the registry says {expected}"),
            ));
        }
    }
    store.ingest(&actual, Some(data.len() as u64), &data[..])?;
    Ok((data.to_vec(), actual))
}

/// Fetches one blob into the store unless it is there; true when downloaded.
async fn fetch_blob(
    conn: &Connection,
    store: &ContentStore,
    reference: &Reference,
    desc: &manifest::Descriptor,
    progress: &Arc<dyn Progress>,
) -> Result<bool, RegistryError> {
    let id = short(&desc.digest);
    let digest = parse_digest(&format!("blob {}", desc.digest), &desc.digest)?;
    let size = desc.size;
    let writer = {
        let store = store.clone();
        let digest = digest.clone();
        blocking(move || store.begin(&digest, Some(size))).await?
    };
    let Some(mut writer) = writer else {
        progress.done(&id, "Already exists");
        return Ok(false);
    };
    // A registry may declare any size: the store must have room for it.
    if let Some(free) = writer.free_bytes() {
        let needed = size.saturating_sub(writer.offset());
        if needed > free {
            writer.discard();
            return Err(content(
                format!("blob {}", desc.digest),
                format!("the registry declares {size} bytes; the store has only {free} bytes free"),
            ));
        }
    }
    let oci_desc = OciDescriptor {
        media_type: desc.media_type.clone(),
        digest: desc.digest.clone(),
        size: size as i64,
        ..Default::default()
    };
    let what = || format!("pull blob {} of {}", desc.digest, reference.whole());
    let proto = |e| RegistryError::protocol(what(), &conn.registry, e);
    let offset = writer.offset();
    let mut stream = if offset > 0 && offset < size {
        // An interrupted pull left the first `offset` bytes: ask for the rest.
        match conn
            .chunked
            .pull_blob_stream_partial(reference, &oci_desc, offset, None)
            .await
            .map_err(proto)?
        {
            BlobResponse::Partial(s) => {
                progress.start(&id, "Resuming", Some(size));
                progress.advance(&id, offset);
                s
            }
            BlobResponse::Full(s) => {
                writer.restart()?;
                progress.start(&id, "Downloading", Some(size));
                s
            }
        }
    } else {
        if offset > 0 {
            writer.restart()?;
        }
        progress.start(&id, "Downloading", Some(size));
        conn.chunked
            .pull_blob_stream(reference, &oci_desc)
            .await
            .map_err(proto)?
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RegistryError::Protocol {
            what: what(),
            source: e.into(),
        })?;
        if let Err(e) = writer.write(&chunk) {
            // More than the descriptor declares: wrong content, not worth resuming.
            if matches!(e, image::StoreError::SizeMismatch { .. }) {
                writer.discard();
            }
            return Err(e.into());
        }
        progress.advance(&id, chunk.len() as u64);
    }
    blocking(move || writer.commit()).await?;
    progress.done(&id, "Download complete");
    Ok(true)
}

/// Pulls `reference` into the store under `root`.
pub async fn pull(
    root: &Path,
    reference: &str,
    opts: &PullOptions,
    progress: Arc<dyn Progress>,
) -> Result<Pulled, RegistryError> {
    let r = parse_reference(reference)?;
    let auth_file = opts.auth_file.as_deref().map(AuthFile::new);
    let conn = Connection::new(&r, opts.insecure, auth_file.as_ref())?;
    let store = ContentStore::open(root)?;
    conn.authorize(&r, RegistryOperation::Pull).await?;
    progress.message(&format!(
        "{}: Pulling from {}",
        r.tag().or(r.digest()).unwrap_or("latest"),
        r.repository()
    ));

    let (mut data, top) = fetch_manifest(&conn, &store, &r).await?;
    let mut manifest_digest = top.clone();
    let media_type = manifest::media_type_of(&data);
    if manifest::is_index(&media_type) {
        let index: Index = parse_json(&format!("index {top}"), &data)?;
        let want = opts.platform.clone().unwrap_or_else(Platform::linux_amd64);
        let desc = manifest::select(&index, &want).ok_or_else(|| RegistryError::Platform {
            reference: r.whole(),
            platform: want.to_string(),
            available: index
                .manifests
                .iter()
                .filter_map(|m| m.platform.as_ref().map(|p| p.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        // The index's digest goes into a request URL: only a real digest does.
        let chosen = parse_digest(&format!("index {top} entry"), &desc.digest)?;
        let by_digest = r.clone_with_digest(chosen.to_string());
        (data, manifest_digest) = fetch_manifest(&conn, &store, &by_digest).await?;
    } else if media_type.starts_with("application/vnd.docker.distribution.manifest.v1") {
        return Err(content(
            format!("manifest {}", r.whole()),
            "Docker schema1 manifests are not supported (deprecated since 2017)",
        ));
    }
    let m: Manifest = parse_json(&format!("manifest {manifest_digest}"), &data)?;

    if m.config.size > MAX_CONFIG_BYTES {
        return Err(content(
            format!("config {}", m.config.digest),
            format!(
                "declared {} bytes; an image config may have at most {MAX_CONFIG_BYTES}",
                m.config.size
            ),
        ));
    }
    let silent: Arc<dyn Progress> = Arc::new(crate::progress::Silent);
    fetch_blob(&conn, &store, &r, &m.config, &silent).await?;
    let config_digest = parse_digest("config", &m.config.digest)?;
    let config_bytes =
        std::fs::read(store.path(&config_digest)).map_err(|err| RegistryError::Io {
            op: "read",
            path: store.path(&config_digest).display().to_string(),
            err,
        })?;
    let config: Config = parse_json(&format!("config {config_digest}"), &config_bytes)?;
    if let Some(want) = &opts.platform {
        let have = Platform {
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            variant: config.variant.clone(),
        };
        if !want.matches(&have) {
            return Err(RegistryError::Platform {
                reference: r.whole(),
                platform: want.to_string(),
                available: have.to_string(),
            });
        }
    }
    if config.rootfs.diff_ids.len() != m.layers.len() {
        return Err(content(
            format!("config {config_digest}"),
            format!(
                "{} diff_ids for {} layers",
                config.rootfs.diff_ids.len(),
                m.layers.len()
            ),
        ));
    }
    let mut layers = vec![];
    for (l, diff) in m.layers.iter().zip(&config.rootfs.diff_ids) {
        if !l.media_type.is_empty()
            && !l.media_type.contains("tar")
            && !l.media_type.contains("layer")
        {
            return Err(content(
                format!("layer {}", l.digest),
                format!("media type {:?} is not an image layer", l.media_type),
            ));
        }
        layers.push((
            parse_digest("layer", &l.digest)?,
            parse_digest(&format!("config {config_digest} diff_id"), diff)?,
        ));
    }
    let img = ImportedImage {
        name: Some(normalize(reference)),
        manifest: manifest_digest,
        config: config_digest,
        layers,
    };

    // Each layer is unpacked as soon as its blob is in (and verified),
    // while the other layers are still downloading.
    let concurrency = if opts.concurrency == 0 {
        4
    } else {
        opts.concurrency
    };
    let diffs: Vec<Digest> = img.layers.iter().map(|(_, d)| d.clone()).collect();
    let chains = image::snapshot::chain_ids(&diffs);
    let _fetched: Vec<bool> =
        futures_util::stream::iter(m.layers.iter().zip(&img.layers).zip(chains))
            .map(|((desc, (blob, diff)), chain)| {
                let (conn, store, r, progress) = (&conn, &store, &r, &progress);
                async move {
                    let fresh = fetch_blob(conn, store, r, desc, progress).await?;
                    let id = short(&desc.digest);
                    if fresh {
                        progress.done(&id, "Extracting");
                    }
                    let (store, root, blob, diff) = (
                        store.clone(),
                        root.to_path_buf(),
                        blob.clone(),
                        diff.clone(),
                    );
                    blocking(move || {
                        image::snapshot::prepare_layer(&store, &root, &chain, &blob, &diff)
                    })
                    .await?;
                    if fresh {
                        progress.done(&id, "Pull complete");
                    }
                    Ok::<_, RegistryError>(fresh)
                }
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;

    let name = normalize(reference);
    let record = ImageRecord::of(&store, &img);
    let refs = Refs::new(root);
    let manifest = record.manifest.clone();
    let before = {
        let name = name.clone();
        blocking(move || refs.update(|map| map.insert(name, record)))
            .await
            .map_err(|err| RegistryError::Io {
                op: "update",
                path: root.join("images.json").display().to_string(),
                err,
            })?
    };
    let repo = format!("{}/{}", r.registry(), r.repository());
    let mut blobs: Vec<String> = m.layers.iter().map(|l| l.digest.clone()).collect();
    blobs.push(m.config.digest.clone());
    Sources::new(root).record(&repo, blobs.iter().map(String::as_str));
    Ok(Pulled {
        name,
        digest: top.to_string(),
        image: img,
        downloaded: before.is_none_or(|old| old.manifest != manifest),
    })
}
