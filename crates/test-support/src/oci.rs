//! Images made by hand for tests: tar layers of given files, gzip, and an
//! OCI image layout of any number of layers (config with diff IDs,
//! manifest, index naming the image).

use std::io::Write;
use std::path::Path;

use serde_json::json;
use sha2::Digest as _;

/// `sha256:<hex>` of `data`.
pub fn digest(data: &[u8]) -> String {
    let h = sha2::Sha256::digest(data);
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A tar stream of regular files (mode 0644) at the given paths.
pub fn tar_layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// `data` gzip-compressed.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Stores `data` in the layout's `blobs/sha256`; returns (digest, size).
fn put_blob(dir: &Path, data: &[u8]) -> (String, usize) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let d = digest(data);
    std::fs::write(blobs.join(d.trim_start_matches("sha256:")), data).unwrap();
    (d, data.len())
}

/// Writes an OCI layout at `dir` holding one image named `name` (the
/// `org.opencontainers.image.ref.name` annotation) of `layers` (plain
/// tars, stored gzip-compressed); returns the manifest digest.
pub fn write_layout(dir: &Path, name: &str, layers: &[Vec<u8>]) -> String {
    write_layout_lying(dir, name, layers, None)
}

/// [`write_layout`], with the config's diff ID of layer `lie_about` wrong.
pub fn write_layout_lying(
    dir: &Path,
    name: &str,
    layers: &[Vec<u8>],
    lie_about: Option<usize>,
) -> String {
    let put = |data: &[u8]| put_blob(dir, data);
    let mut descs = vec![];
    let mut diffs = vec![];
    for (i, l) in layers.iter().enumerate() {
        diffs.push(if lie_about == Some(i) {
            digest(b"something else")
        } else {
            digest(l)
        });
        let (d, n) = put(&gzip(l));
        descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n}));
    }
    let config = serde_json::to_vec(&json!({
        "created": "2024-01-02T03:04:05Z", "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diffs}}))
    .unwrap();
    let (cd, cn) = put(&config);
    let manifest = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn}, "layers": descs})).unwrap();
    let (md, mn) = put(&manifest);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": mn, "annotations": {"org.opencontainers.image.ref.name": name}}]}))
        .unwrap(),
    )
    .unwrap();
    md
}

/// Writes an OCI layout whose index `name` points at a nested index of
/// one single-layer manifest per (architecture, layer), all linux.
pub fn write_multi_platform_layout(dir: &Path, name: &str, images: &[(&str, Vec<u8>)]) {
    let put = |data: &[u8]| put_blob(dir, data);
    let mut manifests = vec![];
    for (arch, layer) in images {
        let (ld, ln) = put(&gzip(layer));
        let config = serde_json::to_vec(&json!({"architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [digest(layer)]}}))
        .unwrap();
        let (cd, cn) = put(&config);
        let manifest = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ln}]}))
        .unwrap();
        let (md, mn) = put(&manifest);
        manifests.push(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
            "platform": {"architecture": arch, "os": "linux"}}));
    }
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests})).unwrap();
    let (id, n) = put(&index);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": id, "size": n, "annotations": {"org.opencontainers.image.ref.name": name}}]}))
        .unwrap(),
    )
    .unwrap();
}

/// A member of a hand-made tar ([`tar_of`]).
pub enum Member<'a> {
    /// A regular file with this content.
    File(&'a [u8]),
    /// A symlink to this target.
    Symlink(&'a str),
}

/// A tar stream of the given members, in order.
pub fn tar_of(members: &[(&str, Member)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, m) in members {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        match m {
            Member::File(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, name, *data).unwrap();
            }
            Member::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, name, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// A docker-archive (`docker save`'s format: `manifest.json`, a config
/// named by its digest, `<n>/layer.tar` per layer, uncompressed) of one
/// image tagged `tag` with `layers` (plain tars).
pub fn docker_archive(tag: &str, layers: &[Vec<u8>]) -> Vec<u8> {
    let diffs: Vec<String> = layers.iter().map(|l| digest(l)).collect();
    let config = serde_json::to_vec(&json!({
        "created": "2024-01-02T03:04:05Z", "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diffs}}))
    .unwrap();
    let config_name = format!("{}.json", digest(&config).trim_start_matches("sha256:"));
    let names: Vec<String> = (0..layers.len())
        .map(|i| format!("{i}/layer.tar"))
        .collect();
    let manifest =
        serde_json::to_vec(&json!([{"Config": config_name, "RepoTags": [tag], "Layers": names}]))
            .unwrap();
    let mut members = vec![(config_name.as_str(), Member::File(&config))];
    for (n, l) in names.iter().zip(layers) {
        members.push((n.as_str(), Member::File(l)));
    }
    members.push(("manifest.json", Member::File(&manifest)));
    tar_of(&members)
}
