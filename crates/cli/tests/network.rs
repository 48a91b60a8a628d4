//! User-defined bridge networks, each test in a network namespace of its
//! own that plays the host (the machine's devices are never touched):
//! containers on one network reach each other and the host by address,
//! keep their address across a restart, leave no veth, bridge or pinned
//! namespace behind, get distinct addresses when made in parallel, and
//! bad input is refused by name with nothing left.

mod common;
use common::Fixture;

fn ip_of(f: &Fixture, name: &str, net: &str) -> String {
    let t = format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}");
    f.berth(&["inspect", "-f", &t, name])
        .ok()
        .stdout
        .trim()
        .to_string()
}

fn host_links(f: &Fixture) -> String {
    let o = test_support::run_through_files(&mut f.host_command("ip", &["-o", "link"]));
    o.stdout
}

#[test]
fn containers_on_a_network_reach_each_other_and_leave_nothing() {
    let f = Fixture::in_netns();
    let id = f
        .berth(&[
            "network",
            "create",
            "--subnet",
            "10.77.0.0/24",
            "--label",
            "team=a",
            "n1",
        ])
        .ok()
        .stdout;
    assert_eq!(id.trim().len(), 64);
    let o = f
        .berth(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"])
        .ok();
    assert_eq!(o.stdout, "n1 bridge\n");
    let o = f
        .berth(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
            "n1",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), "10.77.0.0/24 10.77.0.1");

    f.berth(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "n1",
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
        "n1",
        "--ip",
        "10.77.0.50",
        "bb:1",
        "sh",
        "-c",
        "while :; do echo pong | nc -l -p 7000; done",
    ])
    .ok();
    assert_eq!(ip_of(&f, "a", "n1"), "10.77.0.2");
    assert_eq!(ip_of(&f, "b", "n1"), "10.77.0.50");
    let o = f
        .berth(&["exec", "a", "ping", "-c", "1", "-W", "2", "10.77.0.50"])
        .ok();
    assert!(o.stdout.contains("1 packets received"), "{o:?}");
    // TCP from one to the other.
    let o = f
        .berth(&["exec", "a", "sh", "-c", "echo hi | nc -w 2 10.77.0.50 7000"])
        .ok();
    assert_eq!(o.stdout.trim(), "pong");
    // The host (the gateway's side of the bridge) reaches it too.
    let o = test_support::run_through_files(
        &mut f.host_command("busybox", &["ping", "-c", "1", "-W", "2", "10.77.0.2"]),
    );
    assert_eq!(o.code, 0, "{o:?}");
    let o = f.berth(&["exec", "a", "ip", "route"]).ok();
    assert!(o.stdout.contains("default via 10.77.0.1"), "{o:?}");

    // A network with containers on it stays.
    let o = f.berth(&["network", "rm", "n1"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("a, b") || o.stderr.contains("b, a"),
        "{o:?}"
    );

    // Stopped: no veth, no namespace (`stop` returns once the shim has
    // taken the run down); started again: the same address.
    f.berth(&["stop", "-t", "1", "a"]).ok();
    assert_eq!(
        host_links(&f).matches("vb").count(),
        1,
        "{}",
        host_links(&f)
    );
    f.berth(&["start", "a"]).ok();
    let o = f
        .berth(&["exec", "a", "ip", "-4", "-o", "addr", "show", "eth0"])
        .ok();
    assert!(o.stdout.contains("10.77.0.2/24"), "{o:?}");

    // Addresses are handed out in turn: a's, given back, is not the
    // next one given (an --ip does not move the turn).
    f.berth(&["rm", "-f", "a"]).ok();
    f.berth(&["create", "--name", "c", "--network", "n1", "bb:1", "true"])
        .ok();
    assert_eq!(ip_of(&f, "c", "n1"), "10.77.0.3");

    f.berth(&["rm", "-f", "b", "c"]).ok();
    let links = host_links(&f);
    assert!(!links.contains("vb"), "{links}");
    f.berth(&["network", "rm", "n1"]).ok();
    let links = host_links(&f);
    assert!(!links.contains("br-"), "{links}");
    assert_eq!(f.berth(&["network", "ls", "-q"]).ok().stdout, "");
    f.assert_clean();
}

