//! Loading archives and layouts: each layer member is read once and lands
//! both in the blob store and in its snapshot; what is loaded already is
//! not read again; links between members stay inside the archive; a
//! member that is not what the manifest says stores nothing.

use std::path::Path;
use std::sync::Mutex;

use image::archive::{load_archive, load_archive_file};
use image::layout::load_oci_layout;
use image::load::{LoadError, LoadProgress};
use image::manifest::Platform;
use image::snapshot::chain_ids;
use image::{ContentStore, Digest, StoreError};
use test_support::oci::{docker_archive, gzip, tar_layer, tar_of, write_layout, Member};

/// Records what a load reports.
#[derive(Default)]
struct Seen {
    started: Mutex<Vec<(Digest, u64)>>,
    read: Mutex<u64>,
    done: Mutex<Vec<Digest>>,
}

impl LoadProgress for Seen {
    fn layer_started(&self, layer: &Digest, size: u64) {
        self.started.lock().unwrap().push((layer.clone(), size));
    }
    fn layer_read(&self, _: &Digest, bytes: u64) {
        *self.read.lock().unwrap() += bytes;
    }
    fn layer_done(&self, layer: &Digest) {
        self.done.lock().unwrap().push(layer.clone());
    }
}

fn amd64() -> Platform {
    Platform::linux_amd64()
}

fn d(s: &str) -> Digest {
    s.parse().unwrap()
}

/// Names under `dir` that a writer leaves only while it runs.
fn leftovers(root: &Path) -> Vec<String> {
    let mut out = vec![];
    for sub in ["", "blobs/sha256", "snapshots"] {
        if let Ok(rd) = std::fs::read_dir(root.join(sub)) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(".ingest-") || n.starts_with(".unpack-") || n.starts_with(".load-")
                {
                    out.push(format!("{sub}/{n}"));
                }
            }
        }
    }
    out
}

fn snapshots(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("snapshots"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_docker_archive_loads_in_one_read_and_a_second_load_reads_nothing() {
    let base = tar_layer(&[("etc/keep", b"1"), ("etc/gone", b"2")]);
    let top = tar_layer(&[("etc/.wh.gone", b""), ("etc/added", b"3")]);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("image.tar");
    std::fs::write(
        &archive,
        docker_archive("example.com/app:1", &[base.clone(), top.clone()]),
    )
    .unwrap();
    let root = dir.path().join("root");
    let store = ContentStore::open(&root).unwrap();

    let seen = Seen::default();
    let images = load_archive_file(&store, &root, &archive, &amd64(), &seen).unwrap();
    assert_eq!(images.len(), 1);
    let img = &images[0];
    assert_eq!(img.name.as_deref(), Some("example.com/app:1"));
    let diffs = [
        d(&test_support::oci::digest(&base)),
        d(&test_support::oci::digest(&top)),
    ];
    // Uncompressed layers: each blob is its own diff ID.
    assert_eq!(
        img.layers,
        vec![
            (diffs[0].clone(), diffs[0].clone()),
            (diffs[1].clone(), diffs[1].clone())
        ]
    );
    for (blob, _) in &img.layers {
        assert!(store.contains(blob), "{blob} stored");
    }
    // Both layers reported, each read once.
    let mut started = seen.started.lock().unwrap().clone();
    started.sort();
    let mut want = vec![
        (diffs[0].clone(), base.len() as u64),
        (diffs[1].clone(), top.len() as u64),
    ];
    want.sort();
    assert_eq!(started, want);
    assert_eq!(*seen.read.lock().unwrap(), (base.len() + top.len()) as u64);
    assert_eq!(seen.done.lock().unwrap().len(), 2);
    // The snapshots hold the layers; the written manifest says what they are.
    let chains = chain_ids(&diffs);
    let top_fs = root.join("snapshots").join(chains[1].hex()).join("fs");
    assert_eq!(std::fs::read(top_fs.join("etc/added")).unwrap(), b"3");
    let base_fs = root.join("snapshots").join(chains[0].hex()).join("fs");
    assert_eq!(std::fs::read(base_fs.join("etc/gone")).unwrap(), b"2");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.path(&img.manifest)).unwrap()).unwrap();
    assert_eq!(
        manifest["layers"][1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(manifest["layers"][1]["size"], top.len());
    assert_eq!(manifest["config"]["digest"], img.config.to_string());
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));

    // Everything is there: the second load reads no layer.
    let again = Seen::default();
    let images2 = load_archive_file(&store, &root, &archive, &amd64(), &again).unwrap();
    assert_eq!(images2, images);
    assert!(again.started.lock().unwrap().is_empty());
    assert_eq!(*again.read.lock().unwrap(), 0);
}

