//! `--userns auto|keep-id` and `--uidmap`/`--gidmap`: the container's root
//! is an unprivileged host id, the image's files and a volume's show as
//! the container's own while the disk keeps them as they are, the mapping
//! survives stop and start, two containers get disjoint blocks, and a
//! host file only root may read stays unreadable from inside.

mod common;
use common::Fixture;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// The host uid of process `pid` (its real uid).
fn host_uid(pid: &str) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}

/// The first uid mapping line of container `name`'s init: (inside, host, size).
fn uid_map(f: &Fixture, name: &str) -> (u32, u32, u32) {
    let o = f.berth(&["exec", name, "cat", "/proc/self/uid_map"]).ok();
    let v: Vec<u32> = o
        .stdout
        .split_whitespace()
        .take(3)
        .map(|n| n.parse().unwrap())
        .collect();
    (v[0], v[1], v[2])
}

#[test]
fn auto_remaps_root_and_the_disk_keeps_its_ids() {
    let f = Fixture::new();
    let secret = f.dir.path().join("secret");
    std::fs::write(&secret, "root only").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let bind = format!("{}:/secret", secret.display());
    f.berth(&[
        "run",
        "-d",
        "--name",
        "a",
        "--userns",
        "auto",
        "-v",
        "vol:/data",
        "-v",
        &bind,
        "bb:1",
        "sleep",
        "1000",
    ])
    .ok();
    f.berth(&[
        "run",
        "-d",
        "--name",
        "b",
        "--userns",
        "auto:size=1024",
        "bb:1",
        "sleep",
        "1000",
    ])
    .ok();
    let (inside, host_a, size_a) = uid_map(&f, "a");
    let (_, host_b, size_b) = uid_map(&f, "b");
    assert_eq!((inside, size_a, size_b), (0, 65536, 1024));
    assert!(host_a > 0 && host_b > 0);
    assert!(
        host_b >= host_a + size_a || host_a >= host_b + size_b,
        "blocks overlap: {host_a}+{size_a} and {host_b}+{size_b}"
    );
    // Docker's ping range, cut to the groups each namespace maps.
    for (name, want) in [("a", "0\t65535\n"), ("b", "0\t1023\n")] {
        let o = f
            .berth(&["exec", name, "cat", "/proc/sys/net/ipv4/ping_group_range"])
            .ok();
        assert_eq!(o.stdout, want, "{name}");
    }
    let pid = f
        .berth(&["inspect", "-f", "{{.State.Pid}}", "a"])
        .ok()
        .stdout;
    assert_eq!(
        host_uid(pid.trim()),
        host_a,
        "the init runs as the mapped id on the host"
    );

    let o = f
        .berth(&[
            "exec", "a", "sh", "-c",
            "id -u; stat -c %u:%g /bin/busybox /etc/hosts; echo x > /etc/made; echo y > /data/made; \
             cat /secret 2>/dev/null || echo denied",
        ])
        .ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines, ["0", "0:0", "0:0", "denied"], "{o:?}");
    // The host's root reads it without a user namespace.
    let o = f.run(&["-v", &bind, "bb:1", "cat", "/secret"]).ok();
    assert_eq!(o.stdout, "root only");

    // What it wrote is root's on disk, as without a mapping.
    let id = f.berth(&["inspect", "-f", "{{.Id}}", "a"]).ok().stdout;
    let upper = f.root().join("containers").join(id.trim()).join("upper");
    let made = std::fs::metadata(upper.join("etc/made")).unwrap();
    assert_eq!((made.uid(), made.gid()), (0, 0));
    let data = f.root().join("volumes/vol/_data");
    assert_eq!(std::fs::metadata(data.join("made")).unwrap().uid(), 0);

    // A running remapped container is not copied from (its ids are shifted).
    let o = f.berth(&["cp", "a:/etc/made", "-"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("user namespace"), "{o:?}");

    // Stopped, then started again: the same mapping, the same files.
    f.berth(&["stop", "-t", "1", "a"]).ok();
    let tar = f.berth(&["cp", "a:/etc/made", "-"]);
    assert_eq!(tar.code, 0, "{tar:?}");
    f.berth(&["start", "a"]).ok();
    assert_eq!(uid_map(&f, "a"), (0, host_a, 65536));
    let o = f
        .berth(&["exec", "a", "cat", "/etc/made", "/data/made"])
        .ok();
    assert_eq!(o.stdout, "x\ny\n");
    f.berth(&["rm", "-f", "-v", "a", "b"]).ok();
    f.berth(&["volume", "rm", "vol"]).ok();
    f.assert_clean();
}

#[test]
fn keep_id_keeps_the_sudo_users_ids() {
    let f = Fixture::new();
    let shared = f.dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    // The fixture's directory is root's alone: let the kept user reach `shared`.
    std::fs::set_permissions(f.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let bind = format!("{}:/host", shared.display());
    let o = test_support::run_through_files(
        f.command(&[
            "run",
            "--rm",
            "--userns",
            "keep-id",
            "-v",
            &bind,
            "bb:1",
            "sh",
            "-c",
            "id -u; id -g; touch /host/file",
        ])
        .env("SUDO_UID", "4242")
        .env("SUDO_GID", "4243"),
    )
    .ok();
    assert_eq!(o.stdout, "4242\n4243\n", "{o:?}");
    let m = std::fs::metadata(shared.join("file")).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (4242, 4243),
        "the user's own file on the host"
    );

    // keep-id:uid=… puts the user at another id inside.
    let o = test_support::run_through_files(
        f.command(&[
            "run",
            "--rm",
            "--userns",
            "keep-id:uid=1000,gid=1000",
            "bb:1",
            "id",
            "-u",
        ])
        .env("SUDO_UID", "4242")
        .env("SUDO_GID", "4243"),
    )
    .ok();
    assert_eq!(o.stdout, "1000\n");

    // Root without sudo has no user to keep.
    let o = test_support::run_through_files(
        f.command(&["run", "--rm", "--userns", "keep-id", "bb:1", "true"])
            .env_remove("SUDO_UID")
            .env_remove("SUDO_GID"),
    );
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("keep-id"), "{o:?}");
    f.assert_clean();
}

#[test]
fn explicit_maps_work_and_bad_values_are_named() {
    let f = Fixture::new();
    let o = f
        .run(&[
            "--uidmap",
            "0:1600000:65536",
            "--gidmap",
            "0:1700000:65536",
            "bb:1",
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map | tr -s ' ' | sed 's/^ //'",
        ])
        .ok();
    assert_eq!(o.stdout, "0 1600000 65536\n0 1700000 65536\n");
    for (args, named) in [
        (vec!["--userns", "sideways"], "--userns"),
        (vec!["--userns", "auto:size=0"], "--userns"),
        (vec!["--uidmap", "0:1"], "--uidmap"),
        (vec!["--uidmap", "1:1600000:10"], "--uidmap"),
        (
            vec!["--uidmap", "0:1600000:10", "--uidmap", "5:1700000:10"],
            "overlaps",
        ),
        (
            vec!["--userns", "auto", "--uidmap", "0:1600000:10"],
            "--userns",
        ),
    ] {
        let mut full = args.clone();
        full.extend(["bb:1", "true"]);
        let o = f.run(&full);
        assert_eq!(o.code, 125, "{args:?}: {o:?}");
        assert!(o.stderr.contains(named), "{args:?}: {o:?}");
    }
    f.assert_clean();
}
