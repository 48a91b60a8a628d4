//! Names on user-defined networks, each test in a network namespace of its
//! own that plays the host: containers find each other by name, by
//! `--network-alias` and by short id (TCP and UDP), only on their own
//! network; on the default bridge by address only; the network's DNS
//! server starts with the first container and is gone after `network rm`.

mod common;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Fixture;

/// The pids of the DNS servers of root `f`.
fn dns_servers(f: &Fixture) -> Vec<i32> {
    let root = f.root();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.contains("dns-serve") && cmd.contains(root.to_str()?)).then_some(pid)
        })
        .collect()
}

fn lookup(f: &Fixture, net: &str, name: &str) -> test_support::Outcome {
    f.run(&["--network", net, "bb:1", "busybox", "nslookup", name])
}

#[test]
fn containers_find_each_other_by_name_and_alias_on_their_network_only() {
    let f = Fixture::in_netns();
    f.berth(&["network", "create", "--subnet", "10.91.0.0/24", "app"])
        .ok();
    f.berth(&["network", "create", "--subnet", "10.92.0.0/24", "other"])
        .ok();
    let id = f
        .berth(&[
            "run",
            "-d",
            "--name",
            "db",
            "--network",
            "app",
            "--network-alias",
            "postgres",
            "bb:1",
            "sh",
            "-c",
            "busybox nc -ll -p 5432 -e echo from-db",
        ])
        .ok()
        .stdout;
    assert_eq!(
        dns_servers(&f).len(),
        1,
        "the first container starts the server"
    );
    let o = f
        .berth(&[
            "inspect",
            "-f",
            "{{json (index .NetworkSettings.Networks \"app\").Aliases}}",
            "db",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), r#"["postgres"]"#);

    // The container's resolv.conf names the server; its hosts file its address.
    let o = f
        .run(&[
            "--network",
            "app",
            "bb:1",
            "cat",
            "/etc/resolv.conf",
            "/etc/hosts",
        ])
        .ok();
    assert!(o.stdout.starts_with("nameserver 10.91.0.1\n"), "{o:?}");
    assert!(o.stdout.contains("10.91.0.3\t"), "{o:?}");

    for name in ["db", "DB", "postgres", &id.trim()[..12]] {
        let o = lookup(&f, "app", name);
        assert!(
            o.code == 0 && o.stdout.contains("Address: 10.91.0.2"),
            "{name}: {o:?}"
        );
    }
    // TCP by name and by alias.
    let o = f
        .run(&[
            "--network",
            "app",
            "bb:1",
            "sh",
            "-c",
            "busybox nc -w 3 db 5432 </dev/null; busybox nc -w 3 postgres 5432 </dev/null",
        ])
        .ok();
    assert_eq!(o.stdout, "from-db\nfrom-db\n");
    // UDP by name: a datagram to `db` reaches port 5353 in db's namespace
    // (busybox has no UDP server: the receiver is Python's, in its namespace).
    let netns = f.root().join("netns").join(id.trim());
    let got = f.dir.path().join("udp.got");
    let mut receiver = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args([
            "python3",
            "-c",
            "import socket,sys\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.bind(('0.0.0.0',5353))\n\
             s.settimeout(20)\n\
             open(sys.argv[1],'wb').write(s.recvfrom(100)[0])",
        ])
        .arg(&got)
        .spawn()
        .unwrap();
    // The sender is Python's too, in a client container's namespace: it
    // asks the network's server (the gateway) for `db`, then sends there.
    let client = f
        .berth(&["run", "-d", "--network", "app", "bb:1", "sleep", "30"])
        .ok()
        .stdout;
    let cns = f.root().join("netns").join(client.trim());
    let end = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&got).unwrap_or_default() != "by-name\n" {
        assert!(Instant::now() < end, "no datagram reached db by name");
        let send = Command::new("nsenter")
            .arg(format!("--net={}", cns.display()))
            .args([
                "python3",
                "-c",
                "import socket,struct\n\
                 q=struct.pack('>HHHHHH',7,0x100,1,0,0,0)+b'\\x02db\\x00'+struct.pack('>HH',1,1)\n\
                 s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(3)\n\
                 s.sendto(q,('10.91.0.1',53)); r=s.recv(512)\n\
                 socket.socket(socket.AF_INET,socket.SOCK_DGRAM).sendto(b'by-name\\n',(socket.inet_ntoa(r[-4:]),5353))",
            ])
            .status()
            .unwrap();
        assert!(send.success());
        std::thread::sleep(Duration::from_millis(100));
    }
    // DNS over TCP (what a resolver falls back to for a large answer):
    // the same name, length-prefixed, from the same namespace.
    let db_ip = f
        .berth(&[
            "inspect",
            "-f",
            "{{(index .NetworkSettings.Networks \"app\").IPAddress}}",
            "db",
        ])
        .ok()
        .stdout;
    let o = test_support::run_through_files(
        Command::new("nsenter")
            .arg(format!("--net={}", cns.display()))
            .args([
                "python3",
                "-c",
                "import socket,struct\n\
                 q=struct.pack('>HHHHHH',9,0x100,1,0,0,0)+b'\\x02db\\x00'+struct.pack('>HH',1,1)\n\
                 s=socket.create_connection(('10.91.0.1',53),timeout=5)\n\
                 s.sendall(struct.pack('>H',len(q))+q)\n\
                 n=struct.unpack('>H',s.recv(2))[0]; r=b''\n\
                 while len(r)<n: r+=s.recv(n-len(r))\n\
                 print(struct.unpack('>H',r[:2])[0], socket.inet_ntoa(r[-4:]))",
            ]),
    );
    assert_eq!(o.stdout.trim(), format!("9 {}", db_ip.trim()), "{o:?}");
    f.berth(&["rm", "-f", client.trim()]).ok();
    assert!(receiver.wait().unwrap().success());

    // Another network's containers do not see db's name.
    let o = lookup(&f, "other", "db");
    assert_ne!(o.code, 0, "{o:?}");
    // The default bridge has no DNS: by address only, as on Docker's.
    f.berth(&[
        "run",
        "-d",
        "--name",
        "b1",
        "--network",
        "bridge",
        "bb:1",
        "sleep",
        "60",
    ])
    .ok();
    let o = f
        .run(&["--network", "bridge", "bb:1", "cat", "/etc/resolv.conf"])
        .ok();
    assert!(!o.stdout.contains("nameserver 172."), "{o:?}");
    let o = f.run(&[
        "--network",
        "bridge",
        "--network-alias",
        "x",
        "bb:1",
        "true",
    ]);
    assert!(
        o.code != 0 && o.stderr.contains("network bridge has no DNS server"),
        "{o:?}"
    );
    let o = f.run(&["--network-alias", "x", "bb:1", "true"]);
    assert!(o.code != 0 && o.stderr.contains("--network-alias"), "{o:?}");

    // A stopped container's name is not answered.
    f.berth(&["stop", "-t", "0", "db"]).ok();
    let o = lookup(&f, "app", "postgres");
    assert_ne!(o.code, 0, "{o:?}");

    f.berth(&["rm", "-f", "db", "b1"]).ok();
    f.berth(&["network", "rm", "app", "other"]).ok();
    let left = dns_servers(&f);
    assert!(left.is_empty(), "DNS servers left: {left:?}");
    let pid_files: Vec<_> = std::fs::read_dir(f.root().join("dns"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(pid_files.is_empty(), "{pid_files:?}");
    f.assert_clean();
}
