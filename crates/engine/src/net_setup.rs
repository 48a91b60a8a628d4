//! A container's network while it runs. When it is made on a network,
//! it gets its address lease (kept until it is removed, so its address
//! stays across restarts) and its spec joins a network namespace pinned
//! at `<root>/netns/<id>`. Before each run the engine makes that
//! namespace and puts it on the network's bridge (a veth pair, the
//! container's end `eth0` with its address and, unless the network is
//! internal, a default route through the gateway); when the run ends, the
//! namespace and the veth pair go. The runtime only joins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use network::firewall::{self, NetRules};

use crate::error::EngineError;
use crate::run::Engine;
use crate::store::Store;

/// Where a container is on one network, as recorded with it (and shown
/// by `inspect` under NetworkSettings.Networks).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Attachment {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Its address.
    #[serde(rename = "IPAddress")]
    pub ip: String,
    /// The subnet's prefix length.
    #[serde(rename = "IPPrefixLen")]
    pub prefix: u8,
    /// The gateway.
    #[serde(rename = "Gateway")]
    pub gateway: String,
    /// Its IPv6 address, on a dual-stack network ("" otherwise).
    #[serde(rename = "GlobalIPv6Address", default)]
    pub ip6: String,
    /// The IPv6 subnet's prefix length (0 without one).
    #[serde(rename = "GlobalIPv6PrefixLen", default)]
    pub prefix6: u8,
    /// The IPv6 gateway ("" without one).
    #[serde(rename = "IPv6Gateway", default)]
    pub gateway6: String,
    /// `--mac-address` ("": the kernel's choice).
    #[serde(rename = "MacAddress", default)]
    pub mac: String,
    /// `--network-alias`es: more names it answers to on the network.
    #[serde(rename = "Aliases", default)]
    pub aliases: Vec<String>,
    /// The addresses asked for (`--ip`, `--ip6`), as Docker's `IPAMConfig`.
    #[serde(
        rename = "IPAMConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipam_config: Option<IpamConfig>,
}

/// The addresses a container asked for on a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfig {
    /// `--ip`.
    #[serde(
        rename = "IPv4Address",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv4: String,
    /// `--ip6`.
    #[serde(
        rename = "IPv6Address",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv6: String,
}

impl Attachment {
    /// The addresses asked for, as CNI's `ips` capability takes them.
    pub fn static_ips(&self) -> Vec<String> {
        self.ipam_config
            .iter()
            .flat_map(|c| [c.ipv4.clone(), c.ipv6.clone()])
            .filter(|a| !a.is_empty())
            .collect()
    }
}

/// The pinned network namespace of container `id`.
pub(crate) fn netns_path(root: &Path, id: &str) -> PathBuf {
    root.join("netns").join(id)
}

/// Makes `spec`'s network namespace the one pinned for container `id`.
pub(crate) fn join_pinned(
    spec: &mut oci_spec::runtime::Spec,
    root: &Path,
    id: &str,
) -> Result<(), EngineError> {
    use oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType};
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    namespaces.retain(|n| n.typ() != LinuxNamespaceType::Network);
    namespaces.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path(netns_path(root, id))
            .build()
            .map_err(|e| EngineError::Spec(e.to_string()))?,
    );
    linux.set_namespaces(Some(namespaces));
    spec.set_linux(Some(linux));
    Ok(())
}

/// The host's end of container `id`'s veth pair for its `eth<slot>` (15
/// bytes: the kernel's limit).
fn host_veth(id: &str, slot: u8) -> String {
    format!("vb{}{}", &id[..12.min(id.len())], slot % 10)
}

fn net_err(id: &str) -> impl Fn(network::NetworkError) -> EngineError + '_ {
    move |err| EngineError::Network {
        id: id.to_string(),
        err,
    }
}

