//! Networks (`network create|ls|inspect|rm|prune`) and the default one,
//! `bridge`, kept in the engine's database (the leases are
//! `network_store`'s). The bridge driver, IPv4 or dual-stack: a network is
//! a Linux bridge (`br-<12 hex of its id>`, `berth0` for the default one,
//! or `-o com.docker.network.bridge.name`) with the gateways' addresses,
//! made when the first container needs it and removed with the network,
//! its elements in berth's firewall with it (docs/network.md).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use network::ipam::Subnet;
use network::ipam6::{Ipam6Error, Subnet6};
use rusqlite::params;

use crate::error::{invalid, EngineError};
use crate::run::Engine;
use crate::store::{sql, Store};

/// One network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// 64 hex digits.
    pub id: String,
    /// Its unique name.
    pub name: String,
    /// `bridge`.
    pub driver: String,
    /// Its IPv4 subnet.
    pub subnet: String,
    /// The gateway (the bridge's address).
    pub gateway: String,
    /// Its IPv6 subnet ("" unless dual-stack, `--ipv6`).
    pub subnet6: String,
    /// Its IPv6 gateway ("" unless dual-stack).
    pub gateway6: String,
    /// `--ip-range`: where addresses are chosen from ("" for the whole subnet).
    pub ip_range: String,
    /// The bridge device.
    pub bridge: String,
    /// `--internal`: no default route for its containers.
    pub internal: bool,
    /// `--label`s.
    pub labels: BTreeMap<String, String>,
    /// `-o` options.
    pub options: BTreeMap<String, String>,
    /// Creation time (Unix seconds).
    pub created: i64,
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NetworkOptions {
    /// `--driver` (bridge only).
    pub driver: Option<String>,
    /// `--subnet`s: at most one IPv4 and one IPv6.
    pub subnets: Vec<String>,
    /// `--gateway`s: at most one IPv4 and one IPv6.
    pub gateways: Vec<String>,
    /// `--ipv6`: dual-stack (a unique local /64 unless a subnet is given).
    pub ipv6: bool,
    /// `--ip-range`: an IPv4 part of the subnet to choose addresses from.
    pub ip_range: Option<String>,
    /// `--internal`.
    pub internal: bool,
    /// `--label KEY=VALUE`.
    pub labels: Vec<String>,
    /// `-o KEY=VALUE`.
    pub options: Vec<String>,
}

/// A container's place on a network: its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The network's id.
    pub network: String,
    /// The container's id.
    pub container: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its IPv6 address, on a dual-stack network.
    pub ip6: Option<std::net::Ipv6Addr>,
    /// Its interface in the container: `eth<slot>` (0: the first network,
    /// with the default route).
    pub slot: u8,
}

/// A container has at most this many networks (its interfaces eth0 to eth9).
pub const MAX_SLOTS: u8 = 10;

pub(crate) const BRIDGE_NAME: &str = "com.docker.network.bridge.name";
const DEFAULT_BRIDGE_OPTION: &str = "com.docker.network.bridge.default_bridge";
/// The default network's name.
pub const DEFAULT_NETWORK: &str = "bridge";
/// The default network's bridge device.
pub const DEFAULT_BRIDGE: &str = "berth0";
const MTU: &str = "com.docker.network.driver.mtu";

impl Network {
    /// The parsed subnet.
    pub fn subnet(&self) -> Result<Subnet, EngineError> {
        self.subnet
            .parse()
            .map_err(|e: network::ipam::IpamError| EngineError::Address {
                network: self.name.clone(),
                reason: e.to_string(),
            })
    }

    /// The gateway address.
    pub fn gateway_addr(&self) -> Result<Ipv4Addr, EngineError> {
        self.gateway.parse().map_err(|_| EngineError::Address {
            network: self.name.clone(),
            reason: format!("gateway {:?} is not an address", self.gateway),
        })
    }

    /// The parsed IPv6 subnet and gateway, on a dual-stack network.
    pub fn subnet6(&self) -> Result<Option<(Subnet6, Ipv6Addr)>, EngineError> {
        if self.subnet6.is_empty() {
            return Ok(None);
        }
        let bad = |reason: String| EngineError::Address {
            network: self.name.clone(),
            reason,
        };
        let s: Subnet6 = self
            .subnet6
            .parse()
            .map_err(|e: Ipam6Error| bad(e.to_string()))?;
        let g: Ipv6Addr = self
            .gateway6
            .parse()
            .map_err(|_| bad(format!("gateway {:?} is not an address", self.gateway6)))?;
        Ok(Some((s, g)))
    }

