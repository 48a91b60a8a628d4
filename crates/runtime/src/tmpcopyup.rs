//! `tmpcopyup` (runc's and crun's mount extension, which Podman adds to
//! the tmpfs mounts of `--read-only` and `--tmpfs`): a new tmpfs over a
//! directory of the image starts with a copy of what that directory held.
//!
//! The directory is opened before the tmpfs covers it; the descriptor
//! still reaches the covered content, so no temporary mount point is
//! needed. The copy walks both trees by descriptor, one `*at` call per
//! entry, never following a symlink (symlinks are copied as links), and
//! keeps owners, modes (setuid bits included), times, extended attributes
//! and hard links. Devices, FIFOs and sockets are recreated with mknod.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

use crate::error::{Result, RuntimeError};

/// How deep the copied tree may nest (as a tar reader would refuse more).
const MAX_DEPTH: usize = 256;

/// The source and destination of one copy, for errors and hard links.
struct Copy {
    /// Hard links already copied: (dev, ino) of the source → the copy's
    /// O_PATH descriptor, so a second name links to it.
    links: HashMap<(u64, u64), OwnedFd>,
    /// The mount destination, for error messages.
    dest: PathBuf,
}

/// Opens the directory that a tmpfs is about to cover, for [`copy_into`].
/// `target` is the O_PATH descriptor of the mount point.
pub fn open_covered(target: &OwnedFd, dest: &Path) -> Result<OwnedFd> {
    open_dir_at(target.as_raw_fd(), ".", dest)
}

/// Copies everything in `from` (the covered directory) into `to` (the new
/// tmpfs's root), and gives the root the covered directory's owner.
pub fn copy_into(from: &OwnedFd, to: &OwnedFd, dest: &Path) -> Result<()> {
    let mut c = Copy {
        links: HashMap::new(),
        dest: dest.to_path_buf(),
    };
    let st = nix::sys::stat::fstat(from.as_raw_fd()).map_err(|e| c.err("stat", "", e))?;
    c.copy_dir(from, to, Path::new(""), 0)?;
    nix::unistd::fchown(
        to.as_raw_fd(),
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    )
    .map_err(|e| c.err("chown", "", e))
}

