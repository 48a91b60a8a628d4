//! Layer unpacking on a real filesystem: the overlay format for deletions,
//! metadata kept, zstd layers, extended attributes from PAX records, and a
//! corpus of hostile layers, each refused or contained with the host
//! untouched.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use image::{apply_layer, Digest, UnpackError};

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

/// Security issue 11, item 1: a directory entry named like an earlier
/// symlink once chmod'ed the link's host target (setuid, world-writable).
#[test]
fn a_directory_entry_over_a_symlink_never_changes_the_link_target() {
    for absolute in [true, false] {
        let host = tempfile::NamedTempFile::new().unwrap();
        std::fs::set_permissions(host.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        let before = std::fs::metadata(host.path()).unwrap();
        let target = if absolute {
            host.path().display().to_string()
        } else {
            format!("../../../../../../..{}", host.path().display())
        };
        let mut t = vec![];
        entry(
            &mut t,
            b"link",
            tar::EntryType::Symlink,
            target.as_bytes(),
            b"",
            0o777,
        );
        entry(
            &mut t,
            b"link/",
            tar::EntryType::Directory,
            b"",
            b"",
            0o6777,
        );
        // The same through a whiteout-free second name: a device or fifo entry.
        entry(
            &mut t,
            b"link2",
            tar::EntryType::Symlink,
            target.as_bytes(),
            b"",
            0o777,
        );
        entry(&mut t, b"link2", tar::EntryType::Fifo, b"", b"", 0o6777);
        let snap = tempfile::tempdir().unwrap();
        apply_layer(snap.path(), &finish(t)[..], LIMIT).unwrap();
        let after = std::fs::metadata(host.path()).unwrap();
        assert_eq!(
            after.mode() & 0o7777,
            0o600,
            "the host file's mode changed (absolute link: {absolute})"
        );
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        assert_eq!(
            after.mtime(),
            before.mtime(),
            "the host file's time changed"
        );
        let made = std::fs::symlink_metadata(snap.path().join("link")).unwrap();
        assert!(made.is_dir(), "the directory entry replaces the link");
        assert_eq!(made.mode() & 0o7777, 0o6777);
        assert_eq!(made.uid(), 1000);
        let fifo = std::fs::symlink_metadata(snap.path().join("link2")).unwrap();
        assert!(
            fifo.file_type().is_fifo(),
            "the fifo entry replaces the link"
        );
    }
}

/// Security issue 11, item 14: a whiteout that names no file is refused
/// with a message that says so.
#[test]
fn a_whiteout_naming_nothing_is_refused_clearly() {
    for name in [&b"etc/.wh."[..], b".wh.", b"etc/.wh.."] {
        let mut t = vec![];
        entry(&mut t, b"etc/", tar::EntryType::Directory, b"", b"", 0o755);
        entry(&mut t, name, tar::EntryType::Regular, b"", b"", 0o644);
        let snap = tempfile::tempdir().unwrap();
        let e = apply_layer(snap.path(), &finish(t)[..], LIMIT).unwrap_err();
        assert!(
            matches!(e, UnpackError::Refused { .. })
                && e.to_string().contains("must name the file"),
            "{:?}: {e}",
            String::from_utf8_lossy(name)
        );
    }
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

/// A tar made with tar::Builder: a directory, files, a symlink, a hardlink.
fn sample_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, link: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        if !link.is_empty() {
            h.set_link_name(link).unwrap();
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(1000);
        h.set_gid(100);
        h.set_mtime(1_500_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("usr/", tar::EntryType::Directory, "", b"", 0o755);
    add("usr/bin/", tar::EntryType::Directory, "", b"", 0o755);
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    add("usr/bin/app", tar::EntryType::Regular, "", &big, 0o755);
    add("usr/bin/run", tar::EntryType::Symlink, "app", b"", 0o777);
    add(
        "usr/bin/app2",
        tar::EntryType::Link,
        "usr/bin/app",
        b"",
        0o755,
    );
    add("etc/", tar::EntryType::Directory, "", b"", 0o711);
    add("etc/motd", tar::EntryType::Regular, "", b"hello\n", 0o644);
    b.into_inner().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

/// (path, type, mode, uid, gid, size, mtime, content or link target) of every entry.
fn listing(root: &Path) -> Vec<String> {
    let mut out = vec![];
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let body = if m.file_type().is_symlink() {
                std::fs::read_link(&p).unwrap().display().to_string()
            } else if m.is_file() {
                Digest::of(&std::fs::read(&p).unwrap()).to_string()
            } else {
                String::new()
            };
            out.push(format!(
                "{} {:o} {}:{} {} {} {}",
                p.strip_prefix(base).unwrap().display(),
                m.mode(),
                m.uid(),
                m.gid(),
                if m.is_dir() { 0 } else { m.len() },
                m.mtime(),
                body
            ));
            if m.is_dir() {
                go(base, &p, out);
            }
        }
    }
    go(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn a_zstd_layer_unpacks_like_the_same_tar_gzipped() {
    let tar = sample_tar();
    let (gz_dir, zst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let from_gz = apply_layer(gz_dir.path(), &gzip(&tar)[..], LIMIT).unwrap();
    let z = zstd(&tar);
    assert_eq!(&z[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    let from_zst = apply_layer(zst_dir.path(), &z[..], LIMIT).unwrap();
    assert_eq!(from_zst, from_gz);
    assert_eq!(
        from_zst.diff_id,
        Digest::of(&tar),
        "diff ID of the uncompressed tar"
    );
    let seen = listing(zst_dir.path());
    assert_eq!(seen, listing(gz_dir.path()));
    assert_eq!(seen.len(), 7, "{seen:#?}");
    assert_eq!(
        std::fs::metadata(zst_dir.path().join("usr/bin/app2"))
            .unwrap()
            .ino(),
        std::fs::metadata(zst_dir.path().join("usr/bin/app"))
            .unwrap()
            .ino()
    );
}

#[test]
fn a_zstd_layer_of_several_frames_unpacks_whole() {
    // zstd streams may be concatenated frames (as pigz-style parallel encoders write).
    let tar = sample_tar();
    let (a, b) = tar.split_at(tar.len() / 2);
    let mut z = zstd(a);
    z.extend_from_slice(&zstd(b));
    let dir = tempfile::tempdir().unwrap();
    let stats = apply_layer(dir.path(), &z[..], LIMIT).unwrap();
    assert_eq!(stats.diff_id, Digest::of(&tar));
    assert_eq!(stats.entries, 7);
}

#[test]
fn zstd_bomb_stops_at_the_limit_and_truncated_zstd_is_an_error() {
    let mut t = vec![];
    entry(
        &mut t,
        b"zeros",
        tar::EntryType::Regular,
        b"",
        &vec![0u8; 8 << 20],
        0o644,
    );
    let z = zstd(&finish(t));
    assert!(z.len() < 100_000, "a bomb compresses well");
    let snap = tempfile::tempdir().unwrap();
    let e = apply_layer(snap.path(), &z[..], 1 << 20).unwrap_err();
    assert!(
        matches!(e, UnpackError::TooLarge { limit } if limit == 1 << 20),
        "{e}"
    );
    let snap = tempfile::tempdir().unwrap();
    let e = apply_layer(snap.path(), &z[..z.len() / 2], LIMIT).unwrap_err();
    assert!(
        matches!(e, UnpackError::Format(_) | UnpackError::Io { .. }),
        "{e}"
    );
}

/// A file capability of cap_net_bind_service (vfs_cap_data, revision 2, effective).
const CAP_NET_BIND_SERVICE: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// Appends `name` (of `kind`) preceded by a PAX header with `records`.
fn with_pax(
    b: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    link: &str,
    records: &[(&str, &[u8])],
) {
    b.append_pax_extensions(records.iter().copied()).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path(name).unwrap();
    if !link.is_empty() {
        h.set_link_name(link).unwrap();
    }
    h.set_entry_type(kind);
    h.set_mode(0o755);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_size(if kind == tar::EntryType::Regular {
        4
    } else {
        0
    });
    h.set_cksum();
    let data: &[u8] = if kind == tar::EntryType::Regular {
        b"data"
    } else {
        b""
    };
    b.append(&h, data).unwrap();
}

/// lgetxattr: the attribute of `path` itself (not followed), if set.
fn lgetxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of buf.len() bytes.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return None;
    }
    buf.truncate(len as usize);
    Some(buf)
}

#[test]
fn pax_xattrs_are_set_on_the_entry_after_its_owner() {
    let mut b = tar::Builder::new(Vec::new());
    with_pax(
        &mut b,
        "bin/",
        tar::EntryType::Directory,
        "",
        &[("SCHILY.xattr.user.dir", b"d")],
    );
    with_pax(
        &mut b,
        "bin/ping",
        tar::EntryType::Regular,
        "",
        &[
            (
                "SCHILY.xattr.security.capability",
                &CAP_NET_BIND_SERVICE[..],
            ),
            ("SCHILY.xattr.user.origin", b"berth \x00 binary"),
            ("uid", b"3000000"),
            ("mtime", b"1700000000.25"),
        ],
    );
    with_pax(
        &mut b,
        "bin/p",
        tar::EntryType::Symlink,
        "ping",
        &[("SCHILY.xattr.trusted.berth-link", b"on the link")],
    );
    let tar = b.into_inner().unwrap();
    let snap = tempfile::tempdir().unwrap();
    let stats = apply_layer(snap.path(), &zstd(&tar)[..], LIMIT).unwrap();
    assert_eq!(stats.xattrs, 4);
    let p = snap.path();
    assert_eq!(
        lgetxattr(&p.join("bin"), "user.dir").as_deref(),
        Some(&b"d"[..])
    );
    assert_eq!(
        lgetxattr(&p.join("bin/ping"), "security.capability").as_deref(),
        Some(&CAP_NET_BIND_SERVICE[..]),
        "the capability survives the chown to the entry's owner"
    );
    assert_eq!(
        lgetxattr(&p.join("bin/ping"), "user.origin").as_deref(),
        Some(&b"berth \x00 binary"[..])
    );
    let m = std::fs::metadata(p.join("bin/ping")).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mtime()),
        (3_000_000, 1000, 1_700_000_000),
        "PAX uid and mtime"
    );
    assert_eq!(
        lgetxattr(&p.join("bin/p"), "trusted.berth-link").as_deref(),
        Some(&b"on the link"[..]),
        "set on the symlink itself"
    );
    assert_eq!(
        lgetxattr(&p.join("bin/ping"), "trusted.berth-link"),
        None,
        "not through it"
    );
}

#[test]
fn a_layer_carrying_overlay_xattrs_is_refused() {
    for (name, kind) in [
        ("etc/", tar::EntryType::Directory),
        ("etc/passwd", tar::EntryType::Regular),
    ] {
        for attr in ["trusted.overlay.opaque", "trusted.overlay.redirect"] {
            let mut b = tar::Builder::new(Vec::new());
            with_pax(
                &mut b,
                name,
                kind,
                "",
                &[(&format!("SCHILY.xattr.{attr}"), b"y")],
            );
            let snap = tempfile::tempdir().unwrap();
            let e = apply_layer(snap.path(), &b.into_inner().unwrap()[..], LIMIT).unwrap_err();
            match &e {
                UnpackError::Refused { entry, reason } => {
                    assert_eq!(entry, name);
                    assert!(reason.contains(attr), "{e}");
                }
                other => panic!("not refused: {other}"),
            }
            assert!(
                lgetxattr(&snap.path().join("etc"), attr).is_none(),
                "nothing was set"
            );
        }
    }
}
