//! Volumes through the `berth` CLI: named ones made by `volume create` or
//! on first use, anonymous ones (`-v /path`) that go with `rm -v` and
//! `--rm`, the copy of the image's content into a new volume, `ro` and
//! `nocopy`, the local driver's tmpfs option, a volume in use that cannot
//! be removed, `prune` with and without `-a`, and bad input.

use std::path::Path;

use test_support::mounts_containing;

mod common;
use common::Fixture;

/// Volume names in `volume ls -q`.
fn volume_names(f: &Fixture) -> Vec<String> {
    let o = f.berth(&["volume", "ls", "-q"]).ok();
    o.stdout.lines().map(str::to_string).collect()
}

fn is_anonymous_name(n: &str) -> bool {
    n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn named_volumes_keep_data_between_containers() {
    let f = Fixture::new();
    let o = f
        .berth(&["volume", "create", "--label", "team=a", "v1"])
        .ok();
    assert_eq!(o.stdout, "v1\n");
    let o = f.berth(&["volume", "ls"]).ok();
    assert_eq!(o.stdout, "DRIVER   VOLUME NAME\nlocal    v1\n");
    let mp = f
        .berth(&["volume", "inspect", "-f", "{{.Mountpoint}}", "v1"])
        .ok();
    let mountpoint = f.root().join("volumes/v1/_data");
    assert_eq!(mp.stdout.trim(), mountpoint.to_str().unwrap());
    let o = f.berth(&["volume", "inspect", "v1"]).ok();
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v[0]["Labels"]["team"], "a");
    assert_eq!(
        (v[0]["Driver"].as_str(), v[0]["Scope"].as_str()),
        (Some("local"), Some("local"))
    );

    f.run(&["-v", "v1:/data", "bb:1", "sh", "-c", "echo hi > /data/f"])
        .ok();
    assert_eq!(
        std::fs::read_to_string(mountpoint.join("f")).unwrap(),
        "hi\n"
    );
    let o = f.run(&["-v", "v1:/data:ro", "bb:1", "cat", "/data/f"]).ok();
    assert_eq!(o.stdout, "hi\n");
    let o = f.run(&["-v", "v1:/data:ro", "bb:1", "sh", "-c", "echo x > /data/g"]);
    assert_ne!(o.code, 0, "a read-only volume was written: {o:?}");
    // A volume is made on first use, and --mount type=volume takes it.
    f.run(&[
        "--mount",
        "type=volume,source=v2,target=/w",
        "bb:1",
        "sh",
        "-c",
        "echo 2 > /w/n",
    ])
    .ok();
    let o = f.run(&["-v", "v2:/w", "bb:1", "cat", "/w/n"]).ok();
    assert_eq!(o.stdout, "2\n");

    // In use (by a stopped container) it stays; with the container gone it goes.
    f.berth(&["run", "--name", "user1", "-v", "v1:/data", "bb:1", "true"])
        .ok();
    let o = f.berth(&["volume", "rm", "v1"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("v1 is in use"), "{o:?}");
    assert!(mountpoint.join("f").exists());
    f.berth(&["rm", "-v", "user1"]).ok();
    assert!(
        volume_names(&f).contains(&"v1".to_string()),
        "rm -v removed a named volume"
    );
    f.berth(&["volume", "rm", "v1", "v2"]).ok();
    assert!(!f.root().join("volumes/v1").exists());
    assert!(volume_names(&f).is_empty());
    f.assert_clean();
}

#[test]
fn a_new_volume_starts_with_the_images_content() {
    let f = Fixture::new();
    // The volume covers /bin: the shell in it is the copy.
    let o = f
        .run(&[
            "-v",
            "binvol:/bin",
            "bb:1",
            "sh",
            "-c",
            "echo from-the-copy",
        ])
        .ok();
    assert_eq!(o.stdout, "from-the-copy\n");
    let data = f.root().join("volumes/binvol/_data");
    assert!(data.join("busybox").is_file());
    // Not empty any more: no second copy over what is there.
    std::fs::write(data.join("mine"), "x").unwrap();
    f.run(&["-v", "binvol:/bin", "bb:1", "sh", "-c", "test -f /bin/mine"])
        .ok();
    // nocopy: an empty /bin, so no shell.
    let o = f.run(&["-v", "empty:/bin:nocopy", "bb:1", "sh", "-c", "true"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("not found"), "{o:?}");
    f.berth(&["volume", "rm", "binvol", "empty"]).ok();
    f.assert_clean();
}

#[test]
fn anonymous_volumes_go_with_their_container() {
    let f = Fixture::new();
    // --rm takes its anonymous volume along.
    f.run(&["-v", "/scratch", "bb:1", "sh", "-c", "echo x > /scratch/f"])
        .ok();
    assert!(volume_names(&f).is_empty(), "{:?}", volume_names(&f));
    // Kept with the container; rm without -v leaves it dangling.
    f.berth(&[
        "run",
        "--name",
        "a1",
        "-v",
        "/scratch",
        "bb:1",
        "sh",
        "-c",
        "echo x > /scratch/f",
    ])
    .ok();
    let names = volume_names(&f);
    assert!(
        names.len() == 1 && is_anonymous_name(&names[0]),
        "{names:?}"
    );
    let o = f
        .berth(&["volume", "ls", "-q", "--filter", "dangling=true"])
        .ok();
    assert_eq!(o.stdout, "");
    f.berth(&["rm", "a1"]).ok();
    let o = f.berth(&["volume", "ls", "-q", "-f", "dangling=true"]).ok();
    assert_eq!(o.stdout.trim(), names[0]);
    // rm -v removes it.
    f.berth(&["run", "--name", "a2", "-v", "/scratch", "bb:1", "true"])
        .ok();
    assert_eq!(volume_names(&f).len(), 2);
    f.berth(&["rm", "-v", "a2"]).ok();
    assert_eq!(volume_names(&f), names);
    // prune: the anonymous one only; -a the named ones too.
    f.berth(&["volume", "create", "keep1"]).ok();
    let o = f.berth(&["volume", "prune", "-f"]).ok();
    assert!(
        o.stdout
            .starts_with(&format!("Deleted Volumes:\n{}\n", names[0])),
        "{o:?}"
    );
    assert!(o.stdout.contains("Total reclaimed space: 2B"), "{o:?}");
    assert_eq!(volume_names(&f), ["keep1"]);
    let o = f.berth(&["volume", "prune", "-f", "-a"]).ok();
    assert!(o.stdout.contains("keep1"), "{o:?}");
    assert!(volume_names(&f).is_empty());
    f.assert_clean();
}

#[test]
fn a_tmpfs_volume_is_mounted_until_removed() {
    let f = Fixture::new();
    f.berth(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=1m",
        "t1",
    ])
    .ok();
    let data = f.root().join("volumes/t1/_data");
    f.run(&["-v", "t1:/t", "bb:1", "sh", "-c", "echo kept > /t/f"])
        .ok();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(data.to_str().unwrap()))
        .unwrap_or_else(|| panic!("{} is not mounted", data.display()));
    assert!(
        line.contains(" - tmpfs ") && line.contains("size=1024k"),
        "{line}"
    );
    let o = f.run(&["-v", "t1:/t", "bb:1", "cat", "/t/f"]).ok();
    assert_eq!(o.stdout, "kept\n");
    f.berth(&["volume", "rm", "t1"]).ok();
    assert!(mounts_containing(data.to_str().unwrap()).is_empty());
    assert!(!data.exists());
    f.assert_clean();
}

