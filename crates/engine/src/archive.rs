//! A container's files as tar streams: `export` (its whole root) and `cp`
//! out of it (one path), and `cp` into it.
//!
//! Reading walks by descriptor inside the container's root: the starting
//! path is opened with `openat2(RESOLVE_IN_ROOT)`, every entry below with
//! `openat(O_NOFOLLOW)`, `fstatat(AT_SYMLINK_NOFOLLOW)` and `readlinkat`,
//! so neither an image's symlinks nor a running container swapping a
//! directory for one can lead the walk to the host's files. Symlinks are
//! archived as links. Writing goes through the image unpacker, which keeps
//! every entry inside the destination directory.
//!
//! A stopped container's root is mounted for the copy and unmounted after
//! (without its id mapping, so ids are as the disk keeps them; a running
//! remapped container is refused).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};

use crate::error::EngineError;
use crate::run::Engine;
use crate::store::Store;

/// How `cp` into a container treats what is there and who owns what it
/// writes. The default is `docker cp`'s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyInOptions {
    /// An entry may replace a directory with a non-directory or the
    /// reverse (the API's `noOverwriteDirNonDir=false`).
    pub overwrite_dir_non_dir: bool,
    /// Every entry is owned by the container's user, not as the archive
    /// says (`copyUIDGID`, `docker cp -a`).
    pub as_container_user: bool,
}

/// How deep a copied tree may nest.
const MAX_DEPTH: usize = 256;

/// The most a `cp` into a container may unpack (as for an image layer).
const MAX_COPY_IN: u64 = 64 << 30;

fn io_err(op: &'static str, path: &Path, e: impl Into<std::io::Error>) -> EngineError {
    EngineError::Io {
        op,
        path: path.to_path_buf(),
        err: e.into(),
    }
}

/// Adds `name` (in directory `dir`) and what is below it to `out` as
/// `tar_name`.
fn add_entry<W: Write>(
    out: &mut tar::Builder<W>,
    dir: RawFd,
    name: &std::ffi::CStr,
    tar_name: &Path,
    depth: usize,
) -> Result<(), EngineError> {
    if depth > MAX_DEPTH {
        return Err(io_err(
            "copy (nested too deep)",
            tar_name,
            std::io::Error::other("depth"),
        ));
    }
    let st = fstatat(Some(dir), name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(|e| io_err("stat", tar_name, e))?;
    let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    let tar_err = |e: std::io::Error| io_err("write the archive at", tar_name, e);
    match kind {
        SFlag::S_IFDIR => {
            h.set_entry_type(tar::EntryType::Directory);
            if !tar_name.as_os_str().is_empty() {
                out.append_data(&mut h, tar_name, std::io::empty())
                    .map_err(tar_err)?;
            }
            let sub = nix::dir::Dir::openat(
                Some(dir),
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_err("open", tar_name, e))?;
            let fd = sub.as_raw_fd();
            let mut names = vec![];
            let mut listing = nix::dir::Dir::from_fd(
                nix::unistd::dup(fd).map_err(|e| io_err("dup", tar_name, e))?,
            )
            .map_err(|e| io_err("read", tar_name, e))?;
            for e in listing.iter().flatten() {
                let n = e.file_name().to_owned();
                if n.as_bytes() != b"." && n.as_bytes() != b".." {
                    names.push(n);
                }
            }
            names.sort();
            for n in names {
                let child = tar_name.join(std::ffi::OsStr::from_bytes(n.as_bytes()));
                add_entry(out, fd, &n, &child, depth + 1)?;
            }
        }
        SFlag::S_IFREG => {
            let fd = nix::fcntl::openat(
                Some(dir),
                name,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_err("open", tar_name, e))?;
            // SAFETY: a fresh descriptor from openat.
            let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(st.st_size as u64);
            // Exactly the size in the header, even if the file changes meanwhile.
            let data = file
                .take(st.st_size as u64)
                .chain(std::io::repeat(0))
                .take(st.st_size as u64);
            out.append_data(&mut h, tar_name, data).map_err(tar_err)?;
        }
        SFlag::S_IFLNK => {
            let target = nix::fcntl::readlinkat(Some(dir), name)
                .map_err(|e| io_err("readlink", tar_name, e))?;
            h.set_entry_type(tar::EntryType::Symlink);
            out.append_link(&mut h, tar_name, Path::new(&target))
                .map_err(tar_err)?;
        }
        SFlag::S_IFCHR | SFlag::S_IFBLK => {
            h.set_entry_type(if kind == SFlag::S_IFCHR {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            });
            h.set_device_major(libc::major(st.st_rdev))
                .map_err(tar_err)?;
            h.set_device_minor(libc::minor(st.st_rdev))
                .map_err(tar_err)?;
            out.append_data(&mut h, tar_name, std::io::empty())
                .map_err(tar_err)?;
        }
        SFlag::S_IFIFO => {
            h.set_entry_type(tar::EntryType::Fifo);
            out.append_data(&mut h, tar_name, std::io::empty())
                .map_err(tar_err)?;
        }
        // Sockets cannot be archived: skipped, as tar skips them.
        _ => {}
    }
    Ok(())
}

/// What a path in a container is (`docker cp`'s stat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    /// Its last component ("/" for the root).
    pub name: String,
    /// Its size in bytes.
    pub size: i64,
    /// Its `st_mode` (type and permission bits).
    pub mode: u32,
    /// Its modification time (Unix seconds).
    pub mtime: i64,
    /// Where it points, for a symlink.
    pub link_target: String,
}

