//! berth against a real registry (Debian's docker-registry on 127.0.0.1)
//! and a real peer client (skopeo): push and pull with the same digests
//! both ways, blob mounts across repositories, chunked uploads, basic
//! auth with login/logout, platform selection, an interrupted pull that
//! resumes, and concurrent pulls of one image.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_support::oci::{tar_layer, write_layout};
use test_support::registry::{have_registry, LocalRegistry, ThrottledProxy};
use test_support::{run_through_files, Outcome};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn berth(root: &Path, args: &[&str]) -> Outcome {
    run_through_files(Command::new(BERTH).arg("--root").arg(root).args(args))
}

fn skopeo(args: &[&str]) -> Outcome {
    run_through_files(Command::new("skopeo").args(args))
}

/// `len` bytes that do not compress (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn tools_present() -> bool {
    if !have_registry() || !Path::new("/usr/bin/skopeo").exists() {
        panic!("docker-registry and skopeo are required (scripts/install-deps installs them)");
    }
    true
}

/// The manifest digest skopeo sees for `image` in the registry.
fn skopeo_digest(image: &str, extra: &[&str]) -> String {
    let mut args = vec!["inspect", "--tls-verify=false", "--format", "{{.Digest}}"];
    args.extend_from_slice(extra);
    let target = format!("docker://{image}");
    args.push(&target);
    skopeo(&args).ok().stdout.trim().to_string()
}

/// Pushes an OCI layout of `layers` to `image` with skopeo; returns the manifest digest.
fn skopeo_push_layout(dir: &Path, image: &str, layers: &[Vec<u8>]) -> String {
    let digest = write_layout(dir, "src", layers);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:src", dir.display()),
        &format!("docker://{image}"),
    ])
    .ok();
    digest
}

fn stored_manifest(root: &Path, name: &str) -> String {
    let out = berth(root, &["images", "--digests"]).ok().stdout;
    let (repo, tag) = name.rsplit_once(':').unwrap();
    out.lines()
        .find(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 2 && f[0] == repo && f[1] == tag
        })
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or_else(|| panic!("{name} not in:\n{out}"))
        .to_string()
}

#[test]
fn berth_push_is_read_back_by_skopeo_with_the_same_digests() {
    tools_present();
    let reg = LocalRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("berth");
    // An image of two layers: a small one (one request) and a 12 MB one (chunks).
    let big = noise(12 << 20);
    write_layout(
        &dir.path().join("layout"),
        "two:1",
        &[
            tar_layer(&[("etc/small", b"x")]),
            tar_layer(&[("big.bin", &big)]),
        ],
    );
    let archive = dir.path().join("two.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir.path().join("layout"))
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    berth(&root, &["load", "-i", archive.to_str().unwrap()]).ok();
    let proxy = ThrottledProxy::start(&reg.addr, 1 << 30);
    let target = format!("{}/team/two:1", proxy.addr);
    berth(&root, &["tag", "two:1", &target]).ok();
    let out = berth(&root, &["push", &target]).ok().stdout;
    let ours = stored_manifest(&root, &target);
    assert!(out.contains(&format!("1: digest: {ours} size:")), "{out}");
    assert!(out.contains("Pushed"), "{out}");
    assert_eq!(skopeo_digest(&target, &[]), ours);
    let reqs = proxy.requests();
    assert!(
        reqs.contains("PATCH /v2/team/two/blobs/uploads/"),
        "the big layer goes up in chunks"
    );
    assert!(
        reqs.matches("PUT /v2/team/two/blobs/uploads/").count() >= 3,
        "each blob upload is completed with a PUT"
    );

    // skopeo copies it out; every blob verifies and the manifest is byte-identical.
    let copy = dir.path().join("copy");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{target}"),
        &format!("oci:{}:x", copy.display()),
    ])
    .ok();
    let raw = std::fs::read(
        copy.join("blobs/sha256")
            .join(ours.trim_start_matches("sha256:")),
    );
    assert!(
        raw.is_ok(),
        "skopeo's copy holds the manifest under berth's digest"
    );

    // A second push of the same image sends no blob again.
    let again = berth(&root, &["push", &target]).ok().stdout;
    assert!(!again.contains("Pushed"), "{again}");
    assert!(again.contains("Layer already exists"), "{again}");

    // Another repository of the same registry gets the blobs mounted, not uploaded.
    let other = format!("{}/elsewhere/two:2", proxy.addr);
    let mounted = berth(&root, &["push", &target, &other]).ok().stdout;
    assert!(mounted.contains("Mounted from team/two"), "{mounted}");
    assert_eq!(skopeo_digest(&other, &[]), ours);
}