impl Engine {
    /// Leases container `id` an address on network `key` (`ip` if given)
    /// and records where it is. Returns the attachments by network name.
    pub(crate) fn lease_network(
        &self,
        db: &Store,
        id: &str,
        key: &str,
        ip: Option<&str>,
        ip6: Option<&str>,
        aliases: &[String],
    ) -> Result<BTreeMap<String, Attachment>, EngineError> {
        let net = if matches!(key, crate::networks::DEFAULT_NETWORK | "default") {
            self.default_network(db)?
        } else {
            db.network(key)?
        };
        let wanted = ip
            .map(|v| {
                v.parse().map_err(|_| EngineError::InvalidOption {
                    option: "--ip",
                    value: v.to_string(),
                    reason: "not an IPv4 address".into(),
                })
            })
            .transpose()?;
        if !aliases.is_empty() && !crate::dns::has_dns(&net) {
            return Err(EngineError::InvalidOption {
                option: "--network-alias",
                value: aliases.join(","),
                reason: format!(
                    "network {} has no DNS server (the default bridge and CNI networks have none), so no aliases",
                    net.name
                ),
            });
        }
        if net.is_cni() {
            // A static address goes to the plugins that take one (`ips`).
            if let Some((option, v)) = ip.map(|v| ("--ip", v)).or(ip6.map(|v| ("--ip6", v))) {
                if !net.cni_list()?.has_capability("ips") {
                    return Err(EngineError::InvalidOption {
                        option,
                        value: v.to_string(),
                        reason: format!(
                            "no plugin of CNI network {}'s configuration has the \"ips\" capability, which a static address needs",
                            net.name
                        ),
                    });
                }
            }
        }
        for a in aliases {
            crate::names::check(a).map_err(|_| EngineError::InvalidOption {
                option: "--network-alias",
                value: a.clone(),
                reason: "use letters, digits, '_', '.' and '-'".into(),
            })?;
        }
        let wanted6 = ip6
            .map(|v| {
                v.parse().map_err(|_| EngineError::InvalidOption {
                    option: "--ip6",
                    value: v.to_string(),
                    reason: "not an IPv6 address".into(),
                })
            })
            .transpose()?;
        let ipam_config = (wanted.is_some() || wanted6.is_some()).then(|| IpamConfig {
            ipv4: wanted
                .map(|a: std::net::Ipv4Addr| a.to_string())
                .unwrap_or_default(),
            ipv6: wanted6
                .map(|a: std::net::Ipv6Addr| a.to_string())
                .unwrap_or_default(),
        });
        if net.is_cni() {
            db.lease(&net, id, None, None)?;
            // Its addresses are known once its plugins have run.
            let mut out = BTreeMap::new();
            out.insert(
                net.name.clone(),
                Attachment {
                    network_id: net.id.clone(),
                    aliases: aliases.to_vec(),
                    ipam_config,
                    ..Attachment::default()
                },
            );
            return Ok(out);
        }
        let (addr, addr6, _slot) = db.lease(&net, id, wanted, wanted6)?;
        let v6 = net.subnet6()?;
        let mut out = BTreeMap::new();
        out.insert(
            net.name.clone(),
            Attachment {
                network_id: net.id.clone(),
                ip: addr.to_string(),
                prefix: net.subnet()?.prefix,
                gateway: net.gateway.clone(),
                ip6: addr6.map(|a| a.to_string()).unwrap_or_default(),
                prefix6: v6.map(|(s, _)| s.prefix).unwrap_or(0),
                gateway6: v6.map(|(_, g)| g.to_string()).unwrap_or_default(),
                mac: String::new(),
                aliases: aliases.to_vec(),
                ipam_config,
            },
        );
        Ok(out)
    }
}

/// The marker of a container whose ports are published: what tells
/// [`down`] to take them off the firewall.
fn published_marker(root: &Path, id: &str) -> PathBuf {
    root.join("published").join(id)
}

/// The firewall's key for container `id`.
fn firewall_key(id: &str) -> &str {
    &id[..12.min(id.len())]
}

