//! The CNI driver with Debian's containernetworking-plugins (bridge,
//! host-local, portmap, tuning), each test in a network namespace of its
//! own that plays the host: containers on a CNI network get their
//! addresses from the plugins and reach each other, a port published
//! through portmap answers, `--mac-address` reaches tuning, and teardown
//! (rm, and `system check` after a kill -9) gives the addresses back and
//! leaves no veth. Bad input is refused by name.

mod common;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Fixture;

const HOST_ADDR: &str = "10.99.5.1";

fn sh(f: &Fixture, cmd: &str) -> test_support::Outcome {
    test_support::run_through_files(&mut f.host_command("sh", &["-c", cmd]))
}

fn assert_plugins_installed() {
    assert!(
        Path::new("/usr/lib/cni/bridge").exists(),
        "containernetworking-plugins is not installed (scripts/install-deps)"
    );
}

/// A fixture whose host has a second address, and a CNI list `lab` in
/// its directory: a bridge `cnilab0` with host-local addresses in
/// 10.88.7.0/24 kept in the test's directory, then portmap and tuning.
fn fixture() -> (Fixture, PathBuf, PathBuf) {
    let f = Fixture::in_netns();
    sh(
        &f,
        &format!(
            "ip link add h0 type veth peer name h1 && ip addr add {HOST_ADDR}/24 dev h0 \
             && ip link set h0 up && ip link set h1 up && ip link set lo up"
        ),
    )
    .ok();
    let ipam = f.dir.path().join("ipam");
    let list = f.dir.path().join("lab.conflist");
    std::fs::write(
        &list,
        format!(
            r#"{{"cniVersion": "1.0.0", "name": "lab", "plugins": [
                {{"type": "bridge", "bridge": "cnilab0", "isGateway": true, "ipMasq": true,
                  "ipam": {{"type": "host-local", "dataDir": "{}",
                           "ranges": [[{{"subnet": "10.88.7.0/24", "gateway": "10.88.7.1"}}]],
                           "routes": [{{"dst": "0.0.0.0/0"}}]}}}},
                {{"type": "portmap", "capabilities": {{"portMappings": true}}}},
                {{"type": "tuning", "capabilities": {{"mac": true}}}}]}}"#,
            ipam.display()
        ),
    )
    .unwrap();
    (f, list, ipam)
}

