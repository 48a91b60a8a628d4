//! The blob store: `<root>/blobs/sha256/<hex>`. A blob is streamed into a
//! private temp file beside its final place while it is hashed and counted;
//! only if digest (and size, when known) match is it fsynced and renamed
//! into place, so a reader never sees a partial or wrong blob, and an
//! interrupted write leaves only a temp file that the next ingest of any
//! blob may ignore. Two writers of the same blob both succeed: the rename
//! of identical content is atomic and idempotent.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use crate::digest::Digest;

/// Errors of the blob store, naming the blob or path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The content does not hash to the expected digest.
    #[error("blob {expected}: content has digest {actual}")]
    DigestMismatch {
        /// What the caller said it is.
        expected: Digest,
        /// What it is.
        actual: Digest,
    },
    /// The content is not the expected size.
    #[error("blob {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// Expected size.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
    /// The store root is not the caller's private directory.
    #[error("store root: {0}")]
    Root(#[from] berth_fs::PrivateDirError),
    /// A file operation failed.
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

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |err| StoreError::Io {
        op,
        path: path.to_path_buf(),
        err,
    }
}

/// A content-addressed blob store under a root directory.
#[derive(Debug, Clone)]
pub struct ContentStore {
    dir: PathBuf,
}

impl ContentStore {
    /// The store under `root` (`<root>/blobs/sha256`), created if missing.
    /// `root` is made the caller's private directory (0700, see
    /// [`berth_fs::private_dir`]): it holds unpacked images with setuid
    /// binaries and device nodes, and blobs of private images, that no
    /// other local user may reach.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        berth_fs::private_dir(root)?;
        let dir = root.join("blobs").join("sha256");
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        Ok(ContentStore { dir })
    }

    /// The store root this blob store lives under.
    pub fn root(&self) -> PathBuf {
        self.dir
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// Where blob `d` lives (whether or not it is there).
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join(d.hex())
    }

    /// Whether blob `d` is stored.
    pub fn contains(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// Opens blob `d` for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File, StoreError> {
        let p = self.path(d);
        File::open(&p).map_err(io_err("open", &p))
    }

    /// Writes `content`, which must have digest `expected` (and `size`
    /// bytes when given), and returns its path. Nothing is stored on a
    /// mismatch or an error.
    pub fn ingest(
        &self,
        expected: &Digest,
        size: Option<u64>,
        content: impl Read,
    ) -> Result<PathBuf, StoreError> {
        let mut blob = self.temp_blob()?;
        blob.copy_from(content)?;
        blob.finish(Some(expected), size)?;
        Ok(self.path(expected))
    }

    /// Writes `content` of unknown digest and returns the digest it has.
    pub fn ingest_unknown(&self, content: impl Read) -> Result<Digest, StoreError> {
        let mut blob = self.temp_blob()?;
        blob.copy_from(content)?;
        blob.finish(None, None)
    }

    /// Starts a blob whose digest is learnt from its content: a private
    /// temp file in the store that [`TempBlob::finish`] verifies and
    /// renames into place.
    pub fn temp_blob(&self) -> Result<TempBlob, StoreError> {
        let tmp = tempfile::Builder::new()
            .prefix(".ingest-")
            .tempfile_in(&self.dir)
            .map_err(io_err("create temp file in", &self.dir))?;
        let (file, path) = tmp.keep().map_err(|e| StoreError::Io {
            op: "keep temp file in",
            path: self.dir.clone(),
            err: e.error,
        })?;
        Ok(TempBlob {
            store: self.clone(),
            file: Some(io::BufWriter::with_capacity(256 * 1024, file)),
            path,
            hash: sha2::Sha256::new(),
            len: 0,
        })
    }

    /// Starts writing blob `d` from a stream that arrives in pieces (a
    /// download). Takes an exclusive lock on the digest first, waiting for
    /// another writer of the same blob (another pull) to finish; returns
    /// `None` when the blob is stored by then, so a blob two pulls want is
    /// fetched once. The partial content lives in `.ingest-<hex>`, which
    /// an interrupted writer leaves and the next one continues after.
    pub fn begin(&self, d: &Digest, size: Option<u64>) -> Result<Option<BlobWriter>, StoreError> {
        if self.contains(d) {
            return Ok(None);
        }
        let lock_path = self.dir.join(format!(".lock-{}", d.hex()));
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("create", &lock_path))?;
        let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).map_err(
            |(_, e)| StoreError::Io {
                op: "lock",
                path: lock_path.clone(),
                err: e.into(),
            },
        )?;
        if self.contains(d) {
            return Ok(None);
        }
        let path = self.dir.join(format!(".ingest-{}", d.hex()));
        // What an interrupted writer left is kept (and hashed again), so
        // the caller can resume after it; see `BlobWriter::offset`.
        let mut file = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(io_err("open", &path))?;
        let mut hash = sha2::Sha256::new();
        let mut len = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf).map_err(io_err("read", &path))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            len += n as u64;
        }
        let mut w = BlobWriter {
            store: self.clone(),
            digest: d.clone(),
            size,
            file: io::BufWriter::with_capacity(256 * 1024, file),
            path,
            lock_path,
            hash,
            len,
            _lock: lock,
        };
        if size.is_some_and(|s| len > s) {
            w.restart()?;
        }
        Ok(Some(w))
    }

    fn commit(&self, tmp: &Path, d: &Digest) -> Result<PathBuf, StoreError> {
        let dest = self.path(d);
        fs::rename(tmp, &dest).map_err(io_err("rename into", &dest))?;
        // Make the rename itself durable.
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(dest)
    }
}

