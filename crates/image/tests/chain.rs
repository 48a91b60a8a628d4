//! Long layer chains on the real kernel: 150 snapshot layers (past the
//! 4096-byte option page) mounted with the new mount API show exactly what
//! the layers say, deletions and opaque directories included; the copy
//! fallback builds the same tree; short chains still take the legacy
//! mount(2) path; past overlay's 500 layers the copy is used.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use image::flatten::flatten_layers;
use image::overlay::{
    mount_overlay, mount_overlay_with, MountKind, MountStrategy, OVERLAY_MAX_LOWERS,
};
use image::snapshot::{chain_ids, SnapshotError};
use image::{apply_layer, Digest};

/// Unmounts its path when dropped, so a failing test leaves no mount.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        while nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH).is_ok() {}
    }
}

/// What a layer does, in the order the tar holds it.
enum Op {
    File(String),
    Dir(String),
    Whiteout(String),
    Opaque(String),
}

fn tar_of(ops: &[Op]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for op in ops {
        let mut h = tar::Header::new_gnu();
        let (name, kind, data): (String, _, Vec<u8>) = match op {
            Op::File(p) => (p.clone(), tar::EntryType::Regular, p.as_bytes().to_vec()),
            Op::Dir(p) => (format!("{p}/"), tar::EntryType::Directory, vec![]),
            Op::Whiteout(p) => {
                let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
                let wh = if dir.is_empty() {
                    format!(".wh.{name}")
                } else {
                    format!("{dir}/.wh.{name}")
                };
                (wh, tar::EntryType::Regular, vec![])
            }
            Op::Opaque(d) => (format!("{d}/.wh..wh..opq"), tar::EntryType::Regular, vec![]),
        };
        h.set_path(&name).unwrap();
        h.set_entry_type(kind);
        h.set_mode(if kind.is_dir() { 0o750 } else { 0o640 });
        h.set_uid(1000);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// Applies `layers` to `<root>/snapshots/<chain id>/fs`, as `prepare` lays
/// them out (so the paths are as long as real ones), and returns the dirs.
fn snapshots(root: &Path, layers: &[Vec<Op>]) -> Vec<PathBuf> {
    let tars: Vec<Vec<u8>> = layers.iter().map(|l| tar_of(l)).collect();
    let chains = chain_ids(&tars.iter().map(|t| Digest::of(t)).collect::<Vec<_>>());
    tars.iter()
        .zip(&chains)
        .map(|(t, c)| {
            let fs = root.join("snapshots").join(c.hex()).join("fs");
            apply_layer(&fs, &t[..], 1 << 30).unwrap();
            fs
        })
        .collect()
}

/// The paths the merged tree must show, by replaying the layers.
fn expected(layers: &[Vec<Op>]) -> Vec<String> {
    let mut set: BTreeSet<String> = BTreeSet::new();
    let under = |set: &mut BTreeSet<String>, p: &str, itself: bool| {
        let prefix = format!("{p}/");
        set.retain(|x| !(x.starts_with(&prefix) || (itself && x == p)));
    };
    let add = |set: &mut BTreeSet<String>, p: &str| {
        let mut acc = String::new();
        for c in p.split('/') {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(c);
            set.insert(acc.clone());
        }
    };
    for layer in layers {
        // Overlay hides what lower layers had, whatever the order in the tar.
        for op in layer {
            match op {
                Op::Opaque(d) => under(&mut set, d, false),
                Op::Whiteout(p) => under(&mut set, p, true),
                _ => {}
            }
        }
        for op in layer {
            match op {
                Op::File(p) => {
                    under(&mut set, p, false);
                    add(&mut set, p)
                }
                Op::Dir(p) => add(&mut set, p),
                Op::Opaque(d) => add(&mut set, d),
                Op::Whiteout(_) => {}
            }
        }
    }
    set.into_iter().collect()
}

/// 150 layers: each adds a file; every 7th deletes a file of an earlier
/// layer, every 25th a whole directory; layer 60 makes `f` opaque; layer 90
/// replaces a directory with a file.
fn long_image() -> Vec<Vec<Op>> {
    (0..150)
        .map(|i| {
            let mut ops = vec![];
            if i == 60 {
                ops.push(Op::Opaque("f".into()));
            }
            ops.push(Op::Dir(format!("d{}", i / 10)));
            ops.push(Op::File(format!("f/{i:03}")));
            ops.push(Op::File(format!("d{}/{i:03}", i / 10)));
            if i % 7 == 6 {
                ops.push(Op::Whiteout(format!("f/{:03}", i - 3)));
            }
            if i % 25 == 24 {
                ops.push(Op::Whiteout(format!("d{}", i / 10 - 1)));
            }
            if i == 90 {
                // A file over a lower directory hides it, no whiteout needed.
                ops.push(Op::File("d3".into()));
            }
            ops
        })
        .collect()
}

use test_support::tree_listing as listing;

fn paths(listing: &[String]) -> Vec<String> {
    listing
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

use test_support::mounts_under;

#[test]
fn a_chain_of_150_layers_mounts_with_the_mount_api_and_shows_what_the_layers_say() {
    let root = tempfile::tempdir().unwrap();
    let layers = long_image();
    let lowers = snapshots(root.path(), &layers);
    let option_bytes: usize = lowers.iter().map(|l| l.as_os_str().len() + 1).sum();
    assert!(
        option_bytes > 4096,
        "the chain must not fit the legacy option page"
    );
    let target = root.path().join("mnt");
    std::fs::create_dir(&target).unwrap();
    let guard = Unmount(target.clone());

    let kind = mount_overlay_with(&lowers, None, &target, MountStrategy::Auto).unwrap();
    assert_eq!(kind, MountKind::MountApi);
    let seen = listing(&target);
    assert_eq!(paths(&seen), expected(&layers));
    assert!(
        seen.iter()
            .any(|l| l.starts_with("d3 file 100640 1000:0 2 1600000000 ")),
        "{seen:#?}"
    );
    assert!(
        !paths(&seen).contains(&"f/011".to_string()),
        "opaque f hides layer 11"
    );
    assert!(paths(&seen).contains(&"f/060".to_string()));
    assert!(
        !paths(&seen).contains(&"f/066".to_string()),
        "whiteout of f/066"
    );
    assert!(!paths(&seen).contains(&"d1".to_string()), "whiteout of d1");
    assert!(
        std::fs::write(target.join("new"), b"x").is_err(),
        "read-only without an upper"
    );
    drop(guard);
    assert_eq!(mounts_under(root.path()), Vec::<String>::new());

    // Forcing the legacy path on this chain is a clear error, not a truncated mount.
    let e = mount_overlay_with(&lowers, None, &target, MountStrategy::Legacy).unwrap_err();
    assert!(e.to_string().contains("option"), "{e}");
    assert_eq!(mounts_under(root.path()), Vec::<String>::new());
}

#[test]
fn the_copy_fallback_builds_the_same_tree_as_overlay() {
    let root = tempfile::tempdir().unwrap();
    let mut layers = long_image();
    // A file replaced by a directory, a symlink and a device node, on top.
    layers.push(vec![Op::Dir("f/149".into())]);
    let lowers = snapshots(root.path(), &layers);
    let extra = lowers.last().unwrap().clone();
    std::os::unix::fs::symlink("f/148", extra.join("link")).unwrap();
    nix::sys::stat::mknod(
        &extra.join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    xattr_set(&lowers[0].join("f/000"), "user.origin", b"layer 0");
    xattr_set(&lowers[140].join("f/140"), "user.origin", b"layer 140");

    let over = root.path().join("overlay");
    let copy = root.path().join("copy");
    std::fs::create_dir(&over).unwrap();
    std::fs::create_dir(&copy).unwrap();
    let _g1 = Unmount(over.clone());
    let _g2 = Unmount(copy.clone());
    assert_eq!(
        mount_overlay_with(&lowers, None, &over, MountStrategy::MountApi).unwrap(),
        MountKind::MountApi
    );
    assert_eq!(
        mount_overlay_with(&lowers, None, &copy, MountStrategy::Copy).unwrap(),
        MountKind::Copy
    );
    let (a, b) = (listing(&over), listing(&copy));
    assert_eq!(a, b);
    assert!(a.iter().any(|l| l.starts_with("null chr")), "{a:#?}");
    assert!(a.iter().any(|l| l.starts_with("f/149 dir")), "{a:#?}");
    assert_eq!(
        std::fs::read_link(copy.join("link")).unwrap(),
        Path::new("f/148")
    );
    assert_eq!(
        std::fs::symlink_metadata(copy.join("null")).unwrap().rdev(),
        nix::sys::stat::makedev(1, 3)
    );
    assert_eq!(
        xattr_get(&copy.join("f/140"), "user.origin"),
        xattr_get(&over.join("f/140"), "user.origin")
    );
    assert_eq!(
        xattr_get(&copy.join("f/140"), "user.origin").as_deref(),
        Some(&b"layer 140"[..])
    );
    assert_eq!(
        std::fs::read(copy.join("f/148")).unwrap(),
        std::fs::read(over.join("f/148")).unwrap()
    );
    assert!(
        std::fs::write(copy.join("new"), b"x").is_err(),
        "the copy is bound read-only"
    );
    // The copy is cached beside the top snapshot, and reused.
    let flat: Vec<_> = std::fs::read_dir(extra.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("flat-"))
        .collect();
    assert_eq!(flat.len(), 1, "{flat:?}");
    drop((_g1, _g2));
    assert_eq!(mounts_under(root.path()), Vec::<String>::new());

    // flatten_layers on its own: no overlay metadata survives, xattrs do.
    let dest = root.path().join("flat");
    flatten_layers(&lowers, &dest).unwrap();
    assert_eq!(listing(&dest), a);
    assert_eq!(
        xattr_get(&dest.join("f/000"), "user.origin"),
        None,
        "f/000 is hidden by the opaque f"
    );
    assert_eq!(
        xattr_get(&dest.join("f"), "trusted.overlay.opaque"),
        None,
        "the opaque marker is not copied"
    );
}

#[test]
fn flatten_keeps_xattrs_and_hardlinks_and_top_directory_metadata() {
    let root = tempfile::tempdir().unwrap();
    let layers = vec![
        vec![Op::Dir("etc".into()), Op::File("etc/a".into())],
        vec![Op::Dir("etc".into()), Op::File("etc/b".into())],
    ];
    let lowers = snapshots(root.path(), &layers);
    xattr_set(&lowers[0].join("etc/a"), "user.k", b"v");
    xattr_set(&lowers[0].join("etc"), "user.only-below", b"1");
    std::fs::hard_link(lowers[1].join("etc/b"), lowers[1].join("etc/b2")).unwrap();
    let dest = root.path().join("flat");
    flatten_layers(&lowers, &dest).unwrap();
    assert_eq!(
        xattr_get(&dest.join("etc/a"), "user.k").as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(
        xattr_get(&dest.join("etc"), "user.only-below"),
        None,
        "a directory shows the topmost layer's attributes, as in overlay"
    );
    assert_eq!(
        std::fs::metadata(dest.join("etc/b")).unwrap().ino(),
        std::fs::metadata(dest.join("etc/b2")).unwrap().ino()
    );
    let m = std::fs::metadata(dest.join("etc")).unwrap();
    let top = std::fs::metadata(lowers[1].join("etc")).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.uid(), m.mtime(), m.mtime_nsec()),
        (0o750, 1000, top.mtime(), top.mtime_nsec()),
        "the top layer's directory metadata, times set after filling it"
    );
}

#[test]
fn short_chains_still_take_the_legacy_path() {
    let root = tempfile::tempdir().unwrap();
    let layers: Vec<Vec<Op>> = long_image().into_iter().take(12).collect();
    let lowers = snapshots(root.path(), &layers);
    let target = root.path().join("mnt");
    std::fs::create_dir(&target).unwrap();
    let guard = Unmount(target.clone());
    assert_eq!(
        mount_overlay_with(&lowers, None, &target, MountStrategy::Auto).unwrap(),
        MountKind::Legacy
    );
    let legacy = listing(&target);
    assert_eq!(paths(&legacy), expected(&layers));
    let line = mounts_under(&target).join("\n");
    assert!(line.contains(",lowerdir="), "{line}");
    drop(guard);
    // The plain entry point is the same Auto choice.
    let guard = Unmount(target.clone());
    mount_overlay(&lowers, None, &target).unwrap();
    assert_eq!(listing(&target), legacy);
    drop(guard);
    let guard = Unmount(target.clone());
    assert_eq!(
        mount_overlay_with(&lowers, None, &target, MountStrategy::MountApi).unwrap(),
        MountKind::MountApi
    );
    assert_eq!(listing(&target), legacy, "both overlay paths agree");
    let line = mounts_under(&target).join("\n");
    assert!(line.contains(",lowerdir+="), "{line}");
    drop(guard);
    // One layer alone is bound read-only: overlay needs two without an upper.
    let guard = Unmount(target.clone());
    assert_eq!(
        mount_overlay_with(&lowers[..1], None, &target, MountStrategy::Auto).unwrap(),
        MountKind::Bind
    );
    drop(guard);
    assert_eq!(mounts_under(root.path()), Vec::<String>::new());
}

#[test]
fn past_overlays_500_layers_the_copy_is_used() {
    let root = tempfile::tempdir().unwrap();
    let n = OVERLAY_MAX_LOWERS + 1;
    let layers: Vec<Vec<Op>> = (0..n)
        .map(|i| {
            let mut ops = vec![Op::File(format!("l/{i:03}"))];
            if i % 2 == 1 {
                ops.push(Op::Whiteout(format!("l/{:03}", i - 1)));
            }
            ops
        })
        .collect();
    let lowers = snapshots(root.path(), &layers);
    let target = root.path().join("mnt");
    std::fs::create_dir(&target).unwrap();
    let e = mount_overlay_with(&lowers, None, &target, MountStrategy::MountApi).unwrap_err();
    assert!(
        matches!(e, SnapshotError::TooManyLayers { layers, max: 500 } if layers == n),
        "{e}"
    );
    let _guard = Unmount(target.clone());
    assert_eq!(
        mount_overlay_with(&lowers, None, &target, MountStrategy::Auto).unwrap(),
        MountKind::Copy
    );
    assert_eq!(paths(&listing(&target)), expected(&layers));
}

fn xattr_set(path: &Path, name: &str, value: &[u8]) {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings and a buffer of value.len() bytes.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}

fn xattr_get(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of buf.len() bytes.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| {
        buf.truncate(len as usize);
        buf
    })
}

#[test]
fn layer_paths_longer_than_fsconfig_takes_still_mount() {
    // fsconfig(2) takes strings of at most 255 bytes; longer paths go by descriptor.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("r".repeat(120)).join("s".repeat(120));
    let layers: Vec<Vec<Op>> = long_image().into_iter().take(3).collect();
    let lowers = snapshots(&root, &layers);
    assert!(lowers[0].as_os_str().len() > 255);
    let target = tmp.path().join("mnt");
    std::fs::create_dir(&target).unwrap();
    let guard = Unmount(target.clone());
    assert_eq!(
        mount_overlay_with(&lowers, None, &target, MountStrategy::MountApi).unwrap(),
        MountKind::MountApi
    );
    assert_eq!(paths(&listing(&target)), expected(&layers));
    drop(guard);
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
}
