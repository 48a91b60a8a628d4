//! The bridge driver on the real kernel, inside a network namespace that
//! plays the host (the machine's own devices are never touched): two
//! containers' namespaces on one bridge reach each other and the gateway,
//! a bad request fails naming its step and leaves no device, and taking
//! the endpoints and the bridge down leaves nothing.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use network::bridge::{self, Bridge, Endpoint};
use network::netns;

fn ping(ns: &Path, to: Ipv4Addr) -> bool {
    Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["busybox", "ping", "-c", "1", "-W", "2"])
        .arg(to.to_string())
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn links(ns: &Path) -> String {
    let o = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["ip", "-o", "link"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Removes the pinned namespaces even when the test fails.
struct Pins(Vec<std::path::PathBuf>);

impl Drop for Pins {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = netns::remove(p);
        }
    }
}

#[test]
fn two_containers_on_a_bridge_reach_each_other_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (host, c1, c2) = (
        dir.path().join("host"),
        dir.path().join("c1"),
        dir.path().join("c2"),
    );
    let _pins = Pins(vec![c1.clone(), c2.clone(), host.clone()]);
    netns::create(&host).unwrap();
    let gw = Ipv4Addr::new(10, 123, 0, 1);
    let br = Bridge {
        name: "br-test0",
        gateway: gw,
        prefix: 24,
        mtu: None,
        gateway6: None,
    };
    let (a1, a2) = (Ipv4Addr::new(10, 123, 0, 2), Ipv4Addr::new(10, 123, 0, 3));
    netns::run_in(&host, || {
        bridge::ensure(&br)?;
        // Twice is fine.
        bridge::ensure(&br)?;
        for (ns, veth, addr) in [(&c1, "vbtest1", a1), (&c2, "vbtest2", a2)] {
            netns::create(ns)?;
            bridge::attach(
                "br-test0",
                &Endpoint {
                    netns: ns,
                    host_veth: veth,
                    ifname: "eth0",
                    addr,
                    prefix: 24,
                    gateway: Some(gw),
                    mtu: None,
                    addr6: None,
                    mac: None,
                    gateway6: None,
                },
            )?;
        }
        Ok(())
    })
    .unwrap();
    assert!(ping(&c1, a2), "c1 reaches c2");
    assert!(ping(&c2, a1), "c2 reaches c1");
    assert!(ping(&c1, gw), "c1 reaches the gateway");
    let l = links(&c1);
    assert!(l.contains("eth0@") && l.contains("lo:"), "{l}");
    assert!(links(&host).contains("vbtest1@"));

    // A veth name taken already: the error names the step, nothing is left.
    let e = netns::run_in(&host, || {
        bridge::attach(
            "br-test0",
            &Endpoint {
                netns: &c1,
                host_veth: "vbtest2",
                ifname: "eth1",
                addr: Ipv4Addr::new(10, 123, 0, 9),
                prefix: 24,
                gateway: None,
                mtu: None,
                addr6: None,
                mac: None,
                gateway6: None,
            },
        )
    })
    .unwrap_err();
    assert!(e.to_string().contains("add a veth pair"), "{e}");
    assert!(!links(&c1).contains("eth1"));
    let e = netns::run_in(&host, || {
        bridge::ensure(&Bridge {
            name: "a/b",
            ..br.clone()
        })
    })
    .unwrap_err();
    assert!(e.to_string().contains("a/b"), "{e}");

    // Down again: deleting a host end takes the pair; then the bridge.
    netns::run_in(&host, || {
        bridge::remove_link("vbtest1")?;
        bridge::remove_link("vbtest1")?;
        assert!(!bridge::link_exists("vbtest1")?);
        Ok(())
    })
    .unwrap();
    assert!(!links(&c1).contains("eth0"));
    assert!(!ping(&c2, a1));
    netns::run_in(&host, || {
        bridge::remove_link("vbtest2")?;
        bridge::remove_link("br-test0")
    })
    .unwrap();
    let l = links(&host);
    assert!(!l.contains("br-test0") && !l.contains("vbtest"), "{l}");
    for p in [&c1, &c2, &host] {
        netns::remove(p).unwrap();
        assert!(!p.exists());
    }
}
