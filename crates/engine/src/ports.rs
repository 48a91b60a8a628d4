//! Published ports: `-p`/`--publish`, `-P`/`--publish-all` and `--expose`
//! parsed into Docker's `PortBindings` (kept with the container), and, when
//! a run starts, the host ports chosen (a free one of the host's ephemeral
//! range where none is given, as Docker does) and handed to the firewall
//! ([`network::firewall`]), which DNATs them to the container's address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use network::firewall::{Forward, Proto};
use serde::{Deserialize, Serialize};

use crate::error::{invalid, EngineError};

/// One host side of a published port, as Docker writes it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostBinding {
    /// The host address ("" or "0.0.0.0": all of them).
    #[serde(rename = "HostIp")]
    pub host_ip: String,
    /// The host port: a number, a range `A-B` (one free port of it) or ""
    /// (any free port).
    #[serde(rename = "HostPort")]
    pub host_port: String,
}

/// Container ports (`80/tcp`) and their host sides.
pub type PortMap = BTreeMap<String, Vec<HostBinding>>;

/// `N` or `A-B` (A ≤ B), each 1..=65535.
fn port_range(option: &'static str, spec: &str, s: &str) -> Result<(u16, u16), EngineError> {
    let one = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid(option, spec, format!("{p:?} is not a port (1 to 65535)")))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if a > b {
                return Err(invalid(option, spec, format!("the range {s} is backwards")));
            }
            Ok((a, b))
        }
        None => one(s).map(|p| (p, p)),
    }
}

fn split_proto<'a>(option: &'static str, spec: &'a str) -> Result<(&'a str, Proto), EngineError> {
    match spec.rsplit_once('/') {
        Some((rest, p)) => {
            let proto = p.parse().map_err(|_| {
                invalid(
                    option,
                    spec,
                    format!("unknown protocol {p:?} (tcp, udp or sctp)"),
                )
            })?;
            Ok((rest, proto))
        }
        None => Ok((spec, Proto::Tcp)),
    }
}

/// Adds the `-p` specs to `map`:
/// `[IP:|[IPv6]:][HOST_PORT[-END]:]PORT[-END][/PROTO]`.
pub fn parse_publish(specs: &[String], map: &mut PortMap) -> Result<(), EngineError> {
    const OPT: &str = "--publish";
    for spec in specs {
        let (rest, proto) = split_proto(OPT, spec)?;
        // `[IPv6]:HOST:CONTAINER`: the address in brackets, as Docker takes it.
        let (ip, rest) = match rest.strip_prefix('[') {
            Some(r) => {
                let (addr, after) = r.split_once("]:").ok_or_else(|| {
                    invalid(
                        OPT,
                        spec,
                        "an IPv6 address is written [ADDR]:HOST_PORT:PORT",
                    )
                })?;
                let a: Ipv6Addr = addr
                    .parse()
                    .map_err(|_| invalid(OPT, spec, format!("{addr:?} is not an IPv6 address")))?;
                if a.is_loopback() {
                    return Err(invalid(
                        OPT,
                        spec,
                        "a port on [::1] is not there yet: IPv6 never routes ::1 off the host's loopback, and berth has no userland proxy (publish on 127.0.0.1, or on all addresses)",
                    ));
                }
                if !after.contains(':') {
                    return Err(invalid(
                        OPT,
                        spec,
                        "give HOST_PORT:PORT after the address ([ADDR]::PORT for any host port)",
                    ));
                }
                (a.to_string(), after)
            }
            None => (String::new(), rest),
        };
        if rest.matches(':').count() > 2 || (!ip.is_empty() && rest.matches(':').count() > 1) {
            return Err(invalid(
                OPT,
                spec,
                "write an IPv6 host address in brackets: [ADDR]:HOST_PORT:PORT",
            ));
        }
        let parts: Vec<&str> = rest.split(':').collect();
        let (ip, host, container) = match parts.as_slice() {
            [c] => (ip.as_str(), "", *c),
            [h, c] => (ip.as_str(), *h, *c),
            [ip, h, c] => (*ip, *h, *c),
            _ => unreachable!("at most two colons"),
        };
        if !ip.is_empty() && !ip.contains(':') {
            ip.parse::<Ipv4Addr>()
                .map_err(|_| invalid(OPT, spec, format!("{ip:?} is not an IPv4 address")))?;
        }
        let (c0, c1) = port_range(OPT, spec, container)?;
        let host_range = if host.is_empty() {
            None
        } else {
            Some(port_range(OPT, spec, host)?)
        };
        let n = c1 - c0;
        match host_range {
            Some((h0, h1)) if n > 0 && h1 - h0 != n => {
                return Err(invalid(
                    OPT,
                    spec,
                    "the host range and the container range differ in length",
                ))
            }
            _ => {}
        }
        for i in 0..=n {
            let host_port = match host_range {
                None => String::new(),
                // A range of host ports for one container port: any free one of them.
                Some((h0, h1)) if n == 0 && h0 != h1 => format!("{h0}-{h1}"),
                Some((h0, _)) => (h0 + i).to_string(),
            };
            map.entry(format!("{}/{}", c0 + i, proto.as_str()))
                .or_default()
                .push(HostBinding {
                    host_ip: ip.to_string(),
                    host_port,
                });
        }
    }
    Ok(())
}

