//! Flattening snapshot layers into one directory as overlayfs would show
//! them (whiteouts and opaque directories applied, metadata and extended
//! attributes kept): the copy strategy for stacks overlay cannot mount.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_fs::xattr;

use crate::snapshot::SnapshotError;

/// The read-only flattened copy of `lowers`, made once (in a temp directory
/// renamed into place, like a snapshot) beside the top layer.
pub(crate) fn flat_copy(lowers: &[PathBuf]) -> Result<PathBuf, SnapshotError> {
    use sha2::Digest as _;
    let top = lowers.last().expect("a copy of no layers has an upper");
    let parent = top.parent().unwrap_or(Path::new("/"));
    let mut h = sha2::Sha256::new();
    for l in lowers {
        h.update(l.as_os_str().as_bytes());
        h.update([0]);
    }
    let hex: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let flat = parent.join(format!("flat-{hex}"));
    if flat.is_dir() {
        return Ok(flat);
    }
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |err| SnapshotError::Io { op, path, err }
    };
    let tmp = tempfile::Builder::new()
        .prefix(".flatten-")
        .tempdir_in(parent)
        .map_err(io("create temp dir in", parent))?;
    flatten_layers(lowers, tmp.path())?;
    let kept = tmp.keep();
    match std::fs::rename(&kept, &flat) {
        Ok(()) => Ok(flat),
        // Another mount of the same stack made it first: use that one.
        Err(_) if flat.is_dir() => {
            let _ = std::fs::remove_dir_all(&kept);
            Ok(flat)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&kept);
            Err(io("rename into", &flat)(e))
        }
    }
}

/// Merges `lowers` (bottom first, in overlay's format) into `dest`, which is
/// created if missing: what overlayfs would show, as plain files. A 0:0
/// character device deletes what the layers below had at its path; a
/// directory with `trusted.overlay.opaque=y` hides what they had inside it.
/// Modes, owners, times (nanoseconds), symlinks, device nodes, fifos and
/// extended attributes (but `trusted.overlay.*`) are kept; hardlinks within
/// a layer stay hardlinks. A directory takes the metadata of the topmost
/// layer that has it, as in overlay.
pub fn flatten_layers(lowers: &[PathBuf], dest: &Path) -> Result<(), SnapshotError> {
    std::fs::create_dir_all(dest).map_err(|err| SnapshotError::Io {
        op: "create",
        path: dest.to_path_buf(),
        err,
    })?;
    let mut dir_times: HashMap<PathBuf, (libc::timespec, libc::timespec)> = HashMap::new();
    for lower in lowers {
        let meta = std::fs::symlink_metadata(lower).map_err(|err| SnapshotError::Io {
            op: "stat",
            path: lower.clone(),
            err,
        })?;
        let mut f = Flattener {
            lower,
            dest,
            links: HashMap::new(),
            dir_times: &mut dir_times,
        };
        f.copy_meta(Path::new(""), &meta, true)?;
        f.merge(Path::new(""))?;
    }
    // Directory times last, deepest first: filling them changed them.
    let mut dirs: Vec<_> = dir_times.into_iter().collect();
    dirs.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.components().count()));
    for (rel, (atime, mtime)) in dirs {
        let path = dest.join(&rel);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            set_times(&path, atime, mtime).map_err(|err| SnapshotError::Io {
                op: "set the times of",
                path,
                err,
            })?;
        }
    }
    Ok(())
}

/// One layer being merged into the flattened tree.
struct Flattener<'a> {
    lower: &'a Path,
    dest: &'a Path,
    /// (device, inode) of a multiply linked file of this layer -> its copy.
    links: HashMap<(u64, u64), PathBuf>,
    dir_times: &'a mut HashMap<PathBuf, (libc::timespec, libc::timespec)>,
}

