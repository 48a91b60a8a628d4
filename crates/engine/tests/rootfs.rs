//! Container root filesystems on the real kernel, with each way of
//! stacking: writes land in the container's upper directory, the image's
//! snapshots never change, containers of one image do not see each other's
//! writes, and teardown leaves no mount and no directory, touching nothing
//! it did not make.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use engine::rootfs::{prepare_rootfs, prepare_rootfs_with, teardown_rootfs, RootfsError};
use image::overlay::{MountKind, MountStrategy};
use image::{apply_layer, Digest};

/// Tears the container down when dropped (and unmounts its root, should
/// teardown refuse), so a failing test leaves no mount.
struct Container<'a> {
    root: &'a Path,
    id: &'a str,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let rootfs = self.root.join("containers").join(self.id).join("rootfs");
        if teardown_rootfs(self.root, self.id).is_err() {
            while nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH).is_ok() {}
        }
    }
}

/// A tar of `files`, then empty whiteout entries.
fn layer(files: &[(&str, &[u8])], whiteouts: &[&str]) -> Vec<u8> {
    let mut all = files.to_vec();
    all.extend(whiteouts.iter().map(|w| (*w, &b""[..])));
    test_support::oci::tar_layer(&all)
}

/// A three-layer image's snapshots under `<root>/snapshots/`.
fn image_snapshots(root: &Path) -> Vec<PathBuf> {
    let layers = [
        layer(
            &[
                ("etc/hostname", b"base\n"),
                ("etc/old", b"old"),
                ("bin/sh", b"sh"),
            ],
            &[],
        ),
        layer(&[("etc/app.conf", b"a=1\n")], &["etc/.wh.old"]),
        layer(&[("var/lib/data", b"d")], &[]),
    ];
    layers
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let fs = root
                .join("snapshots")
                .join(format!("{i}-{}", &Digest::of(t).hex()[..12]))
                .join("fs");
            apply_layer(&fs, &t[..], 1 << 30).unwrap();
            fs
        })
        .collect()
}

use test_support::{mounts_under, tree_listing as tree};

fn writes_land_in_upper_and_containers_are_apart(strategy: MountStrategy, want: MountKind) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let lowers = image_snapshots(root);
    let before: Vec<_> = lowers.iter().map(|l| tree(l)).collect();

    let c1 = Container { root, id: "c1" };
    let (rootfs, kind) = prepare_rootfs_with(root, c1.id, &lowers, strategy).unwrap();
    assert_eq!(kind, want);
    assert_eq!(rootfs, root.join("containers/c1/rootfs"));
    let upper = root.join("containers/c1/upper");
    assert_eq!(
        std::fs::read(rootfs.join("etc/hostname")).unwrap(),
        b"base\n"
    );
    assert!(
        !rootfs.join("etc/old").exists(),
        "the image's deletion holds"
    );

    // Write, modify, delete.
    std::fs::write(rootfs.join("etc/new"), b"from c1").unwrap();
    std::fs::write(rootfs.join("etc/hostname"), b"c1\n").unwrap();
    std::fs::remove_file(rootfs.join("bin/sh")).unwrap();
    std::fs::create_dir(rootfs.join("tmp")).unwrap();
    assert_eq!(std::fs::read(upper.join("etc/new")).unwrap(), b"from c1");
    assert_eq!(std::fs::read(upper.join("etc/hostname")).unwrap(), b"c1\n");
    assert!(upper.join("tmp").is_dir());
    if kind == MountKind::MountApi || kind == MountKind::Legacy {
        let wh = std::fs::symlink_metadata(upper.join("bin/sh")).unwrap();
        assert!(
            wh.file_type().is_char_device() && wh.rdev() == 0,
            "overlay's whiteout in upper"
        );
    } else {
        assert!(!upper.join("bin/sh").exists());
    }
    let after: Vec<_> = lowers.iter().map(|l| tree(l)).collect();
    assert_eq!(before, after, "the image's snapshots are unchanged");

    // A second container of the same image sees the image, not c1's writes.
    let c2 = Container { root, id: "c2" };
    let (rootfs2, _) = prepare_rootfs_with(root, c2.id, &lowers, strategy).unwrap();
    assert_eq!(
        std::fs::read(rootfs2.join("etc/hostname")).unwrap(),
        b"base\n"
    );
    assert!(!rootfs2.join("etc/new").exists());
    assert!(rootfs2.join("bin/sh").exists());
    assert_eq!(std::fs::read(rootfs.join("etc/hostname")).unwrap(), b"c1\n");

    // A container's directory cannot be prepared twice.
    let e = prepare_rootfs_with(root, c1.id, &lowers, strategy).unwrap_err();
    assert!(matches!(e, RootfsError::Exists { .. }), "{e}");
    assert_eq!(
        std::fs::read(upper.join("etc/new")).unwrap(),
        b"from c1",
        "and is untouched"
    );

    teardown_rootfs(root, c1.id).unwrap();
    teardown_rootfs(root, c1.id).unwrap();
    teardown_rootfs(root, c2.id).unwrap();
    assert_eq!(mounts_under(root), Vec::<String>::new());
    assert!(!root.join("containers/c1").exists());
    assert!(!root.join("containers/c2").exists());
    assert_eq!(before, lowers.iter().map(|l| tree(l)).collect::<Vec<_>>());
}

