//! Images through `berth serve`: push to and pull from a local
//! docker-registry with the docker CLI (and docker-py), tag, rmi (and a
//! refusal while a container uses the image), history, save/load,
//! commit, image prune, and search's clear error.

mod common;
use std::process::Command;

use common::api_server::Server;
use common::Fixture;
use test_support::registry::{have_registry, LocalRegistry};

#[test]
fn the_docker_cli_moves_images_through_a_registry_and_archives() {
    assert!(
        have_registry(),
        "docker-registry is missing: scripts/install-deps"
    );
    let f = Fixture::new();
    let s = Server::start(&f);
    let reg = LocalRegistry::start();
    let d = |args: &[&str]| s.docker(&f, args);
    let remote = format!("{}/team/bb:v1", reg.addr);

    d(&["tag", "bb:1", &remote]).ok();
    let o = d(&["push", &remote]).ok();
    assert!(o.stdout.contains("v1: digest: sha256:"), "{o:?}");
    let o = d(&["rmi", &remote]).ok();
    assert_eq!(o.stdout.trim(), format!("Untagged: {remote}"));
    let o = d(&["pull", &remote]).ok();
    assert!(
        o.stdout.contains("Pull complete") || o.stdout.contains("Already exists"),
        "{o:?}"
    );
    assert!(
        o.stdout
            .contains(&format!("Status: Downloaded newer image for {remote}")),
        "{o:?}"
    );
    let o = d(&["images", "--format", "{{.Repository}}:{{.Tag}}"]).ok();
    assert!(o.stdout.lines().any(|l| l == remote), "{o:?}");
    let o = d(&["pull", &format!("{}/team/nosuch:1", reg.addr)]);
    assert_ne!(o.code, 0, "{o:?}");

    let o = d(&["history", "bb:1"]).ok();
    assert!(o.stdout.lines().count() >= 2, "{o:?}");

    // save and load.
    d(&["tag", "bb:1", "saved:1"]).ok();
    let archive = f.dir.path().join("saved.tar");
    d(&["save", "-o", archive.to_str().unwrap(), "saved:1"]).ok();
    d(&["rmi", "saved:1"]).ok();
    let o = d(&["load", "-i", archive.to_str().unwrap()]).ok();
    assert_eq!(o.stdout.trim(), "Loaded image: saved:1");

    // commit, then run what it made.
    d(&["run", "-d", "--name", "box", "bb:1", "sleep", "100"]).ok();
    d(&["exec", "box", "sh", "-c", "echo kept > /kept"]).ok();
    d(&["commit", "-m", "a file", "box", "made:1"]).ok();
    let o = d(&["run", "--rm", "made:1", "cat", "/kept"]).ok();
    assert_eq!(o.stdout, "kept\n");

    // An image a container uses keeps its last name.
    d(&["rmi", "saved:1"]).ok();
    d(&["rmi", &remote]).ok();
    let o = d(&["rmi", "bb:1"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("running container box"), "{o:?}");
    // A dangling image (committed without a name): prune deletes it and
    // reclaims its layer.
    d(&["exec", "box", "touch", "/scratch"]).ok();
    let id = d(&["commit", "box"]).ok().stdout.trim().to_string();
    let o = d(&["images", "-q", "--no-trunc", "-f", "dangling=true"]).ok();
    assert_eq!(o.stdout.trim(), id, "{o:?}");
    let o = d(&["images", "-q", "--no-trunc", "-f", "dangling=false"]).ok();
    assert!(!o.stdout.contains(&id) && !o.stdout.is_empty(), "{o:?}");
    // Shown as <none>, as dockerd's dangling images are.
    let o = d(&[
        "images",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ])
    .ok();
    assert!(o.stdout.contains(&format!("<none>:<none> {id}")), "{o:?}");
    let o = d(&[
        "image",
        "inspect",
        "-f",
        "{{len .RepoTags}} {{len .RepoDigests}}",
        &id,
    ])
    .ok();
    assert_eq!(o.stdout.trim(), "0 0", "{o:?}");
    let o = d(&["image", "prune", "-f"]).ok();
    assert!(o.stdout.contains(&format!("deleted: {id}")), "{o:?}");
    let space = o
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .unwrap_or_else(|| panic!("{o:?}"));
    assert_ne!(space, "0B", "{o:?}");
    let o = d(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Active}}",
    ])
    .ok();
    let rows: Vec<&str> = o.stdout.lines().collect();
    // bb:1 (used by box) and made:1.
    assert_eq!(rows[0], "Images 2 1", "{o:?}");
    assert_eq!(rows[1], "Containers 1 1", "{o:?}");
    assert!(rows[2].starts_with("Local Volumes 0"), "{o:?}");
    let o = d(&["search", "busybox"]);
    assert!(o.stderr.contains("not there yet"), "{o:?}");
    d(&["rm", "-f", "box"]).ok();
    d(&["rmi", "made:1"]).ok();
    drop(s);
    f.assert_clean();
}

