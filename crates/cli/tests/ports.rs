//! The default `bridge` network, published ports and the way out, each
//! test in a network namespace of its own that plays the host (its own
//! loopback, a second address on a veth pair of its own, its own nftables
//! table): `-p` reaches the container from 127.0.0.1, from the host's
//! other address and from another container (hairpin); `-P` picks free
//! ports that `port`, `ps` and `inspect` report; UDP is published; what
//! containers send out is masqueraded and an internal network sends
//! nothing out; conflicts and bad specs are refused by name; and `rm` and
//! `system check` leave nothing in the firewall.

mod common;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Fixture;

/// The host's other address (on a veth pair inside the test's namespace).
const HOST_ADDR: &str = "192.0.2.1";

fn sh(f: &Fixture, cmd: &str) -> test_support::Outcome {
    test_support::run_through_files(&mut f.host_command("sh", &["-c", cmd]))
}

/// A fixture whose host has a second address besides loopback.
fn fixture() -> Fixture {
    let f = Fixture::in_netns();
    sh(
        &f,
        &format!(
            "ip link add h0 type veth peer name h1 && ip addr add {HOST_ADDR}/24 dev h0 \
             && ip link set h0 up && ip link set h1 up"
        ),
    )
    .ok();
    f
}

/// An HTTP GET from the host; the body, or the failure.
fn get(f: &Fixture, url: &str) -> test_support::Outcome {
    test_support::run_through_files(&mut f.host_command("curl", &["-sS", "--max-time", "5", url]))
}

