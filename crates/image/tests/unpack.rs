//! Layer unpacking on a real filesystem: the overlay format for deletions,
//! metadata kept, and a corpus of hostile layers, each refused or contained
//! with the host untouched.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use image::{apply_layer, UnpackError};

const LIMIT: u64 = 1 << 30;

/// A tar entry with a raw name (no sanitising), so hostile names can be made.
fn entry(
    tar: &mut Vec<u8>,
    name: &[u8],
    kind: tar::EntryType,
    link: &[u8],
    data: &[u8],
    mode: u32,
) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_mtime(1_000_000);
    h.set_size(data.len() as u64);
    h.set_cksum();
    tar.extend_from_slice(h.as_bytes());
    tar.extend_from_slice(data);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
}

fn finish(mut tar: Vec<u8>) -> Vec<u8> {
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn layer_contents_and_metadata_are_applied() {
    let mut t = vec![];
    entry(&mut t, b"etc/", tar::EntryType::Directory, b"", b"", 0o755);
    entry(
        &mut t,
        b"etc/app.conf",
        tar::EntryType::Regular,
        b"",
        b"key=value\n",
        0o640,
    );
    entry(
        &mut t,
        b"./bin/tool",
        tar::EntryType::Regular,
        b"",
        b"#!/bin/sh\n",
        0o4755,
    );
    entry(
        &mut t,
        b"bin/alias",
        tar::EntryType::Symlink,
        b"/bin/tool",
        b"",
        0o777,
    );
    entry(
        &mut t,
        b"bin/hard",
        tar::EntryType::Link,
        b"bin/tool",
        b"",
        0o755,
    );
    entry(
        &mut t,
        b"etc/.wh.old.conf",
        tar::EntryType::Regular,
        b"",
        b"",
        0o644,
    );
    entry(
        &mut t,
        b"var/cache/.wh..wh..opq",
        tar::EntryType::Regular,
        b"",
        b"",
        0o644,
    );
    let snap = tempfile::tempdir().unwrap();
    let stats = apply_layer(snap.path(), &gzip(&finish(t))[..], LIMIT).unwrap();
    assert_eq!(stats.whiteouts, 1);
    let p = snap.path();
    assert_eq!(
        std::fs::read_to_string(p.join("etc/app.conf")).unwrap(),
        "key=value\n"
    );
    let m = std::fs::metadata(p.join("etc/app.conf")).unwrap();
    assert_eq!(
        (m.permissions().mode() & 0o7777, m.uid(), m.gid(), m.mtime()),
        (0o640, 1000, 1000, 1_000_000)
    );
    assert_eq!(
        std::fs::metadata(p.join("bin/tool"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755,
        "setuid kept after chown"
    );
    assert_eq!(
        std::fs::read_link(p.join("bin/alias")).unwrap(),
        Path::new("/bin/tool")
    );
    assert_eq!(
        std::fs::metadata(p.join("bin/hard")).unwrap().ino(),
        std::fs::metadata(p.join("bin/tool")).unwrap().ino()
    );
    let wh = std::fs::symlink_metadata(p.join("etc/old.conf")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout is a 0:0 char device"
    );
    let mut v = [0u8; 1];
    // SAFETY: valid C strings and buffer.
    let n = unsafe {
        libc::getxattr(
            std::ffi::CString::new(p.join("var/cache").to_str().unwrap())
                .unwrap()
                .as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            v.as_mut_ptr().cast(),
            1,
        )
    };
    assert_eq!((n, v[0]), (1, b'y'), "opaque directory marked");
    assert_eq!(
        std::fs::metadata(p.join("etc")).unwrap().mtime(),
        1_000_000,
        "directory times set last"
    );
}

fn refused(t: Vec<u8>, needle: &str) {
    let snap = tempfile::tempdir().unwrap();
    let e = apply_layer(snap.path(), &finish(t)[..], LIMIT).unwrap_err();
    assert!(e.to_string().contains(needle), "{e}");
}

#[test]
fn absolute_names_are_refused() {
    let mut t = vec![];
    entry(
        &mut t,
        b"/tmp/berth-absolute-escape",
        tar::EntryType::Regular,
        b"",
        b"x",
        0o644,
    );
    refused(t, "absolute path");
    assert!(!Path::new("/tmp/berth-absolute-escape").exists());
}

#[test]
fn dotdot_names_are_refused() {
    let mut t = vec![];
    entry(
        &mut t,
        b"a/../../../tmp/berth-dotdot-escape",
        tar::EntryType::Regular,
        b"",
        b"x",
        0o644,
    );
    refused(t, "\"..\"");
    assert!(!Path::new("/tmp/berth-dotdot-escape").exists());
}

#[test]
fn writing_through_a_symlink_stays_inside() {
    let host = tempfile::tempdir().unwrap();
    for target in [
        host.path().display().to_string(),
        format!("../../../../../..{}", host.path().display()),
    ] {
        let mut t = vec![];
        entry(
            &mut t,
            b"evil",
            tar::EntryType::Symlink,
            target.as_bytes(),
            b"",
            0o777,
        );
        entry(
            &mut t,
            b"evil/pwned",
            tar::EntryType::Regular,
            b"",
            b"x",
            0o644,
        );
        let snap = tempfile::tempdir().unwrap();
        // Either refused (the target does not exist inside) or written inside: never on the host.
        let _ = apply_layer(snap.path(), &finish(t)[..], LIMIT);
        assert!(
            std::fs::read_dir(host.path()).unwrap().next().is_none(),
            "wrote through a symlink to the host"
        );
    }
}

#[test]
fn a_symlink_cannot_replace_a_later_file_target() {
    // A file entry named like an existing symlink replaces the link instead of writing through it.
    let host = tempfile::NamedTempFile::new().unwrap();
    let mut t = vec![];
    entry(
        &mut t,
        b"link",
        tar::EntryType::Symlink,
        host.path().to_str().unwrap().as_bytes(),
        b"",
        0o777,
    );
    entry(
        &mut t,
        b"link",
        tar::EntryType::Regular,
        b"",
        b"overwritten",
        0o644,
    );
    let snap = tempfile::tempdir().unwrap();
    apply_layer(snap.path(), &finish(t)[..], LIMIT).unwrap();
    assert_eq!(
        std::fs::read_to_string(host.path()).unwrap(),
        "",
        "the host file was written"
    );
    assert_eq!(
        std::fs::read_to_string(snap.path().join("link")).unwrap(),
        "overwritten"
    );
}

#[test]
fn hardlinks_to_host_files_are_refused() {
    let mut t = vec![];
    entry(
        &mut t,
        b"shadow",
        tar::EntryType::Link,
        b"/etc/shadow",
        b"",
        0o644,
    );
    refused(t, "absolute path");
    let mut t = vec![];
    entry(
        &mut t,
        b"shadow",
        tar::EntryType::Link,
        b"../../../../etc/shadow",
        b"",
        0o644,
    );
    refused(t, "\"..\"");
    let mut t = vec![];
    entry(
        &mut t,
        b"shadow",
        tar::EntryType::Link,
        b"etc/shadow",
        b"",
        0o644,
    );
    refused(t, "not in the layer");
}

#[test]
fn device_nodes_are_created_inside_only() {
    let mut t = vec![];
    let mut h = tar::Header::new_ustar();
    h.set_path("dev/null").unwrap();
    h.set_entry_type(tar::EntryType::Char);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_mode(0o666);
    h.set_size(0);
    h.set_cksum();
    t.extend_from_slice(h.as_bytes());
    let snap = tempfile::tempdir().unwrap();
    apply_layer(snap.path(), &finish(t)[..], LIMIT).unwrap();
    let m = std::fs::symlink_metadata(snap.path().join("dev/null")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), libc::makedev(1, 3));
}

#[test]
fn truncated_gzip_is_an_error() {
    let mut t = vec![];
    entry(
        &mut t,
        b"file",
        tar::EntryType::Regular,
        b"",
        &vec![1u8; 100_000],
        0o644,
    );
    let gz = gzip(&finish(t));
    let snap = tempfile::tempdir().unwrap();
    let e = apply_layer(snap.path(), &gz[..gz.len() / 2], LIMIT).unwrap_err();
    assert!(
        matches!(e, UnpackError::Format(_) | UnpackError::Io { .. }),
        "{e}"
    );
}

#[test]
fn decompression_bomb_stops_at_the_limit() {
    let mut t = vec![];
    entry(
        &mut t,
        b"zeros",
        tar::EntryType::Regular,
        b"",
        &vec![0u8; 8 << 20],
        0o644,
    );
    let gz = gzip(&finish(t));
    assert!(gz.len() < 100_000, "a bomb compresses well");
    let snap = tempfile::tempdir().unwrap();
    let e = apply_layer(snap.path(), &gz[..], 1 << 20).unwrap_err();
    assert!(
        matches!(e, UnpackError::TooLarge { limit } if limit == 1 << 20),
        "{e}"
    );
}