#[test]
fn parallel_containers_get_distinct_addresses_and_internal_has_no_route_out() {
    let f = Fixture::in_netns();
    f.berth(&["network", "create", "--subnet", "10.78.0.0/24", "par"])
        .ok();
    let made: Vec<_> = (0..50)
        .map(|i| {
            let name = format!("c{i}");
            let mut c = f.command(&[
                "create",
                "--name",
                &name,
                "--network",
                "par",
                "bb:1",
                "true",
            ]);
            c.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            (name, c.spawn().unwrap())
        })
        .collect();
    let mut ips = std::collections::HashSet::new();
    for (name, child) in made {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            ips.insert(ip_of(&f, &name, "par")),
            "{name}: a second lease of one address"
        );
    }
    assert_eq!(ips.len(), 50);
    let names: Vec<String> = (0..50).map(|i| format!("c{i}")).collect();
    let mut rm = vec!["rm"];
    rm.extend(names.iter().map(String::as_str));
    f.berth(&rm).ok();

    f.berth(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.79.0.0/24",
        "inner",
    ])
    .ok();
    let o = f.run(&["--network", "inner", "bb:1", "ip", "route"]).ok();
    assert!(!o.stdout.contains("default"), "{o:?}");
    assert!(o.stdout.contains("10.79.0.0/24"), "{o:?}");
    f.berth(&["network", "rm", "par", "inner"]).ok();
    f.assert_clean();
}

#[test]
fn bad_network_input_is_refused_by_name_and_leaves_nothing() {
    let f = Fixture::in_netns();
    f.berth(&["network", "create", "--subnet", "10.80.0.0/16", "base"])
        .ok();
    for (args, named) in [
        (
            vec!["network", "create", "--subnet", "10.80.5.0/24", "x"],
            "overlaps network base",
        ),
        (
            vec![
                "network",
                "create",
                "--subnet",
                "10.81.0.0/24",
                "--gateway",
                "10.82.0.1",
                "x",
            ],
            "--gateway",
        ),
        (
            vec!["network", "create", "--subnet", "10.81.0.1/24", "x"],
            "host bits",
        ),
        (
            vec!["network", "create", "--driver", "overlay", "x"],
            "--driver",
        ),
        (vec!["network", "create", "base"], "already exists"),
        (vec!["network", "create", "bridge"], "reserved"),
        (
            vec![
                "network",
                "create",
                "-o",
                "com.docker.network.bridge.name=a/b",
                "x",
            ],
            "a/b",
        ),
        (vec!["network", "rm", "nope"], "no such network: nope"),
        (
            vec!["run", "--rm", "--network", "nope", "bb:1", "true"],
            "no such network: nope",
        ),
        (
            vec![
                "run",
                "--rm",
                "--network",
                "base",
                "--ip",
                "10.9.0.5",
                "bb:1",
                "true",
            ],
            "not in 10.80.0.0/16",
        ),
        (
            vec![
                "run",
                "--rm",
                "--network",
                "base",
                "--ip",
                "10.80.0.1",
                "bb:1",
                "true",
            ],
            "reserved",
        ),
        (
            vec!["run", "--rm", "--ip", "10.80.0.5", "bb:1", "true"],
            "--ip",
        ),
    ] {
        let o = f.berth(&args);
        assert_ne!(o.code, 0, "{args:?}: {o:?}");
        assert!(o.stderr.contains(named), "{args:?}: {o:?}");
    }
    // An address in use.
    f.berth(&[
        "create",
        "--name",
        "holder",
        "--network",
        "base",
        "--ip",
        "10.80.0.9",
        "bb:1",
        "true",
    ])
    .ok();
    let o = f.berth(&[
        "run",
        "--rm",
        "--network",
        "base",
        "--ip",
        "10.80.0.9",
        "bb:1",
        "true",
    ]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("in use"), "{o:?}");
    f.berth(&["rm", "holder"]).ok();
    assert_eq!(
        f.berth(&["network", "ls", "--format", "{{.Name}}"])
            .ok()
            .stdout,
        "base\n"
    );
    assert_eq!(f.berth(&["ps", "-aq"]).ok().stdout, "");
    f.berth(&["network", "rm", "base"]).ok();
    f.assert_clean();
}

