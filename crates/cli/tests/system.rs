//! `system df` (what images, containers and volumes hold, and what is
//! reclaimable) and `system prune` (stopped containers, unused content;
//! `--volumes`, `-a`).

mod common;
use common::Fixture;

fn row<'a>(out: &'a str, kind: &str) -> Vec<&'a str> {
    let line = out
        .lines()
        .find(|l| l.starts_with(kind))
        .unwrap_or_else(|| panic!("no {kind} in {out}"));
    line[kind.len()..].split_whitespace().collect()
}

#[test]
fn df_and_prune() {
    let f = Fixture::new();
    let stopped = f
        .berth(&[
            "run",
            "--name",
            "c1",
            "bb:1",
            "sh",
            "-c",
            "head -c 5000 /dev/zero > /blob",
        ])
        .ok();
    assert_eq!(stopped.code, 0);
    let c1 = f
        .berth(&["inspect", "-f", "{{.Id}}", "c1"])
        .ok()
        .stdout
        .trim()
        .to_string();
    f.berth(&["run", "-d", "--name", "c2", "bb:1", "sleep", "100"])
        .ok();
    f.berth(&["volume", "create", "v1"]).ok();
    f.berth(&[
        "run",
        "--rm",
        "-v",
        "v1:/v",
        "bb:1",
        "sh",
        "-c",
        "echo hello > /v/f",
    ])
    .ok();
    // An image no container uses.
    let other = f.dir.path().join("other");
    test_support::busybox_rootfs(&other);
    std::fs::write(other.join("extra"), "x").unwrap();
    f.berth(&["import", other.to_str().unwrap(), "other:1"])
        .ok();

    let o = f.berth(&["system", "df"]).ok();
    assert!(o.stdout.starts_with("TYPE"), "{o:?}");
    let images = row(&o.stdout, "Images");
    assert_eq!(&images[..2], ["2", "1"], "{o:?}");
    let containers = row(&o.stdout, "Containers");
    assert_eq!(&containers[..2], ["2", "1"], "{o:?}");
    assert!(containers[2].ends_with("kB"), "the 5000-byte file: {o:?}");
    let volumes = row(&o.stdout, "Local Volumes");
    assert_eq!(&volumes[..4], ["1", "0", "6B", "6B"], "{o:?}");
    // -v: each image, container and volume.
    let o = f.berth(&["system", "df", "-v"]).ok();
    let v = &o.stdout;
    assert!(v.starts_with("Images space usage:"), "{o:?}");
    let line = |start: &str| {
        v.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or("")
            .to_string()
    };
    let bb: Vec<String> = line("bb ").split_whitespace().map(String::from).collect();
    assert_eq!(
        (bb[1].as_str(), bb.last().map(String::as_str)),
        ("1", Some("2")),
        "bb:1 used by both: {v}"
    );
    let other: Vec<String> = line("other ")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(other.last().map(String::as_str), Some("0"), "{v}");
    assert!(
        line(&c1[..12]).contains("kB") && line(&c1[..12]).ends_with("c1"),
        "{v}"
    );
    let vol: Vec<String> = line("v1 ").split_whitespace().map(String::from).collect();
    assert_eq!(vol, ["v1", "0", "6B"], "{v}");

    // prune: the stopped container and nothing in use.
    let o = f.berth(&["system", "prune", "-f"]).ok();
    assert!(
        o.stdout
            .starts_with(&format!("Deleted Containers:\n{c1}\n")),
        "{o:?}"
    );
    assert_eq!(f.berth(&["ps", "-aq"]).ok().stdout.lines().count(), 1);
    assert!(f.berth(&["volume", "ls", "-q"]).ok().stdout.contains("v1"));
    // --volumes takes anonymous ones no container uses (named ones stay).
    f.berth(&["run", "--name", "a1", "-v", "/x", "bb:1", "true"])
        .ok();
    f.berth(&["rm", "a1"]).ok();
    assert_eq!(
        f.berth(&["volume", "ls", "-q"]).ok().stdout.lines().count(),
        2
    );
    f.berth(&["system", "prune", "-f", "--volumes"]).ok();
    assert_eq!(f.berth(&["volume", "ls", "-q"]).ok().stdout, "v1\n");
    // -a: images no container uses lose their names; bb:1 (used by c2) stays.
    let o = f.berth(&["system", "prune", "-a", "-f"]).ok();
    assert!(o.stdout.contains("untagged: other:1"), "{o:?}");
    let images = f.berth(&["images"]).ok().stdout;
    assert!(
        images.contains("bb ") && !images.contains("other"),
        "{images}"
    );
    f.berth(&["rm", "-f", "c2"]).ok();
    f.berth(&["volume", "rm", "v1"]).ok();
    f.assert_clean();
}

/// A user other than root gets a store under its own XDG data directory,
/// never /var/lib/berth.
#[test]
fn a_user_other_than_root_defaults_to_its_own_store() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("berth");
    std::fs::copy(common::BERTH, &bin).unwrap();
    let help = |env: &[&str]| {
        let out = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "env",
                "-u",
                "BERTH_ROOT",
            ])
            .args(env)
            .arg(&bin)
            .arg("--help")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        help(&["-u", "XDG_DATA_HOME", "HOME=/home/someone"])
            .contains("[default: /home/someone/.local/share/berth]"),
        "{}",
        help(&["HOME=/home/someone"])
    );
    assert!(help(&["XDG_DATA_HOME=/srv/data", "HOME=/h"]).contains("[default: /srv/data/berth]"));
}