/// A blob being written whose digest is not known yet (see
/// [`ContentStore::temp_blob`]). Dropped without [`TempBlob::finish`], its
/// temp file is removed and nothing is stored.
pub struct TempBlob {
    store: ContentStore,
    file: Option<io::BufWriter<File>>,
    path: PathBuf,
    hash: sha2::Sha256,
    len: u64,
}

impl TempBlob {
    /// Appends `data`.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.hash.update(data);
        self.len += data.len() as u64;
        match &mut self.file {
            Some(f) => f.write_all(data).map_err(io_err("write", &self.path)),
            None => Ok(()),
        }
    }

    /// Appends everything `content` yields.
    pub fn copy_from(&mut self, mut content: impl Read) -> Result<(), StoreError> {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match content.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    return Err(StoreError::Io {
                        op: "read content for",
                        path: self.path.clone(),
                        err,
                    })
                }
            };
            self.write(&buf[..n])?;
        }
    }

    /// The digest of what was written so far.
    pub fn digest(&self) -> Digest {
        Digest::from_hash(&self.hash.clone().finalize())
    }

    /// Checks the content against `expected` and `size` when given, then
    /// fsyncs it and renames it into place; returns its digest.
    pub fn finish(
        mut self,
        expected: Option<&Digest>,
        size: Option<u64>,
    ) -> Result<Digest, StoreError> {
        let actual = self.digest();
        if let Some(e) = expected.filter(|e| **e != actual) {
            return Err(StoreError::DigestMismatch {
                expected: e.clone(),
                actual,
            });
        }
        if let Some(s) = size.filter(|s| *s != self.len) {
            return Err(StoreError::SizeMismatch {
                digest: actual,
                expected: s,
                actual: self.len,
            });
        }
        let file = self.file.take().map(|f| f.into_inner());
        let file = match file {
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                return Err(StoreError::Io {
                    op: "flush",
                    path: self.path.clone(),
                    err: e.into_error(),
                })
            }
            None => unreachable!("a TempBlob is finished once"),
        };
        file.sync_all().map_err(io_err("fsync", &self.path))?;
        drop(file);
        self.store.commit(&self.path, &actual)?;
        Ok(actual)
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        // Not finished, or refused: the temp file goes (after a finish it
        // was renamed away and this finds nothing).
        let _ = fs::remove_file(&self.path);
    }
}

/// A blob being written piece by piece under its digest's lock (see
/// [`ContentStore::begin`]). Dropped without [`BlobWriter::commit`], it
/// stores nothing.
pub struct BlobWriter {
    store: ContentStore,
    digest: Digest,
    size: Option<u64>,
    file: io::BufWriter<File>,
    path: PathBuf,
    lock_path: PathBuf,
    hash: sha2::Sha256,
    len: u64,
    _lock: nix::fcntl::Flock<File>,
}

impl BlobWriter {
    /// The blob being written.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// How many bytes are already there (left by an interrupted writer):
    /// the offset to resume the download at.
    pub fn offset(&self) -> u64 {
        self.len
    }

    /// Drops what is there and starts the blob over (the source cannot
    /// resume).
    pub fn restart(&mut self) -> Result<(), StoreError> {
        self.file.flush().map_err(io_err("flush", &self.path))?;
        self.file
            .get_ref()
            .set_len(0)
            .map_err(io_err("truncate", &self.path))?;
        self.hash = sha2::Sha256::new();
        self.len = 0;
        Ok(())
    }

    /// Appends `data`; refuses to grow past the expected size.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.len += data.len() as u64;
        if let Some(expected) = self.size.filter(|s| self.len > *s) {
            return Err(StoreError::SizeMismatch {
                digest: self.digest.clone(),
                expected,
                actual: self.len,
            });
        }
        self.hash.update(data);
        self.file
            .write_all(data)
            .map_err(io_err("write", &self.path))
    }

    /// Gives the blob up: its partial content is removed, not kept for a
    /// resume (for content that is known to be wrong).
    pub fn discard(self) {
        let _ = fs::remove_file(&self.path);
        let _ = fs::remove_file(&self.lock_path);
    }

    /// Bytes free for blobs on the store's filesystem (for the unprivileged).
    pub fn free_bytes(&self) -> Option<u64> {
        let st = nix::sys::statvfs::statvfs(&self.path).ok()?;
        Some(st.blocks_available() as u64 * st.fragment_size() as u64)
    }

    /// Verifies digest and size, then makes the blob visible atomically.
    pub fn commit(self) -> Result<PathBuf, StoreError> {
        let actual = Digest::from_hash(&self.hash.clone().finalize());
        let check = if actual != self.digest {
            Err(StoreError::DigestMismatch {
                expected: self.digest.clone(),
                actual,
            })
        } else if self.size.is_some_and(|s| s != self.len) {
            Err(StoreError::SizeMismatch {
                digest: actual,
                expected: self.size.unwrap_or(0),
                actual: self.len,
            })
        } else {
            Ok(())
        };
        if let Err(e) = check {
            let _ = fs::remove_file(&self.path);
            return Err(e);
        }
        let file = self.file.into_inner().map_err(|e| StoreError::Io {
            op: "flush",
            path: self.path.clone(),
            err: e.into_error(),
        })?;
        file.sync_all().map_err(io_err("fsync", &self.path))?;
        let dest = self.store.commit(&self.path, &self.digest)?;
        // Whoever waits on this lock finds the blob stored; newcomers
        // see it before they look for the lock.
        let _ = fs::remove_file(&self.lock_path);
        Ok(dest)
    }
}