/// The addresses host-local has leased (its files named by address).
fn leases(ipam: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(ipam.join("lab"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("10."))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn veths(f: &Fixture) -> Vec<String> {
    sh(f, "ip -o link show type veth")
        .stdout
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n != "h0" && n != "h1")
        .collect()
}

fn ip_of(f: &Fixture, name: &str) -> String {
    f.berth(&[
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"lab\").IPAddress}}",
        name,
    ])
    .ok()
    .stdout
    .trim()
    .to_string()
}

fn eventually(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if Instant::now() > end => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[test]
fn containers_on_a_cni_network_talk_publish_and_give_their_addresses_back() {
    assert_plugins_installed();
    let (f, list, ipam) = fixture();
    let config = format!("cni.config={}", list.display());
    f.berth(&["network", "create", "--driver", "cni", "-o", &config, "lab"])
        .ok();
    let o = f
        .berth(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"])
        .ok();
    assert_eq!(o.stdout, "lab cni\n");
    let o = f
        .berth(&[
            "network",
            "inspect",
            "-f",
            "{{.IPAM.Driver}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
            "lab",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), "cni 10.88.7.0/24 10.88.7.1");

    f.berth(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "lab",
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
        "--network",
        "lab",
        "--mac-address",
        "02:42:0a:58:07:99",
        "bb:1",
        "sh",
        "-c",
        "while :; do echo pong | nc -l -p 7000; done",
    ])
    .ok();
    let (a, b) = (ip_of(&f, "a"), ip_of(&f, "b"));
    assert!(
        a.starts_with("10.88.7.") && b.starts_with("10.88.7.") && a != b,
        "{a} {b}"
    );
    assert_eq!(leases(&ipam), {
        let mut v = vec![a.clone(), b.clone()];
        v.sort();
        v
    });
    // The plugins' answer is what the container has.
    let o = f
        .berth(&["exec", "a", "ip", "-4", "-o", "addr", "show", "eth0"])
        .ok();
    assert!(o.stdout.contains(&format!("{a}/24")), "{}", o.stdout);
    let o = f
        .berth(&["exec", "b", "cat", "/sys/class/net/eth0/address"])
        .ok();
    assert_eq!(o.stdout.trim(), "02:42:0a:58:07:99", "tuning set the MAC");
    eventually("a reaches b by address", || {
        let o = f.berth(&[
            "exec",
            "a",
            "sh",
            "-c",
            &format!("nc -w 3 {b} 7000 </dev/null"),
        ]);
        (o.stdout.trim() == "pong")
            .then_some(())
            .ok_or(format!("{o:?}"))
    });
    let o = f
        .berth(&["network", "inspect", "-f", "{{len .Containers}}", "lab"])
        .ok();
    assert_eq!(o.stdout.trim(), "2");

    // A port published through portmap, from the host's other address.
    let www = f.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello over cni\n").unwrap();
    let bind = format!("{}:/www:ro", www.display());
    f.berth(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "lab",
        "-p",
        "8080:80",
        "-v",
        &bind,
        "bb:1",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ])
    .ok();
    assert_eq!(
        f.berth(&["port", "web"]).ok().stdout.trim(),
        "80/tcp -> 0.0.0.0:8080"
    );
    eventually("the published port answers", || {
        let o = test_support::run_through_files(&mut f.host_command(
            "curl",
            &[
                "-sS",
                "--max-time",
                "5",
                &format!("http://{HOST_ADDR}:8080/"),
            ],
        ));
        (o.stdout == "hello over cni\n")
            .then_some(())
            .ok_or(format!("{o:?}"))
    });

    // A stop gives the address back; a start takes one again.
    f.berth(&["stop", "-t", "1", "a"]).ok();
    assert!(!leases(&ipam).contains(&a), "{:?}", leases(&ipam));
    f.berth(&["start", "a"]).ok();
    let a2 = ip_of(&f, "a");
    assert!(leases(&ipam).contains(&a2), "{a2} {:?}", leases(&ipam));

    let o = f.berth(&["network", "rm", "lab"]);
    assert!(
        o.code != 0 && o.stderr.contains("active endpoints"),
        "{o:?}"
    );
    f.berth(&["rm", "-f", "a", "b", "web"]).ok();
    assert_eq!(leases(&ipam), Vec::<String>::new());
    assert_eq!(veths(&f), Vec::<String>::new());
    let cache: Vec<_> = std::fs::read_dir(f.root().join("cni"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(cache.is_empty(), "{cache:?}");
    f.berth(&["network", "rm", "lab"]).ok();
    f.assert_clean();
}

#[test]
fn system_check_runs_del_for_a_killed_run_and_bad_input_is_refused() {
    assert_plugins_installed();
    let (f, list, ipam) = fixture();
    // Found by name in a configuration directory.
    let confdir = format!("cni.confdir={}", f.dir.path().display());
    f.berth(&[
        "network", "create", "--driver", "cni", "-o", &confdir, "lab",
    ])
    .ok();
    let out = f.dir.path().join("fg.out");
    let mut run = f
        .command(&[
            "run",
            "--name",
            "fg",
            "--network",
            "lab",
            "bb:1",
            "sh",
            "-c",
            "echo ready; sleep 100",
        ])
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&out).unwrap().contains("ready") {
        assert!(Instant::now() < end, "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = run.wait();
    assert_eq!(leases(&ipam).len(), 1);
    let o = f.berth(&["system", "check"]).ok();
    // The container's run is taken down as its supervisor would have.
    assert!(o.stdout.contains("container fg"), "{o:?}");
    assert_eq!(
        leases(&ipam),
        Vec::<String>::new(),
        "DEL gave the address back"
    );
    assert_eq!(veths(&f), Vec::<String>::new());

    // Bad input: by name, nothing made.
    let bad = |args: &[&str], says: &str| {
        let o = f.berth(args);
        assert!(o.code != 0, "{args:?} succeeded");
        assert!(o.stderr.contains(says), "{args:?}: {}", o.stderr);
    };
    let config = format!("cni.config={}", list.display());
    bad(
        &[
            "network",
            "create",
            "--driver",
            "cni",
            "-o",
            "cni.confdir=/nonexistent",
            "x",
        ],
        "names network \"x\"",
    );
    bad(
        &[
            "network",
            "create",
            "--driver",
            "cni",
            "-o",
            "cni.config=rel.conflist",
            "x",
        ],
        "absolute path",
    );
    bad(
        &[
            "network",
            "create",
            "--driver",
            "cni",
            "-o",
            &config,
            "--subnet",
            "10.1.0.0/24",
            "x",
        ],
        "--subnet",
    );
    bad(
        &[
            "network",
            "create",
            "--driver",
            "cni",
            "-o",
            &config,
            "-o",
            "cni.path=/nonexistent",
            "x",
        ],
        "CNI plugin \"bridge\" is not in /nonexistent",
    );
    let broken = f.dir.path().join("broken.json");
    std::fs::write(
        &broken,
        r#"{"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "nosuch"}]}"#,
    )
    .unwrap();
    bad(
        &[
            "network",
            "create",
            "--driver",
            "cni",
            "-o",
            &format!("cni.config={}", broken.display()),
            "x",
        ],
        "CNI plugin \"nosuch\" is not in",
    );
    bad(
        &["network", "create", "--driver", "macvlan", "x"],
        "bridge and cni",
    );
    bad(
        &[
            "run",
            "--rm",
            "--network",
            "lab",
            "--network-alias",
            "w",
            "bb:1",
            "true",
        ],
        "no DNS server",
    );
    bad(
        &[
            "run",
            "--rm",
            "--network",
            "lab",
            "--ip",
            "10.88.7.9",
            "bb:1",
            "true",
        ],
        "CNI network",
    );
    // A list whose plugins cannot publish: refused at start, by capability.
    let plain = f.dir.path().join("plain.conflist");
    std::fs::write(
        &plain,
        format!(
            r#"{{"cniVersion": "1.0.0", "name": "plain", "plugins": [{{"type": "bridge", "bridge": "cniplain0",
                "ipam": {{"type": "host-local", "dataDir": "{}", "subnet": "10.88.8.0/24"}}}}]}}"#,
            ipam.display()
        ),
    )
    .unwrap();
    f.berth(&[
        "network",
        "create",
        "--driver",
        "cni",
        "-o",
        &format!("cni.config={}", plain.display()),
        "plain",
    ])
    .ok();
    bad(
        &[
            "run",
            "--rm",
            "--network",
            "plain",
            "-p",
            "8081:80",
            "bb:1",
            "true",
        ],
        "portMappings",
    );
    let o = f.berth(&["network", "ls", "--format", "{{.Name}}"]).ok();
    assert_eq!(o.stdout, "lab\nplain\n");

    // connect and disconnect on a running container: eth1 from plain's
    // plugins, given back.
    f.berth(&[
        "run",
        "-d",
        "--name",
        "c",
        "--network",
        "lab",
        "bb:1",
        "sleep",
        "1000",
    ])
    .ok();
    f.berth(&["network", "connect", "plain", "c"]).ok();
    let o = f
        .berth(&["exec", "c", "ip", "-4", "-o", "addr", "show", "eth1"])
        .ok();
    assert!(o.stdout.contains("inet 10.88.8."), "{}", o.stdout);
    let plain_leases = || {
        std::fs::read_dir(ipam.join("plain"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("10."))
            .count()
    };
    assert_eq!(plain_leases(), 1);
    f.berth(&["network", "disconnect", "plain", "c"]).ok();
    assert_eq!(plain_leases(), 0);
    let o = f.berth(&["exec", "c", "ip", "-o", "link"]).ok();
    assert!(!o.stdout.contains("eth1"), "{}", o.stdout);
    f.berth(&["rm", "-f", "fg"]).ok();
    let left = f.berth(&["ps", "-aq"]).ok();
    for id in left.stdout.split_whitespace() {
        f.berth(&["rm", "-f", id]).ok();
    }
    f.berth(&["network", "rm", "lab", "plain"]).ok();
    assert_eq!(veths(&f), Vec::<String>::new());
    f.assert_clean();
}

