//! The rest of the spec's knobs, each checked from inside the container:
//! passed descriptors, no-pivot, joined and time namespaces, personality,
//! scheduler, I/O priority, CPU affinity, domainname; and the global flags.

use std::os::fd::AsRawFd;

use serde_json::{json, Value};
use test_support::{cgroup_dirs, unique_id, Bundle, Outcome, RuntimeCli};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn run_with(script: &str, edit: impl FnOnce(&mut Value), extra: &[&str]) -> Outcome {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&["sh", "-c", script]);
    let id = unique_id("ps");
    let cg = b.set_unique_cgroup(&id);
    edit(&mut b.config);
    b.write();
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--bundle", b.path().to_str().unwrap(), &id]);
    let o = rt.run(&args);
    assert!(cgroup_dirs(&cg).is_empty());
    o
}

#[test]
fn preserved_fds_reach_the_container_and_others_do_not() {
    // fd 3 is passed with --preserve-fds 1; fd 4 (also open here) is not.
    let f3 = tempfile::tempfile().unwrap();
    let f4 = tempfile::tempfile().unwrap();
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&["sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"]);
    let id = unique_id("fds");
    b.set_unique_cgroup(&id);
    let mut cmd = rt.command();
    cmd.args([
        "run",
        "--preserve-fds",
        "1",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ]);
    let (a, c) = (f3.as_raw_fd(), f4.as_raw_fd());
    // SAFETY: in the child before exec: dup2 onto fixed numbers, clear CLOEXEC.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            libc::dup2(a, 3);
            libc::dup2(c, 4);
            // dup2 onto the same number keeps close-on-exec: clear it.
            libc::fcntl(3, libc::F_SETFD, 0);
            libc::fcntl(4, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let o = test_support::run_through_files(&mut cmd);
    assert_eq!(o.code, 0, "{o:?}");
    // 0-2 stdio, 3 passed; the `ls` itself opens one more to list the directory.
    let fds: Vec<u32> = o
        .stdout
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    assert!(fds.contains(&3), "{fds:?}");
    assert!(
        !fds.contains(&4) || fds.len() == 5,
        "fd 4 leaked into the container: {fds:?}"
    );
    assert_eq!(fds.len(), 5, "{fds:?}");
}

/// With --no-pivot the container's / is still its rootfs (the same inode
/// as the bundle's rootfs directory, holding the bundle's marker file),
/// `/..` does not lead out of it, and pid 1 is the container's program.
#[test]
fn no_pivot_still_isolates_the_root() {
    use std::os::unix::fs::MetadataExt;
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    let id = unique_id("ps");
    let marker = format!("marker-{id}");
    std::fs::write(b.rootfs().join(&marker), "").unwrap();
    b.set_args(&[
        "sh",
        "-c",
        "stat -c %i /; ls /..; echo; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    let cg = b.set_unique_cgroup(&id);
    b.write();
    let o = rt
        .run(&[
            "run",
            "--no-pivot",
            "--bundle",
            b.path().to_str().unwrap(),
            &id,
        ])
        .ok();
    assert!(cgroup_dirs(&cg).is_empty());
    let mut lines = o.stdout.lines();
    let inode: u64 = lines.next().unwrap().trim().parse().unwrap();
    assert_eq!(
        inode,
        std::fs::metadata(b.rootfs()).unwrap().ino(),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(&marker),
        "/.. left the rootfs: {}",
        o.stdout
    );
    assert!(o.stdout.contains("sh -c stat"), "pid 1: {}", o.stdout);
}

#[test]
fn joined_network_namespace_is_used() {
    let name = unique_id("berthns");
    assert!(std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .unwrap()
        .success());
    let guard = scopeguard(name.clone());
    let st = std::process::Command::new("ip")
        .args([
            "netns", "exec", &name, "ip", "link", "add", "probe0", "type", "veth", "peer", "name",
            "probe1",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let o = run_with(
        "ls /sys/class/net | sort | tr '\\n' ' '",
        |c| {
            let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
            ns.retain(|n| n["type"] != json!("network"));
            ns.push(json!({"type": "network", "path": format!("/run/netns/{name}")}));
        },
        &[],
    )
    .ok();
    assert_eq!(o.stdout.trim(), "lo probe0 probe1");
    drop(guard);
}

/// Deletes a network namespace when dropped.
fn scopeguard(name: String) -> impl Drop {
    struct G(String);
    impl Drop for G {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "delete", &self.0])
                .status();
        }
    }
    G(name)
}

#[test]
fn time_namespace_offsets_the_monotonic_clock() {
    let host_uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let o = run_with(
        "cut -d' ' -f1 /proc/uptime",
        |c| {
            c["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "time"}));
            c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400, "nanosecs": 0}, "monotonic": {"secs": 86400, "nanosecs": 0}});
        },
        &[],
    )
    .ok();
    let inside: f64 = o.stdout.trim().parse().unwrap();
    assert!(
        inside > host_uptime + 86000.0,
        "uptime {inside} vs host {host_uptime}"
    );
}