/// The firewall's map of published ports and berth's chains, as nft
/// lists them in the test's namespace.
fn firewall(f: &Fixture) -> String {
    let o = sh(f, "nft list table inet berth 2>/dev/null || true");
    o.stdout
        .lines()
        .filter(|l| l.contains("jump c-") || l.contains("chain c-"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn web(f: &Fixture, name: &str, publish: &[&str]) {
    let www = f.dir.path().join(format!("www-{name}"));
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), format!("hello from {name}\n")).unwrap();
    let bind = format!("{}:/www:ro", www.display());
    let mut args = vec!["run", "-d", "--name", name, "-v", &bind];
    for p in publish {
        args.extend(["-p", p]);
    }
    args.extend(["bb:1", "busybox", "httpd", "-f", "-p", "80", "-h", "/www"]);
    f.berth(&args).ok();
}

/// Retries `check` for a few seconds (a server in a container starts
/// after `run -d` returns).
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
fn published_ports_reach_the_container_from_the_host_and_other_containers() {
    let f = fixture();
    web(&f, "web", &["8080:80", "127.0.0.1::80"]);
    // The default network, made on first use.
    let o = f
        .berth(&[
            "network",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}}",
            "bridge",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), "bridge bridge");
    let o = f
        .berth(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", "web"])
        .ok();
    assert_eq!(
        o.stdout.trim(),
        "bridge",
        "-p without --network: the default network"
    );

    // `port`: the fixed port on every address, the free one on 127.0.0.1.
    let o = f.berth(&["port", "web", "80"]).ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{o:?}");
    assert_eq!(lines[0], "0.0.0.0:8080");
    let free: u16 = lines[1]
        .strip_prefix("127.0.0.1:")
        .expect("the second on 127.0.0.1")
        .parse()
        .unwrap();
    assert_ne!(free, 8080);

    for url in [
        "http://127.0.0.1:8080/".to_string(),
        format!("http://{HOST_ADDR}:8080/"),
        format!("http://127.0.0.1:{free}/"),
    ] {
        eventually(&url, || {
            let o = get(&f, &url);
            (o.code == 0 && o.stdout == "hello from web\n")
                .then_some(())
                .ok_or(format!("{o:?}"))
        });
    }
    // Bound to 127.0.0.1 only: not on the other address.
    let o = get(&f, &format!("http://{HOST_ADDR}:{free}/"));
    assert_ne!(o.code, 0, "{o:?}");

    // Another container reaches it through the host's address (hairpin)
    // and by its address on the bridge.
    let addr = f
        .berth(&[
            "inspect",
            "-f",
            "{{(index .NetworkSettings.Networks \"bridge\").IPAddress}}",
            "web",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(addr.starts_with("172."), "{addr}");
    let script = format!(
        "for to in '{HOST_ADDR} 8080' '{addr} 80'; do \
           printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 $to | tail -n 1; done"
    );
    let o = f
        .run(&["--network", "bridge", "bb:1", "sh", "-c", &script])
        .ok();
    assert_eq!(o.stdout, "hello from web\nhello from web\n", "{o:?}");

    // ps and inspect show what is published.
    let o = f.berth(&["ps", "--format", "{{.Ports}}"]).ok();
    assert!(
        o.stdout.contains("0.0.0.0:8080->80/tcp")
            && o.stdout.contains(&format!("127.0.0.1:{free}->80/tcp")),
        "{o:?}"
    );
    let o = f
        .berth(&["inspect", "-f", "{{json .HostConfig.PortBindings}}", "web"])
        .ok();
    assert_eq!(
        o.stdout.trim(),
        r#"{"80/tcp":[{"HostIp":"","HostPort":"8080"},{"HostIp":"127.0.0.1","HostPort":""}]}"#
    );
    assert!(firewall(&f).contains("tcp . 8080"), "{}", firewall(&f));

    // Stopped: nothing published, nothing in the firewall; started again:
    // published again.
    f.berth(&["stop", "-t", "1", "web"]).ok();
    assert_eq!(firewall(&f), "");
    assert!(get(&f, "http://127.0.0.1:8080/").code != 0);
    let o = f.berth(&["port", "web"]).ok();
    assert_eq!(o.stdout, "");
    f.berth(&["start", "web"]).ok();
    eventually("8080 after a restart", || {
        let o = get(&f, "http://127.0.0.1:8080/");
        (o.stdout == "hello from web\n")
            .then_some(())
            .ok_or(format!("{o:?}"))
    });
    f.berth(&["rm", "-f", "web"]).ok();
    assert_eq!(firewall(&f), "");
    f.assert_clean();
}

#[test]
fn publish_all_picks_free_ports_and_udp_is_published() {
    let f = fixture();
    // -P: every exposed port (here --expose) on a free host port.
    f.berth(&[
        "run", "-d", "--name", "echo", "-P", "--expose", "7000/udp", "--expose", "7001", "bb:1",
        "sleep", "60",
    ])
    .ok();
    let o = f.berth(&["port", "echo"]).ok();
    let ports: Vec<(String, u16)> = o
        .stdout
        .lines()
        .map(|l| {
            let (key, host) = l.split_once(" -> ").unwrap();
            let port = host.strip_prefix("0.0.0.0:").unwrap().parse().unwrap();
            (key.to_string(), port)
        })
        .collect();
    assert_eq!(ports.len(), 2, "{o:?}");
    assert_eq!(ports[0].0, "7000/udp");
    assert_eq!(ports[1].0, "7001/tcp");
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let lo: u16 = range.split_whitespace().next().unwrap().parse().unwrap();
    assert!(ports.iter().all(|(_, p)| *p >= lo), "{ports:?}");
    // A datagram to the published UDP port reaches port 7000 in the
    // container's network namespace (busybox has no UDP server: the
    // receiver is Python's, run in the container's namespace).
    let udp = ports[0].1;
    let id = f.berth(&["inspect", "-f", "{{.Id}}", "echo"]).ok().stdout;
    let netns = f.root().join("netns").join(id.trim());
    let got = f.dir.path().join("udp.got");
    let mut receiver = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args([
            "python3",
            "-c",
            "import socket,sys\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.bind(('0.0.0.0',7000))\n\
             s.settimeout(20)\n\
             open(sys.argv[1],'wb').write(s.recvfrom(100)[0])",
        ])
        .arg(&got)
        .spawn()
        .unwrap();
    eventually("the UDP datagram", || {
        sh(
            &f,
            &format!(
                "python3 -c \"import socket; socket.socket(socket.AF_INET,socket.SOCK_DGRAM).sendto(b'ping-udp',('127.0.0.1',{udp}))\""
            ),
        )
        .ok();
        std::fs::read_to_string(&got)
            .ok()
            .filter(|g| g == "ping-udp")
            .map(drop)
            .ok_or("nothing yet".to_string())
    });
    assert!(receiver.wait().unwrap().success());
    f.berth(&["rm", "-f", "echo"]).ok();
    assert_eq!(firewall(&f), "");
    f.assert_clean();
}

/// A namespace outside the host, reached through a veth pair: it has no
/// route to the containers' subnets, so only masqueraded traffic gets an
/// answer.
struct Outside {
    ns: PathBuf,
    listener: Child,
}

impl Outside {
    fn new(f: &Fixture) -> Outside {
        let ns = f.dir.path().join("outside-netns");
        network::netns::create(&ns).unwrap();
        sh(
            f,
            &format!(
                "ip link add o0 type veth peer name o1 netns {ns} && \
                 ip addr add 198.51.100.1/24 dev o0 && ip link set o0 up && \
                 nsenter --net={ns} sh -c 'ip addr add 198.51.100.2/24 dev o1 && ip link set o1 up'",
                ns = ns.display()
            ),
        )
        .ok();
        let listener = Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args([
                "busybox", "nc", "-ll", "-p", "7100", "-e", "echo", "outside",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Outside { ns, listener }
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.listener.kill();
        let _ = self.listener.wait();
        let _ = network::netns::remove(&self.ns);
    }
}

#[test]
fn traffic_out_is_masqueraded_and_internal_networks_send_nothing_out() {
    let f = fixture();
    let outside = Outside::new(&f);
    f.berth(&["network", "create", "--subnet", "10.86.0.0/24", "open"])
        .ok();
    f.berth(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.87.0.0/24",
        "shut",
    ])
    .ok();
    let connect = "busybox nc -w 3 198.51.100.2 7100 </dev/null";
    for net in ["bridge", "open"] {
        let mut out = String::new();
        eventually(&format!("the way out of {net}"), || {
            let o = f.run(&["--network", net, "bb:1", "sh", "-c", connect]);
            out = o.stdout.clone();
            (o.stdout.trim() == "outside")
                .then_some(())
                .ok_or(format!("{o:?}"))
        });
    }
    let o = f.run(&["--network", "shut", "bb:1", "sh", "-c", connect]);
    assert!(o.stdout.trim().is_empty(), "{o:?}");
    drop(outside);
    f.berth(&["network", "rm", "open", "shut"]).ok();
    let o = sh(&f, "nft list set inet berth nets");
    assert!(!o.stdout.contains("10.86.0.0"), "{o:?}");
    f.assert_clean();
}

#[test]
fn port_conflicts_and_bad_specs_are_refused_by_name_and_leave_nothing() {
    let f = fixture();
    // A socket of the host's holds 9090.
    let mut holder = f
        .host_command("busybox", &["nc", "-l", "-p", "9090"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    eventually("the host's listener", || {
        let o = sh(
            &f,
            "grep -q ':2382 0*:0000 0A' /proc/net/tcp /proc/net/tcp6",
        );
        (o.code == 0).then_some(()).ok_or(format!("{o:?}"))
    });
    let o = f.run(&["-p", "9090:80", "bb:1", "true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(
        o.stderr.contains("0.0.0.0:9090/tcp") && o.stderr.contains("already in use"),
        "{o:?}"
    );
    let _ = holder.kill();
    let _ = holder.wait();

    // Another container holds 8081.
    f.berth(&[
        "run", "-d", "--name", "first", "-p", "8081:80", "bb:1", "sleep", "60",
    ])
    .ok();
    let o = f.berth(&[
        "run", "-d", "--name", "second", "-p", "8081:80", "bb:1", "sleep", "60",
    ]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("8081/tcp is already allocated"), "{o:?}");
    // As Docker, the container stays, created; the first keeps its port.
    let o = f
        .berth(&["inspect", "-f", "{{.State.Status}}", "second"])
        .ok();
    assert_eq!(o.stdout.trim(), "created");
    assert!(firewall(&f).contains("tcp . 8081"), "{}", firewall(&f));
    assert_eq!(
        firewall(&f).matches("chain c-").count(),
        1,
        "{}",
        firewall(&f)
    );

    for (spec, says) in [
        ("80/icmp", "unknown protocol"),
        ("70000:80", "not a port"),
        ("1.2.3:80:80", "not an IPv4 address"),
        ("8000-8002:90-91", "differ in length"),
        ("203.0.113.9:8000:80", "not an address of the host"),
    ] {
        let o = f.run(&["-p", spec, "bb:1", "true"]);
        assert_eq!(o.code, 125, "{spec}: {o:?}");
        assert!(o.stderr.contains(says), "{spec}: {o:?}");
    }
    let o = f.run(&["--network", "none", "-p", "80", "bb:1", "true"]);
    assert!(o.stderr.contains("--network none"), "{o:?}");
    // The default network cannot be removed.
    let o = f.berth(&["network", "rm", "bridge"]);
    assert!(o.stderr.contains("pre-defined"), "{o:?}");

    f.berth(&["rm", "-f", "first", "second"]).ok();
    assert_eq!(firewall(&f), "");
    f.assert_clean();
}

/// One host port, two containers, each on its own host address; a port
/// on every address is refused beside either (and either beside it); a
/// port on one IPv6 host address reaches a dual-stack container, and is
/// refused for one without IPv6.
#[test]
fn one_port_on_two_host_addresses_and_on_an_ipv6_one() {
    let f = fixture();
    web(&f, "lo", &["127.0.0.1:8090:80"]);
    web(&f, "out", &[&format!("{HOST_ADDR}:8090:80")]);
    eventually("both addresses", || {
        let a = get(&f, "http://127.0.0.1:8090/");
        let b = get(&f, &format!("http://{HOST_ADDR}:8090/"));
        (a.stdout == "hello from lo\n" && b.stdout == "hello from out\n")
            .then_some(())
            .ok_or(format!("{a:?} {b:?}"))
    });
    let o = f.run(&["-p", "8090:80", "bb:1", "true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("8090/tcp is already allocated"), "{o:?}");
    f.berth(&[
        "run", "-d", "--name", "all", "-p", "8091:80", "bb:1", "sleep", "60",
    ])
    .ok();
    let o = f.run(&["-p", "127.0.0.1:8091:80", "bb:1", "true"]);
    assert!(o.stderr.contains("8091/tcp is already allocated"), "{o:?}");

    // IPv6: an address of the host's, a dual-stack network.
    sh(&f, "ip addr add fd00:db8:1::1/64 dev h0 nodad").ok();
    f.berth(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:db8:9::/64",
        "n6",
    ])
    .ok();
    let www = f.dir.path().join("www-six");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello over six\n").unwrap();
    let bind = format!("{}:/www:ro", www.display());
    f.berth(&[
        "run",
        "-d",
        "--name",
        "six",
        "--network",
        "n6",
        "-v",
        &bind,
        "-p",
        "[fd00:db8:1::1]:8092:80",
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
    eventually("the IPv6 host address", || {
        let o = get(&f, "http://[fd00:db8:1::1]:8092/");
        (o.stdout == "hello over six\n")
            .then_some(())
            .ok_or(format!("{o:?}"))
    });
    let o = f.berth(&["port", "six"]).ok();
    assert_eq!(o.stdout.trim(), "80/tcp -> [fd00:db8:1::1]:8092");
    // Not on its IPv4 addresses.
    assert_ne!(get(&f, "http://127.0.0.1:8092/").stdout, "hello over six\n");
    let o = f.run(&["-p", "[fd00:db8:1::1]:8093:80", "bb:1", "true"]);
    assert!(o.stderr.contains("dual-stack"), "{o:?}");

    f.berth(&["rm", "-f", "lo", "out", "all", "six"]).ok();
    f.berth(&["network", "rm", "n6"]).ok();
    assert_eq!(firewall(&f), "");
    f.assert_clean();
}

#[test]
fn system_check_takes_the_ports_of_a_killed_run_off_the_firewall() {
    let f = fixture();
    let out = f.dir.path().join("fg.out");
    let mut run = f
        .command(&[
            "run",
            "--name",
            "fg",
            "-p",
            "8082:80",
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
    assert!(firewall(&f).contains("tcp . 8082"), "{}", firewall(&f));
    f.berth(&["system", "check", "--dry-run"]).ok();
    assert!(
        firewall(&f).contains("tcp . 8082"),
        "a dry run changes nothing"
    );
    // The container is killed (no supervisor) and its run taken down,
    // ports included.
    f.berth(&["system", "check"]).ok();
    assert_eq!(firewall(&f), "");

    // A chain of a stopped container of the store's, without its mark
    // (a crash between the firewall and the mark), is taken off; one of
    // an id the store does not know is left alone.
    let id = f.berth(&["inspect", "-f", "{{.Id}}", "fg"]).ok().stdout;
    let key = &id.trim()[..12];
    let stranger = "0123456789ab";
    for k in [key, stranger] {
        sh(
            &f,
            &format!(
                "nft add chain inet berth c-{k} && \
                 nft add element inet berth hostports {{ 0.0.0.0/0 . tcp . {} : jump c-{k} }}",
                if k == key { 8083 } else { 8084 }
            ),
        )
        .ok();
    }
    let o = f.berth(&["system", "check"]).ok();
    assert!(
        o.stdout.contains(&format!("firewall chain c-{key}")),
        "{o:?}"
    );
    let left = firewall(&f);
    assert!(!left.contains(key) && left.contains(stranger), "{left}");
    sh(
        &f,
        &format!(
            "nft delete element inet berth hostports {{ 0.0.0.0/0 . tcp . 8084 }} && nft delete chain inet berth c-{stranger}"
        ),
    )
    .ok();
    f.berth(&["rm", "fg"]).ok();
    f.assert_clean();
}