#[test]
fn docker_py_pulls_saves_and_loads() {
    assert!(
        have_registry(),
        "docker-registry is missing: scripts/install-deps"
    );
    let f = Fixture::new();
    let s = Server::start(&f);
    let reg = LocalRegistry::start();
    let script = r#"
import sys, docker
c = docker.DockerClient(base_url="unix://" + sys.argv[1], timeout=60)
reg = sys.argv[2]
img = c.images.get("bb:1")
assert img.tag(reg + "/py/bb", "2")
for line in c.images.push(reg + "/py/bb", tag="2", stream=True, decode=True):
    assert "error" not in line, line
c.images.remove(reg + "/py/bb:2")
pulled = c.images.pull(reg + "/py/bb", tag="2")
assert pulled.id == img.id, (pulled.id, img.id)
data = b"".join(c.images.get(reg + "/py/bb:2").save())
c.images.remove(reg + "/py/bb:2")
loaded = c.images.load(data)
assert [i.id for i in loaded] == [img.id], loaded
hist = c.api.history("bb:1")
assert hist[0]["Id"] == img.id, hist
try:
    c.images.remove("nosuch:1")
    raise SystemExit("a missing image was removed")
except docker.errors.ImageNotFound:
    pass
print("OK")
"#;
    let o = test_support::run_through_files(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&s.sock)
            .arg(&reg.addr),
    );
    assert_eq!(o.stdout.trim(), "OK", "{o:?}");
    drop(s);
    f.assert_clean();
}

#[test]
fn docker_login_checks_credentials_and_push_uses_them() {
    assert!(
        have_registry(),
        "docker-registry is missing: scripts/install-deps"
    );
    let f = Fixture::new();
    let s = Server::start(&f);
    let reg = LocalRegistry::with_basic_auth("alice", "s3cret-pw");
    let d = |args: &[&str]| s.docker(&f, args);
    let remote = format!("{}/sec/bb:1", reg.addr);
    d(&["tag", "bb:1", &remote]).ok();
    let o = d(&["push", &remote]);
    assert_ne!(o.code, 0, "a push without credentials is refused: {o:?}");
    let o = d(&["login", "-u", "alice", "-p", "wrong", &reg.addr]);
    assert_ne!(o.code, 0, "{o:?}");
    let o = d(&["login", "-u", "alice", "-p", "s3cret-pw", &reg.addr]).ok();
    assert!(o.stdout.contains("Login Succeeded"), "{o:?}");
    let o = d(&["push", &remote]).ok();
    assert!(o.stdout.contains("1: digest: sha256:"), "{o:?}");
    d(&["rmi", &remote]).ok();
    d(&["pull", &remote]).ok();
    drop(s);
    f.assert_clean();
}

/// `docker import`: an archive (plain and gzip) becomes a one-layer image
/// with its `--change`s and message; a bad change and a URL source are
/// refused with their reasons and leave nothing behind.
#[test]
fn docker_import_makes_an_image_of_an_archive() {
    let f = Fixture::new();
    let s = Server::start(&f);
    let d = |args: &[&str]| s.docker(&f, args);
    d(&["create", "--name", "src", "bb:1", "true"]).ok();
    let tar = f.dir.path().join("rootfs.tar");
    let tar = tar.to_str().unwrap();
    d(&["export", "-o", tar, "src"]).ok();
    d(&["rm", "src"]).ok();
    let o = d(&[
        "import",
        "--change",
        r#"CMD ["echo", "imported"]"#,
        "--change",
        "ENV WHO=test",
        "-m",
        "from the test",
        tar,
        "imp:1",
    ])
    .ok();
    assert!(o.stdout.trim().starts_with("sha256:"), "{o:?}");
    let o = d(&["run", "--rm", "imp:1"]).ok();
    assert_eq!(o.stdout.trim(), "imported");
    let o = d(&["run", "--rm", "imp:1", "sh", "-c", "echo $WHO"]).ok();
    assert_eq!(o.stdout.trim(), "test");
    let o = d(&["history", "--format", "{{.Comment}}", "imp:1"]).ok();
    assert_eq!(o.stdout.trim(), "from the test");
    // gzip, from standard input.
    let gz = f.dir.path().join("rootfs.tar.gz");
    let zipped = Command::new("sh")
        .args(["-c", &format!("gzip -c {tar} > {}", gz.display())])
        .status()
        .unwrap();
    assert!(zipped.success());
    let o = s
        .docker_command(&f, &["import", "-", "imp:2"])
        .stdin(std::fs::File::open(&gz).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let o = d(&["run", "--rm", "imp:2", "echo", "zipped"]).ok();
    assert_eq!(o.stdout.trim(), "zipped");
    // Refusals.
    let o = d(&["import", "--change", "RUN make", tar, "imp:3"]);
    assert!(o.code != 0 && o.stderr.contains("RUN make"), "{o:?}");
    let o = d(&["import", "http://127.0.0.1:9/rootfs.tar", "imp:4"]);
    assert!(o.code != 0 && o.stderr.contains("fetches no URL"), "{o:?}");
    let o = d(&["images", "--format", "{{.Repository}}:{{.Tag}}"]).ok();
    let mut names: Vec<&str> = o.stdout.lines().collect();
    names.sort_unstable();
    assert_eq!(names, ["bb:1", "imp:1", "imp:2"], "{o:?}");
    d(&["rmi", "imp:1", "imp:2"]).ok();
    drop(s);
    f.assert_clean();
}