#[test]
fn personality_linux32_changes_uname() {
    assert_eq!(
        run_with(
            "uname -m",
            |c| c["linux"]["personality"] = json!({"domain": "LINUX32"}),
            &[]
        )
        .ok()
        .stdout
        .trim(),
        "i686"
    );
}

#[test]
fn scheduler_policy_applies() {
    let o = run_with(
        "grep -E '^policy' /proc/self/sched | tr -s ' '",
        |c| c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 5}),
        &[],
    )
    .ok();
    assert!(o.stdout.trim().ends_with(": 3"), "{}", o.stdout);
}

#[test]
fn io_priority_applies() {
    let o = run_with(
        "ionice -p $$",
        |c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6}),
        &[],
    )
    .ok();
    assert!(
        o.stdout.contains("best-effort") && o.stdout.contains("prio 6"),
        "{}",
        o.stdout
    );
}

#[test]
fn exec_cpu_affinity_pins_the_process() {
    let o = run_with(
        "grep Cpus_allowed_list /proc/self/status",
        |c| c["process"]["execCPUAffinity"] = json!({"final": "0"}),
        &[],
    )
    .ok();
    assert!(
        o.stdout.trim().ends_with("\t0") || o.stdout.trim().ends_with(" 0"),
        "{}",
        o.stdout
    );
}

#[test]
fn domainname_applies() {
    assert_eq!(
        run_with(
            "cat /proc/sys/kernel/domainname",
            |c| c["domainname"] = json!("example.test"),
            &[]
        )
        .ok()
        .stdout
        .trim(),
        "example.test"
    );
}

/// `linux.rootfsPropagation` decides the root mount's propagation, as the
/// container's own mountinfo shows it: shared, slave (master:) or private.
#[test]
fn rootfs_propagation_is_applied() {
    let root_line = |prop: &str| {
        let o = run_with(
            "awk '$5 == \"/\"' /proc/self/mountinfo",
            |c| c["linux"]["rootfsPropagation"] = json!(prop),
            &[],
        )
        .ok();
        o.stdout
    };
    let shared = root_line("rshared");
    assert!(shared.contains("shared:"), "rshared: {shared}");
    let slave = root_line("rslave");
    assert!(!slave.contains("shared:"), "rslave: {slave}");
    // A slave needs a shared master: only where the host's mounts are
    // shared (systemd hosts) can the container's root show one.
    let host_shared = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some("/") && l.contains("shared:"));
    if host_shared {
        assert!(slave.contains("master:"), "rslave: {slave}");
    }
    let private = root_line("rprivate");
    assert!(
        !private.contains("shared:") && !private.contains("master:"),
        "rprivate: {private}"
    );
    // Every other value the spec allows, non-recursive forms included.
    let shared = root_line("shared");
    assert!(shared.contains("shared:"), "shared: {shared}");
    let slave = root_line("slave");
    assert!(!slave.contains("shared:"), "slave: {slave}");
    let private = root_line("private");
    assert!(
        !private.contains("shared:") && !private.contains("master:"),
        "private: {private}"
    );
    for prop in ["unbindable", "runbindable"] {
        let line = root_line(prop);
        assert!(line.contains("unbindable"), "{prop}: {line}");
    }
}

