//! The name files berth writes for a container and binds in: `/etc/hosts`
//! (localhost, the container's own name, `--add-host`s) and
//! `/etc/resolv.conf` (`--dns`, `--dns-search`, `--dns-option`, else the
//! host's own without loopback servers, which a container cannot reach,
//! as Docker does).

use std::net::IpAddr;

use crate::error::{invalid, EngineError};
use crate::spec::RunOptions;

/// Where a container is on its (first) network: its address and the
/// gateway, for `/etc/hosts`, `host-gateway` and `/etc/resolv.conf`.
#[derive(Debug, Clone, Copy)]
pub struct Place {
    /// The container's address.
    pub ip: IpAddr,
    /// The network's gateway (the host's address on the bridge).
    pub gateway: IpAddr,
    /// Whether the network has berth's DNS server (on the gateway).
    pub dns: bool,
}

/// `--add-host NAME:IP` (also `NAME=IP`, as newer Docker takes it);
/// `host-gateway` is the gateway of the container's network.
fn parse_add_host(v: &str, place: Option<Place>) -> Result<(String, IpAddr), EngineError> {
    let (name, ip) = v
        .split_once('=')
        .or_else(|| v.split_once(':'))
        .ok_or_else(|| invalid("--add-host", v, "expected NAME:IP"))?;
    if name.is_empty() || name.chars().any(|c| c.is_whitespace()) {
        return Err(invalid("--add-host", v, "the name is empty or has blanks"));
    }
    if ip == "host-gateway" {
        return match place {
            Some(p) => Ok((name.to_string(), p.gateway)),
            None => Err(invalid(
                "--add-host",
                v,
                "host-gateway needs a network (--network NAME or bridge)",
            )),
        };
    }
    let ip: IpAddr = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| invalid("--add-host", v, format!("{ip:?} is not an IP address")))?;
    Ok((name.to_string(), ip))
}

/// Checks `--add-host`, `--dns`, `--dns-search` and `--dns-option`.
pub fn check(opts: &RunOptions) -> Result<(), EngineError> {
    let on_a_network = opts
        .namespaces
        .network
        .as_deref()
        .is_some_and(crate::networks::is_user_network)
        || !opts.publish.is_empty()
        || opts.publish_all;
    let any_place = Place {
        ip: IpAddr::from([0, 0, 0, 0]),
        gateway: IpAddr::from([0, 0, 0, 0]),
        dns: false,
    };
    for h in &opts.add_hosts {
        parse_add_host(h, on_a_network.then_some(any_place))?;
    }
    for d in &opts.dns {
        d.parse::<IpAddr>()
            .map_err(|_| invalid("--dns", d, "not an IP address"))?;
    }
    for s in opts.dns_search.iter().chain(&opts.dns_options) {
        if s.is_empty() || s.chars().any(|c| c.is_whitespace()) {
            return Err(invalid(
                "--dns-search/--dns-option",
                s,
                "empty or with blanks",
            ));
        }
    }
    Ok(())
}

/// `/etc/hosts` for a container named `hostname`.
pub fn hosts_file(
    hostname: &str,
    add_hosts: &[String],
    place: Option<Place>,
) -> Result<String, EngineError> {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for h in add_hosts {
        let (name, ip) = parse_add_host(h, place)?;
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    // On a network, its own name is its address there, as Docker writes it.
    let own = place.map_or(IpAddr::from([127, 0, 0, 1]), |p| p.ip);
    s.push_str(&format!("{own}\t{hostname}\n"));
    Ok(s)
}

fn is_loopback(server: &str) -> bool {
    server.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `/etc/resolv.conf`: the options given, the rest from `host` (the
/// host's resolv.conf) without loopback servers; Google's public servers
/// when none is left, as Docker.
///
/// On a network with berth's DNS server, the server (on the gateway) is
/// the only nameserver unless `--dns` is given: it answers the network's
/// names and forwards the rest to the host's resolvers.
pub fn resolv_conf(opts: &RunOptions, host: &str, place: Option<Place>) -> String {
    let mut servers: Vec<String> = opts.dns.clone();
    if let Some(p) = place.filter(|p| p.dns && opts.dns.is_empty()) {
        servers.push(p.gateway.to_string());
    }
    let own_server = !servers.is_empty() && opts.dns.is_empty();
    let mut search: Vec<String> = opts.dns_search.clone();
    let mut options: Vec<String> = opts.dns_options.clone();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") if opts.dns.is_empty() && !own_server => {
                if let Some(s) = words.next().filter(|s| !is_loopback(s)) {
                    servers.push(s.to_string());
                }
            }
            Some("search" | "domain") if opts.dns_search.is_empty() => {
                search.extend(words.map(str::to_string));
            }
            Some("options") if opts.dns_options.is_empty() => {
                options.extend(words.map(str::to_string));
            }
            _ => {}
        }
    }
    if servers.is_empty() {
        servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    }
    let mut s = String::new();
    for server in &servers {
        s.push_str(&format!("nameserver {server}\n"));
    }
    if !search.is_empty() && search != ["."] {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        s.push_str(&format!("options {}\n", options.join(" ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_resolv_conf_as_docker_writes_them() {
        let h = hosts_file("c1", &["db:10.0.0.5".into(), "v6=[fd00::1]".into()], None).unwrap();
        assert!(
            h.contains("10.0.0.5\tdb\n") && h.contains("fd00::1\tv6\n"),
            "{h}"
        );
        assert!(h.ends_with("127.0.0.1\tc1\n"));
        assert!(hosts_file("c1", &["db:nope".into()], None).is_err());
        let e = hosts_file("c1", &["gw:host-gateway".into()], None).unwrap_err();
        assert!(e.to_string().contains("needs a network"), "{e}");
        let place = Place {
            ip: "10.9.0.2".parse().unwrap(),
            gateway: "10.9.0.1".parse().unwrap(),
            dns: true,
        };
        let h = hosts_file("c1", &["gw:host-gateway".into()], Some(place)).unwrap();
        assert!(
            h.contains("10.9.0.1\tgw\n") && h.ends_with("10.9.0.2\tc1\n"),
            "{h}"
        );
        let r = resolv_conf(
            &RunOptions::default(),
            "nameserver 10.0.0.53\nsearch corp\n",
            Some(place),
        );
        assert_eq!(r, "nameserver 10.9.0.1\nsearch corp\n");

        let host =
            "nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch example.org\noptions edns0\n";
        let r = resolv_conf(&RunOptions::default(), host, None);
        assert_eq!(
            r,
            "nameserver 192.0.2.1\nsearch example.org\noptions edns0\n"
        );
        let r = resolv_conf(&RunOptions::default(), "nameserver 127.0.0.1\n", None);
        assert_eq!(r, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        let given = RunOptions {
            dns: vec!["1.1.1.1".into()],
            dns_search: vec!["corp".into()],
            dns_options: vec!["ndots:2".into()],
            ..Default::default()
        };
        assert_eq!(
            resolv_conf(&given, host, None),
            "nameserver 1.1.1.1\nsearch corp\noptions ndots:2\n"
        );
        assert!(check(&RunOptions {
            dns: vec!["x".into()],
            ..Default::default()
        })
        .is_err());
    }
}