impl Flattener<'_> {
    fn merge(&mut self, rel: &Path) -> Result<(), SnapshotError> {
        let src_dir = self.lower.join(rel);
        let entries = std::fs::read_dir(&src_dir).map_err(|err| SnapshotError::Io {
            op: "list",
            path: src_dir.clone(),
            err,
        })?;
        for entry in entries {
            let entry = entry.map_err(|err| SnapshotError::Io {
                op: "list",
                path: src_dir.clone(),
                err,
            })?;
            let r = rel.join(entry.file_name());
            let (src, dst) = (self.lower.join(&r), self.dest.join(&r));
            let io = |op: &'static str, path: &Path| {
                let path = path.to_path_buf();
                move |err| SnapshotError::Io { op, path, err }
            };
            // lstat: DirEntry::metadata never follows a symlink.
            let meta = entry.metadata().map_err(io("stat", &src))?;
            let ft = meta.file_type();
            let existing = std::fs::symlink_metadata(&dst).ok();
            if ft.is_char_device() && meta.rdev() == 0 {
                // A whiteout: what the layers below had here is gone.
                if let Some(m) = existing {
                    remove_any(&dst, &m).map_err(io("remove (whiteout)", &dst))?;
                }
                continue;
            }
            if ft.is_dir() {
                match existing {
                    Some(m) if m.is_dir() => {
                        if xattr::get(&src, c"trusted.overlay.opaque")
                            .map_err(io("read the opaque marker of", &src))?
                            .as_deref()
                            == Some(b"y")
                        {
                            clear_dir(&dst).map_err(io("clear (opaque directory)", &dst))?;
                        }
                    }
                    Some(m) => {
                        remove_any(&dst, &m).map_err(io("remove", &dst))?;
                        std::fs::create_dir(&dst).map_err(io("create", &dst))?;
                    }
                    None => std::fs::create_dir(&dst).map_err(io("create", &dst))?,
                }
                self.copy_meta(&r, &meta, true)?;
                self.merge(&r)?;
                continue;
            }
            if let Some(m) = existing {
                remove_any(&dst, &m).map_err(io("remove", &dst))?;
            }
            if ft.is_file() {
                let key = (meta.dev(), meta.ino());
                if meta.nlink() > 1 {
                    if let Some(first) = self.links.get(&key) {
                        std::fs::hard_link(self.dest.join(first), &dst)
                            .map_err(io("link", &dst))?;
                        continue;
                    }
                    self.links.insert(key, r.clone());
                }
                std::fs::copy(&src, &dst).map_err(io("copy", &dst))?;
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&src).map_err(io("read link", &src))?;
                std::os::unix::fs::symlink(&target, &dst).map_err(io("symlink", &dst))?;
            } else {
                // Device nodes, fifos and sockets: the same node.
                let c = cpath(&dst).map_err(io("create", &dst))?;
                // SAFETY: a valid C string; mknod creates a node and follows nothing.
                if unsafe {
                    libc::mknod(
                        c.as_ptr(),
                        (meta.mode() & libc::S_IFMT) | 0o600,
                        meta.rdev(),
                    )
                } != 0
                {
                    return Err(io("create node", &dst)(std::io::Error::last_os_error()));
                }
            }
            self.copy_meta(&r, &meta, false)?;
        }
        Ok(())
    }

    /// Owner, then mode (chown clears setuid), then extended attributes
    /// (chown clears file capabilities), then times (directories' later).
    fn copy_meta(
        &mut self,
        rel: &Path,
        meta: &std::fs::Metadata,
        dir: bool,
    ) -> Result<(), SnapshotError> {
        let (src, dst) = (self.lower.join(rel), self.dest.join(rel));
        let io = |op: &'static str| {
            let path = dst.clone();
            move |err| SnapshotError::Io { op, path, err }
        };
        std::os::unix::fs::lchown(&dst, Some(meta.uid()), Some(meta.gid()))
            .map_err(io("set the owner of"))?;
        let symlink = meta.file_type().is_symlink();
        if !symlink {
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(io("set the mode of"))?;
        }
        let names =
            xattr::list(&src).map_err(io("list the extended attributes of the source of"))?;
        if dir {
            // An earlier layer's directory may have had attributes this one has not.
            for old in xattr::list(&dst).map_err(io("list the extended attributes of"))? {
                if !names.contains(&old) {
                    xattr::remove(&dst, &old).map_err(io("remove an extended attribute of"))?;
                }
            }
        }
        for name in &names {
            if name.as_bytes().starts_with(b"trusted.overlay.") {
                continue;
            }
            if let Some(value) =
                xattr::get(&src, name).map_err(io("read an extended attribute for"))?
            {
                xattr::set(&dst, name, &value)
                    .map(drop)
                    .map_err(io("set an extended attribute of"))?;
            }
        }
        let times = (
            libc::timespec {
                tv_sec: meta.atime() as libc::time_t,
                tv_nsec: meta.atime_nsec() as _,
            },
            libc::timespec {
                tv_sec: meta.mtime() as libc::time_t,
                tv_nsec: meta.mtime_nsec() as _,
            },
        );
        if dir {
            self.dir_times.insert(rel.to_path_buf(), times);
        } else {
            set_times(&dst, times.0, times.1).map_err(io("set the times of"))?;
        }
        Ok(())
    }
}

fn cpath(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| std::io::ErrorKind::InvalidInput.into())
}

fn remove_any(path: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
    if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

fn clear_dir(dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        remove_any(&e.path(), &e.metadata()?)?;
    }
    Ok(())
}

fn set_times(path: &Path, atime: libc::timespec, mtime: libc::timespec) -> std::io::Result<()> {
    let c = cpath(path)?;
    let times = [atime, mtime];
    // SAFETY: a valid C string and two timespecs; the link itself, never its target.
    if unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
