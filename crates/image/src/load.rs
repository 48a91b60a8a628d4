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

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use crate::digest::Digest;
use crate::layout::ImportedImage;
use crate::manifest::{is_index, select, Config, Index, Manifest, Platform};
use crate::snapshot::{chain_ids, unpack_pending, SnapshotError};
use crate::store::{ContentStore, StoreError, TempBlob};

/// Why images could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Neither an OCI layout nor a docker-archive.
    #[error(
        "{from}: neither an OCI image layout (index.json) nor a docker-archive (manifest.json)"
    )]
    Unknown {
        /// What was being loaded.
        from: String,
    },
    /// A member is missing, not a regular file, or outside the source.
    #[error("{from}: {name}: {reason}")]
    Member {
        /// What was being loaded.
        from: String,
        /// The member.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A JSON document is malformed or inconsistent.
    #[error("{what}: {reason}")]
    Invalid {
        /// Which document.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The tar holding the images is malformed.
    #[error("{from}: not a readable tar: {reason}")]
    Tar {
        /// The archive.
        from: String,
        /// What is wrong.
        reason: String,
    },
    /// A blob failed verification or could not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A layer failed to unpack or is not its diff ID.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Reading the source failed.
    #[error("{op} {path}: {err}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        err: io::Error,
    },
}

/// Where the images' files come from.
pub trait Source: Sync {
    /// The source as errors name it (a path).
    fn describe(&self) -> String;
    /// Whether member `name` exists.
    fn has(&self, name: &str) -> bool;
    /// Opens member `name` (a relative path inside the source); returns a
    /// reader of its content and its size.
    fn open(&self, name: &str) -> Result<(Box<dyn Read + Send + '_>, u64), LoadError>;
}

/// Refuses member names that could leave the source: absolute paths, `..`.
fn clean(source: &dyn Source, name: &str) -> Result<PathBuf, LoadError> {
    match clean_path(name) {
        Ok(p) if !name.starts_with('/') => Ok(p),
        _ => Err(LoadError::Member {
            from: source.describe(),
            name: name.to_string(),
            reason: "outside the source".into(),
        }),
    }
}

/// An OCI layout directory (the user's: read, never changed). Symlinks at
/// the members themselves are refused, not followed.
pub struct DirSource {
    dir: PathBuf,
}

impl DirSource {
    /// The layout in `dir`.
    pub fn new(dir: &Path) -> Self {
        DirSource {
            dir: dir.to_path_buf(),
        }
    }
}

impl Source for DirSource {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn has(&self, name: &str) -> bool {
        clean(self, name).is_ok_and(|p| self.dir.join(p).is_file())
    }

    fn open(&self, name: &str) -> Result<(Box<dyn Read + Send + '_>, u64), LoadError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.dir.join(clean(self, name)?);
        let member = |reason: String| LoadError::Member {
            from: self.describe(),
            name: name.to_string(),
            reason,
        };
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| member(e.to_string()))?;
        let meta = file.metadata().map_err(|e| member(e.to_string()))?;
        if !meta.is_file() {
            return Err(member("not a regular file".into()));
        }
        Ok((Box::new(file), meta.len()))
    }
}

/// A member of a tar file: where its data starts and how long it is, or
/// the member it links to.
#[derive(Debug, Clone)]
enum TarMember {
    Data {
        offset: u64,
        size: u64,
    },
    /// A symlink (target relative to the member's directory) or a hard
    /// link (target relative to the archive's root).
    Link {
        target: String,
        hard: bool,
    },
}

/// A tar file whose members are read in place (concurrently, with
/// pread), after one pass over its headers.
pub struct TarSource {
    file: File,
    path: PathBuf,
    members: HashMap<PathBuf, TarMember>,
}