#[test]
fn system_check_takes_down_the_network_a_killed_run_left() {
    use std::time::{Duration, Instant};
    let f = Fixture::in_netns();
    f.berth(&["network", "create", "--subnet", "10.83.0.0/24", "n"])
        .ok();
    let out = f.dir.path().join("fg.out");
    let mut run = f
        .command(&[
            "run",
            "--name",
            "fg",
            "--network",
            "n",
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
    // Its supervisor dies; the container, its veth and its namespace stay.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = run.wait();
    assert!(host_links(&f).contains("vb"));
    // And a pinned namespace no container owns (a kill during set-up).
    let netns = f.root().join("netns");
    let stray = netns.join("0".repeat(64));
    network::netns::create(&stray).unwrap();
    let o = f.berth(&["system", "check"]).ok();
    assert!(o.stdout.contains("network namespace"), "{o:?}");
    assert!(!host_links(&f).contains("vb"), "{}", host_links(&f));
    let left: Vec<_> = std::fs::read_dir(&netns).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    f.berth(&["rm", "fg"]).ok();
    f.berth(&["network", "rm", "n"]).ok();
    f.assert_clean();
}

#[test]
fn inspect_finds_containers_images_volumes_and_networks() {
    let f = Fixture::in_netns();
    f.berth(&["network", "create", "--subnet", "10.84.0.0/24", "insp"])
        .ok();
    f.berth(&["volume", "create", "insp-vol"]).ok();
    f.berth(&["create", "--name", "insp-c", "bb:1", "true"])
        .ok();
    let o = f
        .berth(&["inspect", "-f", "{{.Name}}", "insp-c", "insp", "insp-vol"])
        .ok();
    assert_eq!(o.stdout, "/insp-c\ninsp\ninsp-vol\n", "{o:?}");
    let o = f.berth(&["inspect", "-f", "{{.Id}}", "bb:1"]).ok();
    assert!(o.stdout.starts_with("sha256:"), "{o:?}");
    // --type narrows the search.
    let o = f.berth(&["inspect", "--type", "volume", "insp-c"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("no such object: insp-c"), "{o:?}");
    let o = f.berth(&["inspect", "--type", "thing", "insp-c"]);
    assert!(o.code != 0 && o.stderr.contains("--type"), "{o:?}");
    f.berth(&["rm", "insp-c"]).ok();
    f.berth(&["volume", "rm", "insp-vol"]).ok();
    f.berth(&["network", "rm", "insp"]).ok();
    f.assert_clean();
}

#[test]
fn connect_and_disconnect_running_and_stopped_containers() {
    let f = Fixture::in_netns();
    f.berth(&["network", "create", "--subnet", "10.93.0.0/24", "front"])
        .ok();
    f.berth(&["network", "create", "--subnet", "10.94.0.0/24", "back"])
        .ok();
    f.berth(&[
        "run",
        "-d",
        "--name",
        "api",
        "--network",
        "front",
        "bb:1",
        "sh",
        "-c",
        "busybox nc -ll -p 80 -e echo from-api",
    ])
    .ok();
    f.berth(&[
        "run",
        "-d",
        "--name",
        "worker",
        "--network",
        "back",
        "bb:1",
        "sleep",
        "60",
    ])
    .ok();
    let ask = |name: &str| {
        f.berth(&[
            "exec",
            "worker",
            "sh",
            "-c",
            &format!("busybox nc -w 3 {name} 80 </dev/null"),
        ])
    };
    // Not on `back` yet: its server does not know the name.
    assert_ne!(ask("api").stdout, "from-api\n");

    // Connected while it runs: eth1 now, its name and alias on `back`.
    f.berth(&[
        "network",
        "connect",
        "--alias",
        "svc",
        "--ip",
        "10.94.0.50",
        "back",
        "api",
    ])
    .ok();
    let o = f.berth(&["exec", "api", "ls", "/sys/class/net"]).ok();
    assert_eq!(
        o.stdout.split_whitespace().collect::<Vec<_>>(),
        ["eth0", "eth1", "lo"]
    );
    assert_eq!(ip_of(&f, "api", "back"), "10.94.0.50");
    assert_eq!(ip_of(&f, "api", "front"), "10.93.0.2");
    for name in ["api", "svc"] {
        let o = ask(name);
        assert_eq!(o.stdout, "from-api\n", "{name}: {o:?}");
    }
    // Its default route stays on its first network.
    let o = f.berth(&["exec", "api", "busybox", "ip", "route"]).ok();
    assert!(o.stdout.contains("default via 10.93.0.1 dev eth0"), "{o:?}");
    let o = f.berth(&["network", "connect", "back", "api"]);
    assert!(o.code != 0 && o.stderr.contains("already"), "{o:?}");

    // Disconnected: eth1 and the names go.
    f.berth(&["network", "disconnect", "back", "api"]).ok();
    let o = f.berth(&["exec", "api", "ls", "/sys/class/net"]).ok();
    assert_eq!(
        o.stdout.split_whitespace().collect::<Vec<_>>(),
        ["eth0", "lo"]
    );
    assert_ne!(ask("api").stdout, "from-api\n");
    let o = f.berth(&["network", "disconnect", "back", "api"]);
    assert!(o.code != 0 && o.stderr.contains("not connected"), "{o:?}");
    f.berth(&["network", "disconnect", "-f", "back", "api"])
        .ok();
    let o = f
        .berth(&["network", "inspect", "-f", "{{len .Containers}}", "back"])
        .ok();
    assert_eq!(o.stdout.trim(), "1", "only the worker is left on back");

    // A stopped container gets its interface at its next start.
    f.berth(&[
        "create",
        "--name",
        "later",
        "--network",
        "front",
        "bb:1",
        "ls",
        "/sys/class/net",
    ])
    .ok();
    f.berth(&["network", "connect", "back", "later"]).ok();
    let o = f.berth(&["start", "-a", "later"]).ok();
    assert_eq!(
        o.stdout.split_whitespace().collect::<Vec<_>>(),
        ["eth0", "eth1", "lo"]
    );
    // More than one --network at run.
    let o = f
        .run(&[
            "--network",
            "front",
            "--network",
            "back",
            "bb:1",
            "ls",
            "/sys/class/net",
        ])
        .ok();
    assert_eq!(
        o.stdout.split_whitespace().collect::<Vec<_>>(),
        ["eth0", "eth1", "lo"]
    );
    // Only containers on a network can be connected.
    f.berth(&["create", "--name", "loner", "bb:1", "true"]).ok();
    let o = f.berth(&["network", "connect", "back", "loner"]);
    assert!(o.code != 0 && o.stderr.contains("--network none"), "{o:?}");
    let o = f.run(&["--network", "none", "--network", "back", "bb:1", "true"]);
    assert!(o.code != 0 && o.stderr.contains("--network"), "{o:?}");

    f.berth(&["rm", "-f", "api", "worker", "later", "loner"])
        .ok();
    f.berth(&["network", "rm", "front", "back"]).ok();
    assert!(!host_links(&f).contains("vb"), "{}", host_links(&f));
    f.assert_clean();
}

#[test]
fn mac_addresses_and_ip_ranges() {
    let f = Fixture::in_netns();
    f.berth(&[
        "network",
        "create",
        "--subnet",
        "10.97.0.0/24",
        "--ip-range",
        "10.97.0.128/25",
        "ranged",
    ])
    .ok();
    let o = f
        .berth(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.IPRange}}{{end}}",
            "ranged",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), "10.97.0.128/25");
    let o = f
        .run(&[
            "--network",
            "ranged",
            "--mac-address",
            "02:42:0A:61:00:99",
            "bb:1",
            "cat",
            "/sys/class/net/eth0/address",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), "02:42:0a:61:00:99");
    // Addresses come from the range, in turn (the run above had .128);
    // --ip may be anywhere in the subnet.
    f.berth(&[
        "run",
        "-d",
        "--name",
        "r1",
        "--network",
        "ranged",
        "bb:1",
        "sleep",
        "60",
    ])
    .ok();
    assert_eq!(ip_of(&f, "r1", "ranged"), "10.97.0.129");
    f.berth(&[
        "create",
        "--name",
        "r2",
        "--network",
        "ranged",
        "--ip",
        "10.97.0.5",
        "--mac-address",
        "02:00:00:00:00:05",
        "bb:1",
        "true",
    ])
    .ok();
    assert_eq!(ip_of(&f, "r2", "ranged"), "10.97.0.5");
    let o = f
        .berth(&[
            "inspect",
            "-f",
            "{{(index .NetworkSettings.Networks \"ranged\").MacAddress}}",
            "r2",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), "02:00:00:00:00:05");
    // network connect --mac-address, on a running container.
    f.berth(&["network", "create", "--subnet", "10.97.1.0/24", "second"])
        .ok();
    f.berth(&[
        "network",
        "connect",
        "--mac-address",
        "02:42:0A:61:01:07",
        "second",
        "r1",
    ])
    .ok();
    let o = f
        .berth(&["exec", "r1", "cat", "/sys/class/net/eth1/address"])
        .ok();
    assert_eq!(o.stdout.trim(), "02:42:0a:61:01:07");
    let o = f
        .berth(&[
            "inspect",
            "-f",
            "{{(index .NetworkSettings.Networks \"second\").MacAddress}}",
            "r1",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), "02:42:0a:61:01:07");
    let o = f.berth(&[
        "network",
        "connect",
        "--mac-address",
        "ff:ff:ff:ff:ff:ff",
        "ranged",
        "r2",
    ]);
    assert!(o.code != 0 && o.stderr.contains("--mac-address"), "{o:?}");
    for (args, says) in [
        (
            vec![
                "network",
                "create",
                "--subnet",
                "10.98.0.0/24",
                "--ip-range",
                "10.99.0.0/25",
                "x",
            ],
            "not a part of the subnet",
        ),
        (
            vec![
                "run",
                "--rm",
                "--network",
                "ranged",
                "--mac-address",
                "01:00:5e:00:00:01",
                "bb:1",
                "true",
            ],
            "multicast",
        ),
        (
            vec![
                "run",
                "--rm",
                "--network",
                "ranged",
                "--mac-address",
                "02:42",
                "bb:1",
                "true",
            ],
            "six hex pairs",
        ),
        (
            vec![
                "run",
                "--rm",
                "--mac-address",
                "02:42:0a:61:00:99",
                "bb:1",
                "true",
            ],
            "needs a network",
        ),
    ] {
        let o = f.berth(&args);
        assert!(o.code != 0 && o.stderr.contains(says), "{args:?}: {o:?}");
    }
    f.berth(&["rm", "-f", "r1", "r2"]).ok();
    f.berth(&["network", "rm", "ranged", "second"]).ok();
    f.assert_clean();
}