fn open_dir_at(dir: RawFd, name: impl AsRef<OsStr>, dest: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::openat(
        Some(dir),
        name.as_ref(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RuntimeError::sys("tmpcopyup: open", dest.display(), e))?;
    // SAFETY: a fresh descriptor from openat.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn times(st: &FileStat) -> (TimeSpec, TimeSpec) {
    (
        TimeSpec::new(st.st_atime, st.st_atime_nsec),
        TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
    )
}

impl Copy {
    fn err(&self, op: &'static str, rel: impl AsRef<Path>, e: Errno) -> RuntimeError {
        RuntimeError::sys(
            op,
            format!("tmpcopyup {}", self.dest.join(rel.as_ref()).display()),
            e,
        )
    }

    fn copy_dir(&mut self, from: &OwnedFd, to: &OwnedFd, rel: &Path, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(self.err("copy", rel, Errno::ELOOP));
        }
        // Dir takes ownership of a descriptor: give it its own.
        let listing = nix::unistd::dup(from.as_raw_fd()).map_err(|e| self.err("dup", rel, e))?;
        let mut dir = Dir::from_fd(listing).map_err(|e| self.err("read directory", rel, e))?;
        let mut names = vec![];
        for entry in dir.iter() {
            let entry = entry.map_err(|e| self.err("read directory", rel, e))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(CString::new(name).expect("directory entries hold no NUL"));
            }
        }
        for name in names {
            let child = rel.join(OsStr::from_bytes(name.as_bytes()));
            self.copy_entry(from, to, &name, &child, depth)?;
        }
        Ok(())
    }

    fn copy_entry(
        &mut self,
        from: &OwnedFd,
        to: &OwnedFd,
        name: &CString,
        rel: &Path,
        depth: usize,
    ) -> Result<()> {
        let (src, dst) = (from.as_raw_fd(), to.as_raw_fd());
        let st = nix::sys::stat::fstatat(Some(src), name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| self.err("stat", rel, e))?;
        let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
        let perm = Mode::from_bits_truncate(st.st_mode & 0o7777);
        let key = (st.st_dev, st.st_ino);
        if kind != SFlag::S_IFDIR && st.st_nlink > 1 {
            if let Some(first) = self.links.get(&key) {
                // The first copy's /proc/self/fd link names its inode.
                let path = format!("/proc/self/fd/{}", first.as_raw_fd());
                return nix::unistd::linkat(
                    None,
                    Path::new(&path),
                    Some(dst),
                    Path::new(OsStr::from_bytes(name.as_bytes())),
                    AtFlags::AT_SYMLINK_FOLLOW,
                )
                .map_err(|e| self.err("link", rel, e));
            }
        }
        match kind {
            SFlag::S_IFDIR => {
                nix::sys::stat::mkdirat(Some(dst), name.as_c_str(), Mode::S_IRWXU)
                    .map_err(|e| self.err("mkdir", rel, e))?;
                let sub_from = open_dir_at(src, OsStr::from_bytes(name.as_bytes()), &self.dest)?;
                let sub_to = open_dir_at(dst, OsStr::from_bytes(name.as_bytes()), &self.dest)?;
                self.copy_dir(&sub_from, &sub_to, rel, depth + 1)?;
                self.finish(src, dst, name, &st, Some(perm), rel)
            }
            SFlag::S_IFREG => {
                let mut r = std::fs::File::from(self.open_at(
                    src,
                    name,
                    OFlag::O_RDONLY,
                    Mode::empty(),
                    rel,
                )?);
                let mut w = std::fs::File::from(self.open_at(
                    dst,
                    name,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                    Mode::S_IRUSR | Mode::S_IWUSR,
                    rel,
                )?);
                std::io::copy(&mut r, &mut w).map_err(|e| {
                    self.err("copy", rel, Errno::from_raw(e.raw_os_error().unwrap_or(0)))
                })?;
                drop((r, w));
                self.finish(src, dst, name, &st, Some(perm), rel)?;
                self.remember_link(key, &st, dst, name, rel)
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(Some(src), name.as_c_str())
                    .map_err(|e| self.err("readlink", rel, e))?;
                nix::unistd::symlinkat(target.as_os_str(), Some(dst), name.as_c_str())
                    .map_err(|e| self.err("symlink", rel, e))?;
                self.finish(src, dst, name, &st, None, rel)?;
                self.remember_link(key, &st, dst, name, rel)
            }
            _ => {
                nix::sys::stat::mknodat(
                    Some(dst),
                    name.as_c_str(),
                    kind,
                    Mode::S_IRUSR | Mode::S_IWUSR,
                    st.st_rdev,
                )
                .map_err(|e| self.err("mknod", rel, e))?;
                self.finish(src, dst, name, &st, Some(perm), rel)?;
                self.remember_link(key, &st, dst, name, rel)
            }
        }
    }

    fn open_at(
        &self,
        dir: RawFd,
        name: &CString,
        flags: OFlag,
        mode: Mode,
        rel: &Path,
    ) -> Result<OwnedFd> {
        let fd = nix::fcntl::openat(
            Some(dir),
            name.as_c_str(),
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            mode,
        )
        .map_err(|e| self.err("open", rel, e))?;
        // SAFETY: a fresh descriptor from openat.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Keeps an O_PATH descriptor of a copy whose source has more names.
    fn remember_link(
        &mut self,
        key: (u64, u64),
        st: &FileStat,
        dst: RawFd,
        name: &CString,
        rel: &Path,
    ) -> Result<()> {
        if st.st_nlink > 1 {
            let fd = self.open_at(dst, name, OFlag::O_PATH, Mode::empty(), rel)?;
            self.links.insert(key, fd);
        }
        Ok(())
    }

    /// Owner, then mode (a chown clears setuid bits; a symlink has none),
    /// xattrs and times of the copy `name` in `dst`, by name, never followed.
    fn finish(
        &self,
        src: RawFd,
        dst: RawFd,
        name: &CString,
        st: &FileStat,
        perm: Option<Mode>,
        rel: &Path,
    ) -> Result<()> {
        nix::unistd::fchownat(
            Some(dst),
            name.as_c_str(),
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.err("chown", rel, e))?;
        if let Some(perm) = perm {
            nix::sys::stat::fchmodat(
                Some(dst),
                name.as_c_str(),
                perm,
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| self.err("chmod", rel, e))?;
        }
        let n = OsStr::from_bytes(name.as_bytes());
        let from = Path::new(&format!("/proc/self/fd/{src}")).join(n);
        let to = Path::new(&format!("/proc/self/fd/{dst}")).join(n);
        self.copy_xattrs(&from, &to, rel)?;
        let (atime, mtime) = times(st);
        nix::sys::stat::utimensat(
            Some(dst),
            name.as_c_str(),
            &atime,
            &mtime,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| self.err("set times", rel, e))
    }

    /// Copies every extended attribute; the paths are a name under a
    /// directory's fd link, so the final name is never followed.
    fn copy_xattrs(&self, from: &Path, to: &Path, rel: &Path) -> Result<()> {
        let io = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
        let names = berth_fs::xattr::list(from).map_err(|e| self.err("list xattrs", rel, io(e)))?;
        for n in names {
            if let Some(v) =
                berth_fs::xattr::get(from, &n).map_err(|e| self.err("get xattr", rel, io(e)))?
            {
                berth_fs::xattr::set(to, &n, &v).map_err(|e| self.err("set xattr", rel, io(e)))?;
            }
        }
        Ok(())
    }
}
