//! An OCI layout with two layers (a deletion and an opaque directory in the
//! top one) imported into the store, unpacked into snapshots, and stacked
//! with overlayfs: the mounted root shows exactly what the image says.

use std::path::Path;

use image::layout::import_oci_layout;
use image::overlay::mount_overlay;
use image::snapshot::{chain_ids, prepare, SnapshotError};
use image::ContentStore;

use test_support::oci::tar_layer as layer;

/// Writes an OCI layout of `layers`; `lie_about` corrupts one diff ID.
fn layout(dir: &Path, layers: &[Vec<u8>], lie_about: Option<usize>) {
    test_support::oci::write_layout_lying(dir, "test:1", layers, lie_about);
}

fn walk(root: &Path) -> Vec<String> {
    let mut out = vec![];
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                go(base, &p, out);
            }
        }
    }
    go(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn multi_layer_image_assembles_with_deletions_and_opaque_dirs() {
    let base = layer(&[
        ("etc/keep", b"1"),
        ("etc/gone", b"2"),
        ("var/cache/old", b"3"),
    ]);
    let top = layer(&[
        ("etc/.wh.gone", b""),
        ("var/cache/.wh..wh..opq", b""),
        ("var/cache/new", b"4"),
        ("etc/added", b"5"),
    ]);
    let src = tempfile::tempdir().unwrap();
    layout(src.path(), &[base, top], None);
    let root = tempfile::tempdir().unwrap();
    let store = ContentStore::open(root.path()).unwrap();
    let images = import_oci_layout(
        &store,
        src.path(),
        &image::manifest::Platform::linux_amd64(),
    )
    .unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].name.as_deref(), Some("test:1"));
    let dirs = prepare(&store, root.path(), &images[0]).unwrap();
    let chains = chain_ids(
        &images[0]
            .layers
            .iter()
            .map(|(_, d)| d.clone())
            .collect::<Vec<_>>(),
    );
    assert!(dirs[1].starts_with(root.path().join("snapshots").join(chains[1].hex())));
    // Preparing again reuses the snapshots.
    assert_eq!(prepare(&store, root.path(), &images[0]).unwrap(), dirs);

    let target = tempfile::tempdir().unwrap();
    mount_overlay(&dirs, None, target.path()).unwrap();
    let seen = walk(target.path());
    nix::mount::umount2(target.path(), nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert_eq!(
        seen,
        [
            "etc",
            "etc/added",
            "etc/keep",
            "var",
            "var/cache",
            "var/cache/new"
        ]
    );
}

#[test]
fn a_layer_that_is_not_its_diff_id_is_refused() {
    let src = tempfile::tempdir().unwrap();
    layout(src.path(), &[layer(&[("a", b"1")])], Some(0));
    let root = tempfile::tempdir().unwrap();
    let store = ContentStore::open(root.path()).unwrap();
    let images = import_oci_layout(
        &store,
        src.path(),
        &image::manifest::Platform::linux_amd64(),
    )
    .unwrap();
    let e = prepare(&store, root.path(), &images[0]).unwrap_err();
    assert!(matches!(e, SnapshotError::DiffIdMismatch { .. }), "{e}");
    assert!(
        !root.path().join("snapshots").read_dir().unwrap().any(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')),
        "no snapshot kept"
    );
}

#[test]
fn a_corrupted_blob_in_the_layout_is_refused() {
    let src = tempfile::tempdir().unwrap();
    layout(src.path(), &[layer(&[("a", b"1")])], None);
    // Flip the layer blob's content: its name no longer matches.
    let blobs = src.path().join("blobs/sha256");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.path().join("index.json")).unwrap()).unwrap();
    let manifest_hex = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blobs.join(&manifest_hex)).unwrap()).unwrap();
    let layer_hex = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let mut data = std::fs::read(blobs.join(&layer_hex)).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(blobs.join(&layer_hex), data).unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = ContentStore::open(root.path()).unwrap();
    let e = import_oci_layout(
        &store,
        src.path(),
        &image::manifest::Platform::linux_amd64(),
    )
    .unwrap_err();
    assert!(e.to_string().contains(&layer_hex), "{e}");
}
