//! `diff`: what a container changed in its root, read from its writable
//! layer (overlayfs's upper directory). An entry there is `A`dded when no
//! image layer has the path, else `C`hanged; a whiteout (a 0:0 character
//! device) is `D`eleted. Image layers are looked into with `openat2`
//! inside each layer, so a symlink in an image cannot point the lookup at
//! the host.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::EngineError;
use crate::run::Engine;
use crate::store::Store;

/// How deep the walk goes (as deep as a tar reader would accept).
const MAX_DEPTH: usize = 256;

/// One change: `A`, `C` or `D`, and the path inside the container.
pub type Change = (char, String);

impl Engine {
    /// The changes container `key` made to its root, sorted by path.
    pub fn diff(&self, key: &str) -> Result<Vec<Change>, EngineError> {
        let rec = Store::open(&self.root)?.find(key)?;
        let dir = crate::rootfs::container_dir(&self.root, &rec.id)?;
        let upper = dir.join("upper");
        let lowers: Vec<PathBuf> = std::fs::read(dir.join("bundle").join("lowers.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let lower_fds: Vec<OwnedFd> = lowers
            .iter()
            .filter_map(|l| std::fs::File::open(l).ok().map(OwnedFd::from))
            .collect();
        let mut changes = vec![];
        let top = match nix::dir::Dir::open(
            &upper,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(d) => d,
            // No writable layer (never started): nothing changed.
            Err(nix::errno::Errno::ENOENT) => return Ok(changes),
            Err(e) => return Err(io_err(Path::new(""), e)),
        };
        walk(&top, Path::new(""), &lower_fds, &mut changes, 0)?;
        changes.sort_by(|a, b| a.1.cmp(&b.1));
        let mounts: Vec<String> = runtime::spec::load(&dir.join("bundle"))
            .ok()
            .and_then(|b| b.spec.mounts().clone())
            .unwrap_or_default()
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect();
        Ok(without_mount_points(changes, &mounts))
    }
}

/// Drops what the runtime made to mount on, as Docker's init layer hides
/// it: each mount destination, what is under it, and a directory that is
/// in the writable layer only to hold destinations (`/etc`, copied up or
/// made for `/etc/hosts`).
fn without_mount_points(changes: Vec<Change>, mounts: &[String]) -> Vec<Change> {
    let under = |p: &str, d: &str| p == d || p.starts_with(&format!("{d}/"));
    let kept: Vec<Change> = changes
        .into_iter()
        .filter(|(_, p)| !mounts.iter().any(|d| under(p, d)))
        .collect();
    kept.iter()
        .filter(|(_, p)| {
            let holds_mounts = mounts.iter().any(|d| d.starts_with(&format!("{p}/")));
            let holds_changes = kept.iter().any(|(_, q)| q.starts_with(&format!("{p}/")));
            !holds_mounts || holds_changes
        })
        .cloned()
        .collect()
}

impl Engine {
    /// The bytes of the files in container `id`'s writable layer.
    pub fn writable_layer_size(&self, id: &str) -> u64 {
        crate::rootfs::container_dir(&self.root, id)
            .map(|d| crate::volume_files::dir_size(&d.join("upper")))
            .unwrap_or(0)
    }

    /// The bytes of the files in volume `name`.
    pub fn volume_size(&self, name: &str) -> u64 {
        crate::volume_files::dir_size(&self.volume_mountpoint(name))
    }
}

/// Whether any image layer has `rel`.
fn in_image(lowers: &[OwnedFd], rel: &Path) -> bool {
    lowers.iter().any(|l| {
        berth_fs::open_in_root(
            l.as_raw_fd(),
            rel,
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
        )
        .is_ok()
    })
}

/// Lists the directory `dir` (at `rel` in the container), and below it,
/// by descriptor: every entry is looked at with `fstatat` and opened with
/// `O_NOFOLLOW`, so a running container that swaps a directory for a
/// symlink cannot make the walk list the host.
fn walk(
    dir: &nix::dir::Dir,
    rel: &Path,
    lowers: &[OwnedFd],
    out: &mut Vec<Change>,
    depth: usize,
) -> Result<(), EngineError> {
    use nix::fcntl::{AtFlags, OFlag};
    use nix::sys::stat::{fstatat, Mode, SFlag};
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let fd = dir.as_raw_fd();
    let mut names = vec![];
    // A duplicate to iterate, so `dir` stays usable for the *at calls below.
    let mut iter = nix::dir::Dir::from_fd(nix::unistd::dup(fd).map_err(|e| io_err(rel, e))?)
        .map_err(|e| io_err(rel, e))?;
    for entry in iter.iter().flatten() {
        let name = entry.file_name().to_owned();
        if name.as_bytes() == b"." || name.as_bytes() == b".." {
            continue;
        }
        names.push(name);
    }
    for name in names {
        let Ok(st) = fstatat(Some(fd), name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        let child = rel.join(std::ffi::OsStr::from_bytes(name.as_bytes()));
        let shown = format!("/{}", child.display());
        let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
        if kind == SFlag::S_IFCHR && st.st_rdev == 0 {
            out.push(('D', shown));
            continue;
        }
        out.push((if in_image(lowers, &child) { 'C' } else { 'A' }, shown));
        if kind == SFlag::S_IFDIR {
            let sub = nix::dir::Dir::openat(
                Some(fd),
                name.as_c_str(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            );
            // Swapped meanwhile: nothing to list.
            if let Ok(sub) = sub {
                walk(&sub, &child, lowers, out, depth + 1)?;
            }
        }
    }
    Ok(())
}

fn io_err(rel: &Path, e: nix::errno::Errno) -> EngineError {
    EngineError::Io {
        op: "read the writable layer at",
        path: Path::new("/").join(rel),
        err: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_not_changes() {
        let c = |k: char, p: &str| (k, p.to_string());
        let changes = vec![
            c('A', "/dev"),
            c('A', "/dev/null"),
            c('A', "/etc"),
            c('C', "/var"),
            c('A', "/var/run.pid"),
            c('A', "/etc/hosts"),
            c('C', "/home"),
            c('A', "/home/x"),
            c('A', "/proc"),
            c('A', "/srv"),
            c('A', "/srv/data"),
            c('A', "/srv/mine"),
        ];
        let mounts = ["/dev", "/etc/hosts", "/proc", "/srv/data", "/var/run.pid"].map(String::from);
        assert_eq!(
            without_mount_points(changes, &mounts),
            vec![
                c('C', "/home"),
                c('A', "/home/x"),
                c('A', "/srv"),
                c('A', "/srv/mine")
            ]
        );
    }
}