#[test]
fn skopeo_push_is_pulled_by_berth_and_assembles() {
    tools_present();
    let reg = LocalRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let image = reg.image("lib/stack:v1");
    let digest = skopeo_push_layout(
        &dir.path().join("layout"),
        &image,
        &[
            tar_layer(&[
                ("etc/keep", b"1"),
                ("etc/gone", b"2"),
                ("var/cache/old", b"3"),
            ]),
            tar_layer(&[
                ("etc/.wh.gone", b""),
                ("var/cache/.wh..wh..opq", b""),
                ("var/cache/new", b"4"),
            ]),
        ],
    );
    let root = dir.path().join("berth");
    let out = berth(&root, &["pull", &image]).ok().stdout;
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {image}")),
        "{out}"
    );
    assert_eq!(out.lines().last(), Some(image.as_str()));
    assert_eq!(stored_manifest(&root, &image), digest);

    let mnt = berth(&root, &["image", "mount", &image])
        .ok()
        .stdout
        .trim()
        .to_string();
    let seen = |p: &str| Path::new(&mnt).join(p).exists();
    let result = std::panic::catch_unwind(|| {
        assert!(seen("etc/keep"));
        assert!(!seen("etc/gone"), "deleted by a whiteout");
        assert!(!seen("var/cache/old"), "hidden by the opaque directory");
        assert_eq!(
            std::fs::read(Path::new(&mnt).join("var/cache/new")).unwrap(),
            b"4"
        );
    });
    berth(&root, &["image", "unmount", &image]).ok();
    result.unwrap();

    // Pulling again fetches nothing.
    let again = berth(&root, &["pull", &image]).ok().stdout;
    assert!(again.contains("Image is up to date"), "{again}");

    // A missing tag is a clear error and stores nothing.
    let missing = berth(&root, &["pull", &reg.image("lib/stack:nope")]);
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("manifest unknown"),
        "{}",
        missing.stderr
    );
    assert!(!berth(&root, &["images"]).ok().stdout.contains("nope"));
}

#[test]
fn basic_auth_registry_requires_login() {
    tools_present();
    login_is_required(&LocalRegistry::with_basic_auth("alice", "s3cret-pw"));
}

#[test]
fn token_auth_registry_requires_login() {
    tools_present();
    let (reg, tokens) = LocalRegistry::with_token_auth("alice", "s3cret-pw");
    login_is_required(&reg);
    assert!(
        tokens.issued.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "berth went through the token service"
    );
}

