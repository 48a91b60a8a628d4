//! How many bytes the regular files under a directory hold, found by
//! descriptor: each directory is opened relative to its parent with
//! `O_NOFOLLOW`, and each entry is looked at with `fstatat` without
//! following links, so a tree that a container can change (a volume, a
//! writable layer) cannot make the walk count files outside it.

use std::os::fd::AsRawFd;
use std::path::Path;

use nix::dir::Dir;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};

/// Deeper directories than this are not counted (a bound on the walk,
/// not a limit any real tree reaches).
const MAX_DEPTH: usize = 512;

/// The bytes in the regular files under `dir` (0 when it cannot be
/// opened). Hard links are counted once per name, as `du --apparent-size
/// --count-links` would; a file that vanishes mid-walk is skipped.
pub fn tree_bytes(dir: &Path) -> u64 {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match Dir::open(dir, flags, Mode::empty()) {
        Ok(d) => walk(d, 0),
        Err(_) => 0,
    }
}

fn walk(mut dir: Dir, depth: usize) -> u64 {
    if depth > MAX_DEPTH {
        return 0;
    }
    let fd = dir.as_raw_fd();
    let mut total = 0;
    let mut subdirs = vec![];
    for entry in dir.iter().flatten() {
        let name = entry.file_name();
        if matches!(name.to_bytes(), b"." | b"..") {
            continue;
        }
        let Ok(st) = fstatat(Some(fd), name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFREG => total += st.st_size as u64,
            SFlag::S_IFDIR => subdirs.push(name.to_owned()),
            _ => {}
        }
    }
    for name in subdirs {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        if let Ok(d) = Dir::openat(Some(fd), name.as_c_str(), flags, Mode::empty()) {
            total += walk(d, depth + 1);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_regular_files_below_and_not_through_links() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("a"), vec![0u8; 10]).unwrap();
        std::fs::create_dir_all(t.path().join("d/e")).unwrap();
        std::fs::write(t.path().join("d/e/b"), vec![0u8; 32]).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("big"), vec![0u8; 4096]).unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("d/link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("big"), t.path().join("f")).unwrap();
        assert_eq!(tree_bytes(t.path()), 42);
        assert_eq!(tree_bytes(&t.path().join("d")), 32);
        assert_eq!(
            tree_bytes(&t.path().join("f")),
            0,
            "a link given as the root is not followed"
        );
        assert_eq!(tree_bytes(&t.path().join("missing")), 0);
    }
}