/// `--expose PORT[-END][/PROTO]`: the container ports named, as `80/tcp`.
pub fn parse_expose(specs: &[String]) -> Result<BTreeSet<String>, EngineError> {
    let mut out = BTreeSet::new();
    for spec in specs {
        let (rest, proto) = split_proto("--expose", spec)?;
        let (a, b) = port_range("--expose", spec, rest)?;
        for p in a..=b {
            out.insert(format!("{p}/{}", proto.as_str()));
        }
    }
    Ok(out)
}

/// `-P`: each of `exposed` that is not published yet gets a free host port.
pub fn publish_all(map: &mut PortMap, exposed: impl IntoIterator<Item = String>) {
    for port in exposed {
        let key = if port.contains('/') {
            port
        } else {
            format!("{port}/tcp")
        };
        map.entry(key)
            .or_insert_with(|| vec![HostBinding::default()]);
    }
}

/// What a run publishes and exposes: `-p`, `-P` (the image's EXPOSE and
/// `--expose`), checked against its network mode.
pub fn for_run(
    image_exposed: Option<&BTreeMap<String, serde_json::Value>>,
    opts: &crate::spec::RunOptions,
) -> Result<(PortMap, BTreeSet<String>), EngineError> {
    let mut exposed = parse_expose(&opts.expose)?;
    for key in image_exposed.into_iter().flat_map(|m| m.keys()) {
        // Images write `80/tcp`, sometimes a bare `80`.
        exposed.extend(parse_expose(std::slice::from_ref(key))?);
    }
    let mut map = PortMap::new();
    parse_publish(&opts.publish, &mut map)?;
    if opts.publish_all {
        publish_all(&mut map, exposed.iter().cloned());
    }
    if !map.is_empty() {
        let mode = opts.namespaces.network.as_deref().unwrap_or("bridge");
        if !crate::networks::is_user_network(mode) {
            return Err(invalid(
                "--publish",
                &opts.publish.join(" "),
                format!("a container with --network {mode} has no ports of its own to publish"),
            ));
        }
    }
    exposed.extend(map.keys().cloned());
    Ok((map, exposed))
}

/// Whether `map` asks for host port `port` of `proto` by its number (so
/// another container holding it is an error, not a reason to choose again).
pub fn asked_for(map: &PortMap, proto: Proto, port: u16) -> bool {
    map.iter()
        .filter(|(k, _)| k.ends_with(&format!("/{}", proto.as_str())))
        .flat_map(|(_, b)| b)
        .any(|b| b.host_port == port.to_string())
}

/// The host's ephemeral port range (`ip_local_port_range`).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut w = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((w.next()??, w.next()??))
        })
        .filter(|(a, b)| a <= b)
        .unwrap_or((32768, 60999))
}

/// Whether a socket of the host's holds `ip:port` (a listener, for TCP:
/// std sets SO_REUSEADDR, so connections in TIME_WAIT do not count).
fn host_holds(proto: Proto, ip: IpAddr, port: u16) -> bool {
    let addr = std::net::SocketAddr::new(ip, port);
    let err = match proto {
        Proto::Tcp => std::net::TcpListener::bind(addr).err(),
        Proto::Udp => std::net::UdpSocket::bind(addr).err(),
        // SCTP is not probed: the firewall's own check remains.
        Proto::Sctp => None,
    };
    err.is_some_and(|e| e.kind() == std::io::ErrorKind::AddrInUse)
}

/// What a run publishes: the firewall's forwards and, for `inspect`, the
/// host sides chosen (Docker's `NetworkSettings.Ports`).
#[derive(Debug, Default)]
pub struct Resolved {
    /// What the firewall is told.
    pub forwards: Vec<Forward>,
    /// By container port.
    pub actual: PortMap,
}