#[test]
fn a_container_root_over_legacy_overlay() {
    writes_land_in_upper_and_containers_are_apart(MountStrategy::Auto, MountKind::Legacy);
}

#[test]
fn a_container_root_over_the_mount_api() {
    writes_land_in_upper_and_containers_are_apart(MountStrategy::MountApi, MountKind::MountApi);
}

#[test]
fn a_container_root_over_a_writable_copy() {
    writes_land_in_upper_and_containers_are_apart(MountStrategy::Copy, MountKind::Copy);
}

#[test]
fn prepare_rootfs_returns_the_mounted_root() {
    let tmp = tempfile::tempdir().unwrap();
    let lowers = image_snapshots(tmp.path());
    let c = Container {
        root: tmp.path(),
        id: "plain",
    };
    let rootfs = prepare_rootfs(tmp.path(), c.id, &lowers).unwrap();
    assert_eq!(std::fs::read(rootfs.join("var/lib/data")).unwrap(), b"d");
    assert_eq!(mounts_under(&rootfs).len(), 1);
    drop(c);
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
    assert!(!tmp.path().join("containers/plain").exists());
}

#[test]
fn a_volatile_root_keeps_its_writes_and_mounts_again_after_an_unmount() {
    let tmp = tempfile::tempdir().unwrap();
    let lowers = image_snapshots(tmp.path());
    let c = Container {
        root: tmp.path(),
        id: "vol",
    };
    let rootfs = engine::rootfs::prepare_rootfs_volatile(tmp.path(), c.id, &lowers).unwrap();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        info.lines()
            .any(|l| l.contains(rootfs.to_str().unwrap()) && l.contains("volatile")),
        "mounted volatile"
    );
    std::fs::write(rootfs.join("new"), "kept").unwrap();
    engine::rootfs::unmount_rootfs(tmp.path(), c.id).unwrap();
    assert!(!tmp
        .path()
        .join("containers/vol/work/work/incompat")
        .exists());
    // overlayfs refuses a work directory a volatile mount marked: the mark went.
    let again = engine::rootfs::remount_rootfs(tmp.path(), c.id, &lowers).unwrap();
    assert_eq!(std::fs::read_to_string(again.join("new")).unwrap(), "kept");
    drop(c);
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
}

#[test]
fn bad_ids_are_refused_and_nothing_is_made() {
    let tmp = tempfile::tempdir().unwrap();
    let lowers = image_snapshots(tmp.path());
    // The runtime's rule (berth_fs::check_container_id); "a..b" is a plain name there.
    let long = "a".repeat(256);
    for id in [
        "",
        "a/b",
        "..",
        "../escape",
        ".hidden",
        "sp ace",
        long.as_str(),
    ] {
        let e = prepare_rootfs(tmp.path(), id, &lowers).unwrap_err();
        assert!(matches!(e, RootfsError::InvalidId { .. }), "{id:?}: {e}");
        let e = teardown_rootfs(tmp.path(), id).unwrap_err();
        assert!(matches!(e, RootfsError::InvalidId { .. }), "{id:?}: {e}");
    }
    assert!(!tmp.path().join("containers").exists());
    assert!(!tmp.path().join("escape").exists());
}

#[test]
fn teardown_touches_nothing_it_did_not_make() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let lowers = image_snapshots(root);
    let c = Container { root, id: "c3" };
    let rootfs = prepare_rootfs(root, c.id, &lowers).unwrap();
    std::fs::write(rootfs.join("etc/written"), b"w").unwrap();

    // Something mounted inside the root: teardown refuses and removes nothing.
    let inner = rootfs.join("var/lib");
    nix::mount::mount(
        Some("tmpfs"),
        &inner,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    let e = teardown_rootfs(root, c.id).unwrap_err();
    nix::mount::umount2(&inner, nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert!(matches!(e, RootfsError::Busy { .. }), "{e}");
    assert_eq!(std::fs::read(rootfs.join("etc/written")).unwrap(), b"w");
    assert_eq!(
        std::fs::read(root.join("containers/c3/upper/etc/written")).unwrap(),
        b"w"
    );

    // A file someone else put in the container's directory stays, with the directory.
    std::fs::write(root.join("containers/c3/config.json"), b"{}").unwrap();
    teardown_rootfs(root, c.id).unwrap();
    assert_eq!(mounts_under(root), Vec::<String>::new());
    let left: Vec<_> = std::fs::read_dir(root.join("containers/c3"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["config.json"]);

    // A directory that preparation did not make is not taken over.
    let e = prepare_rootfs(root, c.id, &lowers).unwrap_err();
    assert!(matches!(e, RootfsError::Exists { .. }), "{e}");
    assert_eq!(
        std::fs::read(root.join("containers/c3/config.json")).unwrap(),
        b"{}"
    );
    // Tearing down a container that never had a root is a no-op.
    teardown_rootfs(root, "never-made").unwrap();
}

#[test]
fn a_failed_mount_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = vec![
        tmp.path().join("no-such-layer"),
        tmp.path().join("nor-this"),
    ];
    let c = Container {
        root: tmp.path(),
        id: "bad",
    };
    let e = prepare_rootfs(tmp.path(), c.id, &missing).unwrap_err();
    assert!(matches!(e, RootfsError::Mount { .. }), "{e}");
    assert!(!tmp.path().join("containers/bad").exists());
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
}
