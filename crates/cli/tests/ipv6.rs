//! Dual-stack networks, in a network namespace of the test's own that
//! plays the host: containers reach each other over IPv6 by address and by
//! name (AAAA), `--ip6` picks an address, what they send out over IPv6 is
//! masqueraded, a published port is reachable on the host's IPv6 address,
//! and bad input is refused by name.

mod common;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::Fixture;

fn sh(f: &Fixture, cmd: &str) -> test_support::Outcome {
    test_support::run_through_files(&mut f.host_command("sh", &["-c", cmd]))
}

fn inspect(f: &Fixture, what: &str, template: &str) -> String {
    f.berth(&["inspect", "-f", template, what])
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// The outside world over IPv6 (fd98::2), with no route back to the
/// containers' subnets: only masqueraded traffic gets an answer.
struct Outside {
    ns: PathBuf,
    listener: Child,
}

impl Outside {
    fn new(f: &Fixture) -> Outside {
        let ns = f.dir.path().join("outside6-netns");
        network::netns::create(&ns).unwrap();
        sh(
            f,
            &format!(
                "ip link add o0 type veth peer name o1 netns {ns} && \
                 ip addr add fd98::1/64 dev o0 nodad && ip link set o0 up && \
                 nsenter --net={ns} sh -c 'ip addr add fd98::2/64 dev o1 nodad && ip link set o1 up'",
                ns = ns.display()
            ),
        )
        .ok();
        let listener = Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args([
                "busybox", "nc", "-ll", "-p", "7100", "-e", "echo", "outside6",
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
fn dual_stack_networks_carry_ipv6_between_containers_and_out() {
    let f = Fixture::in_netns();
    // The host's own IPv6 address, besides loopback.
    sh(
        &f,
        "ip link add h0 type veth peer name h1 && ip addr add fd99::1/64 dev h0 nodad \
         && ip link set h0 up && ip link set h1 up",
    )
    .ok();
    // A generated unique local /64 beside the IPv4 subnet.
    f.berth(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.95.0.0/24",
        "dual",
    ])
    .ok();
    let o = inspect(
        &f,
        "dual",
        "{{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}} {{end}}",
    );
    let words: Vec<&str> = o.split_whitespace().collect();
    assert_eq!(words[..3], ["true", "10.95.0.0/24", "10.95.0.1"], "{o}");
    assert!(
        words[3].starts_with("fd") && words[3].ends_with("::/64"),
        "{o}"
    );
    let prefix = words[3].trim_end_matches("/64");
    assert_eq!(words[4], format!("{prefix}1"));

    f.berth(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "dual",
        "-p",
        "8086:80",
        "bb:1",
        "sh",
        "-c",
        "busybox nc -ll -p 80 -e echo from-srv",
    ])
    .ok();
    let srv6 = inspect(
        &f,
        "srv",
        "{{(index .NetworkSettings.Networks \"dual\").GlobalIPv6Address}}",
    );
    assert_eq!(srv6, format!("{prefix}2"));
    // --ip6 and a route out over IPv6 through the gateway.
    let mine = format!("{prefix}77");
    let script = format!(
        "busybox ip -6 addr show eth0 | busybox grep -q '{mine}/64' && echo has-address; \
         busybox ip -6 route | busybox grep -q 'default via {prefix}1' && echo has-route; \
         busybox nc -w 3 {srv6} 80 </dev/null; \
         busybox ping6 -c 1 -W 3 srv | busybox grep -q '{srv6}' && echo by-name"
    );
    let o = f
        .run(&[
            "--network",
            "dual",
            "--ip6",
            &mine,
            "bb:1",
            "sh",
            "-c",
            &script,
        ])
        .ok();
    assert_eq!(
        o.stdout, "has-address\nhas-route\nfrom-srv\nby-name\n",
        "{o:?}"
    );

    // The published port on the host's IPv6 address.
    let o = sh(&f, "busybox nc -w 3 fd99::1 8086 </dev/null");
    assert_eq!(o.stdout, "from-srv\n", "{o:?}");

    // Out over IPv6, masqueraded: the outside has no route back.
    let outside = Outside::new(&f);
    let mut got = String::new();
    for _ in 0..50 {
        let o = f.run(&[
            "--network",
            "dual",
            "bb:1",
            "sh",
            "-c",
            "busybox nc -w 3 fd98::2 7100 </dev/null",
        ]);
        got = o.stdout;
        if got == "outside6\n" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(got, "outside6\n");
    drop(outside);

    // Bad input, by name.
    for (args, says) in [
        (
            vec!["network", "create", "--subnet", "fd00::1/64", "x1"],
            "host bits",
        ),
        (
            vec![
                "network",
                "create",
                "--subnet",
                "fd00::/64",
                "--subnet",
                "fd01::/64",
                "x2",
            ],
            "at most one IPv6",
        ),
        (
            vec!["network", "create", "--subnet", &words[3], "x3"],
            "overlaps",
        ),
        (
            vec!["network", "create", "--gateway", "fd00::1", "x4"],
            "needs --ipv6",
        ),
    ] {
        let o = f.berth(&args);
        assert!(o.code != 0 && o.stderr.contains(says), "{args:?}: {o:?}");
    }
    f.berth(&["network", "create", "--subnet", "10.96.0.0/24", "v4only"])
        .ok();
    for (args, says) in [
        (
            vec!["--network", "v4only", "--ip6", "fd00::5"],
            "no IPv6 subnet",
        ),
        (
            vec!["--network", "dual", "--ip6", "fd00:dead::5"],
            "is not in",
        ),
        (vec!["--network", "dual", "--ip6", &srv6], "already in use"),
        (
            vec!["--network", "dual", "--ip6", "nope"],
            "not an IPv6 address",
        ),
    ] {
        let mut full = args.clone();
        full.extend(["bb:1", "true"]);
        let o = f.run(&full);
        assert!(o.code != 0 && o.stderr.contains(says), "{args:?}: {o:?}");
    }
    f.berth(&["rm", "-f", "srv"]).ok();
    f.berth(&["network", "rm", "dual", "v4only"]).ok();
    let o = sh(&f, "nft list set inet berth nets6");
    assert!(!o.stdout.contains(prefix), "{o:?}");
    f.assert_clean();
}