impl PathStat {
    /// The mode as Go's `os.FileMode` (what the docker CLI reads): the
    /// permission bits, setuid/setgid/sticky and the type as Go's flags.
    pub fn go_mode(&self) -> u32 {
        let mut m = self.mode & 0o777;
        if self.mode & libc::S_ISUID != 0 {
            m |= 1 << 23;
        }
        if self.mode & libc::S_ISGID != 0 {
            m |= 1 << 22;
        }
        if self.mode & libc::S_ISVTX != 0 {
            m |= 1 << 20;
        }
        m | match self.mode & libc::S_IFMT {
            libc::S_IFDIR => 1 << 31,
            libc::S_IFLNK => 1 << 27,
            libc::S_IFIFO => 1 << 25,
            libc::S_IFSOCK => 1 << 24,
            libc::S_IFBLK => 1 << 26,
            libc::S_IFCHR => (1 << 26) | (1 << 21),
            _ => 0,
        }
    }
}

impl Engine {
    /// Runs `with` on container `key`'s mounted root; a stopped
    /// container's root is mounted for it and unmounted after.
    fn with_root<T>(
        &self,
        key: &str,
        with: impl FnOnce(&Path) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let db = Store::open(&self.root)?;
        let rec = db.find(key)?;
        let dir = crate::rootfs::container_dir(&self.root, &rec.id)?;
        let rootfs = dir.join("rootfs");
        if rec.is_running() {
            if crate::restart::ContainerSettings::parse(&rec.config)
                .id_mappings
                .is_some()
            {
                // Its root shows host ids through the mapping, and the
                // host's root cannot write there.
                return Err(EngineError::NotImplemented(
                    "cp and export of a running container with a user namespace of its own (stop it first)",
                ));
            }
            return with(&rootfs);
        }
        let _lock = crate::run::teardown_lock(&self.root, &rec.id)?
            .ok_or_else(|| EngineError::NoSuchContainer(key.to_string()))?;
        let lowers: Vec<PathBuf> = std::fs::read(dir.join("bundle").join("lowers.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| EngineError::BadImage {
                name: rec.image.clone(),
                reason: format!("container {} was never set up completely", rec.name),
            })?;
        crate::rootfs::remount_rootfs(&self.root, &rec.id, &lowers)?;
        let result = with(&rootfs);
        crate::rootfs::unmount_rootfs(&self.root, &rec.id)?;
        result
    }

    /// `export`: container `key`'s whole root as a tar stream into `out`.
    pub fn export(&self, key: &str, out: impl Write) -> Result<(), EngineError> {
        self.with_root(key, |rootfs| {
            let root = std::fs::File::open(rootfs).map_err(|e| io_err("open", rootfs, e))?;
            let mut tar = tar::Builder::new(out);
            add_entry(&mut tar, root.as_raw_fd(), c".", Path::new(""), 0)?;
            tar.finish()
                .map_err(|e| io_err("write the archive of", rootfs, e))
        })
    }

    /// `cp CONTAINER:PATH -`: `path` (resolved inside the container's
    /// root, its last component not followed) as a tar stream named by its
    /// last component.
    pub fn copy_out(&self, key: &str, path: &str, out: impl Write) -> Result<(), EngineError> {
        self.with_root(key, |rootfs| {
            let root = std::fs::File::open(rootfs).map_err(|e| io_err("open", rootfs, e))?;
            let rel = berth_fs::relative(Path::new(path));
            let (parent, name) = match (rel.parent(), rel.file_name()) {
                (Some(p), Some(n)) => (p.to_path_buf(), n.to_owned()),
                _ => (PathBuf::new(), std::ffi::OsString::from(".")),
            };
            let dir = berth_fs::open_in_root(
                root.as_raw_fd(),
                &parent,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                0,
            )
            .map_err(|e| io_err("open in the container", Path::new(path), e))?;
            let cname = std::ffi::CString::new(name.as_bytes()).map_err(|_| {
                io_err(
                    "open",
                    Path::new(path),
                    std::io::Error::other("NUL in path"),
                )
            })?;
            let tar_name = if name == "." {
                PathBuf::from(".")
            } else {
                PathBuf::from(&name)
            };
            let mut tar = tar::Builder::new(out);
            add_entry(&mut tar, dir.as_raw_fd(), &cname, &tar_name, 0)?;
            tar.finish()
                .map_err(|e| io_err("write the archive of", Path::new(path), e))
        })
    }

