//! Reading each layer member once, on its own thread: the one stream is
//! hashed, written to the blob store and unpacked into its snapshot at the
//! same time; the snapshot is renamed into place only after the blob digest
//! and the diff ID have both been checked.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::snapshot::{chain_ids, unpack_pending};
use crate::store::{ContentStore, StoreError, TempBlob};

use super::error::LoadError;
use super::plan::{layer_media_type, Plan};
use super::progress::LoadProgress;
use super::source::Source;

/// One layer member to read: into the store (when its blob is missing or
/// its digest unknown) and into snapshot `chain` (when that is missing).
pub(super) struct Job {
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
pub(super) fn jobs(
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
pub(super) fn is_plain_tar(source: &dyn Source, name: &str) -> bool {
    let Ok((mut r, _)) = source.open(name) else {
        return false;
    };
    let mut head = [0u8; 4];
    let n = r.read(&mut head).unwrap_or(0);
    n > 0 && layer_media_type(&head[..n]).ends_with(".tar")
}

/// Reads every job's member, on up to 8 threads; returns the blob digest
/// of each member read.
pub(super) fn run_jobs(
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
pub(super) enum Sink {
    Blob(TempBlob),
    Hash(sha2::Sha256),
}

/// The member's stream, copied to the sink and counted as it is read.
pub(super) struct Tee<'a, R> {
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
pub(super) fn run_job(
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