#[test]
fn networks_are_isolated_but_published_ports_reach_across() {
    let f = Fixture::in_netns();
    f.berth(&["network", "create", "--subnet", "10.101.0.0/24", "left"])
        .ok();
    f.berth(&["network", "create", "--subnet", "10.102.0.0/24", "right"])
        .ok();
    f.berth(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "right",
        "-p",
        "8089:80",
        "bb:1",
        "sh",
        "-c",
        "busybox nc -ll -p 80 -e echo from-right",
    ])
    .ok();
    let srv = ip_of(&f, "srv", "right");
    // From the other network: not by address, but through the published
    // port on the host's address there (its gateway).
    let o = f
        .run(&[
            "--network",
            "left",
            "bb:1",
            "sh",
            "-c",
            &format!(
                "busybox nc -w 2 {srv} 80 </dev/null; echo direct=$?; \
                 busybox nc -w 3 10.101.0.1 8089 </dev/null"
            ),
        ])
        .ok();
    assert_eq!(o.stdout, "direct=1\nfrom-right\n", "{o:?}");
    // On its own network, by address.
    let o = f
        .run(&[
            "--network",
            "right",
            "bb:1",
            "sh",
            "-c",
            &format!("busybox nc -w 3 {srv} 80 </dev/null"),
        ])
        .ok();
    assert_eq!(o.stdout, "from-right\n", "{o:?}");
    f.berth(&["rm", "-f", "srv"]).ok();
    f.berth(&["network", "rm", "left", "right"]).ok();
    let o = test_support::run_through_files(
        &mut f.host_command("nft", &["list", "set", "inet", "berth", "same"]),
    );
    assert!(!o.stdout.contains("br-"), "{o:?}");
    f.assert_clean();
}
