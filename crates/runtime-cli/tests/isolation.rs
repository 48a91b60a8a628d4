//! What a process sees inside a container: namespaces, mounts, masked and
//! read-only paths, capabilities, rlimits, identity, sysctls. Each test
//! runs one busybox command and checks the container's own output.

use serde_json::{json, Value};
use test_support::{cgroup_dirs, mounts_containing, unique_id, Bundle, Outcome, RuntimeCli};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// Runs `script` with `sh -c` in a default-spec container edited by `edit`.
fn run_sh(script: &str, edit: impl FnOnce(&mut Value)) -> Outcome {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&["sh", "-c", script]);
    let id = unique_id("iso");
    let cg = b.set_unique_cgroup(&id);
    edit(&mut b.config);
    b.write();
    let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(
        mounts_containing(b.path().to_str().unwrap()).is_empty(),
        "mounts left behind"
    );
    assert!(cgroup_dirs(&cg).is_empty(), "cgroup left behind");
    o
}

fn out(script: &str, edit: impl FnOnce(&mut Value)) -> String {
    run_sh(script, edit).ok().stdout.trim().to_string()
}

#[test]
fn hostname_comes_from_the_spec() {
    assert_eq!(
        out("hostname", |c| c["hostname"] = json!("box-one")),
        "box-one"
    );
}

#[test]
fn new_network_namespace_holds_only_lo() {
    assert_eq!(out("ls /sys/class/net", |_| {}), "lo");
}

#[test]
fn pid_namespace_shows_only_the_container() {
    let ps = out(
        "ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '",
        |_| {},
    );
    // sh is PID 1; ls/grep/sort/tr are its children: nothing from the host.
    let pids: Vec<u32> = ps.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(pids[0], 1, "{ps}");
    assert!(pids.iter().all(|p| *p < 20), "host processes visible: {ps}");
}

#[test]
fn masked_paths_read_empty() {
    // On the host these are not empty (/proc/kcore does not exist on every kernel).
    assert!(!std::fs::read_to_string("/proc/timer_list")
        .unwrap()
        .is_empty());
    let o = out(
        "wc -c < /proc/timer_list; ls -A /sys/firmware | wc -l; cat /proc/keys | wc -c",
        |_| {},
    );
    assert_eq!(o.split_whitespace().collect::<Vec<_>>(), ["0", "0", "0"]);
    // Unmasked, the same command sees the real file.
    let o = out("wc -c < /proc/timer_list", |c| {
        c["linux"]["maskedPaths"] = json!([])
    });
    assert_ne!(o.trim(), "0");
}

#[test]
fn readonly_paths_refuse_writes() {
    let o = out("echo 1 > /proc/sys/vm/drop_caches && echo written || echo refused; echo h > /proc/sysrq-trigger && echo written || echo refused", |_| {});
    assert_eq!(
        o.lines().map(str::trim).collect::<Vec<_>>(),
        ["refused", "refused"]
    );
}

#[test]
fn readonly_root_refuses_writes() {
    let o = run_sh("touch /newfile && echo written || echo refused", |c| {
        c["root"]["readonly"] = json!(true)
    });
    assert_eq!(o.stdout.trim(), "refused");
    assert!(o.stderr.contains("Read-only"), "{}", o.stderr);
}

#[test]
fn capabilities_match_the_spec() {
    // Docker's default set.
    let want = "00000000a80425fb";
    let o = out(
        "grep -E '^Cap(Eff|Prm|Bnd|Amb|Inh)' /proc/self/status",
        |_| {},
    );
    for (name, v) in [
        ("CapEff", want),
        ("CapPrm", want),
        ("CapBnd", want),
        ("CapAmb", "0000000000000000"),
        ("CapInh", "0000000000000000"),
    ] {
        assert!(
            o.lines().any(|l| l.starts_with(name) && l.ends_with(v)),
            "{name} should be {v}:\n{o}"
        );
    }
}

