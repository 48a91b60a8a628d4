//! Security issue 11, item 9: a malicious registry (served by the test on
//! 127.0.0.1) can neither exhaust memory or disk, nor hang a pull, nor
//! steer requests: each attack ends in a clear error, fast, and leaves no
//! image and no partial download behind.

use std::time::{Duration, Instant};

use sha2::Digest as _;
use test_support::hostile_registry::{HostileRegistry, Reply};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn digest(b: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(b))
}

fn pull(root: &std::path::Path, reference: &str) -> (test_support::Outcome, Duration) {
    let start = Instant::now();
    let o = test_support::run_through_files(
        std::process::Command::new(BERTH)
            .env("BERTH_REGISTRY_IDLE_TIMEOUT", "2")
            .arg("--root")
            .arg(root)
            .args(["pull", "-q", reference]),
    );
    (o, start.elapsed())
}

/// No image named, and no partial download left in the store.
fn assert_nothing_kept(root: &std::path::Path) {
    let refs = std::fs::read_to_string(root.join("images.json")).unwrap_or_default();
    assert!(!refs.contains("evil"), "an image was named: {refs}");
    let leftovers: Vec<_> = std::fs::read_dir(root.join("blobs/sha256"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".ingest"))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "partial downloads left: {leftovers:?}"
    );
}

/// A config and a manifest with one layer declared `layer_size` bytes.
fn image_with_layer(layer_size: u64) -> (Vec<u8>, Vec<u8>, String) {
    let layer_digest = digest(b"the layer the registry claims");
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]}
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}]
    }))
    .unwrap();
    (config, manifest, layer_digest)
}

fn serve_image(config: Vec<u8>, manifest: Vec<u8>, layer: Reply) -> HostileRegistry {
    let config_digest = digest(&config);
    HostileRegistry::start(move |path| {
        if path.contains("/manifests/") {
            Reply::Body {
                body: manifest.clone(),
                content_type: "application/vnd.oci.image.manifest.v1+json".into(),
            }
        } else if path.ends_with(&config_digest) {
            Reply::Body {
                body: config.clone(),
                content_type: "application/octet-stream".into(),
            }
        } else if path.contains("/blobs/") {
            layer.clone()
        } else {
            Reply::NotFound
        }
    })
}

#[test]
fn an_endless_manifest_is_cut_at_the_limit() {
    let reg = HostileRegistry::start(|_| Reply::Endless);
    let dir = tempfile::tempdir().unwrap();
    let (o, took) = pull(dir.path(), &format!("{}/evil:latest", reg.addr()));
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("larger than the limit"), "{}", o.stderr);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_nothing_kept(dir.path());
}

#[test]
fn a_blob_larger_than_the_disk_is_refused_before_download() {
    let (config, manifest, _) = image_with_layer(1 << 40);
    let reg = serve_image(config, manifest, Reply::Zeros(1 << 40));
    let dir = tempfile::tempdir().unwrap();
    let (o, took) = pull(dir.path(), &format!("{}/evil:latest", reg.addr()));
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("declares 1099511627776 bytes"),
        "{}",
        o.stderr
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_nothing_kept(dir.path());
}

#[test]
fn a_blob_longer_than_declared_is_cut_and_dropped() {
    let (config, manifest, _) = image_with_layer(1000);
    let reg = serve_image(config, manifest, Reply::Zeros(50 << 20));
    let dir = tempfile::tempdir().unwrap();
    let (o, _) = pull(dir.path(), &format!("{}/evil:latest", reg.addr()));
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("expected 1000 bytes"), "{}", o.stderr);
    assert_nothing_kept(dir.path());
}

#[test]
fn a_silent_registry_fails_the_pull_after_the_idle_timeout() {
    let (config, manifest, _) = image_with_layer(1000);
    for silent_at in ["manifest", "blob"] {
        let reg = if silent_at == "manifest" {
            HostileRegistry::start(|_| Reply::Silent)
        } else {
            serve_image(config.clone(), manifest.clone(), Reply::Silent)
        };
        let dir = tempfile::tempdir().unwrap();
        let (o, took) = pull(dir.path(), &format!("{}/evil:latest", reg.addr()));
        assert_ne!(o.code, 0, "silent at the {silent_at}: {o:?}");
        assert!(
            took < Duration::from_secs(20),
            "silent at the {silent_at}: the pull took {took:?} with a 2 s idle timeout"
        );
        assert!(
            o.stderr.to_lowercase().contains("timed out")
                || o.stderr.to_lowercase().contains("timeout"),
            "silent at the {silent_at}: {}",
            o.stderr
        );
    }
}

#[test]
fn an_index_entry_that_is_not_a_digest_is_never_requested() {
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "../../../../etc/passwd", "size": 100,
            "platform": {"architecture": "amd64", "os": "linux"}
        }]
    }))
    .unwrap();
    let reg = HostileRegistry::start(move |path| {
        if path.ends_with("/manifests/latest") {
            Reply::Body {
                body: index.clone(),
                content_type: "application/vnd.oci.image.index.v1+json".into(),
            }
        } else {
            Reply::NotFound
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (o, _) = pull(dir.path(), &format!("{}/evil:latest", reg.addr()));
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("../../../../etc/passwd"), "{}", o.stderr);
    let paths = reg.paths();
    assert!(
        paths
            .iter()
            .all(|p| !p.contains("..") && !p.contains("passwd")),
        "a request was steered: {paths:?}"
    );
    assert_nothing_kept(dir.path());
}