#[test]
fn a_layer_member_linked_to_another_loads_and_links_cannot_leave_the_archive() {
    // docker save writes a layer that repeats an earlier one as a symlink.
    let layer = tar_layer(&[("a", b"1")]);
    let diff = test_support::oci::digest(&layer);
    let config = serde_json::to_vec(&serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff, diff]}}))
    .unwrap();
    let manifest = |second: &str| {
        serde_json::to_vec(
            &serde_json::json!([{"Config": "config.json", "RepoTags": ["twice:1"],
            "Layers": ["0/layer.tar", second]}]),
        )
        .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.tar");
    let m = manifest("1/layer.tar");
    std::fs::write(
        &good,
        tar_of(&[
            ("config.json", Member::File(&config)),
            ("0/layer.tar", Member::File(&layer)),
            ("1/layer.tar", Member::Symlink("../0/layer.tar")),
            ("manifest.json", Member::File(&m)),
        ]),
    )
    .unwrap();
    let root = dir.path().join("root");
    let store = ContentStore::open(&root).unwrap();
    let images = load_archive_file(&store, &root, &good, &amd64(), &()).unwrap();
    let chains = chain_ids(&[d(&diff), d(&diff)]);
    for c in &chains {
        assert_eq!(
            std::fs::read(root.join("snapshots").join(c.hex()).join("fs/a")).unwrap(),
            b"1"
        );
    }
    assert_eq!(images[0].layers.len(), 2);

    // A symlink out of the archive, and a name with `..`: both refused,
    // naming the member; nothing unpacked.
    for (name, members_second, second) in [
        ("escape.tar", Some("../../../../etc/passwd"), "1/layer.tar"),
        ("dotdot.tar", None, "../outside/layer.tar"),
    ] {
        let path = dir.path().join(name);
        let m = manifest(second);
        let mut members = vec![
            ("config.json", Member::File(&config)),
            ("0/layer.tar", Member::File(&layer)),
            ("manifest.json", Member::File(&m)),
        ];
        if let Some(target) = members_second {
            members.push(("1/layer.tar", Member::Symlink(target)));
        }
        std::fs::write(&path, tar_of(&members)).unwrap();
        let root = dir.path().join(format!("root-{name}"));
        let store = ContentStore::open(&root).unwrap();
        let e = load_archive_file(&store, &root, &path, &amd64(), &()).unwrap_err();
        assert!(
            matches!(e, LoadError::Member { .. }) && e.to_string().contains(second),
            "{name}: {e}"
        );
        assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
        assert!(
            snapshots(&root).len() <= 1,
            "at most the good layer: {:?}",
            snapshots(&root)
        );
    }
}

#[test]
fn a_blob_that_is_not_its_digest_stores_nothing_even_if_it_unpacks() {
    let layer = tar_layer(&[("a", b"1")]);
    let src = tempfile::tempdir().unwrap();
    write_layout(src.path(), "x:1", std::slice::from_ref(&layer));
    // Replace the layer blob with another gzip of the same tar: it unpacks
    // to the right diff ID, but it is not the blob the manifest names.
    let blob_hex = test_support::oci::digest(&gzip(&layer))
        .trim_start_matches("sha256:")
        .to_string();
    let other = {
        use std::io::Write;
        // A file name in the gzip header: other bytes, the same tar.
        let mut e = flate2::GzBuilder::new()
            .filename("other")
            .write(Vec::new(), flate2::Compression::fast());
        e.write_all(&layer).unwrap();
        e.finish().unwrap()
    };
    std::fs::write(src.path().join("blobs/sha256").join(&blob_hex), other).unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = ContentStore::open(root.path()).unwrap();
    let e = load_oci_layout(&store, root.path(), src.path(), &amd64(), &()).unwrap_err();
    assert!(
        matches!(e, LoadError::Store(StoreError::DigestMismatch { .. }))
            || matches!(e, LoadError::Store(StoreError::SizeMismatch { .. })),
        "{e}"
    );
    assert!(e.to_string().contains(&blob_hex), "{e}");
    assert!(!store.path(&d(&format!("sha256:{blob_hex}"))).exists());
    assert!(
        snapshots(root.path()).is_empty(),
        "{:?}",
        snapshots(root.path())
    );
    assert!(leftovers(root.path()).is_empty());
}

#[test]
fn a_layout_packed_in_a_tar_on_a_stream_loads_and_the_spool_is_removed() {
    let layer = tar_layer(&[("bin/tool", b"#!/bin/sh\n")]);
    let src = tempfile::tempdir().unwrap();
    let manifest = write_layout(src.path(), "tool:2", std::slice::from_ref(&layer));
    // Packed by tar itself: members are named ./index.json, ./blobs/...
    let out = tempfile::tempdir().unwrap();
    let packed = out.path().join("packed.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(src.path())
        .arg("-cf")
        .arg(&packed)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let root = tempfile::tempdir().unwrap();
    let store = ContentStore::open(root.path()).unwrap();
    let input = std::fs::File::open(&packed).unwrap();
    let images = load_archive(&store, root.path(), input, &amd64(), &()).unwrap();
    assert_eq!(images[0].manifest.to_string(), manifest);
    assert_eq!(images[0].name.as_deref(), Some("tool:2"));
    let chain = &chain_ids(&[images[0].layers[0].1.clone()])[0];
    assert_eq!(
        std::fs::read(
            root.path()
                .join("snapshots")
                .join(chain.hex())
                .join("fs/bin/tool")
        )
        .unwrap(),
        b"#!/bin/sh\n"
    );
    assert!(
        leftovers(root.path()).is_empty(),
        "{:?}",
        leftovers(root.path())
    );
}

#[test]
fn a_layer_that_is_not_its_diff_id_is_neither_stored_nor_unpacked() {
    let layer = tar_layer(&[("a", b"1")]);
    let src = tempfile::tempdir().unwrap();
    test_support::oci::write_layout_lying(src.path(), "x:1", std::slice::from_ref(&layer), Some(0));
    let root = tempfile::tempdir().unwrap();
    let store = ContentStore::open(root.path()).unwrap();
    let e = load_oci_layout(&store, root.path(), src.path(), &amd64(), &()).unwrap_err();
    assert!(
        matches!(
            e,
            LoadError::Snapshot(image::snapshot::SnapshotError::DiffIdMismatch { .. })
        ),
        "{e}"
    );
    assert!(!store.contains(&d(&test_support::oci::digest(&gzip(&layer)))));
    assert!(snapshots(root.path()).is_empty());
    assert!(leftovers(root.path()).is_empty());
}
