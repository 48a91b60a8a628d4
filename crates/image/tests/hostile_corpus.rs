//! Property tests over hostile input (security issue 11, "keep them
//! closed"): layers built from random entries (names with `..`, absolute
//! paths, whiteouts, symlinks and hardlinks to the host, directories over
//! links), archives with random damage, and random manifests and configs.
//! Whatever the input, nothing panics and nothing outside the snapshot or
//! store changes. Bounded (a few dozen cases each) to keep CI fast.

use image::manifest::{Config, Index, Manifest, Platform};
use image::{apply_layer, ContentStore};
use proptest::prelude::*;
use test_support::oci::{docker_archive, tar_layer};

/// One tar entry of a hostile layer; `link` picks a target from
/// [`link_target`] (some of them the test's host directory).
#[derive(Debug, Clone)]
struct Entry {
    name: Vec<u8>,
    kind: u8,
    link: u8,
    mode: u32,
}

fn link_target(which: u8, host: &str) -> Vec<u8> {
    match which {
        0 => host.as_bytes().to_vec(),
        1 => format!("../../../../..{host}").into_bytes(),
        2 => format!("{host}/a").into_bytes(),
        3 => b"link".to_vec(),
        4 => b"a/b".to_vec(),
        _ => b"/".to_vec(),
    }
}

fn name_part() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"a".to_vec()),
        Just(b"b".to_vec()),
        Just(b"..".to_vec()),
        Just(b".".to_vec()),
        Just(b".wh.a".to_vec()),
        Just(b".wh..wh..opq".to_vec()),
        Just(b".wh.".to_vec()),
        Just(b"link".to_vec()),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    // Names come from a small pool, so that later entries often land on
    // (or under) earlier ones: a directory or file over a symlink, a write
    // through a link, a whiteout of a link.
    let pooled = prop_oneof![
        Just(b"link".to_vec()),
        Just(b"link/".to_vec()),
        Just(b"link/a".to_vec()),
        Just(b"a".to_vec()),
        Just(b"d/link".to_vec()),
        Just(b"d/link/b".to_vec()),
        Just(b".wh.link".to_vec()),
    ];
    let random = (proptest::collection::vec(name_part(), 1..4), any::<bool>()).prop_map(
        |(parts, absolute)| {
            let mut name = if absolute { b"/".to_vec() } else { vec![] };
            name.extend(parts.join(&b'/'));
            name
        },
    );
    (
        prop_oneof![3 => pooled, 1 => random],
        prop_oneof![2 => Just(2u8), 2 => Just(0u8), 1 => Just(1u8), 1 => Just(3u8), 1 => Just(4u8), 1 => Just(5u8)],
        0u8..6,
        prop_oneof![Just(0o6777u32), Just(0o755), Just(0o644)],
    )
        .prop_map(|(name, kind, link, mode)| Entry {
            name,
            kind,
            link,
            mode,
        })
}

fn layer_of(entries: &[Entry], host: &str) -> Vec<u8> {
    let mut tar = vec![];
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let kind = match e.kind {
            0 => tar::EntryType::Directory,
            1 => tar::EntryType::Regular,
            2 => tar::EntryType::Symlink,
            3 => tar::EntryType::Link,
            4 => tar::EntryType::Fifo,
            _ => tar::EntryType::Char,
        };
        // Raw names: set_path would clean them.
        let name = &e.name[..e.name.len().min(99)];
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        let target = link_target(e.link, host);
        let link = &target[..target.len().min(99)];
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(kind);
        h.set_mode(e.mode);
        h.set_uid(1000);
        h.set_gid(1000);
        let data: &[u8] = if kind == tar::EntryType::Regular {
            b"content"
        } else {
            b""
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        tar.extend_from_slice(h.as_bytes());
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    /// A random hostile layer is applied or refused, never panics, and the
    /// host directory its links point at keeps its listing and modes.
    #[test]
    fn hostile_layers_never_touch_the_host(entries in proptest::collection::vec(entry(), 1..12)) {
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("a"), "host").unwrap();
        std::fs::create_dir(host.path().join("b")).unwrap();
        let before = test_support::tree_listing(host.path());
        let mode = |p: &std::path::Path| std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(p).unwrap());
        let host_mode = mode(host.path());
        let snap = tempfile::tempdir().unwrap();
        let layer = layer_of(&entries, &host.path().display().to_string());
        let _ = apply_layer(snap.path(), &layer[..], 1 << 20);
        prop_assert_eq!(test_support::tree_listing(host.path()), before, "{:?}", entries);
        prop_assert_eq!(mode(host.path()), host_mode, "{:?}", entries);
    }

    /// A docker-archive with random bytes damaged loads or fails cleanly,
    /// and writes nothing outside its store.
    #[test]
    fn damaged_archives_fail_cleanly(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let layer = tar_layer(&[("etc/motd", b"hi\n"), ("bin/x", b"x")]);
        let mut archive = docker_archive("corpus:1", &[layer]);
        for (at, byte) in flips {
            let i = at.index(archive.len());
            archive[i] ^= byte | 1;
        }
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("store");
        let store = ContentStore::open(&root).unwrap();
        let _ = image::archive::load_archive(&store, &root, &archive[..], &Platform::linux_amd64(), &());
        let names: Vec<_> = std::fs::read_dir(outer.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        prop_assert_eq!(names, vec![std::ffi::OsString::from("store")]);
    }

    /// Random JSON never panics the manifest, index and config parsers, nor
    /// platform selection.
    #[test]
    fn random_manifests_and_configs_parse_or_fail(json in json_value(3)) {
        let text = json.to_string();
        let _ = serde_json::from_str::<Manifest>(&text);
        let _ = serde_json::from_str::<Config>(&text);
        if let Ok(index) = serde_json::from_str::<Index>(&text) {
            let _ = image::manifest::select(&index, &Platform::linux_amd64());
        }
        let _ = image::manifest::media_type_of(text.as_bytes());
    }
}

/// Random JSON values up to `depth`, with the keys manifests and configs use.
fn json_value(depth: u32) -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        prop_oneof![
            Just("sha256:../../etc/passwd".to_string()),
            Just("application/vnd.oci.image.index.v1+json".to_string()),
            Just("linux".to_string()),
            Just("amd64".to_string()),
            "[a-z:0-9/.]{0,12}",
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(depth, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("schemaVersion"),
                        Just("mediaType"),
                        Just("config"),
                        Just("layers"),
                        Just("manifests"),
                        Just("digest"),
                        Just("size"),
                        Just("platform"),
                        Just("os"),
                        Just("architecture"),
                        Just("rootfs"),
                        Just("diff_ids"),
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|kv| serde_json::Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}