    /// What `path` is in container `key` (resolved inside its root, its
    /// last component not followed); None when nothing is there.
    pub fn stat_in(&self, key: &str, path: &str) -> Result<Option<PathStat>, EngineError> {
        self.with_root(key, |rootfs| {
            let root = std::fs::File::open(rootfs).map_err(|e| io_err("open", rootfs, e))?;
            let rel = berth_fs::relative(Path::new(path));
            let (parent, name) = match (rel.parent(), rel.file_name()) {
                (Some(p), Some(n)) => (p.to_path_buf(), n.to_owned()),
                _ => (PathBuf::new(), std::ffi::OsString::from(".")),
            };
            let dir = match berth_fs::open_in_root(
                root.as_raw_fd(),
                &parent,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                0,
            ) {
                Ok(d) => d,
                Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => return Ok(None),
                Err(e) => return Err(io_err("open in the container", Path::new(path), e)),
            };
            let st = match fstatat(
                Some(dir.as_raw_fd()),
                name.as_os_str(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(st) => st,
                Err(nix::errno::Errno::ENOENT) => return Ok(None),
                Err(e) => return Err(io_err("stat in the container", Path::new(path), e)),
            };
            let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            let link_target = if kind == SFlag::S_IFLNK {
                nix::fcntl::readlinkat(Some(dir.as_raw_fd()), name.as_os_str())
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                String::new()
            };
            let shown = if name == "." {
                "/".into()
            } else {
                name.to_string_lossy().into_owned()
            };
            Ok(Some(PathStat {
                name: shown,
                size: st.st_size,
                mode: st.st_mode,
                mtime: st.st_mtime,
                link_target,
            }))
        })
    }

    /// Whether `path` is a directory in container `key` (resolved inside
    /// its root).
    pub fn is_dir_in(&self, key: &str, path: &str) -> Result<bool, EngineError> {
        self.with_root(key, |rootfs| {
            let root = std::fs::File::open(rootfs).map_err(|e| io_err("open", rootfs, e))?;
            Ok(berth_fs::open_in_root(
                root.as_raw_fd(),
                &berth_fs::relative(Path::new(path)),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                0,
            )
            .is_ok())
        })
    }

    /// `cp - CONTAINER:DIR`: unpacks the tar stream `input` into directory
    /// `dir` of container `key` (resolved inside its root), every entry
    /// kept inside that directory, under `opts`.
    pub fn copy_in(
        &self,
        key: &str,
        dir: &str,
        input: impl Read,
        opts: CopyInOptions,
    ) -> Result<(), EngineError> {
        let owner = if opts.as_container_user {
            self.process_owner(key)?
        } else {
            None
        };
        let rules = image::unpack::ApplyRules {
            keep_kinds: !opts.overwrite_dir_non_dir,
            owner,
            ..image::unpack::ApplyRules::COPY
        };
        self.with_root(key, |rootfs| {
            let root = std::fs::File::open(rootfs).map_err(|e| io_err("open", rootfs, e))?;
            let rel = berth_fs::relative(Path::new(dir));
            let target = berth_fs::open_in_root(
                root.as_raw_fd(),
                &rel,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                0,
            )
            .map_err(|e| io_err("open the destination directory", Path::new(dir), e))?;
            let through = PathBuf::from(format!("/proc/self/fd/{}", target.as_raw_fd()));
            image::unpack::apply(&through, input, MAX_COPY_IN, rules)
                .map(|_| ())
                .map_err(|e| match e {
                    image::unpack::UnpackError::Refused { entry, reason } => {
                        EngineError::CopyRefused {
                            path: Path::new(dir).join(entry),
                            reason,
                        }
                    }
                    e => EngineError::Io {
                        op: "copy into the container at",
                        path: PathBuf::from(dir),
                        err: std::io::Error::other(e.to_string()),
                    },
                })
        })
    }

    /// The user and group container `key`'s process runs as, when it is
    /// not root (`--user`, else the image's `USER`, as resolved at create).
    fn process_owner(&self, key: &str) -> Result<Option<(u32, u32)>, EngineError> {
        let rec = Store::open(&self.root)?.find(key)?;
        let config = crate::rootfs::container_dir(&self.root, &rec.id)?
            .join("bundle")
            .join("config.json");
        let spec = oci_spec::runtime::Spec::load(&config)
            .map_err(|e| EngineError::Spec(format!("{}: {e}", config.display())))?;
        Ok(spec
            .process()
            .as_ref()
            .map(|p| (p.user().uid(), p.user().gid()))
            .filter(|&ids| ids != (0, 0)))
    }
}
