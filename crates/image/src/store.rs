//! The blob store: `<root>/blobs/sha256/<hex>`. A blob is streamed into a
//! private temp file beside its final place while it is hashed and counted;
//! only if digest (and size, when known) match is it fsynced and renamed
//! into place, so a reader never sees a partial or wrong blob, and an
//! interrupted write leaves only a temp file that the next ingest of any
//! blob may ignore. Two writers of the same blob both succeed: the rename
//! of identical content is atomic and idempotent.

use std::fs::{self, File};
use std::io::{self, Read, Write};
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
    pub fn open(root: &Path) -> Result<Self, StoreError> {
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
        let (tmp, actual, len) = self.write_temp(content)?;
        let check = if &actual != expected {
            Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
            })
        } else if size.is_some_and(|s| s != len) {
            Err(StoreError::SizeMismatch {
                digest: actual,
                expected: size.unwrap_or(0),
                actual: len,
            })
        } else {
            Ok(())
        };
        if let Err(e) = check {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.commit(&tmp, expected)
    }

    /// Takes the regular file at `path` into the store by renaming it
    /// (no copy) after hashing it: it must have digest `expected` (and
    /// `size` bytes) when given. For files the store's caller owns and
    /// that live on the store's filesystem (an archive unpacked under the
    /// root); falls back to copying across filesystems. Symlinks are
    /// refused, never followed.
    pub fn adopt(
        &self,
        path: &Path,
        expected: Option<&Digest>,
        size: Option<u64>,
    ) -> Result<Digest, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(io_err("open", path))?;
        let meta = file.metadata().map_err(io_err("stat", path))?;
        if !meta.is_file() {
            return Err(StoreError::Io {
                op: "take (not a regular file)",
                path: path.to_path_buf(),
                err: io::Error::from(io::ErrorKind::InvalidInput),
            });
        }
        let mut hash = sha2::Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut len = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(io_err("read", path))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            len += n as u64;
        }
        let actual = Digest::from_hash(&hash.finalize());
        if let Some(e) = expected.filter(|e| **e != actual) {
            return Err(StoreError::DigestMismatch {
                expected: e.clone(),
                actual,
            });
        }
        if let Some(s) = size.filter(|s| *s != len) {
            return Err(StoreError::SizeMismatch {
                digest: actual,
                expected: s,
                actual: len,
            });
        }
        if self.contains(&actual) {
            return Ok(actual);
        }
        file.sync_all().map_err(io_err("fsync", path))?;
        match fs::rename(path, self.path(&actual)) {
            Ok(()) => {
                if let Ok(dir) = File::open(&self.dir) {
                    let _ = dir.sync_all();
                }
                Ok(actual)
            }
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                drop(file);
                let f = File::open(path).map_err(io_err("open", path))?;
                self.ingest(&actual, Some(len), f)?;
                Ok(actual)
            }
            Err(e) => Err(StoreError::Io {
                op: "rename into the store",
                path: path.to_path_buf(),
                err: e,
            }),
        }
    }

    /// Writes `content` of unknown digest and returns the digest it has.
    pub fn ingest_unknown(&self, content: impl Read) -> Result<Digest, StoreError> {
        let (tmp, digest, _) = self.write_temp(content)?;
        self.commit(&tmp, &digest)?;
        Ok(digest)
    }

    /// Streams into a temp file, hashing; returns (temp path, digest, length).
    fn write_temp(&self, mut content: impl Read) -> Result<(PathBuf, Digest, u64), StoreError> {
        let tmp = tempfile::Builder::new()
            .prefix(".ingest-")
            .tempfile_in(&self.dir)
            .map_err(io_err("create temp file in", &self.dir))?;
        let (mut file, path) = tmp.keep().map_err(|e| StoreError::Io {
            op: "keep temp file in",
            path: self.dir.clone(),
            err: e.error,
        })?;
        let result = (|| {
            let mut hash = sha2::Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut len = 0u64;
            loop {
                let n = match content.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(StoreError::Io {
                            op: "read content for",
                            path: path.clone(),
                            err: e,
                        })
                    }
                };
                hash.update(&buf[..n]);
                file.write_all(&buf[..n]).map_err(io_err("write", &path))?;
                len += n as u64;
            }
            file.sync_all().map_err(io_err("fsync", &path))?;
            Ok((Digest::from_hash(&hash.finalize()), len))
        })();
        match result {
            Ok((d, len)) => Ok((path, d, len)),
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(e)
            }
        }
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