/// Sets container `id`'s network up for a run: its namespace, pinned, its
/// place on each network it has a lease on, and its published ports.
/// Nothing (false) for a container on no network. On failure, what was
/// made is taken down.
pub(crate) fn up(engine: &Engine, db: &Store, id: &str) -> Result<bool, EngineError> {
    let root = &engine.root;
    let endpoints = db.endpoints(None, Some(id))?;
    if endpoints.is_empty() {
        return Ok(false);
    }
    down(root, id)?;
    let dir = root.join("netns");
    berth_fs::private_dir(&dir).map_err(|e| EngineError::Io {
        op: "create",
        path: dir.clone(),
        err: std::io::Error::other(e.to_string()),
    })?;
    let path = netns_path(root, id);
    network::netns::create(&path).map_err(net_err(id))?;
    let made = (|| {
        let settings = crate::restart::ContainerSettings::parse(&db.find(id)?.config);
        let mut nets = vec![];
        let mut ports_by_cni = false;
        for (n, ep) in endpoints.iter().enumerate() {
            let net = db.network(&ep.network)?;
            let mac = settings.networks.get(&net.name).map(|a| a.mac.as_str());
            let ips = settings
                .networks
                .get(&net.name)
                .map(Attachment::static_ips)
                .unwrap_or_default();
            if net.is_cni() {
                // Ports are published on the first network: on a CNI
                // one, by its plugins (portmap).
                let mut forwards = vec![];
                if n == 0 && !settings.port_bindings.is_empty() {
                    let r = crate::ports::resolve(
                        &settings.port_bindings,
                        std::net::Ipv4Addr::UNSPECIFIED,
                        None,
                        &Default::default(),
                        0,
                    )?;
                    forwards = r.forwards;
                    db.update_settings(id, |s| s.ports = r.actual)?;
                    ports_by_cni = true;
                }
                let asked = crate::cni::Asked {
                    mac,
                    ips: &ips,
                    ports: &forwards,
                };
                crate::cni::attach(engine, db, id, ep, &net, &asked)?;
                continue;
            }
            let mac = mac.and_then(|m| network::ipam::parse_mac(m).ok());
            // The first network (the lowest slot) has the default route.
            attach_endpoint(engine, id, ep, &net, n == 0, mac)?;
            nets.push(net);
        }
        if !nets.is_empty() {
            let rules = nets
                .iter()
                .map(|n| n.rules())
                .collect::<Result<Vec<NetRules>, EngineError>>()?;
            firewall::add_networks(&rules).map_err(net_err(id))?;
        }
        if !settings.port_bindings.is_empty() && !ports_by_cni {
            publish(root, db, id, &settings.port_bindings, &endpoints[0])?;
        }
        Ok(true)
    })();
    if made.is_err() {
        let _ = down(root, id);
    }
    made
}

/// Puts container `id` (its namespace pinned) on network `net` as
/// endpoint `ep`: the bridge, the veth pair `eth<slot>` with its address
/// (and the default route when `route` and the network has a way out),
/// and the network's DNS server.
pub(crate) fn attach_endpoint(
    engine: &Engine,
    id: &str,
    ep: &crate::networks::Endpoint,
    net: &crate::networks::Network,
    route: bool,
    mac: Option<[u8; 6]>,
) -> Result<(), EngineError> {
    let subnet = net.subnet()?;
    let gateway = net.gateway_addr()?;
    let v6 = net.subnet6()?;
    network::bridge::ensure(&network::bridge::Bridge {
        name: &net.bridge,
        gateway,
        prefix: subnet.prefix,
        mtu: net.mtu(),
        gateway6: v6.map(|(s, g)| (g, s.prefix)),
    })
    .map_err(net_err(id))?;
    let path = netns_path(&engine.root, id);
    let veth = host_veth(id, ep.slot);
    let ifname = format!("eth{}", ep.slot);
    network::bridge::attach(
        &net.bridge,
        &network::bridge::Endpoint {
            netns: &path,
            host_veth: &veth,
            ifname: &ifname,
            addr: ep.ip,
            prefix: subnet.prefix,
            gateway: (route && !net.internal).then_some(gateway),
            mtu: net.mtu(),
            addr6: ep.ip6.zip(v6).map(|(a, (s, _))| (a, s.prefix)),
            mac,
            gateway6: v6.filter(|_| route && !net.internal).map(|(_, g)| g),
        },
    )
    .map_err(net_err(id))?;
    // Its DNS server serves the bridge's address.
    if crate::dns::has_dns(net) {
        crate::dns::ensure(engine, net)?;
    }
    Ok(())
}

