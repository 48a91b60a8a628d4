//! Changing and looking into containers in place: `pause`/`unpause` (the
//! processes really stop and go on), `rename`, `top`, `update` (limits seen
//! by the kernel, kept for the next start; the restart policy), `diff`
//! (added, changed, deleted; no mount points), `version` and `info`.

use std::time::Duration;

mod common;
use common::Fixture;

fn inspect(f: &Fixture, c: &str, template: &str) -> String {
    f.berth(&["inspect", "-f", template, c])
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// The size of the container's /tmp/ticks (in its writable layer).
fn ticks(f: &Fixture, id: &str) -> u64 {
    let p = f.root().join("containers").join(id).join("upper/tmp/ticks");
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn pause_unpause_rename_and_top() {
    let f = Fixture::new();
    let id = f
        .berth(&[
            "run",
            "-d",
            "--name",
            "m1",
            "bb:1",
            "sh",
            "-c",
            "mkdir -p /tmp; while :; do echo x >> /tmp/ticks; sleep 0.02; done",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    std::thread::sleep(Duration::from_millis(300));
    assert!(ticks(&f, &id) > 0);

    let o = f.berth(&["pause", "m1"]).ok();
    assert_eq!(o.stdout, "m1\n");
    assert_eq!(
        inspect(&f, "m1", "{{.State.Status}} {{.State.Paused}}"),
        "paused true"
    );
    assert!(f.berth(&["ps"]).ok().stdout.contains("(Paused)"));
    let frozen = ticks(&f, &id);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(ticks(&f, &id), frozen, "a paused container went on writing");
    let o = f.berth(&["pause", "m1"]);
    assert!(o.code != 0 && o.stderr.contains("already paused"), "{o:?}");

    f.berth(&["unpause", "m1"]).ok();
    assert_eq!(inspect(&f, "m1", "{{.State.Status}}"), "running");
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        ticks(&f, &id) > frozen,
        "an unpaused container stayed frozen"
    );

    // top: ps(1)'s table of the container's processes only.
    let o = f.berth(&["top", "m1"]).ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(
        lines[0].contains("PID") && lines[0].contains("CMD"),
        "{o:?}"
    );
    assert!(lines.iter().any(|l| l.contains("while :")), "{o:?}");
    assert!(!o.stdout.contains("cargo"), "host processes listed: {o:?}");
    let o = f.berth(&["top", "m1", "-o", "pid,comm"]).ok();
    assert!(
        o.stdout.starts_with("    PID COMMAND") || o.stdout.contains("PID COMMAND"),
        "{o:?}"
    );

    // rename: the new name works, the old is gone, a taken one is refused.
    f.berth(&["rename", "m1", "m2"]).ok();
    assert_eq!(inspect(&f, "m2", "{{.Name}}"), "/m2");
    assert_eq!(f.berth(&["inspect", "m1"]).code, 1);
    f.berth(&["create", "--name", "taken", "bb:1", "true"]).ok();
    let o = f.berth(&["rename", "m2", "taken"]);
    assert!(o.code != 0 && o.stderr.contains("already in use"), "{o:?}");
    let o = f.berth(&["rename", "m2", "bad/name"]);
    assert!(o.code != 0 && o.stderr.contains("--name"), "{o:?}");

    // A paused container still stops.
    f.berth(&["pause", "m2"]).ok();
    f.berth(&["stop", "-t", "1", "m2"]).ok();
    assert_eq!(inspect(&f, "m2", "{{.State.Status}}"), "exited");
    let o = f.berth(&["pause", "m2"]);
    assert!(o.code != 0 && o.stderr.contains("not running"), "{o:?}");
    f.berth(&["rm", "m2", "taken"]).ok();
    f.assert_clean();
}

#[test]
fn update_changes_limits_now_and_for_later() {
    let f = Fixture::new();
    let memory = "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes";
    let pids = "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max";
    f.berth(&[
        "run", "-d", "--name", "u1", "--memory", "32m", "bb:1", "sleep", "100",
    ])
    .ok();
    let o = f
        .berth(&["update", "--memory", "64m", "--pids-limit", "30", "u1"])
        .ok();
    assert_eq!(o.stdout, "u1\n");
    let o = f
        .berth(&["exec", "u1", "sh", "-c", &format!("{memory}; {pids}")])
        .ok();
    assert_eq!(o.stdout, "67108864\n30\n");
    // Kept for the next start.
    f.berth(&["restart", "-t", "0", "u1"]).ok();
    let o = f.berth(&["exec", "u1", "sh", "-c", memory]).ok();
    assert_eq!(o.stdout, "67108864\n");
    // The restart policy; --restart on an --rm container is refused.
    f.berth(&["update", "--restart", "on-failure:4", "u1"]).ok();
    assert_eq!(
        inspect(
            &f,
            "u1",
            "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "on-failure:4"
    );
    let o = f.berth(&["update", "--memory", "lots", "u1"]);
    assert!(o.code != 0 && o.stderr.contains("--memory"), "{o:?}");
    let o = f.berth(&["update", "--memory", "64m", "nosuch"]);
    assert!(
        o.code != 0 && o.stderr.contains("no such container"),
        "{o:?}"
    );
    f.berth(&["rm", "-f", "u1"]).ok();
    f.assert_clean();
}

#[test]
fn diff_version_and_info() {
    let f = Fixture::new();
    f.berth(&[
        "run",
        "--name",
        "d1",
        "bb:1",
        "sh",
        "-c",
        "mkdir -p /srv/new && echo a > /srv/new/file && rm /bin/cat && echo changed >> /bin/sh.txt",
    ])
    .ok();
    let o = f.berth(&["diff", "d1"]).ok();
    assert_eq!(
        o.stdout, "C /bin\nD /bin/cat\nA /bin/sh.txt\nA /srv\nA /srv/new\nA /srv/new/file\n",
        "{o:?}"
    );
    let o = f.berth(&["create", "--name", "d2", "bb:1", "true"]).ok();
    assert!(!o.stdout.is_empty());
    assert_eq!(f.berth(&["diff", "d2"]).ok().stdout, "");

    let o = f.berth(&["version", "-f", "{{.Client.Version}}"]).ok();
    assert_eq!(o.stdout.trim(), env!("CARGO_PKG_VERSION"));
    let o = f
        .berth(&[
            "info",
            "-f",
            "{{.Containers}} {{.ContainersStopped}} {{.Images}} {{.OSType}}",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), "2 2 1 linux");
    let o = f.berth(&["info"]).ok();
    assert!(
        o.stdout.contains(" Containers: 2\n") && o.stdout.contains("Storage Driver: overlay"),
        "{o:?}"
    );
    f.berth(&["rm", "d1", "d2"]).ok();
    f.assert_clean();
}