    /// What the firewall knows of it.
    pub fn rules(&self) -> Result<network::firewall::NetRules<'_>, EngineError> {
        Ok(network::firewall::NetRules {
            bridge: &self.bridge,
            subnet: self.subnet()?,
            subnet6: self.subnet6()?.map(|(s, _)| s),
            internal: self.internal,
        })
    }

    /// The MTU option, if given.
    pub fn mtu(&self) -> Option<u32> {
        self.options.get(MTU).and_then(|v| v.parse().ok())
    }
}

/// The IPv4 routes of the caller's network namespace (/proc/net/route),
/// as subnets: what a new network's subnet must not overlap.
fn host_routes() -> Vec<Subnet> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Hexadecimal, in the host's (little-endian) byte order.
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            let prefix = mask.count_ones() as u8;
            // The default route (0/0) overlaps everything: not a conflict.
            (prefix >= 8).then(|| Subnet {
                net: Ipv4Addr::from(dest.to_le_bytes()),
                prefix,
            })
        })
        .collect()
}

impl Engine {
    /// `network create NAME`: checks the options and records the network
    /// (its bridge is made when a container first needs it).
    pub fn network_create(&self, name: &str, o: &NetworkOptions) -> Result<Network, EngineError> {
        let n = self.make_network(name, o)?;
        let attrs = [("name", n.name.as_str()), ("type", n.driver.as_str())];
        crate::events::record(&self.root, "network", "create", &n.id, &attrs);
        Ok(n)
    }

    fn make_network(&self, name: &str, o: &NetworkOptions) -> Result<Network, EngineError> {
        crate::names::check(name).map_err(|_| {
            invalid(
                "network name",
                name,
                "use letters, digits, '_', '.' and '-', starting with a letter or digit",
            )
        })?;
        if ["bridge", "host", "none", "default"].contains(&name) {
            return Err(invalid("network name", name, "the name is reserved"));
        }
        let driver = o.driver.clone().unwrap_or_else(|| "bridge".into());
        let labels = crate::volumes::key_values("--label", &o.labels)?;
        let options = crate::volumes::key_values("-o", &o.options)?;
        match driver.as_str() {
            "bridge" => {}
            crate::cni::DRIVER => {
                let n = crate::cni::new_network(name, o, labels, options)?;
                let db = Store::open(&self.root)?;
                if db.networks()?.iter().any(|x| x.name == name) {
                    return Err(EngineError::NetworkExists(name.to_string()));
                }
                insert_row(&db, &n)?;
                return Ok(n);
            }
            _ => {
                return Err(invalid(
                    "--driver",
                    &driver,
                    "berth has the bridge and cni drivers",
                ))
            }
        }
        for (k, v) in &options {
            match k.as_str() {
                BRIDGE_NAME => network::bridge::check_name(v)
                    .map_err(|e| invalid("-o", &format!("{k}={v}"), e.to_string()))?,
                MTU => {
                    v.parse::<u32>()
                        .ok()
                        .filter(|m| (68..=65535).contains(m))
                        .ok_or_else(|| {
                            invalid("-o", &format!("{k}={v}"), "the MTU must be 68 to 65535")
                        })?;
                }
                _ => {
                    return Err(invalid(
                        "-o",
                        &format!("{k}={v}"),
                        format!("unknown option (berth takes {BRIDGE_NAME} and {MTU})"),
                    ))
                }
            }
        }
        let db = Store::open(&self.root)?;
        // As Podman: the first free 10.89.N.0/24.
        let candidates = (0..=255u8).map(|n| Subnet {
            net: Ipv4Addr::new(10, 89, n, 0),
            prefix: 24,
        });
        self.insert_network(&db, name, driver, o, labels, options, candidates)
    }