#[test]
fn log_file_in_json_records_errors() {
    let rt = RuntimeCli::new(BIN);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.json");
    let o = rt.run(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "no-such-box",
    ]);
    assert_ne!(o.code, 0);
    let line = std::fs::read_to_string(&log).unwrap();
    let v: Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(v["level"], json!("error"));
    assert!(v["msg"].as_str().unwrap().contains("no-such-box"), "{v}");
}

#[test]
fn systemd_cgroup_is_a_clear_error_without_systemd() {
    let rt = RuntimeCli::new(BIN);
    let o = rt.run(&["--systemd-cgroup", "list"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("systemd"), "{}", o.stderr);
}

#[test]
fn features_describe_this_runtime_and_host() {
    let rt = RuntimeCli::new(BIN);
    let v: Value = serde_json::from_str(&rt.run(&["features"]).ok().stdout).unwrap();
    assert_eq!(v["ociVersionMax"], json!("1.2.0"));
    assert!(v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&json!("time")));
    assert!(v["linux"]["capabilities"]
        .as_array()
        .unwrap()
        .contains(&json!("CAP_SYS_ADMIN")));
    let layout = v["annotations"]["org.berth.cgroup.layout"]
        .as_str()
        .unwrap();
    assert!(
        layout.starts_with("hybrid")
            || layout.starts_with("unified")
            || layout.starts_with("legacy"),
        "{layout}"
    );
}

#[test]
fn rootless_spec_has_a_user_namespace_and_no_network_namespace() {
    let rt = RuntimeCli::new(BIN);
    let dir = tempfile::tempdir().unwrap();
    rt.run(&[
        "spec",
        "--rootless",
        "--bundle",
        dir.path().to_str().unwrap(),
    ])
    .ok();
    let v: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    let types: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"user") && !types.contains(&"network"),
        "{types:?}"
    );
    assert_eq!(v["linux"]["uidMappings"][0]["containerID"], json!(0));
    let again = rt.run(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    assert_ne!(
        again.code, 0,
        "spec must not overwrite an existing config.json"
    );
}

#[test]
fn listen_fds_are_passed_with_systemd_variables() {
    let listen = tempfile::tempfile().unwrap();
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&[
        "sh",
        "-c",
        "echo $LISTEN_FDS $LISTEN_PID; [ -e /proc/self/fd/3 ] && echo fd3",
    ]);
    let id = unique_id("listen");
    b.set_unique_cgroup(&id);
    let mut cmd = rt.command();
    cmd.env("LISTEN_FDS", "1")
        .args(["run", "--bundle", b.path().to_str().unwrap(), &id]);
    let fd = listen.as_raw_fd();
    // SAFETY: in the child before exec: place the listening descriptor at 3.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            libc::dup2(fd, 3);
            // dup2 onto the same number keeps close-on-exec: clear it.
            libc::fcntl(3, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let o = test_support::run_through_files(&mut cmd);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout.lines().collect::<Vec<_>>(), ["1 1", "fd3"]);
}

#[test]
fn exec_cpu_affinity_initial_and_final() {
    let o = run_with(
        "grep Cpus_allowed_list /proc/self/status",
        |c| c["process"]["execCPUAffinity"] = json!({"initial": "1", "final": "0-1"}),
        &[],
    )
    .ok();
    assert!(o.stdout.trim().ends_with("0-1"), "{}", o.stdout);
}
