//! More of `docker run`'s flags, each checked from inside the container:
//! namespaces (`--network|--uts|--pid|--ipc host|container:NAME`),
//! devices and `--privileged`, `--shm-size`, `--oom-score-adj`,
//! `--domainname`, `--add-host` and `--dns*`, `--stop-signal` and
//! `--stop-timeout`, labels, `--cidfile`, and the refusals.

mod common;
use common::Fixture;

fn host_file(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn namespace_flags_share_or_join() {
    let f = Fixture::new();
    // By default: a network of its own with only lo, its own name.
    let o = f
        .run(&["bb:1", "sh", "-c", "ls /sys/class/net | tr '\\n' ' '"])
        .ok();
    assert_eq!(o.stdout.trim(), "lo");
    // host: the host's interfaces, name and processes.
    let mut host_nets: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    host_nets.sort();
    let o = f
        .run(&[
            "--network",
            "host",
            "bb:1",
            "sh",
            "-c",
            "ls /sys/class/net | sort | tr '\\n' ' '",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), host_nets.join(" "));
    let o = f
        .run(&["--uts", "host", "bb:1", "cat", "/proc/sys/kernel/hostname"])
        .ok();
    assert_eq!(o.stdout, host_file("/proc/sys/kernel/hostname"));
    let o = f
        .run(&["--pid", "host", "bb:1", "cat", "/proc/1/comm"])
        .ok();
    assert_eq!(o.stdout, host_file("/proc/1/comm"));

    // container:NAME joins another container's namespaces.
    f.berth(&["run", "-d", "--name", "ns1", "bb:1", "sleep", "100"])
        .ok();
    let theirs = f
        .berth(&[
            "exec",
            "ns1",
            "sh",
            "-c",
            "readlink /proc/self/ns/net; readlink /proc/self/ns/ipc",
        ])
        .ok()
        .stdout;
    let o = f
        .run(&[
            "--network",
            "container:ns1",
            "--ipc",
            "container:ns1",
            "--pid",
            "container:ns1",
            "bb:1",
            "sh",
            "-c",
            "readlink /proc/self/ns/net; readlink /proc/self/ns/ipc; cat /proc/1/cmdline",
        ])
        .ok();
    assert_eq!(o.stdout, format!("{theirs}sleep\0100\0"));
    // A missing or stopped container to join, or a network berth lacks.
    for (args, code, needle) in [
        (
            vec!["--network", "container:nosuch"],
            125,
            "no such container: nosuch",
        ),
        // (Refused before any device is made: this test runs in the host's namespace.)
        (
            vec!["--network", "nosuchnet"],
            125,
            "no such network: nosuchnet",
        ),
        (vec!["--ipc", "sideways"], 125, "--ipc"),
        (vec!["--userns", "remap"], 125, "invalid --userns \"remap\""),
    ] {
        let mut full = args.clone();
        full.extend(["bb:1", "true"]);
        let o = f.run(&full);
        assert_eq!(o.code, code, "{args:?}: {o:?}");
        assert!(o.stderr.contains(needle), "{args:?}: {}", o.stderr);
    }
    f.berth(&["rm", "-f", "ns1"]).ok();
    f.assert_clean();
}

#[test]
fn devices_privileged_and_kernel_knobs() {
    let f = Fixture::new();
    let o = f
        .run(&[
            "--device",
            "/dev/null:/dev/mynull:rw",
            "bb:1",
            "sh",
            "-c",
            "test -c /dev/mynull && echo x > /dev/mynull && echo ok",
        ])
        .ok();
    assert_eq!(o.stdout, "ok\n");
    // Without the device: no such node.
    let o = f
        .run(&["bb:1", "sh", "-c", "test -e /dev/mynull || echo absent"])
        .ok();
    assert_eq!(o.stdout, "absent\n");

    // Every capability berth itself holds.
    let all = host_file("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .unwrap();
    let o = f
        .run(&[
            "--privileged", "bb:1", "sh", "-c",
            "grep -E '^(CapEff|Seccomp):' /proc/self/status | tr -s '\\t' ' '; \
             grep ' /sys ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1; test -c /dev/kmsg && echo has-kmsg",
        ])
        .ok();
    assert_eq!(
        o.stdout,
        format!("CapEff: {all}\nSeccomp: 0\nrw\nhas-kmsg\n"),
        "{o:?}"
    );

    let o = f
        .run(&[
            "--shm-size", "16m", "--oom-score-adj", "500", "--domainname", "example.org", "bb:1",
            "sh", "-c",
            "df -k /dev/shm | tail -1 | tr -s ' ' | cut -d' ' -f2; cat /proc/self/oom_score_adj /proc/sys/kernel/domainname",
        ])
        .ok();
    assert_eq!(o.stdout, "16384\n500\nexample.org\n");
    for (args, needle) in [
        (vec!["--kernel-memory", "10m"], "removed from Linux"),
        (vec!["--blkio-weight", "5"], "10 to 1000"),
        (vec!["--oom-score-adj", "2000"], "-1000 to 1000"),
        (vec!["--device", "/etc/passwd"], "not a device"),
        (vec!["--shm-size", "lots"], "--shm-size"),
    ] {
        let mut full = args.clone();
        full.extend(["bb:1", "true"]);
        let o = f.run(&full);
        assert_eq!(o.code, 125, "{args:?}: {o:?}");
        assert!(o.stderr.contains(needle), "{args:?}: {}", o.stderr);
    }
    f.assert_clean();
}

/// As Docker: a container with a network namespace of its own may ping
/// and bind ports below 1024 without the capabilities (its sysctls say
/// so), a `--sysctl` keeps its value, and `--network host` leaves the
/// host's sysctls alone.
#[test]
fn own_network_namespaces_get_dockers_sysctls() {
    let f = Fixture::new();
    let script =
        "cat /proc/sys/net/ipv4/ping_group_range /proc/sys/net/ipv4/ip_unprivileged_port_start; \
                  nc -l -p 80 & pid=$!; sleep 0.3; kill $pid 2>/dev/null && echo bound; true";
    let o = f
        .run(&[
            "--network",
            "none",
            "--user",
            "1000:1000",
            "--cap-drop",
            "NET_BIND_SERVICE",
            "bb:1",
            "sh",
            "-c",
            script,
        ])
        .ok();
    assert_eq!(o.stdout, "0\t2147483647\n0\nbound\n", "{o:?}");
    let o = f
        .run(&[
            "--network",
            "none",
            "--user",
            "1000:1000",
            "--sysctl",
            "net.ipv4.ip_unprivileged_port_start=1024",
            "bb:1",
            "sh",
            "-c",
            script,
        ])
        .ok();
    assert!(o.stdout.starts_with("0\t2147483647\n1024\n"), "{o:?}");
    assert!(!o.stdout.contains("bound"), "a user bound port 80: {o:?}");
    let host = format!(
        "{}{}",
        host_file("/proc/sys/net/ipv4/ping_group_range"),
        host_file("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    );
    let o = f
        .run(&[
            "--network",
            "host",
            "bb:1",
            "cat",
            "/proc/sys/net/ipv4/ping_group_range",
            "/proc/sys/net/ipv4/ip_unprivileged_port_start",
        ])
        .ok();
    assert_eq!(o.stdout, host);
    assert_eq!(
        format!(
            "{}{}",
            host_file("/proc/sys/net/ipv4/ping_group_range"),
            host_file("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        ),
        host,
        "the host's sysctls changed"
    );
    f.assert_clean();
}

#[test]
fn names_stop_settings_labels_and_cidfile() {
    let f = Fixture::new();
    let o = f
        .run(&[
            "--add-host",
            "db:10.1.2.3",
            "--dns",
            "192.0.2.53",
            "--dns-search",
            "corp",
            "--dns-option",
            "ndots:2",
            "bb:1",
            "sh",
            "-c",
            // -w: the generated hostname may hold "db" (12 hex digits).
            "grep -w db /etc/hosts; cat /etc/resolv.conf",
        ])
        .ok();
    assert_eq!(
        o.stdout,
        "10.1.2.3\tdb\nnameserver 192.0.2.53\nsearch corp\noptions ndots:2\n"
    );

    // --stop-signal and --stop-timeout are what stop uses.
    let labels = f.dir.path().join("labels");
    std::fs::write(&labels, "# team\nteam=a\n").unwrap();
    let cidfile = f.dir.path().join("cid");
    let id = f
        .berth(&[
            "run",
            "-d",
            "--name",
            "sig",
            "--stop-signal",
            "USR1",
            "--stop-timeout",
            "5",
            "-l",
            "tier=web",
            "--label-file",
            labels.to_str().unwrap(),
            "--cidfile",
            cidfile.to_str().unwrap(),
            "bb:1",
            "sh",
            "-c",
            "trap 'echo got-usr1; exit 7' USR1; while :; do sleep 0.1; done",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(std::fs::read_to_string(&cidfile).unwrap(), id);
    let o = f
        .berth(&[
            "inspect",
            "-f",
            "{{.Config.StopSignal}} {{.Config.StopTimeout}} {{json .Config.Labels}}",
            "sig",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), r#"USR1 5 {"team":"a","tier":"web"}"#);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t = std::time::Instant::now();
    f.berth(&["stop", "sig"]).ok();
    assert!(
        t.elapsed() < std::time::Duration::from_secs(4),
        "stop waited for SIGKILL"
    );
    assert_eq!(
        f.berth(&["inspect", "-f", "{{.State.ExitCode}}", "sig"])
            .ok()
            .stdout
            .trim(),
        "7"
    );
    assert_eq!(f.berth(&["logs", "sig"]).ok().stdout, "got-usr1\n");
    // The cidfile exists now: a second run that names it is refused.
    let o = f.run(&["--cidfile", cidfile.to_str().unwrap(), "bb:1", "true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("--cidfile"), "{o:?}");
    for (args, needle) in [
        (vec!["--add-host", "db:not-an-ip"], "--add-host"),
        (
            vec!["--add-host", "gw:host-gateway"],
            "host-gateway needs a network",
        ),
        (vec!["--dns", "dns.example"], "--dns"),
        (vec!["--stop-signal", "SIGNOPE"], "--stop-signal"),
        (vec!["-l", "=x"], "--label"),
    ] {
        let mut full = args.clone();
        full.extend(["bb:1", "true"]);
        let o = f.run(&full);
        assert_eq!(o.code, 125, "{args:?}: {o:?}");
        assert!(o.stderr.contains(needle), "{args:?}: {}", o.stderr);
    }
    f.berth(&["rm", "sig"]).ok();
    f.assert_clean();
}

/// `--security-opt seccomp=PROFILE`: a profile in Docker's format, its
/// rules kept or dropped by the container's capabilities; bad files are
/// refused by name.
#[test]
fn a_seccomp_profile_file_confines_the_container() {
    let f = Fixture::new();
    let profile = f.dir.path().join("profile.json");
    std::fs::write(
        &profile,
        r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["chmod", "fchmodat", "fchmodat2", "fchmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                 "includes": {"caps": ["CAP_SYS_ADMIN"]}}
            ]
        }"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let script = "mkdir /x 2>/dev/null || echo no-mkdir; touch /f; chmod 600 /f && echo chmod-ok";
    let o = f
        .run(&["--security-opt", &opt, "bb:1", "sh", "-c", script])
        .ok();
    assert_eq!(o.stdout, "no-mkdir\nchmod-ok\n");
    let o = f.run(&[
        "--security-opt",
        &opt,
        "--cap-add",
        "SYS_ADMIN",
        "bb:1",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(o.stdout, "no-mkdir\n", "{o:?}");
    assert!(o.stderr.contains("Operation not permitted"), "{o:?}");
    // Without it, the default profile: mkdir works.
    let o = f.run(&["bb:1", "sh", "-c", "mkdir /x && echo made"]).ok();
    assert_eq!(o.stdout, "made\n");
    let garbage = f.dir.path().join("garbage.json");
    std::fs::write(&garbage, "{ not json").unwrap();
    for p in [garbage.clone(), f.dir.path().join("missing.json")] {
        let o = f.run(&[
            "--security-opt",
            &format!("seccomp={}", p.display()),
            "bb:1",
            "true",
        ]);
        assert_eq!(o.code, 125, "{o:?}");
        assert!(o.stderr.contains(p.to_str().unwrap()), "{o:?}");
    }
    f.assert_clean();
}