    /// The default network, `bridge` (bridge device `berth0`, the first of
    /// 172.17.0.0/16 … 172.31.0.0/16 that no network or host route
    /// overlaps, as Docker picks): made by the first container that asks
    /// for it, kept after.
    pub(crate) fn default_network(&self, db: &Store) -> Result<Network, EngineError> {
        match db.network(DEFAULT_NETWORK) {
            Err(EngineError::NoSuchNetwork(_)) => {}
            other => return other,
        }
        let candidates = (17..=31u8).map(|n| Subnet {
            net: Ipv4Addr::new(172, n, 0, 0),
            prefix: 16,
        });
        let mut options = BTreeMap::new();
        options.insert(BRIDGE_NAME.to_string(), DEFAULT_BRIDGE.to_string());
        options.insert(DEFAULT_BRIDGE_OPTION.to_string(), "true".to_string());
        match self.insert_network(
            db,
            DEFAULT_NETWORK,
            "bridge".into(),
            &NetworkOptions::default(),
            BTreeMap::new(),
            options,
            candidates,
        ) {
            // Another run made it meanwhile.
            Err(EngineError::NetworkExists(_)) => db.network(DEFAULT_NETWORK),
            other => other,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_network(
        &self,
        db: &Store,
        name: &str,
        driver: String,
        o: &NetworkOptions,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
        mut candidates: impl Iterator<Item = Subnet>,
    ) -> Result<Network, EngineError> {
        let existing = db.networks()?;
        if existing.iter().any(|n| n.name == name) {
            return Err(EngineError::NetworkExists(name.to_string()));
        }
        let taken: Vec<(String, Subnet)> = existing
            .iter()
            .filter_map(|n| Some((format!("network {}", n.name), n.subnet.parse().ok()?)))
            .chain(
                host_routes()
                    .into_iter()
                    .map(|r| (format!("the host's route to {r}"), r)),
            )
            .collect();
        let one = |option: &'static str, list: &[String], v6: bool| {
            let found: Vec<&String> = list.iter().filter(|s| s.contains(':') == v6).collect();
            match found.as_slice() {
                [] => Ok(None),
                [one] => Ok(Some((*one).clone())),
                _ => Err(invalid(
                    option,
                    &list.join(" "),
                    format!("at most one IPv{} value", if v6 { 6 } else { 4 }),
                )),
            }
        };
        let (subnet4, subnet6_given) = (
            one("--subnet", &o.subnets, false)?,
            one("--subnet", &o.subnets, true)?,
        );
        let (gateway4, gateway6_given) = (
            one("--gateway", &o.gateways, false)?,
            one("--gateway", &o.gateways, true)?,
        );
        let subnet = match &subnet4 {
            Some(s) => {
                let subnet: Subnet = s
                    .parse()
                    .map_err(|e: network::ipam::IpamError| invalid("--subnet", s, e.to_string()))?;
                if let Some((what, _)) = taken.iter().find(|(_, t)| t.overlaps(&subnet)) {
                    return Err(EngineError::SubnetOverlap {
                        subnet: subnet.to_string(),
                        other: what.clone(),
                    });
                }
                subnet
            }
            None => candidates
                .find(|c| !taken.iter().any(|(_, t)| t.overlaps(c)))
                .ok_or_else(|| invalid("--subnet", "", "no free subnet is left: give one"))?,
        };
        let gateway = match &gateway4 {
            Some(g) => {
                let ip: Ipv4Addr = g
                    .parse()
                    .map_err(|_| invalid("--gateway", g, "not an IPv4 address"))?;
                if !subnet.contains(ip) || ip == subnet.net || ip == subnet.broadcast() {
                    return Err(invalid(
                        "--gateway",
                        g,
                        format!("not a host address of the subnet {subnet}"),
                    ));
                }
                ip
            }
            None => subnet.default_gateway(),
        };
        let ip_range = match &o.ip_range {
            Some(r) => {
                let range: Subnet = r.parse().map_err(|e: network::ipam::IpamError| {
                    invalid("--ip-range", r, e.to_string())
                })?;
                if !subnet.contains(range.net) || range.prefix < subnet.prefix {
                    return Err(invalid(
                        "--ip-range",
                        r,
                        format!("not a part of the subnet {subnet}"),
                    ));
                }
                range.to_string()
            }
            None => String::new(),
        };
        let id = crate::run::new_id()?;
        // Dual-stack: with --ipv6 or an IPv6 subnet.
        let v6 = if o.ipv6 || subnet6_given.is_some() {
            let s6 = match &subnet6_given {
                Some(s) => {
                    let s6: Subnet6 = s
                        .parse()
                        .map_err(|e: Ipam6Error| invalid("--subnet", s, e.to_string()))?;
                    if let Some(other) = existing.iter().find(|n| {
                        n.subnet6()
                            .ok()
                            .flatten()
                            .is_some_and(|(x, _)| x.overlaps(&s6))
                    }) {
                        return Err(EngineError::SubnetOverlap {
                            subnet: s6.to_string(),
                            other: format!("network {}", other.name),
                        });
                    }
                    s6
                }
                // A unique local /64, its global id from the network's id.
                None => {
                    let b = u64::from_str_radix(&id[..10], 16)
                        .unwrap_or(0)
                        .to_be_bytes();
                    Subnet6::unique_local([b[3], b[4], b[5], b[6], b[7]])
                }
            };
            let g6 = match &gateway6_given {
                Some(g) => {
                    let a: Ipv6Addr = g
                        .parse()
                        .map_err(|_| invalid("--gateway", g, "not an IPv6 address"))?;
                    if !s6.contains(a) || a == s6.net {
                        return Err(invalid(
                            "--gateway",
                            g,
                            format!("not a host address of the subnet {s6}"),
                        ));
                    }
                    a
                }
                None => s6.default_gateway(),
            };
            Some((s6, g6))
        } else {
            if let Some(g) = &gateway6_given {
                return Err(invalid("--gateway", g, "an IPv6 gateway needs --ipv6"));
            }
            None
        };
        let bridge = options
            .get(BRIDGE_NAME)
            .cloned()
            .unwrap_or_else(|| format!("br-{}", &id[..12]));
        if existing.iter().any(|n| n.bridge == bridge) {
            return Err(invalid(
                "-o",
                &format!("{BRIDGE_NAME}={bridge}"),
                "another network has this bridge",
            ));
        }
        let n = Network {
            id,
            name: name.to_string(),
            driver,
            subnet: subnet.to_string(),
            gateway: gateway.to_string(),
            bridge,
            internal: o.internal,
            labels,
            options,
            created: crate::run::now(),
            subnet6: v6.map(|(s, _)| s.to_string()).unwrap_or_default(),
            gateway6: v6.map(|(_, g)| g.to_string()).unwrap_or_default(),
            ip_range,
        };
        insert_row(db, &n)?;
        Ok(n)
    }

    /// `network rm`: refused while a container is on it; its bridge goes.
    pub fn network_remove(&self, key: &str) -> Result<Network, EngineError> {
        let db = Store::open(&self.root)?;
        let n = db.network(key)?;
        if n.name == DEFAULT_NETWORK {
            return Err(invalid(
                "network rm",
                &n.name,
                "bridge is a pre-defined network and cannot be removed",
            ));
        }
        let on = db.endpoints(Some(&n.id), None)?;
        if !on.is_empty() {
            let names = on
                .iter()
                .map(|e| {
                    db.find(&e.container)
                        .map(|r| r.name)
                        .unwrap_or(e.container.clone())
                })
                .collect();
            return Err(EngineError::NetworkInUse {
                name: n.name,
                containers: names,
            });
        }
        let net_err = |err| EngineError::Network {
            id: n.name.clone(),
            err,
        };
        // A CNI network's devices and rules are its plugins'.
        if !n.is_cni() {
            match network::firewall::remove_network(&n.rules()?) {
                // Without nft, there is no table to take the network out of.
                Ok(()) | Err(network::NetworkError::NoNft) => {}
                Err(e) => return Err(net_err(e)),
            }
            crate::dns::stop(&self.root, &n.id);
            network::bridge::remove_link(&n.bridge).map_err(net_err)?;
        }
        let gone = db
            .db
            .execute(
                "DELETE FROM networks WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM endpoints WHERE network = ?1)",
                params![n.id],
            )
            .map_err(sql(&db.path))?;
        if gone == 0 {
            return Err(EngineError::NetworkInUse {
                name: n.name,
                containers: vec![],
            });
        }
        let attrs = [("name", n.name.as_str()), ("type", n.driver.as_str())];
        crate::events::record(&self.root, "network", "destroy", &n.id, &attrs);
        Ok(n)
    }

    /// `network prune`: removes the networks no container is on.
    pub fn network_prune(&self) -> Result<Vec<String>, EngineError> {
        self.network_prune_where(|_| true)
    }

    /// [`Engine::network_prune`] of the networks `wanted` picks.
    pub fn network_prune_where(
        &self,
        wanted: impl Fn(&Network) -> bool,
    ) -> Result<Vec<String>, EngineError> {
        let db = Store::open(&self.root)?;
        let mut gone = vec![];
        for n in db.networks()? {
            if n.name != DEFAULT_NETWORK
                && wanted(&n)
                && db.endpoints(Some(&n.id), None)?.is_empty()
                && self.network_remove(&n.id).is_ok()
            {
                gone.push(n.name);
            }
        }
        Ok(gone)
    }

    /// Every network, by name.
    pub fn networks(&self) -> Result<Vec<Network>, EngineError> {
        Store::open(&self.root)?.networks()
    }
}

/// Records network `n` (its name must be new).
fn insert_row(db: &Store, n: &Network) -> Result<(), EngineError> {
    db.db
        .execute(
            "INSERT INTO networks (id, name, driver, subnet, gateway, bridge, internal, labels, options, created, subnet6, gateway6, ip_range) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    n.id, n.name, n.driver, n.subnet, n.gateway, n.bridge, n.internal,
                    serde_json::to_string(&n.labels).unwrap_or_default(),
                    serde_json::to_string(&n.options).unwrap_or_default(),
                    n.created,
                    n.subnet6,
                    n.gateway6,
                    n.ip_range
                ],
            )
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    EngineError::NetworkExists(n.name.clone())
                }
                e => sql(&db.path)(e),
            })?;
    Ok(())
}

/// Whether `key` asks for a network berth keeps (not none, host or container:NAME).
pub fn is_user_network(key: &str) -> bool {
    !matches!(key, "none" | "host" | "") && !key.starts_with("container:")
}