/// `reg` grants alice/s3cret-pw: push needs login, a wrong password
/// stores nothing, the stored file works for berth and skopeo, logout
/// takes access away again.
fn login_is_required(reg: &LocalRegistry) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("berth");
    let image = reg.image("private/img:1");
    write_layout(
        &dir.path().join("layout"),
        "p:1",
        &[tar_layer(&[("hello", b"hi")])],
    );
    let archive = dir.path().join("p.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(dir.path().join("layout"))
        .args(["-cf", archive.to_str().unwrap(), "."])
        .status()
        .unwrap()
        .success());
    berth(&root, &["load", "-i", archive.to_str().unwrap()]).ok();
    berth(&root, &["tag", "p:1", &image]).ok();

    let denied = berth(&root, &["push", &image]);
    assert_ne!(denied.code, 0);
    assert!(
        denied.stderr.contains("unauthorized") && denied.stderr.contains("berth login"),
        "{}",
        denied.stderr
    );

    let login = |password: &str| {
        let mut child = Command::new(BERTH)
            .arg("--root")
            .arg(&root)
            .args(["login", "-u", "alice", "--password-stdin", &reg.addr])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let bad = login("wrong\n");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("incorrect username or password"));
    let auth_file = root.join("auth.json");
    assert!(!auth_file.exists(), "failed logins store nothing");

    let good = login("s3cret-pw\n");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&good.stdout).trim(),
        "Login Succeeded"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&auth_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!std::fs::read_to_string(&auth_file)
        .unwrap()
        .contains("s3cret-pw"));

    berth(&root, &["push", &image]).ok();
    // skopeo reads berth's credentials file (Docker's format).
    let digest = skopeo_digest(&image, &["--authfile", auth_file.to_str().unwrap()]);
    assert_eq!(digest, stored_manifest(&root, &image));
    let other = dir.path().join("other");
    let pulled = run_through_files(Command::new(BERTH).arg("--root").arg(&other).args([
        "pull",
        "--authfile",
        auth_file.to_str().unwrap(),
        &image,
    ]))
    .ok();
    assert!(pulled.stdout.contains(&digest));

    let out = berth(&root, &["logout", &reg.addr]).ok().stdout;
    assert!(out.contains("Removing login credentials"), "{out}");
    let after = berth(
        &dir.path().join("third"),
        &["pull", "--authfile", auth_file.to_str().unwrap(), &image],
    );
    assert_ne!(after.code, 0, "logged out: pulls are refused again");
}

#[test]
fn platform_is_chosen_from_a_multi_platform_index() {
    tools_present();
    let reg = LocalRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    test_support::oci::write_multi_platform_layout(
        &layout,
        "multi",
        &[
            ("amd64", tar_layer(&[("arch", b"amd64")])),
            ("arm64", tar_layer(&[("arch", b"arm64")])),
        ],
    );
    let image = reg.image("multi:1");
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://{image}"),
    ])
    .ok();
    let read_arch = |root: &Path| {
        let mnt = berth(root, &["image", "mount", &image])
            .ok()
            .stdout
            .trim()
            .to_string();
        let arch = std::fs::read_to_string(Path::new(&mnt).join("arch"));
        berth(root, &["image", "unmount", &image]).ok();
        arch.unwrap()
    };
    let amd = dir.path().join("amd");
    berth(&amd, &["pull", "-q", &image]).ok();
    assert_eq!(read_arch(&amd), "amd64");
    let arm = dir.path().join("arm");
    berth(&arm, &["pull", "-q", "--platform", "linux/arm64", &image]).ok();
    assert_eq!(read_arch(&arm), "arm64");
    let none = berth(
        &dir.path().join("none"),
        &["pull", "--platform", "linux/s390x", &image],
    );
    assert_ne!(none.code, 0);
    assert!(
        none.stderr.contains("linux/s390x") && none.stderr.contains("linux/arm64"),
        "{}",
        none.stderr
    );
    let bad = berth(
        &dir.path().join("none"),
        &["pull", "--platform", "linux", &image],
    );
    assert!(bad.stderr.contains("invalid platform"), "{}", bad.stderr);
}

/// A 24 MB layer behind a proxy passing 4 MB/s, so a pull takes seconds.
fn slow_image(dir: &Path) -> (LocalRegistry, ThrottledProxy, String) {
    let reg = LocalRegistry::start();
    let big = noise(24 << 20);
    skopeo_push_layout(
        &dir.join("layout"),
        &reg.image("slow:1"),
        &[tar_layer(&[("big", &big)])],
    );
    let proxy = ThrottledProxy::start(&reg.addr, 4 << 20);
    let image = format!("{}/slow:1", proxy.addr);
    (reg, proxy, image)
}