#[test]
fn bad_volume_input_is_refused_by_name() {
    let f = Fixture::new();
    for (args, needle) in [
        (vec!["volume", "create", "a"], "volume name"),
        (
            vec![
                "volume",
                "create",
                "-o",
                "type=nfs",
                "-o",
                "device=:/x",
                "n1",
            ],
            "not implemented",
        ),
        (
            vec!["volume", "create", "-o", "colour=blue", "n2"],
            "colour",
        ),
        (
            vec!["volume", "create", "-d", "flocker", "n3"],
            "local driver",
        ),
        (vec!["volume", "rm", "nosuch"], "no such volume: nosuch"),
        (
            vec!["volume", "inspect", "nosuch"],
            "no such volume: nosuch",
        ),
        (vec!["volume", "ls", "-f", "colour=red"], "colour=red"),
        (
            vec!["run", "--rm", "-v", "bad/name:/x", "bb:1", "true"],
            "volume name",
        ),
        (
            vec!["run", "--rm", "-v", "v9:/x", "-v", "/x/", "bb:1", "true"],
            "same destination",
        ),
    ] {
        let o = f.berth(&args);
        assert_ne!(o.code, 0, "{args:?}: {o:?}");
        assert!(o.stderr.contains(needle), "{args:?}: {}", o.stderr);
    }
    f.berth(&["volume", "rm", "-f", "nosuch"]).ok();
    assert!(volume_names(&f).is_empty(), "{:?}", volume_names(&f));
    f.assert_clean();
    let left: Vec<_> = std::fs::read_dir(f.root().join("volumes"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.iter().all(|n| n == ".lock"), "{left:?}");
    let _ = Path::new("");
}

#[test]
fn volumes_from_shares_another_containers_volumes_and_binds() {
    let f = Fixture::new();
    let host = f.dir.path().join("hostdir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("file"), "host\n").unwrap();
    let bind = format!("{}:/h:ro", host.display());
    f.berth(&[
        "run",
        "--name",
        "src",
        "-v",
        "vf-data:/data",
        "-v",
        "/anon",
        "-v",
        &bind,
        "bb:1",
        "sh",
        "-c",
        "echo x > /data/f; echo y > /anon/g",
    ])
    .ok();
    let o = f
        .run(&[
            "--volumes-from", "src", "bb:1", "sh", "-c",
            "cat /data/f /anon/g /h/file; touch /h/z 2>/dev/null || echo h-ro; echo more >> /data/f",
        ])
        .ok();
    assert_eq!(o.stdout, "x\ny\nhost\nh-ro\n");
    // :ro makes every one read-only; a -v of the same place wins.
    let o = f
        .run(&[
            "--volumes-from",
            "src:ro",
            "-v",
            "vf-other:/anon",
            "bb:1",
            "sh",
            "-c",
            "cat /data/f; touch /data/n 2>/dev/null || echo data-ro; ls /anon | wc -l",
        ])
        .ok();
    assert_eq!(o.stdout, "x\nmore\ndata-ro\n0\n");
    // The --rm containers did not take src's anonymous volume with them.
    let o = f
        .run(&["--volumes-from", "src", "bb:1", "cat", "/anon/g"])
        .ok();
    assert_eq!(o.stdout, "y\n");
    for (arg, word) in [
        ("nosuch", "no such container"),
        ("src:xx", "--volumes-from"),
    ] {
        let o = f.run(&["--volumes-from", arg, "bb:1", "true"]);
        assert_eq!(o.code, 125, "{o:?}");
        assert!(o.stderr.contains(word), "{o:?}");
    }
    f.berth(&["rm", "-v", "src"]).ok();
    f.berth(&["volume", "rm", "vf-data", "vf-other"]).ok();
    let o = f.berth(&["volume", "ls", "-q"]).ok();
    assert_eq!(o.stdout, "", "src's anonymous volume went with rm -v");
    f.assert_clean();
}