/// Chooses the host ports of `map` for a container at `addr`. Ports in
/// `avoid` (ones another container took meanwhile) are not chosen again;
/// `seed` varies where the search for a free port starts.
pub fn resolve(
    map: &PortMap,
    addr: Ipv4Addr,
    addr6: Option<std::net::Ipv6Addr>,
    avoid: &BTreeSet<(Proto, u16)>,
    seed: u64,
) -> Result<Resolved, EngineError> {
    let (lo, hi) = ephemeral_range();
    let mut out = Resolved::default();
    let mut chosen: BTreeSet<(Proto, u16)> = BTreeSet::new();
    let mut next = seed;
    for (key, bindings) in map {
        let (port, proto) = key
            .split_once('/')
            .and_then(|(p, pr)| Some((p.parse::<u16>().ok()?, pr.parse::<Proto>().ok()?)))
            .ok_or_else(|| invalid("--publish", key, "not PORT/PROTOCOL"))?;
        for b in bindings {
            let host_ip = if b.host_ip.is_empty() {
                None
            } else {
                Some(
                    b.host_ip
                        .parse::<IpAddr>()
                        .map_err(|_| invalid("--publish", &b.host_ip, "not an IP address"))?,
                )
            };
            if matches!(host_ip, Some(IpAddr::V6(_))) && addr6.is_none() {
                return Err(invalid(
                    "--publish",
                    &b.host_ip,
                    "the container has no IPv6 address: a port on an IPv6 host address needs a dual-stack network (network create --ipv6)",
                ));
            }
            let probe_ip = host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            if let Some(ip) = host_ip {
                let bound = std::net::UdpSocket::bind((ip, 0));
                if bound.is_err_and(|e| e.kind() == std::io::ErrorKind::AddrNotAvailable) {
                    return Err(invalid(
                        "--publish",
                        &b.host_ip,
                        "not an address of the host",
                    ));
                }
            }
            let free = |p: u16, chosen: &BTreeSet<(Proto, u16)>| {
                !avoid.contains(&(proto, p))
                    && !chosen.contains(&(proto, p))
                    && !host_holds(proto, probe_ip, p)
            };
            let host_port =
                match port_range("--publish", &b.host_port, &b.host_port) {
                    // One port asked for: it, or a clear error.
                    Ok((a, b2)) if a == b2 => {
                        if host_holds(proto, probe_ip, a) {
                            return Err(EngineError::PortInUse {
                                port: format!("{probe_ip}:{a}/{}", proto.as_str()),
                            });
                        }
                        a
                    }
                    // A range: the first free port of it.
                    Ok((a, b2)) => (a..=b2).find(|p| free(*p, &chosen)).ok_or_else(|| {
                        EngineError::PortInUse {
                            port: format!("{probe_ip}:{a}-{b2}/{}", proto.as_str()),
                        }
                    })?,
                    // None: a free port of the ephemeral range.
                    Err(_) if b.host_port.is_empty() => {
                        let span = u64::from(hi - lo) + 1;
                        let found = (0..span)
                            .map(|i| lo + ((next + i) % span) as u16)
                            .find(|p| free(*p, &chosen))
                            .ok_or_else(|| EngineError::PortInUse {
                                port: format!("{probe_ip}:{lo}-{hi}/{}", proto.as_str()),
                            })?;
                        next = u64::from(found - lo) + 1;
                        found
                    }
                    Err(e) => return Err(e),
                };
            chosen.insert((proto, host_port));
            out.forwards.push(Forward {
                proto,
                host_ip,
                host_port,
                addr,
                port,
                addr6,
            });
            out.actual
                .entry(key.clone())
                .or_default()
                .push(HostBinding {
                    host_ip: probe_ip.to_string(),
                    host_port: host_port.to_string(),
                });
        }
    }
    Ok(out)
}

