//! Applying one layer (a tar stream, plain, gzip or zstd, told apart by
//! their magic bytes) to its own snapshot directory, in overlay's format: a
//! whiteout `.wh.NAME` becomes a 0:0 character device NAME, an opaque marker
//! `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr on its directory.
//!
//! Extended attributes come from PAX `SCHILY.xattr.NAME` records and are set
//! on the entry itself (never through a symlink), after its owner, since
//! chown drops `security.capability`. A layer may not carry
//! `trusted.overlay.*` attributes: overlay metadata is only ever written by
//! the unpacker itself, from the whiteout conventions. PAX `uid`, `gid` and
//! `mtime` records override the header's fields.
//!
//! Nothing is written outside the snapshot: absolute names and `..` are
//! refused; every parent is resolved with openat2(RESOLVE_IN_ROOT), so a
//! symlink in the layer (absolute or relative) stays inside; the last
//! component is created without following links; a hardlink's target must
//! already be inside the snapshot. A size limit stops decompression bombs.

mod entry;

use entry::{
    create_replacing, make_directory, mkdir_all, open_dir_in_root, set_metadata, set_metadata_fd,
    set_opaque, set_time, set_xattr,
};

use std::ffi::CString;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// An entry that would write outside the snapshot, or is malformed.
    #[error("layer entry {entry:?}: {reason}")]
    Refused {
        /// The entry's name in the tar stream.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// The stream is not a valid (compressed) tar archive.
    #[error("layer stream: {0}")]
    Format(String),
    /// The layer is larger than allowed once decompressed.
    #[error("layer larger than the limit of {limit} bytes once decompressed")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// An extended attribute from the layer could not be set.
    #[error("layer entry {entry:?}: set extended attribute {name}: {err}")]
    Xattr {
        /// The entry's name in the tar stream.
        entry: String,
        /// The attribute's name.
        name: String,
        /// The error.
        err: io::Error,
    },
    /// A file operation failed.
    #[error("{op} {path}: {err}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// Path inside the snapshot.
        path: String,
        /// The error.
        err: io::Error,
    },
}

/// Counts of what a layer held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerStats {
    /// Entries applied.
    pub entries: u64,
    /// Whiteouts written.
    pub whiteouts: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Extended attributes set from PAX records.
    pub xattrs: u64,
    /// Digest of the uncompressed tar stream (the layer's diff ID).
    pub diff_id: crate::Digest,
}

/// The entry's name as a relative path without `.` components; refuses
/// absolute names and `..`.
fn clean_name(raw: &[u8]) -> Result<PathBuf, String> {
    let p = Path::new(std::ffi::OsStr::from_bytes(raw));
    if p.is_absolute() {
        return Err("absolute path".into());
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err("\"..\" component".into()),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
        }
    }
    Ok(out)
}

/// Counts and hashes what is read, and stops past a limit.
struct Limited<R> {
    inner: R,
    left: u64,
    limit: u64,
    hash: sha2::Sha256,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::other(format!("too large: limit {}", self.limit)));
        }
        self.left -= n as u64;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// The magic bytes that open a zstd frame.
pub(crate) const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// What a layer's PAX records say beyond what the tar crate applies itself.
#[derive(Default)]
struct Pax {
    xattrs: Vec<(CString, Vec<u8>)>,
    uid: Option<u32>,
    gid: Option<u32>,
    mtime: Option<u64>,
}

