//! berth's image commands against archives made by a real Podman: load,
//! list, mount read-only, unmount, remove; and a clear error for formats
//! not supported yet.

use test_support::{mounts_containing, Podman};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn berth(root: &std::path::Path, args: &[&str]) -> test_support::Outcome {
    test_support::run_through_files(
        std::process::Command::new(BERTH)
            .arg("--root")
            .arg(root)
            .args(args),
    )
}

#[test]
fn podman_oci_archive_loads_lists_and_mounts() {
    let p = Podman::new("/usr/sbin/runc");
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("busybox-oci.tar");
    p.run(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        archive.to_str().unwrap(),
        "localhost/busybox:test",
    ])
    .ok();
    let root = dir.path().join("berth");
    let o = berth(&root, &["load", "-i", archive.to_str().unwrap()]).ok();
    assert_eq!(o.stdout.trim(), "Loaded image: localhost/busybox:test");
    let list = berth(&root, &["images"]).ok().stdout;
    assert!(
        list.lines()
            .any(|l| l.starts_with("localhost/busybox") && l.contains("test")),
        "{list}"
    );
    let mnt = berth(&root, &["image", "mount", "busybox:test"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let busybox = std::path::Path::new(&mnt).join("bin/busybox");
    assert_eq!(
        std::fs::read(&busybox).unwrap(),
        std::fs::read("/bin/busybox").unwrap(),
        "the image's file, byte for byte"
    );
    assert!(
        std::fs::write(std::path::Path::new(&mnt).join("new"), "x").is_err(),
        "mounted read-only"
    );
    let busy = berth(&root, &["rmi", "busybox:test"]);
    assert_ne!(busy.code, 0, "a mounted image cannot be removed");
    berth(&root, &["image", "unmount", "busybox:test"]).ok();
    assert!(mounts_containing(root.to_str().unwrap()).is_empty());
    berth(&root, &["rmi", "busybox:test"]).ok();
    assert!(!berth(&root, &["images", "-q"])
        .ok()
        .stdout
        .contains(char::is_alphanumeric));
}

#[test]
fn podman_docker_archive_loads_and_mounts() {
    let p = Podman::new("/usr/sbin/runc");
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("busybox-docker.tar");
    // podman's default save format is docker-archive.
    p.run(&[
        "save",
        "-o",
        archive.to_str().unwrap(),
        "localhost/busybox:test",
    ])
    .ok();
    let root = dir.path().join("berth");
    let o = berth(&root, &["load", "-i", archive.to_str().unwrap()]).ok();
    assert_eq!(o.stdout.trim(), "Loaded image: localhost/busybox:test");
    let mnt = berth(&root, &["image", "mount", "localhost/busybox:test"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let ok = std::fs::read(std::path::Path::new(&mnt).join("bin/busybox")).ok()
        == std::fs::read("/bin/busybox").ok();
    berth(&root, &["image", "unmount", "localhost/busybox:test"]).ok();
    assert!(ok, "the image's busybox, byte for byte");
    assert!(mounts_containing(root.to_str().unwrap()).is_empty());
}

#[test]
fn not_an_image_archive_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("junk.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg("/etc")
        .arg("-cf")
        .arg(&tar)
        .arg("hostname")
        .status()
        .unwrap();
    assert!(st.success());
    let o = berth(
        &dir.path().join("berth"),
        &["load", "-i", tar.to_str().unwrap()],
    );
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("neither an OCI image layout"),
        "{}",
        o.stderr
    );
}

#[test]
fn unknown_image_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let o = berth(dir.path(), &["image", "mount", "nope:1"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("no such image: nope:1"), "{}", o.stderr);
}

#[test]
fn import_makes_a_one_layer_image_with_changes() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    test_support::busybox_rootfs(&rootfs);
    let root = dir.path().join("berth");
    let o = berth(
        &root,
        &[
            "import",
            "--change",
            "CMD [\"/bin/sh\"]",
            "--change",
            "ENV GREETING=hi",
            rootfs.to_str().unwrap(),
            "mybox",
        ],
    )
    .ok();
    let config_digest = o.stdout.trim().to_string();
    assert!(config_digest.starts_with("sha256:"), "{}", o.stdout);
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            root.join("blobs/sha256")
                .join(config_digest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert!(config["config"]["Env"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("GREETING=hi")));
    let mnt = berth(&root, &["image", "mount", "mybox"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let same = std::fs::read(std::path::Path::new(&mnt).join("bin/busybox")).ok()
        == std::fs::read("/bin/busybox").ok();
    let link = std::fs::read_link(std::path::Path::new(&mnt).join("bin/sh")).ok();
    berth(&root, &["image", "unmount", "mybox"]).ok();
    assert!(same, "busybox byte for byte");
    assert_eq!(
        link.as_deref(),
        Some(std::path::Path::new("/bin/busybox")),
        "symlinks kept as links"
    );
    let bad = berth(
        &root,
        &[
            "import",
            "--change",
            "RUN make",
            rootfs.to_str().unwrap(),
            "other",
        ],
    );
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("RUN make"), "{}", bad.stderr);
}

#[test]
fn saved_archive_loads_in_podman_and_runs_on_berth_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    test_support::busybox_rootfs(&rootfs);
    let root = dir.path().join("berth");
    berth(
        &root,
        &[
            "import",
            "--change",
            "CMD [\"/bin/sh\"]",
            rootfs.to_str().unwrap(),
            "savedbox:1",
        ],
    )
    .ok();
    let archive = dir.path().join("saved.tar");
    berth(
        &root,
        &["save", "-o", archive.to_str().unwrap(), "savedbox:1"],
    )
    .ok();
    // The berth-runtime binary of this workspace, built beside berth.
    let runtime = std::path::Path::new(BERTH).with_file_name("berth-runtime");
    let p = Podman::new(if runtime.exists() {
        runtime
    } else {
        "/usr/sbin/runc".into()
    });
    let o = p.run(&["load", "-i", archive.to_str().unwrap()]).ok();
    assert!(o.stdout.contains("savedbox:1"), "{o:?}");
    let mut args = vec!["run".to_string(), "--rm".into()];
    args.extend(p.run_flags());
    args.extend([
        "savedbox:1".to_string(),
        "sh".into(),
        "-c".into(),
        "echo round trip".into(),
    ]);
    let run = p
        .run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .ok();
    assert_eq!(run.stdout.trim(), "round trip");
    // And berth reads its own archive back.
    let root2 = dir.path().join("berth2");
    assert_eq!(
        berth(&root2, &["load", "-i", archive.to_str().unwrap()])
            .ok()
            .stdout
            .trim(),
        "Loaded image: savedbox:1"
    );
}

#[test]
fn tag_inspect_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    test_support::busybox_rootfs(&rootfs);
    let root = dir.path().join("berth");
    berth(
        &root,
        &[
            "import",
            "--change",
            "WORKDIR /srv",
            rootfs.to_str().unwrap(),
            "one:1",
        ],
    )
    .ok();
    berth(&root, &["tag", "one:1", "two"]).ok();
    let v: serde_json::Value =
        serde_json::from_str(&berth(&root, &["image", "inspect", "two"]).ok().stdout).unwrap();
    let tags: Vec<&str> = v[0]["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tags, ["one:1", "two:latest"]);
    assert_eq!(v[0]["Config"]["WorkingDir"], serde_json::json!("/srv"));
    assert_eq!(v[0]["Os"], serde_json::json!("linux"));
    assert!(v[0]["Id"].as_str().unwrap().starts_with("sha256:"));
    let h = berth(&root, &["history", "two"]).ok().stdout;
    assert!(h.lines().nth(1).unwrap().contains("berth import"), "{h}");
    let missing = berth(&root, &["tag", "nope", "x"]);
    assert!(
        missing.stderr.contains("no such image: nope"),
        "{}",
        missing.stderr
    );
}

#[test]
fn listing_formats_forced_removal_and_prune() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    test_support::busybox_rootfs(&rootfs);
    let root = dir.path().join("berth");
    berth(&root, &["import", rootfs.to_str().unwrap(), "keep:1"]).ok();
    std::fs::write(rootfs.join("extra"), "another layer content").unwrap();
    berth(&root, &["import", rootfs.to_str().unwrap(), "drop:1"]).ok();
    let v: serde_json::Value =
        serde_json::from_str(&berth(&root, &["images", "--format", "json"]).ok().stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert!(v[0]["Digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(berth(&root, &["images", "--digests"])
        .ok()
        .stdout
        .lines()
        .next()
        .unwrap()
        .contains("DIGEST"));
    let mnt = berth(&root, &["image", "mount", "drop:1"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_ne!(berth(&root, &["rmi", "drop:1"]).code, 0);
    berth(&root, &["rmi", "-f", "drop:1"]).ok();
    assert!(!std::path::Path::new(&mnt).exists());
    assert!(mounts_containing(root.to_str().unwrap()).is_empty());
    let blobs_before = std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .count();
    let sizes_before = sizes_by_entry(&root);
    let o = berth(&root, &["image", "prune"]).ok();
    let sizes_after = sizes_by_entry(&root);
    let reclaimed: u64 = sizes_before
        .iter()
        .filter(|(k, _)| !sizes_after.contains_key(*k))
        .map(|(_, v)| v)
        .sum();
    assert!(reclaimed > 0);
    assert!(
        o.stdout.contains(&format!(
            "Deleted 3 blobs and 1 snapshots, {reclaimed} bytes"
        )),
        "{} (expected {reclaimed} bytes)",
        o.stdout
    );
    assert_eq!(
        std::fs::read_dir(root.join("blobs/sha256"))
            .unwrap()
            .count(),
        blobs_before - 3
    );
    // What keep:1 needs is still there: it mounts.
    berth(&root, &["image", "mount", "keep:1"]).ok();
    berth(&root, &["image", "unmount", "keep:1"]).ok();
}

#[test]
fn load_reads_standard_input_from_a_file_or_a_pipe() {
    let layer = test_support::oci::tar_layer(&[("etc/motd", b"hello from stdin\n")]);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("stdin.tar");
    std::fs::write(
        &archive,
        test_support::oci::docker_archive("stdin-test:1", &[layer]),
    )
    .unwrap();
    let run = |root: &std::path::Path,
               stdin: std::process::Stdio,
               pipe_from: Option<&std::path::Path>| {
        let mut child = std::process::Command::new(BERTH)
            .arg("--root")
            .arg(root)
            .arg("load")
            .stdin(if pipe_from.is_some() {
                std::process::Stdio::piped()
            } else {
                stdin
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(p) = pipe_from {
            use std::io::Write;
            let mut w = child.stdin.take().unwrap();
            w.write_all(&std::fs::read(p).unwrap()).unwrap();
        }
        child.wait_with_output().unwrap()
    };
    // `berth load < FILE` (read in place) and `cat FILE | berth load` (spooled).
    for (how, root) in [
        ("file", dir.path().join("r1")),
        ("pipe", dir.path().join("r2")),
    ] {
        let out = if how == "file" {
            run(
                &root,
                std::process::Stdio::from(std::fs::File::open(&archive).unwrap()),
                None,
            )
        } else {
            run(&root, std::process::Stdio::null(), Some(&archive))
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{how}: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Loaded image: stdin-test:1\n",
            "{how}"
        );
        let m = berth(&root, &["image", "mount", "stdin-test:1"]);
        assert_eq!(m.code, 0, "{how}: {}", m.stderr);
        let motd = std::fs::read(std::path::Path::new(m.stdout.trim()).join("etc/motd"));
        berth(&root, &["image", "unmount", "stdin-test:1"]);
        assert_eq!(motd.unwrap(), b"hello from stdin\n", "{how}");
        // Nothing spooled is left behind.
        let left: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".load-"))
            .collect();
        assert!(left.is_empty(), "{how}: {left:?}");
    }
    // Not an archive at all, from a pipe: a clear error, nothing kept.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"not a tar").unwrap();
    let root = dir.path().join("r3");
    let out = run(&root, std::process::Stdio::null(), Some(&junk));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(standard input)"), "{stderr}");
    assert!(!std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with(".load-")));
}

/// Runs `script` with busybox sh as uid/gid 65534 (nobody), a local user
/// with no rights over berth's store.
fn as_nobody(script: &str) -> test_support::Outcome {
    use std::os::unix::process::CommandExt;
    test_support::run_through_files(
        std::process::Command::new(test_support::BUSYBOX)
            .args(["sh", "-c", script])
            .uid(65534)
            .gid(65534),
    )
}

/// Security issue 11, item 3: other local users cannot reach the store (its
/// setuid binaries and device nodes, blobs of private images), blobs are
/// 0600, and `image mount` is nosuid,nodev.
#[test]
fn the_store_is_private_to_its_owner() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    // The store's parent is open to all, as /var/lib is.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let rootfs = dir.path().join("rootfs");
    test_support::busybox_rootfs(&rootfs);
    let suid = rootfs.join("bin/suid-shell");
    std::fs::copy("/bin/busybox", &suid).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let root = dir.path().join("berth");
    // A root left open by an earlier version is tightened.
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    berth(&root, &["import", rootfs.to_str().unwrap(), "privbox:1"]).ok();

    assert_eq!(std::fs::metadata(&root).unwrap().mode() & 0o777, 0o700);
    for blob in std::fs::read_dir(root.join("blobs/sha256")).unwrap() {
        let blob = blob.unwrap();
        assert_eq!(
            blob.metadata().unwrap().mode() & 0o777,
            0o600,
            "{}",
            blob.path().display()
        );
    }
    let snapshots: Vec<_> = std::fs::read_dir(root.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("fs/bin/suid-shell"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(snapshots.len(), 1, "the setuid file is unpacked");
    let o = as_nobody(&format!(
        "ls {root} >/dev/null 2>&1 && echo listed; {suid} id -u 2>/dev/null || echo refused",
        root = root.display(),
        suid = snapshots[0].display()
    ));
    assert_eq!(o.stdout.trim(), "refused", "{o:?}");

    let mnt = berth(&root, &["image", "mount", "privbox:1"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(mnt.as_str()))
        .unwrap_or_else(|| panic!("{mnt} not in mountinfo"))
        .to_string();
    berth(&root, &["image", "unmount", "privbox:1"]).ok();
    let opts = line.split(' ').nth(5).unwrap();
    for flag in ["ro", "nosuid", "nodev"] {
        assert!(opts.split(',').any(|o| o == flag), "{flag} missing: {line}");
    }
    assert_eq!(
        std::fs::metadata(root.join("mounts")).unwrap().mode() & 0o077,
        0,
        "mounts/ is not reachable by others either"
    );
    let _ = std::fs::metadata(&suid).unwrap().mode();
}

/// Security issue 11, item 5: prune fails closed. When the references are
/// truncated, a directory, or hold a corrupt record, it says so, exits
/// non-zero and removes nothing.
#[test]
fn prune_removes_nothing_when_the_references_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    test_support::busybox_rootfs(&rootfs);
    let root = dir.path().join("berth");
    berth(&root, &["import", rootfs.to_str().unwrap(), "kept:1"]).ok();
    let refs = root.join("images.json");
    let good = std::fs::read(&refs).unwrap();
    let listing = || test_support::tree_listing(&root);
    let before = listing();
    let mut record: serde_json::Value = serde_json::from_slice(&good).unwrap();
    record["kept:1"]["layers"][0][0] = serde_json::json!("not-a-digest");
    let corrupt = serde_json::to_vec(&record).unwrap();
    for (what, damage) in [
        ("truncated", Some(good[..good.len() / 2].to_vec())),
        ("a corrupt record", Some(corrupt)),
        ("a directory", None),
    ] {
        match damage {
            Some(bytes) => std::fs::write(&refs, bytes).unwrap(),
            None => {
                std::fs::remove_file(&refs).unwrap();
                std::fs::create_dir(&refs).unwrap();
            }
        }
        let o = berth(&root, &["image", "prune"]);
        assert_ne!(o.code, 0, "prune with {what} references: {o:?}");
        assert!(
            o.stderr.contains("nothing was removed"),
            "{what}: {}",
            o.stderr
        );
        let mut after = listing();
        after.retain(|l| !l.contains("images.json"));
        let mut expected = before.clone();
        expected.retain(|l| !l.contains("images.json"));
        assert_eq!(
            after, expected,
            "prune with {what} references removed something"
        );
        if refs.is_dir() {
            std::fs::remove_dir(&refs).unwrap();
        }
        std::fs::write(&refs, &good).unwrap();
    }
    berth(&root, &["image", "mount", "kept:1"]).ok();
    berth(&root, &["image", "unmount", "kept:1"]).ok();
}

/// Security issue 11, item 14: save verifies what it exports; a damaged
/// blob fails the save, naming it, and leaves no archive.
#[test]
fn save_refuses_a_damaged_blob() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    test_support::busybox_rootfs(&rootfs);
    let root = dir.path().join("berth");
    berth(&root, &["import", rootfs.to_str().unwrap(), "damaged:1"]).ok();
    let refs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("images.json")).unwrap()).unwrap();
    let layer = refs["damaged:1"]["layers"][0][0]
        .as_str()
        .unwrap()
        .to_string();
    let blob = root
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut data = std::fs::read(&blob).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&blob, data).unwrap();
    let out = dir.path().join("out.tar");
    let o = berth(&root, &["save", "-o", out.to_str().unwrap(), "damaged:1"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains(&layer) && o.stderr.contains("damaged"),
        "{}",
        o.stderr
    );
    assert!(!out.exists(), "an archive was written");
    assert!(
        !dir.path().join("out.tmp-berth").exists(),
        "a partial archive was left"
    );
}

/// The bytes of the regular files in each blob and each snapshot of the
/// store at `root`, by path (what image prune reports as reclaimed).
fn sizes_by_entry(root: &std::path::Path) -> std::collections::HashMap<std::path::PathBuf, u64> {
    fn bytes(p: &std::path::Path) -> u64 {
        let m = std::fs::symlink_metadata(p).unwrap();
        if m.is_dir() {
            std::fs::read_dir(p)
                .unwrap()
                .map(|e| bytes(&e.unwrap().path()))
                .sum()
        } else if m.is_file() {
            m.len()
        } else {
            0
        }
    }
    let mut out = std::collections::HashMap::new();
    for dir in ["blobs/sha256", "snapshots"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
                out.insert(p.clone(), bytes(&p));
            }
        }
    }
    out
}
