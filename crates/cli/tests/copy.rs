//! `cp` both ways (files, directories, renames, tar streams, owners) and
//! `export`, on running and stopped containers; symlinks in the container
//! never lead a copy to the host's files.

use std::os::unix::fs::MetadataExt;
use std::process::Stdio;

mod common;
use common::Fixture;

fn tar_names(data: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(data);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[test]
fn cp_both_ways_and_export() {
    let f = Fixture::new();
    f.berth(&[
        "run",
        "-d",
        "--name",
        "cp1",
        "bb:1",
        "sh",
        "-c",
        "mkdir -p /data/sub; echo inside > /data/sub/f; ln -s / /escape; sleep 100",
    ])
    .ok();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let host = f.dir.path().join("host");
    std::fs::create_dir(&host).unwrap();

    // Out: a directory into a host directory, a renamed file, a tar stream.
    f.berth(&["cp", "cp1:/data", host.to_str().unwrap()]).ok();
    assert_eq!(
        std::fs::read_to_string(host.join("data/sub/f")).unwrap(),
        "inside\n"
    );
    let renamed = host.join("copy-of-f");
    f.berth(&["cp", "cp1:/data/sub/f", renamed.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read_to_string(&renamed).unwrap(), "inside\n");
    let out = f
        .command(&["cp", "cp1:/data/sub", "-"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(tar_names(&out.stdout), ["sub", "sub/f"]);

    // In: owned by root unless -a; into a directory or under a new name.
    let src = host.join("from-host.txt");
    std::fs::write(&src, "hello\n").unwrap();
    std::os::unix::fs::chown(&src, Some(1234), Some(1234)).unwrap();
    f.berth(&["cp", src.to_str().unwrap(), "cp1:/data/"]).ok();
    f.berth(&["cp", "-a", src.to_str().unwrap(), "cp1:/data/kept-owner"])
        .ok();
    let o = f
        .berth(&[
            "exec",
            "cp1",
            "sh",
            "-c",
            "cat /data/from-host.txt; stat -c %u /data/from-host.txt /data/kept-owner",
        ])
        .ok();
    assert_eq!(o.stdout, "hello\n0\n1234\n");
    let dir = host.join("tree");
    std::fs::create_dir_all(dir.join("a/b")).unwrap();
    std::fs::write(dir.join("a/b/c"), "deep").unwrap();
    f.berth(&["cp", dir.to_str().unwrap(), "cp1:/data"]).ok();
    let o = f.berth(&["exec", "cp1", "cat", "/data/tree/a/b/c"]).ok();
    assert_eq!(o.stdout, "deep");

    // A symlink to / in the container is the container's root, not the host's.
    let o = f.berth(&[
        "cp",
        "cp1:/escape/etc/shadow",
        host.join("shadow").to_str().unwrap(),
    ]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(!host.join("shadow").exists());
    let marker = format!("berth-cp-marker-{}", std::process::id());
    let m = host.join(&marker);
    std::fs::write(&m, "x").unwrap();
    f.berth(&["cp", m.to_str().unwrap(), "cp1:/escape/tmp/"])
        .ok();
    assert!(
        !std::path::Path::new("/tmp").join(&marker).exists(),
        "wrote into the host's /tmp"
    );
    f.berth(&["exec", "cp1", "test", "-f", &format!("/tmp/{marker}")])
        .ok();

    // A stopped container: its root is mounted for the copy and unmounted after.
    f.berth(&["stop", "-t", "0", "cp1"]).ok();
    let again = host.join("again");
    f.berth(&["cp", "cp1:/data/from-host.txt", again.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read_to_string(&again).unwrap(), "hello\n");
    f.berth(&["cp", src.to_str().unwrap(), "cp1:/data/while-stopped"])
        .ok();

    // export: the whole root, with what the container wrote.
    let exported = host.join("export.tar");
    f.berth(&["export", "-o", exported.to_str().unwrap(), "cp1"])
        .ok();
    let names = tar_names(&std::fs::read(&exported).unwrap());
    for want in ["bin/busybox", "data/sub/f", "data/while-stopped", "escape"] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    assert!(std::fs::metadata(&exported).unwrap().size() > 100_000);

    for (args, needle) in [
        (vec!["cp", "cp1:/nothing/here", "/tmp/x"], "nothing"),
        (vec!["cp", "a", "b"], "CONTAINER:PATH"),
        (vec!["cp", "cp1:/a", "cp1:/b"], "two containers"),
        (vec!["cp", "/no/such/host/file", "cp1:/tmp"], "no such file"),
    ] {
        let o = f.berth(&args);
        assert_ne!(o.code, 0, "{args:?}: {o:?}");
        assert!(o.stderr.contains(needle), "{args:?}: {}", o.stderr);
    }
    f.berth(&["rm", "cp1"]).ok();
    f.assert_clean();
}