fn dot_files(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("blobs/sha256"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".ingest-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_pull_killed_mid_download_leaves_no_image_and_the_next_completes() {
    tools_present();
    let dir = tempfile::tempdir().unwrap();
    let (_reg, proxy, image) = slow_image(dir.path());
    let root = dir.path().join("berth");
    let mut child = Command::new(BERTH)
        .arg("--root")
        .arg(&root)
        .args(["pull", "-q", &image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until part of the layer has arrived, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(30);
    while proxy.served() < (4 << 20) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the pull is still downloading"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !dot_files(&root).is_empty(),
        "the kill interrupted a download"
    );
    let list = berth(&root, &["images", "-q"]).ok().stdout;
    assert!(list.trim().is_empty(), "no partial image: {list}");

    let before = proxy.served();
    let out = berth(&root, &["pull", &image]).ok().stdout;
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert!(
        out.contains("Resuming"),
        "the download resumes where it stopped: {out}"
    );
    assert!(
        proxy.served() - before < (24 << 20) - (2 << 20),
        "only the rest crossed the wire: {} bytes",
        proxy.served() - before
    );
    assert!(
        dot_files(&root).is_empty(),
        "the partial download was reused and finished"
    );
    let mnt = berth(&root, &["image", "mount", &image])
        .ok()
        .stdout
        .trim()
        .to_string();
    let size = std::fs::metadata(Path::new(&mnt).join("big")).map(|m| m.len());
    berth(&root, &["image", "unmount", &image]).ok();
    assert_eq!(size.unwrap(), 24 << 20);
}

#[test]
fn two_concurrent_pulls_of_one_image_both_succeed_and_fetch_it_once() {
    tools_present();
    let dir = tempfile::tempdir().unwrap();
    let (_reg, proxy, image) = slow_image(dir.path());
    let root = dir.path().join("berth");
    let spawn = || {
        Command::new(BERTH)
            .arg("--root")
            .arg(&root)
            .args(["pull", "-q", &image])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for o in [&a, &b] {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), image);
    }
    let served = proxy.served();
    assert!(
        served < (24 << 20) + (8 << 20),
        "the layer was fetched once, not twice: {served} bytes served"
    );
    let list = berth(&root, &["images"]).ok().stdout;
    assert_eq!(list.lines().count(), 2, "{list}");
}

#[test]
fn skopeo_layouts_and_archives_load_into_berth() {
    tools_present();
    let reg = LocalRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let image = reg.image("lib/arch:v2");
    skopeo_push_layout(
        &dir.path().join("layout"),
        &image,
        &[
            tar_layer(&[("etc/a", b"1"), ("etc/b", b"2")]),
            tar_layer(&[("etc/.wh.a", b""), ("etc/c", b"3")]),
        ],
    );
    let pulled = dir.path().join("pulled");
    berth(&pulled, &["pull", "-q", &image]).ok();
    let id = |root: &Path| {
        berth(root, &["images", "-q"])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    let want = id(&pulled);
    assert_eq!(want.len(), 12);

    let oci_dir = dir.path().join("oci-dir");
    let oci_archive = dir.path().join("oci.tar");
    let docker_archive = dir.path().join("docker.tar");
    for dest in [
        format!("oci:{}:arch", oci_dir.display()),
        format!("oci-archive:{}:arch", oci_archive.display()),
        format!("docker-archive:{}:lib/arch:v2", docker_archive.display()),
    ] {
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{image}"),
            &dest,
        ])
        .ok();
    }
    for (what, src) in [
        ("layout", &oci_dir),
        ("oci-archive", &oci_archive),
        ("docker-archive", &docker_archive),
    ] {
        let root = dir.path().join(format!("from-{what}"));
        let out = berth(&root, &["load", "-i", src.to_str().unwrap()])
            .ok()
            .stdout;
        assert!(out.starts_with("Loaded image: "), "{what}: {out}");
        assert_eq!(id(&root), want, "{what}: the same config as pulled");
        let name = out.trim().trim_start_matches("Loaded image: ").to_string();
        let mnt = berth(&root, &["image", "mount", &name])
            .ok()
            .stdout
            .trim()
            .to_string();
        let files: Vec<bool> = ["etc/a", "etc/b", "etc/c"]
            .iter()
            .map(|f| Path::new(&mnt).join(f).exists())
            .collect();
        berth(&root, &["image", "unmount", &name]).ok();
        assert_eq!(files, [false, true, true], "{what}");
    }
}