#[test]
fn reduced_capabilities_are_dropped_everywhere() {
    let o = out("grep -E '^Cap(Eff|Bnd)' /proc/self/status", |c| {
        let caps = json!(["CAP_KILL", "CAP_CHOWN"]);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = caps.clone();
        }
    });
    assert!(o.lines().all(|l| l.ends_with("0000000000000021")), "{o}");
}

#[test]
fn dropped_chown_capability_stops_chown() {
    let o = out(
        "touch /tmp/f; chown 1000 /tmp/f && echo allowed || echo denied",
        |c| {
            c["root"]["readonly"] = json!(false);
            let caps = json!(["CAP_KILL"]);
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set] = caps.clone();
            }
        },
    );
    assert_eq!(o.lines().last().unwrap(), "denied");
}

#[test]
fn rlimits_apply() {
    let o = out("ulimit -n; ulimit -Hn", |c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512}])
    });
    assert_eq!(o.split_whitespace().collect::<Vec<_>>(), ["256", "512"]);
}

#[test]
fn user_groups_and_umask_apply() {
    let o = out("id; umask", |c| {
        c["process"]["user"] =
            json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 23});
    });
    let mut lines = o.lines();
    let id = lines.next().unwrap();
    assert!(id.starts_with("uid=1000(user) gid=1000(user)"), "{id}");
    assert!(
        id.contains("groups=") && id.contains("10") && id.contains("20"),
        "{id}"
    );
    assert_eq!(lines.next().unwrap().trim(), "0027");
}

#[test]
fn non_root_user_has_no_effective_capabilities() {
    let o = out("grep CapEff /proc/self/status", |c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000})
    });
    assert!(o.ends_with("0000000000000000"), "{o}");
}

#[test]
fn env_and_cwd_apply() {
    let o = out("echo $FOO; pwd; echo $HOME", |c| {
        c["process"]["env"] = json!(["PATH=/bin:/usr/bin", "FOO=bar baz"]);
        c["process"]["cwd"] = json!("/srv/work");
    });
    assert_eq!(
        o.lines().collect::<Vec<_>>(),
        ["bar baz", "/srv/work", "/root"]
    );
}

#[test]
fn namespaced_sysctl_is_written() {
    let o = out("cat /proc/sys/net/ipv4/ip_forward", |c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"})
    });
    assert_eq!(o, "1");
}

#[test]
fn spec_mounts_are_made_and_invisible_outside() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("data"), "from the host").unwrap();
    let o = out("cat /data/data; echo; grep ' /scratch ' /proc/self/mountinfo | grep -c tmpfs; touch /data/x 2>/dev/null && echo rw || echo ro", |c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/data", "type": "bind", "source": host.path(), "options": ["rbind", "ro"]}));
        mounts.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    });
    assert_eq!(o.lines().collect::<Vec<_>>(), ["from the host", "1", "ro"]);
    assert!(mounts_containing("/scratch").is_empty());
}

#[test]
fn devices_exist_with_the_right_numbers() {
    let o = out("for d in null zero urandom; do ls -l /dev/$d | awk '{print $1, $5, $6}'; done; readlink /dev/fd; readlink /dev/ptmx", |_| {});
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines[0], "crw-rw-rw- 1, 3");
    assert_eq!(lines[1], "crw-rw-rw- 1, 5");
    assert_eq!(lines[2], "crw-rw-rw- 1, 9");
    assert_eq!(lines[3], "/proc/self/fd");
    assert_eq!(lines[4], "pts/ptmx");
}

#[test]
fn spec_device_is_created() {
    let o = out("ls -l /dev/fuse | awk '{print $1, $3, $5, $6}'", |c| {
        c["linux"]["devices"] = json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640, "uid": 0, "gid": 0}]);
    });
    assert_eq!(o, "crw-r----- root 10, 229");
}

