//! berth's firewall: one nftables table, `inet berth`, and nothing else.
//! It masquerades what containers send out of their networks, publishes
//! container ports on the host's addresses (DNAT), keeps internal
//! networks in and networks apart. Every change is one `nft -f -` batch, so it is applied
//! whole or not at all. What the table holds (docs/network.md):
//!
//! - sets `nets` and `nets6` (the subnets of networks with a way out),
//!   `bridges` (every berth bridge), `internal` (the bridges of internal
//!   networks) and `same` (each bridge paired with itself), kept up to date
//!   as networks come and go: the forward chain drops what one network
//!   would route to another (they are isolated, as Docker's are), except
//!   traffic to a published port;
//! - maps `hostports` and `hostports6`: `host address . protocol . host
//!   port` to a jump into the chain of the container that publishes it
//!   (`c-<12 hex of its id>`), which holds its DNAT rules. The address is
//!   one of the host's, or every one (`0.0.0.0/0`, `::/0`), so one port
//!   may go to different containers on different addresses. A port that
//!   overlaps another container's (the same address, or every address on
//!   one side) is refused before anything is written: the "port is
//!   already allocated" check (the caller serialises publishing; `create
//!   element` still refuses an exact duplicate atomically);
//! - base chains on the nat prerouting/output/postrouting and filter
//!   forward hooks whose few rules only consult the sets and the map, so
//!   they never change with containers or networks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::Command;

use crate::ipam::Subnet;
use crate::ipam6::Subnet6;
use crate::NetworkError;

/// The table's name (family `inet`).
pub const TABLE: &str = "berth";

/// A set whose name changes with the base chains' rules: every batch adds
/// to it, so a table an older berth wrote (without it) is found missing it
/// and its rules are written anew.
const RULES: &str = "rules-5";

/// A transport protocol a port is published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// Its name, as Docker and nft write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

impl std::str::FromStr for Proto {
    type Err = ();
    fn from_str(s: &str) -> Result<Proto, ()> {
        match s {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "sctp" => Ok(Proto::Sctp),
            _ => Err(()),
        }
    }
}

/// A network, as the firewall sees it.
#[derive(Debug, Clone)]
pub struct NetRules<'a> {
    /// Its bridge device.
    pub bridge: &'a str,
    /// Its subnet.
    pub subnet: Subnet,
    /// Its IPv6 subnet, on a dual-stack network.
    pub subnet6: Option<Subnet6>,
    /// No way out (`--internal`).
    pub internal: bool,
}

/// One published port: what reaches `host_ip:host_port` (any of the
/// host's addresses when None) goes to `addr:port` (an IPv6 host address:
/// to `addr6:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The protocol.
    pub proto: Proto,
    /// The host address it is published on (None: all of them).
    pub host_ip: Option<IpAddr>,
    /// The host's port.
    pub host_port: u16,
    /// The container's address.
    pub addr: Ipv4Addr,
    /// The container's port.
    pub port: u16,
    /// The container's IPv6 address, on a dual-stack network: a port
    /// published on all the host's addresses is published on its IPv6
    /// ones too.
    pub addr6: Option<Ipv6Addr>,
}

/// The chain of the container whose key (12 hex digits of its id) is `key`.
fn chain(key: &str) -> String {
    format!("c-{key}")
}

fn nft_path() -> Result<PathBuf, NetworkError> {
    ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or(NetworkError::NoNft)
}

