//! Extended attributes, always of the path itself (the `l*xattr` calls,
//! never following a final symlink), or of an open descriptor through its
//! `/proc/self/fd` link: the one copy the image store's unpacker and
//! snapshot copier share.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cpath(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| std::io::ErrorKind::InvalidInput.into())
}

/// The names of `path`'s extended attributes (of the path itself, not
/// followed); none where the filesystem has no xattrs.
pub fn list(path: &Path) -> std::io::Result<Vec<CString>> {
    let c = cpath(path)?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: a valid C string and a buffer of buf.len() bytes.
        let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            break;
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            Some(libc::EOPNOTSUPP) => return Ok(vec![]),
            _ => return Err(err),
        }
    }
    Ok(buf
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| CString::new(n).expect("split on NUL"))
        .collect())
}

/// `path`'s attribute `name` (not followed), or None if it has none.
pub fn get(path: &Path, name: &CStr) -> std::io::Result<Option<Vec<u8>>> {
    let c = cpath(path)?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: valid C strings and a buffer of buf.len() bytes.
        let n = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(Some(buf));
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            Some(libc::ENODATA) | Some(libc::EOPNOTSUPP) => return Ok(None),
            _ => return Err(err),
        }
    }
}

/// Sets `path`'s attribute `name` (not followed). Returns false, and sets
/// nothing, where the filesystem has no xattrs (as containerd does).
pub fn set(path: &Path, name: &CStr, value: &[u8]) -> std::io::Result<bool> {
    let c = cpath(path)?;
    // SAFETY: valid C strings and a buffer of value.len() bytes.
    if unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    } != 0
    {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(err);
        }
        return Ok(false);
    }
    Ok(true)
}

/// Removes `path`'s attribute `name` (not followed). Labels a security
/// module put there itself (`security.*`) may be refused: they stay.
pub fn remove(path: &Path, name: &CStr) -> std::io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: valid C strings.
    if unsafe { libc::lremovexattr(c.as_ptr(), name.as_ptr()) } != 0 {
        let err = std::io::Error::last_os_error();
        if !name.to_bytes().starts_with(b"security.") && err.raw_os_error() != Some(libc::ENODATA) {
            return Err(err);
        }
    }
    Ok(())
}

/// Sets attribute `name` of the file open as `fd` (an O_PATH descriptor
/// too: through its `/proc/self/fd` link, which names that very inode).
pub fn set_on_fd(fd: &OwnedFd, name: &CStr, value: &[u8]) -> std::io::Result<()> {
    let link = cpath(Path::new(&format!("/proc/self/fd/{}", fd.as_raw_fd())))?;
    // SAFETY: valid C strings and a buffer of value.len() bytes; the magic
    // link resolves to the descriptor's own inode.
    if unsafe {
        libc::setxattr(
            link.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_on_the_path_itself() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, "x").unwrap();
        if !set(&f, c"user.berth", b"v").unwrap() {
            return; // no xattrs on this filesystem
        }
        assert_eq!(get(&f, c"user.berth").unwrap().as_deref(), Some(&b"v"[..]));
        assert!(list(&f)
            .unwrap()
            .iter()
            .any(|n| n.as_c_str() == c"user.berth"));
        remove(&f, c"user.berth").unwrap();
        assert_eq!(get(&f, c"user.berth").unwrap(), None);
    }
}
