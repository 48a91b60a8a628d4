//! An OCI layout with two layers (a deletion and an opaque directory in the
//! top one) imported into the store, unpacked into snapshots, and stacked
//! with overlayfs: the mounted root shows exactly what the image says.

use std::io::Write;
use std::path::Path;

use image::layout::import_oci_layout;
use image::snapshot::{chain_ids, mount_overlay, prepare, SnapshotError};
use image::{ContentStore, Digest};
use serde_json::json;

fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Writes an OCI layout of the given layers; `lie_about` corrupts one diff ID.
fn layout(dir: &Path, layers: &[Vec<u8>], lie_about: Option<usize>) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = Digest::of(data);
        std::fs::write(blobs.join(d.hex()), data).unwrap();
        (d, data.len())
    };
    let mut descs = vec![];
    let mut diffs = vec![];
    for (i, l) in layers.iter().enumerate() {
        let diff = if lie_about == Some(i) {
            Digest::of(b"something else")
        } else {
            Digest::of(l)
        };
        diffs.push(diff.to_string());
        let (d, n) = put(&gz(l));
        descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.to_string(), "size": n}));
    }
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diffs}})).unwrap();
    let (cd, cn) = put(&config);
    let manifest = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": cn}, "layers": descs})).unwrap();
    let (md, mn) = put(&manifest);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md.to_string(), "size": mn, "annotations": {"org.opencontainers.image.ref.name": "test:1"}}]})).unwrap()).unwrap();
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