impl TarSource {
    /// Indexes the tar at `path`, skipping over member data.
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let file = File::open(path).map_err(|err| LoadError::Io {
            op: "open",
            path: path.to_path_buf(),
            err,
        })?;
        Self::index(file, path)
    }

    /// Indexes the tar in `file` (named `path` in errors).
    pub fn index(file: File, path: &Path) -> Result<Self, LoadError> {
        let bad = |reason: String| LoadError::Tar {
            from: path.display().to_string(),
            reason,
        };
        let mut members = HashMap::new();
        let mut archive = tar::Archive::new(&file);
        for entry in archive
            .entries_with_seek()
            .map_err(|e| bad(e.to_string()))?
        {
            let entry = entry.map_err(|e| bad(e.to_string()))?;
            let raw = entry.path_bytes().into_owned();
            let name = String::from_utf8_lossy(&raw).into_owned();
            // Names that would leave the archive are not members (a
            // manifest naming them then finds nothing).
            let Ok(rel) = clean_path(&name) else { continue };
            let kind = entry.header().entry_type();
            let link = || {
                entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default()
            };
            let member = if kind.is_file() || kind == tar::EntryType::Continuous {
                TarMember::Data {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                }
            } else if kind.is_symlink() {
                TarMember::Link {
                    target: link(),
                    hard: false,
                }
            } else if kind.is_hard_link() {
                TarMember::Link {
                    target: link(),
                    hard: true,
                }
            } else {
                continue;
            };
            members.insert(rel, member);
        }
        Ok(TarSource {
            file,
            path: path.to_path_buf(),
            members,
        })
    }

    /// The data of member `rel`, following links inside the archive.
    fn resolve(&self, name: &str, rel: &Path) -> Result<(u64, u64), LoadError> {
        let member = |reason: &str| LoadError::Member {
            from: self.describe(),
            name: name.to_string(),
            reason: reason.to_string(),
        };
        let mut at = rel.to_path_buf();
        for _ in 0..16 {
            match self.members.get(&at) {
                None => return Err(member("not in the archive")),
                Some(TarMember::Data { offset, size }) => return Ok((*offset, *size)),
                Some(TarMember::Link { target, hard }) => {
                    let joined = if *hard || target.starts_with('/') {
                        PathBuf::from(target.trim_start_matches('/'))
                    } else {
                        at.parent().unwrap_or(Path::new("")).join(target)
                    };
                    // `..` may climb inside the archive, never out of it.
                    let mut next = PathBuf::new();
                    for c in joined.components() {
                        match c {
                            Component::Normal(n) => next.push(n),
                            Component::ParentDir if next.pop() => {}
                            Component::CurDir => {}
                            _ => return Err(member("links outside the archive")),
                        }
                    }
                    at = next;
                }
            }
        }
        Err(member("too many links"))
    }
}

/// `name` as a relative path with no `..`; `./` and a leading `/` dropped
/// (tar member names are relative to the archive either way).
fn clean_path(name: &str) -> Result<PathBuf, ()> {
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            _ => return Err(()),
        }
    }
    Ok(out)
}

/// `len` bytes of a file from `offset`, read with pread so that readers of
/// one file on several threads do not share a position.
struct Section<'a> {
    file: &'a File,
    offset: u64,
    left: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(self.left.try_into().unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.offset)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside a member",
            ));
        }
        self.offset += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

impl Source for TarSource {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn has(&self, name: &str) -> bool {
        clean(self, name).is_ok_and(|rel| self.resolve(name, &rel).is_ok())
    }

    fn open(&self, name: &str) -> Result<(Box<dyn Read + Send + '_>, u64), LoadError> {
        let rel = clean(self, name)?;
        let (offset, size) = self.resolve(name, &rel)?;
        let section = Section {
            file: &self.file,
            offset,
            left: size,
        };
        Ok((Box::new(section), size))
    }
}

/// How a load reports its layers: each is named by its blob digest (OCI)
/// or its diff ID (docker-archive, whose blob digests are learnt by
/// reading them).
pub trait LoadProgress: Sync {
    /// A layer of `size` bytes is about to be read.
    fn layer_started(&self, _layer: &Digest, _size: u64) {}
    /// `bytes` more of it were read.
    fn layer_read(&self, _layer: &Digest, _bytes: u64) {}
    /// It is stored and unpacked.
    fn layer_done(&self, _layer: &Digest) {}
}

