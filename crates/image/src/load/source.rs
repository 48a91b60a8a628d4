//! Where the images' files come from: a directory's files, or a tar file's
//! members read in place at the offsets one pass over its headers found
//! (nothing is extracted). Member names that could leave the source (`..`,
//! absolute paths, links pointing out of an archive) are refused.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use super::error::LoadError;

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
pub(super) fn clean(source: &dyn Source, name: &str) -> Result<PathBuf, LoadError> {
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
pub(super) enum TarMember {
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
pub(super) fn clean_path(name: &str) -> Result<PathBuf, ()> {
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
pub(super) struct Section<'a> {
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