/// Takes container `id`'s interface `eth<slot>` off its network (a CNI
/// one by its plugins; else the host's end of the pair goes, and the
/// container's with it).
pub(crate) fn detach_endpoint(root: &Path, id: &str, slot: u8) -> Result<(), EngineError> {
    if crate::cni::detach(root, id, slot)? {
        return Ok(());
    }
    network::bridge::remove_link(&host_veth(id, slot)).map_err(net_err(id))
}

/// Publishes the ports of container `id` at `addr`: host ports chosen
/// (again, when another container took a chosen one meanwhile), the
/// firewall told, and the choice recorded for `inspect`, `ps` and `port`.
fn publish(
    root: &Path,
    db: &Store,
    id: &str,
    map: &crate::ports::PortMap,
    ep: &crate::networks::Endpoint,
) -> Result<(), EngineError> {
    let marker = published_marker(root, id);
    let dir = root.join("published");
    berth_fs::private_dir(&dir).map_err(|e| EngineError::Io {
        op: "create",
        path: dir.clone(),
        err: std::io::Error::other(e.to_string()),
    })?;
    // Marked first: a crash after the firewall is told leaves a mark
    // that `down` and `system check` follow.
    std::fs::write(&marker, b"").map_err(|err| EngineError::Io {
        op: "create",
        path: marker.clone(),
        err,
    })?;
    let seed = u64::from_le_bytes(
        crate::run::new_id()?.as_bytes()[..8]
            .try_into()
            .unwrap_or_default(),
    );
    // One container publishes at a time: the firewall checks what others
    // hold, then writes (not one step).
    let lock_path = root.join("publish.lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|err| EngineError::Io {
            op: "open",
            path: lock_path.clone(),
            err,
        })?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive).map_err(
        |(_, e)| EngineError::Io {
            op: "lock",
            path: lock_path.clone(),
            err: e.into(),
        },
    )?;
    let mut avoid = std::collections::BTreeSet::new();
    loop {
        let r = crate::ports::resolve(map, ep.ip, ep.ip6, &avoid, seed)?;
        match firewall::publish(firewall_key(id), &[], &r.forwards) {
            Ok(()) => {
                db.update_settings(id, |s| s.ports = r.actual)?;
                return Ok(());
            }
            Err(network::NetworkError::PortTaken { proto, port })
                if avoid.len() < 64
                    && !crate::ports::asked_for(
                        map,
                        proto.parse().unwrap_or(network::firewall::Proto::Tcp),
                        port,
                    ) =>
            {
                avoid.insert((proto.parse().unwrap_or(network::firewall::Proto::Tcp), port));
            }
            Err(e) => return Err(net_err(id)(e)),
        }
    }
}

/// Takes container `id`'s network down after a run: its published ports,
/// its CNI interfaces (by their plugins), its veth pairs and its pinned
/// namespace. Nothing to do for one that has none.
pub(crate) fn down(root: &Path, id: &str) -> Result<(), EngineError> {
    crate::cni::detach_all(root, id)?;
    let marker = published_marker(root, id);
    if marker.exists() {
        firewall::unpublish(firewall_key(id)).map_err(net_err(id))?;
        std::fs::remove_file(&marker).map_err(|err| EngineError::Io {
            op: "remove",
            path: marker.clone(),
            err,
        })?;
    }
    let path = netns_path(root, id);
    if !path.exists() {
        return Ok(());
    }
    let veths: Vec<String> = (0..crate::networks::MAX_SLOTS)
        .map(|slot| host_veth(id, slot))
        .collect();
    let names: Vec<&str> = veths.iter().map(String::as_str).collect();
    network::bridge::remove_links(&names).map_err(net_err(id))?;
    network::netns::remove(&path).map_err(net_err(id))
}