/// No reporting.
impl LoadProgress for () {}

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

/// One image as the source describes it, before its layers are read.
struct Plan {
    name: Option<String>,
    /// The stored manifest; None for a docker-archive, which gets one
    /// written once the layer digests are known.
    manifest: Option<Digest>,
    config: Digest,
    config_size: u64,
    layers: Vec<PlannedLayer>,
}

struct PlannedLayer {
    member: String,
    /// The blob digest, when the manifest says it (OCI).
    blob: Option<Digest>,
    size: Option<u64>,
    diff: Digest,
}

fn parse<T: for<'de> serde::Deserialize<'de>>(what: &str, data: &[u8]) -> Result<T, LoadError> {
    serde_json::from_slice(data).map_err(|e| LoadError::Invalid {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

fn digest(what: &str, s: &str) -> Result<Digest, LoadError> {
    s.parse()
        .map_err(|e: crate::digest::DigestError| LoadError::Invalid {
            what: what.to_string(),
            reason: e.to_string(),
        })
}

/// Reads a small member (JSON) whole.
fn read_member(source: &dyn Source, name: &str) -> Result<Vec<u8>, LoadError> {
    let (mut r, size) = source.open(name)?;
    let mut data = Vec::with_capacity(size.min(1 << 20) as usize);
    r.read_to_end(&mut data).map_err(|e| LoadError::Member {
        from: source.describe(),
        name: name.to_string(),
        reason: e.to_string(),
    })?;
    Ok(data)
}

fn blob_member(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Stores the small blob `d` from an OCI layout (verified) and returns it.
fn take_blob(
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

fn plan_oci(
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
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn plan_docker(store: &ContentStore, source: &dyn Source) -> Result<Vec<Plan>, LoadError> {
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
fn layer_media_type(head: &[u8]) -> &'static str {
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
fn docker_manifest(
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

/// One layer member to read: into the store (when its blob is missing or
/// its digest unknown) and into snapshot `chain` (when that is missing).
struct Job {
    member: String,
    blob: Option<Digest>,
    size: Option<u64>,
    diff: Digest,
    /// The snapshot to unpack into.
    unpack: Option<PathBuf>,
}

impl Job {
    /// The layer's name in progress reports.
    fn label(&self) -> &Digest {
        self.blob.as_ref().unwrap_or(&self.diff)
    }
}

/// The reads the plans need, and the blob digests of docker-archive
/// layer members that need no read: an uncompressed layer is its own diff
/// ID, so when the store has that blob and its snapshot exists, the layer
/// is loaded already.
fn jobs(
    store: &ContentStore,
    source: &dyn Source,
    root: Option<&Path>,
    plans: &[Plan],
) -> (Vec<Job>, HashMap<String, Digest>) {
    let mut jobs: Vec<Job> = vec![];
    let mut known = HashMap::new();
    for plan in plans {
        let diffs: Vec<Digest> = plan.layers.iter().map(|l| l.diff.clone()).collect();
        for (l, chain) in plan.layers.iter().zip(chain_ids(&diffs)) {
            let unpack = root
                .map(|r| r.join("snapshots").join(chain.hex()))
                .filter(|d| !d.join("fs").is_dir());
            let have_blob = match &l.blob {
                Some(b) => store.contains(b),
                None if store.contains(&l.diff) && is_plain_tar(source, &l.member) => {
                    known.insert(l.member.clone(), l.diff.clone());
                    true
                }
                None => false,
            };
            if have_blob && unpack.is_none() {
                continue;
            }
            if let Some(j) = jobs.iter_mut().find(|j| j.member == l.member) {
                // Images of one archive share layers: one read serves them,
                // unless the same layer sits on two different chains.
                if unpack.is_none() || j.unpack == unpack {
                    continue;
                }
                if j.unpack.is_none() {
                    j.unpack = unpack;
                    continue;
                }
            }
            jobs.push(Job {
                member: l.member.clone(),
                blob: l.blob.clone(),
                size: l.size,
                diff: l.diff.clone(),
                unpack,
            });
        }
    }
    (jobs, known)
}

/// Whether member `name` starts as neither gzip nor zstd does.
fn is_plain_tar(source: &dyn Source, name: &str) -> bool {
    let Ok((mut r, _)) = source.open(name) else {
        return false;
    };
    let mut head = [0u8; 4];
    let n = r.read(&mut head).unwrap_or(0);
    n > 0 && layer_media_type(&head[..n]).ends_with(".tar")
}

/// Reads every job's member, on up to 8 threads; returns the blob digest
/// of each member read.
fn run_jobs(
    store: &ContentStore,
    source: &dyn Source,
    jobs: &[Job],
    progress: &dyn LoadProgress,
) -> Result<HashMap<String, Digest>, LoadError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(HashMap::new());
    let failed = std::sync::Mutex::new(None);
    let workers = jobs.len().min(8);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                    return;
                }
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { return };
                match run_job(store, source, job, progress) {
                    Ok(d) => {
                        progress.layer_done(job.label());
                        if let Ok(mut r) = results.lock() {
                            r.insert(job.member.clone(), d);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(results.into_inner().unwrap_or_default())
}

/// What a layer's bytes go to besides the unpacker: the store, or only a
/// hash when the store has the blob.
enum Sink {
    Blob(TempBlob),
    Hash(sha2::Sha256),
}

/// The member's stream, copied to the sink and counted as it is read.
struct Tee<'a, R> {
    inner: R,
    sink: Sink,
    error: Option<StoreError>,
    label: &'a Digest,
    progress: &'a dyn LoadProgress,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match &mut self.sink {
            Sink::Blob(b) => {
                if let Err(e) = b.write(&buf[..n]) {
                    let shown = io::Error::other(e.to_string());
                    self.error = Some(e);
                    return Err(shown);
                }
            }
            Sink::Hash(h) => sha2::Digest::update(h, &buf[..n]),
        }
        self.progress.layer_read(self.label, n as u64);
        Ok(n)
    }
}

/// Reads one layer member once: stores its blob (verified), unpacks it
/// (verified), and only then puts the snapshot in place.
fn run_job(
    store: &ContentStore,
    source: &dyn Source,
    job: &Job,
    progress: &dyn LoadProgress,
) -> Result<Digest, LoadError> {
    let (reader, size) = source.open(&job.member)?;
    progress.layer_started(job.label(), size);
    let have = job.blob.as_ref().is_some_and(|b| store.contains(b));
    let sink = if have {
        Sink::Hash(<sha2::Sha256 as sha2::Digest>::new())
    } else {
        Sink::Blob(store.temp_blob()?)
    };
    let mut tee = Tee {
        inner: io::BufReader::with_capacity(256 * 1024, reader),
        sink,
        error: None,
        label: job.label(),
        progress,
    };
    let pending = match &job.unpack {
        Some(dir) => match unpack_pending(dir, &mut tee, job.label(), &job.diff) {
            Ok(p) => Some(p),
            Err(e) => return Err(tee.error.take().map(LoadError::from).unwrap_or(e.into())),
        },
        None => None,
    };
    // What the unpacker did not need (tar padding after the end) is
    // part of the blob too.
    io::copy(&mut tee, &mut io::sink()).map_err(|err| {
        tee.error
            .take()
            .map(LoadError::from)
            .unwrap_or(LoadError::Member {
                from: source.describe(),
                name: job.member.clone(),
                reason: err.to_string(),
            })
    })?;
    let digest = match tee.sink {
        Sink::Blob(b) => b.finish(job.blob.as_ref(), job.size)?,
        Sink::Hash(h) => {
            let d = Digest::from_hash(&sha2::Digest::finalize(h));
            if let Some(e) = job.blob.as_ref().filter(|e| **e != d) {
                return Err(StoreError::DigestMismatch {
                    expected: e.clone(),
                    actual: d,
                }
                .into());
            }
            d
        }
    };
    if let Some(p) = pending {
        p.install()?;
    }
    Ok(digest)
}