/// `docker ps`'s PORTS text: `0.0.0.0:8080->80/tcp, 53/udp`.
pub fn ports_text(actual: &PortMap, exposed: &BTreeSet<String>) -> String {
    let mut parts = vec![];
    for (key, bindings) in actual {
        for b in bindings {
            if b.host_ip.contains(':') {
                parts.push(format!("[{}]:{}->{key}", b.host_ip, b.host_port));
            } else {
                parts.push(format!("{}:{}->{key}", b.host_ip, b.host_port));
            }
        }
    }
    for key in exposed {
        if !actual.contains_key(key) {
            parts.push(key.clone());
        }
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(specs: &[&str]) -> Result<PortMap, EngineError> {
        let mut m = PortMap::new();
        parse_publish(
            &specs.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &mut m,
        )?;
        Ok(m)
    }

    fn hb(ip: &str, port: &str) -> HostBinding {
        HostBinding {
            host_ip: ip.into(),
            host_port: port.into(),
        }
    }

    #[test]
    fn docker_forms_are_parsed() {
        let m = parse(&[
            "8080:80",
            "127.0.0.1:5353:53/udp",
            "127.0.0.1::9000",
            "7000",
            "8000-8001:90-91/tcp",
            "6000-6010:22",
        ])
        .unwrap();
        assert_eq!(m["80/tcp"], vec![hb("", "8080")]);
        assert_eq!(m["53/udp"], vec![hb("127.0.0.1", "5353")]);
        assert_eq!(m["9000/tcp"], vec![hb("127.0.0.1", "")]);
        assert_eq!(m["7000/tcp"], vec![hb("", "")]);
        assert_eq!(m["90/tcp"], vec![hb("", "8000")]);
        assert_eq!(m["91/tcp"], vec![hb("", "8001")]);
        assert_eq!(m["22/tcp"], vec![hb("", "6000-6010")]);
        let m = parse(&["[fd00::1]:8080:80", "[fd00::2]::53/udp"]).unwrap();
        assert_eq!(m["80/tcp"], vec![hb("fd00::1", "8080")]);
        assert_eq!(m["53/udp"], vec![hb("fd00::2", "")]);
    }

    #[test]
    fn bad_specs_are_refused_by_name() {
        for (spec, says) in [
            ("80/icmp", "unknown protocol"),
            ("0:80", "not a port"),
            ("x:80", "not a port"),
            ("80:70000", "not a port"),
            ("300.1.1.1:80:80", "not an IPv4 address"),
            ("8000-8002:90-91", "differ in length"),
            ("90-80", "backwards"),
            ("[::1]:80:80", "::1"),
            ("[fd00::1:80:80", "[ADDR]:HOST_PORT:PORT"),
            ("[fd00::zz]:80:80", "not an IPv6 address"),
            ("[fd00::1]:80", "HOST_PORT:PORT"),
            ("fd00::1:80:80", "in brackets"),
        ] {
            let e = parse(&[spec]).unwrap_err().to_string();
            assert!(e.contains(spec) && e.contains(says), "{spec}: {e}");
        }
    }

    #[test]
    fn expose_and_publish_all() {
        let exposed = parse_expose(&["80".into(), "53/udp".into(), "9000-9001".into()]).unwrap();
        let mut m = parse(&["8080:80"]).unwrap();
        publish_all(&mut m, exposed.clone());
        assert_eq!(
            m["80/tcp"],
            vec![hb("", "8080")],
            "a port given keeps its binding"
        );
        assert_eq!(m["53/udp"], vec![hb("", "")]);
        assert_eq!(m["9001/tcp"], vec![hb("", "")]);
        assert!(parse_expose(&["80/icmp".into()]).is_err());
    }

    #[test]
    fn free_ports_are_chosen_distinct_and_avoiding() {
        let m = parse(&["80", "81", "127.0.0.1:6000-6002:22"]).unwrap();
        let mut avoid = BTreeSet::new();
        avoid.insert((Proto::Tcp, 6000));
        let r = resolve(&m, Ipv4Addr::new(10, 0, 0, 2), None, &avoid, 7).unwrap();
        assert_eq!(r.forwards.len(), 3);
        let ports: BTreeSet<u16> = r.forwards.iter().map(|f| f.host_port).collect();
        assert_eq!(ports.len(), 3, "{:?}", r.forwards);
        let ssh = r.forwards.iter().find(|f| f.port == 22).unwrap();
        assert!((6001..=6002).contains(&ssh.host_port), "{ssh:?}");
        assert_eq!(ssh.host_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let (lo, hi) = ephemeral_range();
        for f in r.forwards.iter().filter(|f| f.port != 22) {
            assert!((lo..=hi).contains(&f.host_port), "{f:?}");
        }
        assert_eq!(r.actual["80/tcp"][0].host_ip, "0.0.0.0");
    }

    #[test]
    fn an_ipv6_host_address_needs_an_ipv6_container() {
        let m = parse(&["[fd00::1]:8080:80"]).unwrap();
        let e = resolve(&m, Ipv4Addr::new(10, 0, 0, 2), None, &BTreeSet::new(), 1).unwrap_err();
        assert!(e.to_string().contains("dual-stack"), "{e}");
    }

    #[test]
    fn ps_text() {
        let mut actual = PortMap::new();
        actual.insert("80/tcp".into(), vec![hb("0.0.0.0", "8080")]);
        let exposed: BTreeSet<String> = ["80/tcp".to_string(), "53/udp".to_string()].into();
        assert_eq!(
            ports_text(&actual, &exposed),
            "0.0.0.0:8080->80/tcp, 53/udp"
        );
        actual.insert("80/tcp".into(), vec![hb("fd00::1", "8080")]);
        assert_eq!(
            ports_text(&actual, &BTreeSet::new()),
            "[fd00::1]:8080->80/tcp"
        );
    }
}