#[test]
fn no_new_privileges_is_set() {
    assert_eq!(
        out(
            "grep NoNewPrivs /proc/self/status | awk '{print $2}'",
            |_| {}
        ),
        "1"
    );
    assert_eq!(
        out(
            "grep NoNewPrivs /proc/self/status | awk '{print $2}'",
            |c| c["process"]["noNewPrivileges"] = json!(false)
        ),
        "0"
    );
}

#[test]
fn oom_score_adj_applies() {
    assert_eq!(
        out("cat /proc/self/oom_score_adj", |c| c["process"]
            ["oomScoreAdj"] =
            json!(500)),
        "500"
    );
}

#[test]
fn cgroup_namespace_roots_the_container_cgroup() {
    // With a cgroup namespace every hierarchy shows the container's cgroup as "/".
    assert_eq!(out("grep -vc ':/$' /proc/self/cgroup; true", |_| {}), "0");
}

#[test]
fn user_namespace_maps_root_to_a_host_uid() {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&[
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; touch /tmp/owned",
    ]);
    b.config["root"]["readonly"] = json!(false);
    let id = unique_id("userns");
    b.set_unique_cgroup(&id);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // The rootfs must be usable by the mapped root.
    std::process::Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(b.rootfs())
        .status()
        .unwrap();
    b.write();
    let o = rt
        .run(&["run", "--bundle", b.path().to_str().unwrap(), &id])
        .ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(b.rootfs().join("tmp/owned"))
            .unwrap()
            .uid(),
        100000,
        "container root writes as the mapped host uid"
    );
}

#[test]
fn net_bind_service_guards_low_ports() {
    let script = "timeout 1 nc -l -p 80 2>/dev/null; echo rc=$?";
    // With CAP_NET_BIND_SERVICE (default set) nc listens until timeout kills it.
    assert_eq!(out(script, |_| {}), "rc=143");
    let o = out(script, |c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = json!(["CAP_KILL"]);
        }
    });
    assert_eq!(
        o, "rc=1",
        "binding port 80 must fail without CAP_NET_BIND_SERVICE"
    );
}

#[test]
fn net_raw_guards_raw_sockets() {
    let script = "ip link set lo up 2>/dev/null; ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1 && echo pinged || echo refused";
    let caps = |list: Value| {
        move |c: &mut Value| {
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set] = list.clone();
            }
        }
    };
    assert_eq!(
        out(script, caps(json!(["CAP_NET_RAW", "CAP_NET_ADMIN"]))),
        "pinged"
    );
    assert_eq!(out(script, caps(json!(["CAP_NET_ADMIN"]))), "refused");
}

#[test]
fn user_namespace_with_several_ranges() {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map /proc/self/gid_map | tr -s ' ' | sed 's/^ //'",
    ]);
    let id = unique_id("userns");
    b.set_unique_cgroup(&id);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 1000}, {"containerID": 1000, "hostID": 301000, "size": 64536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
    std::process::Command::new("chown")
        .args(["-R", "300000:300000"])
        .arg(b.rootfs())
        .status()
        .unwrap();
    b.write();
    let o = rt
        .run(&["run", "--bundle", b.path().to_str().unwrap(), &id])
        .ok();
    assert_eq!(
        o.stdout.lines().collect::<Vec<_>>(),
        ["0 300000 1000", "1000 301000 64536", "0 300000 65536"],
        "{}",
        o.stdout
    );
}

#[test]
fn ambient_capabilities_survive_for_a_non_root_user() {
    let o = out("grep -E '^Cap(Amb|Eff)' /proc/self/status", |c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        for set in [
            "bounding",
            "effective",
            "permitted",
            "inheritable",
            "ambient",
        ] {
            c["process"]["capabilities"][set] = json!(["CAP_KILL"]);
        }
    });
    // CAP_KILL is bit 5.
    assert!(o.lines().all(|l| l.ends_with("0000000000000020")), "{o}");
}
