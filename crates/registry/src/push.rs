//! `push`: send a stored image to a registry exactly as stored (the
//! manifest's bytes are not re-serialised, so its digest is the same on
//! both sides). For each blob: skip it when the repository has it, mount
//! it from another repository of the same registry that is known to hold
//! it, else upload it — in one request when small, in chunks when large.
//! The manifest goes last, once every blob it names is there.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use image::layout::ImportedImage;
use image::{ContentStore, Digest};
use oci_client::{Reference, RegistryOperation};

use crate::auth::AuthFile;
use crate::connect::{parse_reference, Connection, RegistryError};
use crate::progress::{short, Progress};
use crate::sources::Sources;

/// Blobs up to this size go up in one request; larger ones in chunks.
pub const MONOLITHIC_MAX: u64 = 8 << 20;

/// Size of the chunks a large blob is read and sent in.
const CHUNK: usize = 4 << 20;

/// How to push.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Allow plain HTTP to a registry that is not on loopback.
    pub insecure: bool,
    /// Where stored credentials are.
    pub auth_file: Option<PathBuf>,
    /// How many blobs to upload at once (0: 4).
    pub concurrency: usize,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The manifest digest in the registry.
    pub digest: Digest,
    /// The manifest's size.
    pub size: u64,
    /// The tag pushed.
    pub tag: String,
}

/// How one blob got to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    Existed,
    Mounted(String),
    Uploaded,
}

async fn send_blob(
    conn: &Connection,
    store: &ContentStore,
    target: &Reference,
    digest: &Digest,
    sources: &[String],
    progress: &Arc<dyn Progress>,
) -> Result<Sent, RegistryError> {
    let d = digest.to_string();
    let what = || format!("push blob {d} to {}", target.whole());
    let proto = |e| RegistryError::protocol(what(), &conn.registry, e);
    if conn.chunked.blob_exists(target, &d).await.map_err(proto)? {
        return Ok(Sent::Existed);
    }
    let here = format!("{}/{}", target.registry(), target.repository());
    for source in sources {
        let Some(repo) = source.strip_prefix(&format!("{}/", target.registry())) else {
            continue;
        };
        if source == &here {
            continue;
        }
        let from = Reference::with_tag(
            target.registry().to_string(),
            repo.to_string(),
            "latest".to_string(),
        );
        // A registry that cannot mount starts an upload instead; then upload.
        if conn.chunked.mount_blob(target, &from, &d).await.is_ok()
            && conn.chunked.blob_exists(target, &d).await.unwrap_or(false)
        {
            return Ok(Sent::Mounted(repo.to_string()));
        }
    }
    let path = store.path(digest);
    let io = |err| RegistryError::Io {
        op: "read",
        path: path.display().to_string(),
        err,
    };
    let size = std::fs::metadata(&path).map_err(io)?.len();
    let id = short(&d);
    progress.start(&id, "Pushing", Some(size));
    if size <= MONOLITHIC_MAX {
        let data = tokio::fs::read(&path).await.map_err(io)?;
        conn.monolithic
            .push_blob(target, data, &d)
            .await
            .map_err(proto)?;
        progress.advance(&id, size);
    } else {
        let file = tokio::fs::File::open(&path).await.map_err(io)?;
        let p = progress.clone();
        let chunk_id = id.clone();
        let chunks = futures_util::stream::try_unfold(file, |mut file| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                let n = file.read(&mut buf[filled..]).await?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                return Ok(None);
            }
            buf.truncate(filled);
            Ok(Some((bytes::Bytes::from(buf), file)))
        })
        .map_err(oci_client::errors::OciDistributionError::IoError)
        .inspect_ok(move |b| p.advance(&chunk_id, b.len() as u64));
        conn.chunked
            .push_blob_stream(target, chunks, &d, Some(size))
            .await
            .map_err(proto)?;
    }
    Ok(Sent::Uploaded)
}

/// Pushes the stored `image` to `destination` (`registry/repo:tag`).
pub async fn push(
    root: &Path,
    image: &ImportedImage,
    destination: &str,
    opts: &PushOptions,
    progress: Arc<dyn Progress>,
) -> Result<Pushed, RegistryError> {
    let target = parse_reference(destination)?;
    if target.digest().is_some() {
        return Err(RegistryError::Reference {
            reference: destination.to_string(),
            reason: "push needs a tag, not a digest".into(),
        });
    }
    let auth_file = opts.auth_file.as_deref().map(AuthFile::new);
    let conn = Connection::new(&target, opts.insecure, auth_file.as_ref())?;
    let store = ContentStore::open(root)?;
    conn.authorize(&target, RegistryOperation::Push).await?;
    progress.message(&format!(
        "The push refers to repository [{}/{}]",
        target.registry(),
        target.repository()
    ));
    let known = Sources::new(root);
    let mut blobs: Vec<Digest> = image.layers.iter().map(|(b, _)| b.clone()).collect();
    blobs.push(image.config.clone());
    for b in &blobs {
        if !store.contains(b) {
            return Err(RegistryError::Content {
                what: format!("blob {b}"),
                reason: "not in the store (the image is incomplete; pull or load it again)".into(),
            });
        }
    }
    let concurrency = if opts.concurrency == 0 {
        4
    } else {
        opts.concurrency
    };
    futures_util::stream::iter(blobs.iter())
        .map(|b| {
            let conn = &conn;
            let store = &store;
            let target = &target;
            let progress = &progress;
            let sources = known.of(&b.to_string());
            async move {
                let sent = send_blob(conn, store, target, b, &sources, progress).await?;
                let id = short(&b.to_string());
                match sent {
                    Sent::Existed => progress.done(&id, "Layer already exists"),
                    Sent::Mounted(from) => progress.done(&id, &format!("Mounted from {from}")),
                    Sent::Uploaded => progress.done(&id, "Pushed"),
                }
                Ok::<_, RegistryError>(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;

    let manifest_path = store.path(&image.manifest);
    let data = std::fs::read(&manifest_path).map_err(|err| RegistryError::Io {
        op: "read",
        path: manifest_path.display().to_string(),
        err,
    })?;
    let media_type = image::manifest::media_type_of(&data);
    let content_type = media_type.parse().map_err(|_| RegistryError::Content {
        what: format!("manifest {}", image.manifest),
        reason: format!("media type {media_type:?} is not a valid header value"),
    })?;
    let size = data.len() as u64;
    conn.chunked
        .push_manifest_raw(&target, data, content_type)
        .await
        .map_err(|e| {
            RegistryError::protocol(
                format!("push manifest {}", target.whole()),
                &conn.registry,
                e,
            )
        })?;
    let repo = format!("{}/{}", target.registry(), target.repository());
    let names: Vec<String> = blobs.iter().map(|b| b.to_string()).collect();
    known.record(&repo, names.iter().map(String::as_str));
    Ok(Pushed {
        digest: image.manifest.clone(),
        size,
        tag: target.tag().unwrap_or("latest").to_string(),
    })
}