/// `--ip` on a CNI network whose bridge plugin takes the `ips`
/// capability: host-local gives that address; on one without it, `--ip`
/// is refused naming the capability. `system check` runs the plugins'
/// CHECK for a running container: quiet while its interface is as ADD
/// left it, a finding once its address is gone.
#[test]
fn static_addresses_and_check_on_a_cni_network() {
    assert_plugins_installed();
    let (f, list, _) = fixture();
    let config = format!("cni.config={}", list.display());
    f.berth(&["network", "create", "--driver", "cni", "-o", &config, "lab"])
        .ok();
    let o = f.berth(&[
        "run",
        "--rm",
        "--network",
        "lab",
        "--ip",
        "10.88.7.77",
        "bb:1",
        "true",
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("\"ips\" capability"), "{o:?}");

    let ipam = f.dir.path().join("ipam-fixed");
    let fixed = f.dir.path().join("fixed.conflist");
    std::fs::write(
        &fixed,
        format!(
            r#"{{"cniVersion": "1.0.0", "name": "fixed", "plugins": [
                {{"type": "bridge", "bridge": "cnifix0", "isGateway": true,
                  "capabilities": {{"ips": true}},
                  "ipam": {{"type": "host-local", "dataDir": "{}",
                           "ranges": [[{{"subnet": "10.88.8.0/24", "gateway": "10.88.8.1"}}]]}}}}]}}"#,
            ipam.display()
        ),
    )
    .unwrap();
    let config = format!("cni.config={}", fixed.display());
    f.berth(&[
        "network", "create", "--driver", "cni", "-o", &config, "fixed",
    ])
    .ok();
    let id = f
        .berth(&[
            "run",
            "-d",
            "--name",
            "pinned",
            "--network",
            "fixed",
            "--ip",
            "10.88.8.50",
            "bb:1",
            "sleep",
            "1000",
        ])
        .ok()
        .stdout;
    let id = id.trim().to_string();
    let o = f
        .berth(&["exec", "pinned", "ip", "-4", "-o", "addr", "show", "eth0"])
        .ok();
    assert!(o.stdout.contains("10.88.8.50/24"), "{}", o.stdout);
    let o = f
        .berth(&[
            "inspect",
            "-f",
            "{{(index .NetworkSettings.Networks \"fixed\").IPAddress}} {{(index .NetworkSettings.Networks \"fixed\").IPAMConfig.IPv4Address}}",
            "pinned",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), "10.88.8.50 10.88.8.50");
    // CHECK: nothing to say while the interface is as ADD left it.
    let o = f.berth(&["system", "check", "--dry-run"]).ok();
    assert!(!o.stdout.contains("CHECK"), "{o:?}");
    // Its address taken away behind berth's back: CHECK says so.
    let ns = f.root().join("netns").join(&id);
    test_support::run_through_files(&mut f.host_command(
        "nsenter",
        &[
            &format!("--net={}", ns.display()),
            "ip",
            "addr",
            "flush",
            "dev",
            "eth0",
        ],
    ))
    .ok();
    let o = f.berth(&["system", "check", "--dry-run"]).ok();
    assert!(
        o.stdout.contains("CNI network fixed") && o.stdout.contains("CHECK failed"),
        "{o:?}"
    );
    f.berth(&["rm", "-f", "pinned"]).ok();
    f.berth(&["network", "rm", "fixed", "lab"]).ok();
    assert_eq!(veths(&f), Vec::<String>::new());
    f.assert_clean();
}