/// Reads the entry's PAX records (if it has any): xattrs, uid, gid, mtime.
fn read_pax<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Pax, String> {
    let mut pax = Pax::default();
    let Some(exts) = entry
        .pax_extensions()
        .map_err(|e| format!("PAX header: {e}"))?
    else {
        return Ok(pax);
    };
    let number = |v: &[u8]| -> Option<u64> {
        let s = std::str::from_utf8(v).ok()?;
        // mtime may carry a fraction ("1700000000.5"); only whole seconds are kept.
        s.split('.').next()?.parse().ok()
    };
    for ext in exts {
        let ext = ext.map_err(|e| format!("PAX header: {e}"))?;
        match ext.key_bytes() {
            b"uid" => pax.uid = number(ext.value_bytes()).and_then(|n| u32::try_from(n).ok()),
            b"gid" => pax.gid = number(ext.value_bytes()).and_then(|n| u32::try_from(n).ok()),
            b"mtime" => pax.mtime = number(ext.value_bytes()),
            key => {
                let Some(name) = key.strip_prefix(b"SCHILY.xattr.") else {
                    continue;
                };
                let shown = String::from_utf8_lossy(name);
                if name.starts_with(b"trusted.overlay.") {
                    return Err(format!(
                        "extended attribute {shown}: a layer may not set overlay metadata"
                    ));
                }
                let name = CString::new(name)
                    .map_err(|_| format!("extended attribute {shown}: NUL in name"))?;
                pax.xattrs.push((name, ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(pax)
}

/// How a tar stream is applied: as an image layer ([`ApplyRules::LAYER`])
/// or as files copied in (`cp`, [`ApplyRules::COPY`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyRules {
    /// `.wh.NAME` entries are whiteouts (a layer) rather than plain names.
    pub whiteouts: bool,
    /// An entry may not replace a directory with something else, nor
    /// something else with a directory (`docker cp`'s
    /// `noOverwriteDirNonDir`).
    pub keep_kinds: bool,
    /// The owner every entry gets instead of the archive's (`docker cp
    /// -a` into a container that runs as a user).
    pub owner: Option<(u32, u32)>,
}

impl ApplyRules {
    /// An image layer: whiteouts, and entries replace what is there.
    pub const LAYER: ApplyRules = ApplyRules {
        whiteouts: true,
        keep_kinds: false,
        owner: None,
    };
    /// Files copied in, as `docker cp` sends them: names are names, and a
    /// directory and a non-directory do not replace each other.
    pub const COPY: ApplyRules = ApplyRules {
        whiteouts: false,
        keep_kinds: true,
        owner: None,
    };
}

/// Applies the layer in `stream` (gzip or zstd detected by their magic) to
/// `dir`, reading at most `max_bytes` of decompressed tar.
pub fn apply_layer(
    dir: &Path,
    stream: impl Read,
    max_bytes: u64,
) -> Result<LayerStats, UnpackError> {
    apply(dir, stream, max_bytes, ApplyRules::LAYER)
}

/// [`apply_layer`] under `rules`.
pub fn apply(
    dir: &Path,
    stream: impl Read,
    max_bytes: u64,
    rules: ApplyRules,
) -> Result<LayerStats, UnpackError> {
    let mut buffered = BufReader::new(stream);
    let head = buffered
        .fill_buf()
        .map_err(|e| UnpackError::Format(e.to_string()))?;
    let reader: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(buffered))
    } else if head.starts_with(&ZSTD_MAGIC) {
        // Streaming: memory is bounded by the frame's window (the decoder's
        // default cap is 128 MiB), whatever the layer's size.
        Box::new(
            zstd::stream::read::Decoder::with_buffer(buffered)
                .map_err(|e| UnpackError::Format(format!("zstd: {e}")))?,
        )
    } else {
        Box::new(buffered)
    };
    let limited = Limited {
        inner: reader,
        left: max_bytes,
        limit: max_bytes,
        hash: <sha2::Sha256 as sha2::Digest>::new(),
    };
    std::fs::create_dir_all(dir).map_err(|err| UnpackError::Io {
        op: "create",
        path: dir.display().to_string(),
        err,
    })?;
    let root = std::fs::File::open(dir).map_err(|err| UnpackError::Io {
        op: "open",
        path: dir.display().to_string(),
        err,
    })?;
    let mut archive = tar::Archive::new(limited);
    let mut stats = LayerStats {
        entries: 0,
        whiteouts: 0,
        bytes: 0,
        xattrs: 0,
        diff_id: crate::Digest::of(b""),
    };
    let mut dir_times: Vec<(PathBuf, u64)> = vec![];
    let mut cached_parent: Option<(PathBuf, OwnedFd)> = None;
    let entries = archive
        .entries()
        .map_err(|e| format_or_limit(e, max_bytes))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format_or_limit(e, max_bytes))?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let refused = |reason: String| UnpackError::Refused {
            entry: shown.clone(),
            reason,
        };
        let rel = clean_name(&raw).map_err(refused)?;
        let Some(name) = rel.file_name().map(|n| n.to_owned()) else {
            continue;
        };
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        // Entries come grouped by directory: the parent of the last entry
        // is kept open. Only entries with another parent can replace or
        // remove a directory, and they open theirs anew.
        if cached_parent.as_ref().is_none_or(|(p, _)| p != parent_rel) {
            let fd = mkdir_all(root.as_raw_fd(), parent_rel).map_err(|err| UnpackError::Io {
                op: "create directory",
                path: parent_rel.display().to_string(),
                err,
            })?;
            cached_parent = Some((parent_rel.to_path_buf(), fd));
        }
        let Some((_, parent)) = cached_parent.as_ref() else {
            unreachable!("the parent was just opened")
        };
        let cname = CString::new(name.as_bytes()).map_err(|_| refused("NUL in name".into()))?;
        let io = |op: &'static str| {
            let p = rel.display().to_string();
            move |err: io::Error| UnpackError::Io { op, path: p, err }
        };
        let pax = read_pax(&mut entry).map_err(refused)?;
        let header = entry.header().clone();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let (uid, gid) = rules.owner.unwrap_or((
            pax.uid.unwrap_or(header.uid().unwrap_or(0) as u32),
            pax.gid.unwrap_or(header.gid().unwrap_or(0) as u32),
        ));
        let mtime = pax.mtime.unwrap_or(header.mtime().unwrap_or(0));

        let whiteout = name
            .to_str()
            .and_then(|n| n.strip_prefix(".wh."))
            .filter(|_| rules.whiteouts);
        if let Some(target) = whiteout {
            if target == ".wh..opq" {
                set_opaque(parent).map_err(io("mark opaque"))?;
            } else if target.is_empty() || target == "." || target == ".." {
                return Err(refused(format!(
                    "a whiteout must name the file it deletes (\".wh.NAME\"), not {target:?}"
                )));
            } else {
                let t = CString::new(target).map_err(|_| refused("NUL in name".into()))?;
                create_replacing(parent, &t, || {
                    // SAFETY: valid descriptor and C string; mknodat creates a 0:0 char device.
                    unsafe { libc::mknodat(parent.as_raw_fd(), t.as_ptr(), libc::S_IFCHR, 0) }
                })
                .map_err(io("create whiteout"))?;
                stats.whiteouts += 1;
            }
            stats.entries += 1;
            continue;
        }

        let kind = header.entry_type();
        if rules.keep_kinds {
            keep_kind(parent, &cname, kind == tar::EntryType::Directory).map_err(refused)?;
        }
        match kind {
            tar::EntryType::Directory => {
                make_directory(parent, &cname).map_err(io("mkdir"))?;
                dir_times.push((rel.clone(), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = create_replacing(parent, &cname, || {
                    // SAFETY: valid descriptor and C string; O_NOFOLLOW|O_EXCL never follows a link.
                    unsafe {
                        libc::openat(
                            parent.as_raw_fd(),
                            cname.as_ptr(),
                            libc::O_WRONLY
                                | libc::O_CREAT
                                | libc::O_EXCL
                                | libc::O_NOFOLLOW
                                | libc::O_CLOEXEC,
                            0o600,
                        )
                    }
                })
                .map_err(io("create"))?;
                // SAFETY: a fresh descriptor.
                let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
                stats.bytes += io::copy(&mut entry, &mut file).map_err(|e| {
                    if e.to_string().contains("too large") {
                        UnpackError::TooLarge { limit: max_bytes }
                    } else {
                        io("write")(e)
                    }
                })?;
                // The file's own descriptor: nothing is looked up by name.
                set_metadata_fd(file.as_raw_fd(), false, mode, uid, gid, mtime)
                    .map_err(io("set owner, mode and time of"))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refused("symlink without a target".into()))?;
                let t = CString::new(target.as_ref())
                    .map_err(|_| refused("NUL in link target".into()))?;
                // The target is stored as is; it is only ever followed inside the root.
                create_replacing(parent, &cname, || {
                    // SAFETY: valid C strings and descriptor.
                    unsafe { libc::symlinkat(t.as_ptr(), parent.as_raw_fd(), cname.as_ptr()) }
                })
                .map_err(io("symlink"))?;
            }
            tar::EntryType::Link => {
                let raw_target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refused("hardlink without a target".into()))?;
                let target = clean_name(&raw_target)
                    .map_err(|r| refused(format!("hardlink target: {r}")))?;
                let tparent =
                    open_dir_in_root(root.as_raw_fd(), target.parent().unwrap_or(Path::new("")))
                        .map_err(|_| {
                            refused(format!(
                                "hardlink target {} is not in the layer",
                                target.display()
                            ))
                        })?;
                let tname =
                    CString::new(target.file_name().map(|n| n.as_bytes()).unwrap_or_default())
                        .map_err(|_| refused("NUL in link target".into()))?;
                create_replacing(parent, &cname, || {
                    // SAFETY: valid descriptors and C strings; flags 0 never follows a symlink target.
                    unsafe {
                        libc::linkat(
                            tparent.as_raw_fd(),
                            tname.as_ptr(),
                            parent.as_raw_fd(),
                            cname.as_ptr(),
                            0,
                        )
                    }
                })
                .map_err(|e| {
                    refused(format!(
                        "hardlink target {} is not in the layer: {e}",
                        target.display()
                    ))
                })?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let fmt = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let dev = libc::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                create_replacing(parent, &cname, || {
                    // SAFETY: valid descriptor and C string.
                    unsafe { libc::mknodat(parent.as_raw_fd(), cname.as_ptr(), fmt | mode, dev) }
                })
                .map_err(io("mknod"))?;
            }
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => continue,
            other => return Err(refused(format!("unsupported entry type {other:?}"))),
        }
        if kind != tar::EntryType::Link {
            let regular = matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous);
            if !regular {
                set_metadata(
                    parent,
                    &cname,
                    kind == tar::EntryType::Symlink,
                    mode,
                    uid,
                    gid,
                    mtime,
                )
                .map_err(io("set owner, mode and time of"))?;
            }
            // After chown, which drops security.capability.
            for (name, value) in &pax.xattrs {
                if set_xattr(parent, &cname, name, value).map_err(|err| UnpackError::Xattr {
                    entry: shown.clone(),
                    name: name.to_string_lossy().into_owned(),
                    err,
                })? {
                    stats.xattrs += 1;
                }
            }
        }
        stats.entries += 1;
    }
    // The diff ID covers the whole uncompressed stream, end-of-archive padding included.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| format_or_limit(e, max_bytes))?;
    stats.diff_id = crate::Digest::from_hash(&sha2::Digest::finalize(rest.hash));
    // Directory times last: adding entries changed them.
    for (rel, mtime) in dir_times.into_iter().rev() {
        if let (Ok(parent), Some(name)) = (
            open_dir_in_root(root.as_raw_fd(), rel.parent().unwrap_or(Path::new(""))),
            rel.file_name(),
        ) {
            if let Ok(c) = CString::new(name.as_bytes()) {
                set_time(&parent, &c, mtime);
            }
        }
    }
    Ok(stats)
}

/// Refuses an entry that would replace a directory with a non-directory
/// or the reverse (nothing there yet is fine).
fn keep_kind(parent: &OwnedFd, name: &CString, is_dir: bool) -> Result<(), String> {
    use nix::sys::stat::{fstatat, SFlag};
    let Ok(st) = fstatat(
        Some(parent.as_raw_fd()),
        name.as_c_str(),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) else {
        return Ok(());
    };
    let there_is_dir =
        SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR;
    match (there_is_dir, is_dir) {
        (true, false) => Err("cannot overwrite a directory with a non-directory".into()),
        (false, true) => Err("cannot overwrite a non-directory with a directory".into()),
        _ => Ok(()),
    }
}

fn format_or_limit(e: io::Error, limit: u64) -> UnpackError {
    if e.to_string().contains("too large") {
        UnpackError::TooLarge { limit }
    } else {
        UnpackError::Format(e.to_string())
    }
}