/// How long one `nft` run may take before it is killed and reported.
const NFT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `nft` with `args`, `script` on its stdin; its stdout.
fn nft(args: &[&str], script: &str, step: &'static str) -> Result<String, NetworkError> {
    let program = nft_path()?;
    let mut cmd = Command::new(&program);
    cmd.args(args);
    let out = crate::exec::run(cmd, &program, script.as_bytes(), NFT_TIMEOUT, 4 << 20)
        .map_err(|err| NetworkError::Helper { step, err })?;
    if !out.status.success() {
        return Err(NetworkError::Firewall {
            step,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `batch`, which needs the table; when the table (or a set of it)
/// is missing, runs it again after [`base`]. The base chains are not
/// touched otherwise: changing a chain that hooks into the kernel makes
/// the commit wait for an RCU grace period (about 13 ms here), while
/// adding set elements does not.
fn apply(batch: &str, step: &'static str) -> Result<String, NetworkError> {
    let batch = format!("add element inet {TABLE} {RULES} {{ \"berth\" }}\n{batch}");
    match nft(&["-f", "-"], &batch, step) {
        Err(NetworkError::Firewall { message, .. })
            if message.contains("No such file or directory") =>
        {
            nft(&["-f", "-"], &(base() + &batch), step)
        }
        other => other,
    }
}

/// The table, its sets and base chains, and the base chains' rules
/// (flushed and written again: they are the same every time).
fn base() -> String {
    let t = format!("inet {TABLE}");
    format!(
        "add table {t}\n\
         add set {t} nets {{ type ipv4_addr; flags interval; }}\n\
         add set {t} nets6 {{ type ipv6_addr; flags interval; }}\n\
         add set {t} bridges {{ type ifname; }}\n\
         add set {t} internal {{ type ifname; }}\n\
         add set {t} same {{ type ifname . ifname; }}\n\
         add set {t} {RULES} {{ type ifname; }}\n\
         add map {t} hostports {{ type ipv4_addr . inet_proto . inet_service : verdict; flags interval; }}\n\
         add map {t} hostports6 {{ type ipv6_addr . inet_proto . inet_service : verdict; flags interval; }}\n\
         add chain {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}\n\
         add chain {t} output {{ type nat hook output priority -100; policy accept; }}\n\
         add chain {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
         add chain {t} forward {{ type filter hook forward priority filter; policy accept; }}\n\
         flush chain {t} prerouting\n\
         flush chain {t} output\n\
         flush chain {t} postrouting\n\
         flush chain {t} forward\n\
         add rule {t} prerouting fib daddr type local ip daddr . meta l4proto . th dport vmap @hostports\n\
         add rule {t} prerouting fib daddr type local ip6 daddr . meta l4proto . th dport vmap @hostports6\n\
         add rule {t} output fib daddr type local ip daddr . meta l4proto . th dport vmap @hostports\n\
         add rule {t} output fib daddr type local ip6 daddr . meta l4proto . th dport vmap @hostports6\n\
         add rule {t} postrouting meta nfproto ipv4 ip saddr @nets ip daddr != @nets oifname != @bridges masquerade\n\
         add rule {t} postrouting meta nfproto ipv4 oifname @bridges ip saddr @nets ct status dnat masquerade\n\
         add rule {t} postrouting meta nfproto ipv4 oifname @bridges ip saddr 127.0.0.0/8 masquerade\n\
         add rule {t} postrouting meta nfproto ipv6 ip6 saddr @nets6 ip6 daddr != @nets6 oifname != @bridges masquerade\n\
         add rule {t} postrouting meta nfproto ipv6 oifname @bridges ip6 saddr @nets6 ct status dnat masquerade\n\
         add rule {t} forward ct state established,related accept\n\
         add rule {t} forward iifname @internal oifname != @internal drop\n\
         add rule {t} forward oifname @internal iifname != @internal drop\n\
         add rule {t} forward ct status dnat accept\n\
         add rule {t} forward iifname @bridges oifname @bridges iifname . oifname != @same drop\n"
    )
}

fn network_elements(n: &NetRules) -> String {
    let t = format!("inet {TABLE}");
    let mut s = format!(
        "add element {t} bridges {{ \"{b}\" }}\nadd element {t} same {{ \"{b}\" . \"{b}\" }}\n",
        b = n.bridge
    );
    if n.internal {
        s.push_str(&format!(
            "add element {t} internal {{ \"{}\" }}\n",
            n.bridge
        ));
    } else {
        s.push_str(&format!("add element {t} nets {{ {} }}\n", n.subnet));
        if let Some(s6) = n.subnet6 {
            s.push_str(&format!("add element {t} nets6 {{ {s6} }}\n"));
        }
    }
    s
}

fn write_sysctl(path: &str, step: &'static str) -> Result<(), NetworkError> {
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, "1").map_err(|err| NetworkError::Io { step, err })
}

/// Makes networks `nets` known to the firewall (masquerade out, unless it is
/// internal) and sets the two sysctls it needs: forwarding (for the way
/// out and for one container reaching another's published port) and
/// `route_localnet` on its bridge only (so 127.0.0.1 reaches published
/// ports, as Docker does without its proxy).
///
/// Every run of a container on a network does this (one batch for all its
/// networks), so a table someone deleted comes back.
pub fn add_networks(nets: &[NetRules]) -> Result<(), NetworkError> {
    let mut s = String::new();
    for n in nets {
        crate::bridge::check_name(n.bridge)?;
        s.push_str(&network_elements(n));
    }
    apply(&s, "add the networks' firewall rules")?;
    for n in nets {
        write_sysctl(
            &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", n.bridge),
            "set route_localnet on the bridge",
        )?;
    }
    if nets.iter().any(|n| !n.internal) {
        write_sysctl("/proc/sys/net/ipv4/ip_forward", "enable IPv4 forwarding")?;
    }
    if nets.iter().any(|n| !n.internal && n.subnet6.is_some()) {
        write_sysctl(
            "/proc/sys/net/ipv6/conf/all/forwarding",
            "enable IPv6 forwarding",
        )?;
    }
    Ok(())
}

/// A host address a port is published on, as the maps hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostAddr {
    /// Every IPv4 address (`0.0.0.0/0`).
    All4,
    /// Every IPv6 address (`::/0`).
    All6,
    /// One address.
    One(IpAddr),
}

impl HostAddr {
    fn is_v6(self) -> bool {
        matches!(self, HostAddr::All6 | HostAddr::One(IpAddr::V6(_)))
    }

    /// Whether the two take some of the same traffic.
    fn overlaps(self, other: HostAddr) -> bool {
        self.is_v6() == other.is_v6()
            && (matches!(self, HostAddr::All4 | HostAddr::All6)
                || matches!(other, HostAddr::All4 | HostAddr::All6)
                || self == other)
    }

    /// Its map and its text in an element.
    fn map_and_text(self) -> (&'static str, String) {
        match self {
            HostAddr::All4 => ("hostports", "0.0.0.0/0".into()),
            HostAddr::All6 => ("hostports6", "::/0".into()),
            HostAddr::One(IpAddr::V4(a)) => ("hostports", a.to_string()),
            HostAddr::One(IpAddr::V6(a)) => ("hostports6", a.to_string()),
        }
    }

    /// From an element's first field (an address, or a prefix).
    fn parse(v: &serde_json::Value) -> Option<HostAddr> {
        if let Some(a) = v.as_str() {
            return a.parse().ok().map(HostAddr::One);
        }
        let p = v.get("prefix")?;
        let addr: IpAddr = p["addr"].as_str()?.parse().ok()?;
        match (addr, p["len"].as_u64()?) {
            (IpAddr::V4(_), 0) => Some(HostAddr::All4),
            (IpAddr::V6(_), 0) => Some(HostAddr::All6),
            _ => None,
        }
    }
}

/// One element of the port maps.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Published {
    addr: HostAddr,
    proto: String,
    port: u64,
    chain: String,
}

/// The map elements forwards `fwd` need, without repeats.
fn host_addrs(fwd: &[Forward]) -> Vec<(HostAddr, Proto, u16)> {
    let mut out = vec![];
    for f in fwd {
        let addrs: Vec<HostAddr> = match f.host_ip {
            None if f.addr6.is_some() => vec![HostAddr::All4, HostAddr::All6],
            None => vec![HostAddr::All4],
            Some(ip) => vec![HostAddr::One(ip)],
        };
        for a in addrs {
            if !out.contains(&(a, f.proto, f.host_port)) {
                out.push((a, f.proto, f.host_port));
            }
        }
    }
    out
}

/// What the table holds now (None: there is no table).
#[derive(Debug, Default)]
struct Listing {
    bridges: Vec<String>,
    internal: Vec<String>,
    same: Vec<String>,
    nets: Vec<String>,
    nets6: Vec<String>,
    /// The published ports.
    ports: Vec<Published>,
    chains: Vec<String>,
}

fn read_table() -> Result<Option<Listing>, NetworkError> {
    let out = match nft(
        &["-j", "list", "table", "inet", TABLE],
        "",
        "list berth's table",
    ) {
        Ok(o) => o,
        Err(NetworkError::Firewall { message, .. }) if message.contains("No such file") => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let json: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| NetworkError::Firewall {
            step: "read berth's table",
            message: e.to_string(),
        })?;
    let mut l = Listing::default();
    for item in json["nftables"].as_array().into_iter().flatten() {
        if let Some(c) = item.get("chain") {
            if let Some(name) = c["name"].as_str() {
                l.chains.push(name.to_string());
            }
        }
        let Some(set) = item.get("set").or_else(|| item.get("map")) else {
            continue;
        };
        let elems = set["elem"].as_array().cloned().unwrap_or_default();
        match set["name"].as_str() {
            Some("same") => l.same.extend(
                elems
                    .iter()
                    .filter_map(|e| Some(e["concat"].as_array()?.first()?.as_str()?.to_string())),
            ),
            Some(name @ ("bridges" | "internal")) => {
                let names = elems.iter().filter_map(|e| Some(e.as_str()?.to_string()));
                if name == "bridges" {
                    l.bridges.extend(names);
                } else {
                    l.internal.extend(names);
                }
            }
            Some(name @ ("nets" | "nets6")) => {
                let found = elems.iter().filter_map(|e| {
                    let p = e.get("prefix")?;
                    Some(format!("{}/{}", p["addr"].as_str()?, p["len"].as_u64()?))
                });
                if name == "nets" {
                    l.nets.extend(found);
                } else {
                    l.nets6.extend(found);
                }
            }
            Some("hostports" | "hostports6") => l.ports.extend(elems.iter().filter_map(|e| {
                let key = e[0]["concat"].as_array()?;
                Some(Published {
                    addr: HostAddr::parse(key.first()?)?,
                    proto: key.get(1)?.as_str()?.to_string(),
                    port: key.get(2)?.as_u64()?,
                    chain: e[1]["jump"]["target"].as_str()?.to_string(),
                })
            })),
            _ => {}
        }
    }
    Ok(Some(l))
}

/// Forgets network `n` (its elements go; nothing if they are gone).
pub fn remove_network(n: &NetRules) -> Result<(), NetworkError> {
    let Some(l) = read_table()? else {
        return Ok(());
    };
    let t = format!("inet {TABLE}");
    let mut s = String::new();
    if l.bridges.iter().any(|b| b == n.bridge) {
        s.push_str(&format!(
            "delete element {t} bridges {{ \"{}\" }}\n",
            n.bridge
        ));
    }
    if l.same.iter().any(|b| b == n.bridge) {
        s.push_str(&format!(
            "delete element {t} same {{ \"{b}\" . \"{b}\" }}\n",
            b = n.bridge
        ));
    }
    if l.internal.iter().any(|b| b == n.bridge) {
        s.push_str(&format!(
            "delete element {t} internal {{ \"{}\" }}\n",
            n.bridge
        ));
    }
    if l.nets.iter().any(|x| *x == n.subnet.to_string()) {
        s.push_str(&format!("delete element {t} nets {{ {} }}\n", n.subnet));
    }
    if let Some(s6) = n.subnet6.filter(|s6| l.nets6.contains(&s6.to_string())) {
        s.push_str(&format!("delete element {t} nets6 {{ {s6} }}\n"));
    }
    if s.is_empty() {
        return Ok(());
    }
    nft(&["-f", "-"], &s, "remove the network's firewall rules").map(drop)
}

/// Publishes the ports of the container whose key is `key` (12 hex
/// digits), on networks `nets`: its chain with one DNAT rule per port,
/// and its ports in the maps. A port that overlaps one another container
/// holds is refused with [`NetworkError::PortTaken`] and nothing is
/// changed; the check and the write are not one step, so the caller
/// publishes one container at a time (the engine holds a lock).
pub fn publish(key: &str, nets: &[NetRules], fwd: &[Forward]) -> Result<(), NetworkError> {
    let t = format!("inet {TABLE}");
    let c = chain(key);
    let wanted = host_addrs(fwd);
    if let Some(l) = read_table()? {
        for (addr, proto, port) in &wanted {
            let clash = l.ports.iter().find(|p| {
                p.chain != c
                    && p.proto == proto.as_str()
                    && p.port == u64::from(*port)
                    && p.addr.overlaps(*addr)
            });
            if clash.is_some() {
                return Err(NetworkError::PortTaken {
                    proto: proto.as_str(),
                    port: *port,
                });
            }
        }
    }
    let mut s = String::new();
    for n in nets {
        crate::bridge::check_name(n.bridge)?;
        s.push_str(&network_elements(n));
    }
    // (A container's chain is gone before it is made again: `unpublish`
    // runs first, and the engine's mark outlives a crash.)
    s.push_str(&format!("add chain {t} {c}\n"));
    for f in fwd {
        let (p, hp, cp) = (f.proto.as_str(), f.host_port, f.port);
        if !matches!(f.host_ip, Some(IpAddr::V6(_))) {
            let daddr = match f.host_ip {
                Some(ip) => format!("ip daddr {ip} "),
                None => String::new(),
            };
            s.push_str(&format!(
                "add rule {t} {c} meta nfproto ipv4 {daddr}meta l4proto {p} th dport {hp} dnat ip to {a}:{cp}\n",
                a = f.addr,
            ));
        }
        if let Some(a6) = f.addr6 {
            let daddr = match f.host_ip {
                Some(IpAddr::V6(ip)) => format!("ip6 daddr {ip} "),
                Some(IpAddr::V4(_)) => continue,
                None => String::new(),
            };
            s.push_str(&format!(
                "add rule {t} {c} meta nfproto ipv6 {daddr}meta l4proto {p} th dport {hp} dnat ip6 to [{a6}]:{cp}\n",
            ));
        }
    }
    for (addr, p, port) in &wanted {
        let (map, text) = addr.map_and_text();
        s.push_str(&format!(
            "create element {t} {map} {{ {text} . {} . {port} : jump {c} }}\n",
            p.as_str()
        ));
    }
    match apply(&s, "publish the container's ports") {
        Err(NetworkError::Firewall { message, .. }) if message.contains("File exists") => {
            // nft quotes the failing line: `create element … { ADDR . tcp . 8080 : …`.
            let taken = message
                .lines()
                .find_map(|l| {
                    let rest = l
                        .split_once("ports { ")
                        .or_else(|| l.split_once("ports6 { "))?
                        .1;
                    let mut w = rest.split(" . ");
                    w.next()?;
                    let proto: Proto = w.next()?.trim().parse().ok()?;
                    let port: u16 = w.next()?.split_whitespace().next()?.parse().ok()?;
                    Some((proto, port))
                })
                .unwrap_or_else(|| wanted.first().map_or((Proto::Tcp, 0), |w| (w.1, w.2)));
            // The chain made in the failed batch was not made either.
            Err(NetworkError::PortTaken {
                proto: taken.0.as_str(),
                port: taken.1,
            })
        }
        other => other.map(drop),
    }
}

/// Takes the container whose key is `key` off the firewall: its ports and
/// its chain. Nothing if it has none.
pub fn unpublish(key: &str) -> Result<(), NetworkError> {
    let Some(l) = read_table()? else {
        return Ok(());
    };
    unpublish_listed(&l, key)
}

fn unpublish_listed(l: &Listing, key: &str) -> Result<(), NetworkError> {
    let t = format!("inet {TABLE}");
    let c = chain(key);
    let mut s = String::new();
    for p in &l.ports {
        if p.chain == c {
            let (map, text) = p.addr.map_and_text();
            s.push_str(&format!(
                "delete element {t} {map} {{ {text} . {} . {} }}\n",
                p.proto, p.port
            ));
        }
    }
    if l.chains.contains(&c) {
        s.push_str(&format!("delete chain {t} {c}\n"));
    }
    if s.is_empty() {
        return Ok(());
    }
    nft(&["-f", "-"], &s, "unpublish the container's ports").map(drop)
}

/// The keys of the containers the firewall publishes ports of.
pub fn published_keys() -> Result<Vec<String>, NetworkError> {
    let Some(l) = read_table()? else {
        return Ok(vec![]);
    };
    let mut keys: Vec<String> = l
        .chains
        .iter()
        .chain(l.ports.iter().map(|p| &p.chain))
        .filter_map(|c| Some(c.strip_prefix("c-")?.to_string()))
        .collect();
    keys.sort();
    keys.dedup();
    Ok(keys)
}
