//! User-defined networks (`network create|ls|inspect|rm|prune`), kept in
//! the engine's database with each container's address lease
//! (`endpoints`). The bridge driver only, IPv4: a network is a Linux
//! bridge (`br-<12 hex of its id>`, or `-o com.docker.network.bridge.name`)
//! with the gateway's address, made when the first container needs it and
//! removed with the network. Containers on one network reach each other by
//! address; names, published ports, outbound NAT and the default `bridge`
//! network are not there yet (docs/network.md).

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

use network::ipam::Subnet;
use rusqlite::params;

use crate::error::EngineError;
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
    /// `--subnet`.
    pub subnet: Option<String>,
    /// `--gateway`.
    pub gateway: Option<String>,
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
    /// Its interface in the container: `eth<slot>` (0: the first network,
    /// with the default route).
    pub slot: u8,
}

/// A container has at most this many networks (its interfaces eth0 to eth9).
pub const MAX_SLOTS: u8 = 10;

const BRIDGE_NAME: &str = "com.docker.network.bridge.name";
const DEFAULT_BRIDGE_OPTION: &str = "com.docker.network.bridge.default_bridge";
/// The default network's name.
pub const DEFAULT_NETWORK: &str = "bridge";
/// The default network's bridge device.
pub const DEFAULT_BRIDGE: &str = "berth0";
const MTU: &str = "com.docker.network.driver.mtu";

fn invalid(option: &'static str, value: &str, reason: impl Into<String>) -> EngineError {
    EngineError::InvalidOption {
        option,
        value: value.to_string(),
        reason: reason.into(),
    }
}

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

impl Store {
    fn network_row(r: &rusqlite::Row) -> rusqlite::Result<Network> {
        let json = |s: String| serde_json::from_str(&s).unwrap_or_default();
        Ok(Network {
            id: r.get(0)?,
            name: r.get(1)?,
            driver: r.get(2)?,
            subnet: r.get(3)?,
            gateway: r.get(4)?,
            bridge: r.get(5)?,
            internal: r.get(6)?,
            labels: json(r.get(7)?),
            options: json(r.get(8)?),
            created: r.get(9)?,
        })
    }

    /// Every network, by name.
    pub fn networks(&self) -> Result<Vec<Network>, EngineError> {
        let mut st = self
            .db
            .prepare(
                "SELECT id, name, driver, subnet, gateway, bridge, internal, labels, options, created \
                 FROM networks ORDER BY name",
            )
            .map_err(sql(&self.path))?;
        let rows = st
            .query_map([], Self::network_row)
            .map_err(sql(&self.path))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql(&self.path))
    }

    /// The network called `key`, or whose id is or starts with `key`.
    pub fn network(&self, key: &str) -> Result<Network, EngineError> {
        let all = self.networks()?;
        if let Some(n) = all.iter().find(|n| n.name == key || n.id == key) {
            return Ok(n.clone());
        }
        let by_prefix: Vec<&Network> = all
            .iter()
            .filter(|n| !key.is_empty() && n.id.starts_with(key))
            .collect();
        match by_prefix.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(EngineError::NoSuchNetwork(key.to_string())),
            _ => Err(EngineError::Ambiguous(key.to_string())),
        }
    }

    /// The endpoints on network `id`, or of container `container`.
    pub fn endpoints(
        &self,
        network: Option<&str>,
        container: Option<&str>,
    ) -> Result<Vec<Endpoint>, EngineError> {
        let mut st = self
            .db
            .prepare(
                "SELECT network, container, ip, slot FROM endpoints \
                 WHERE (?1 IS NULL OR network = ?1) AND (?2 IS NULL OR container = ?2) \
                 ORDER BY container, slot, network",
            )
            .map_err(sql(&self.path))?;
        let rows = st
            .query_map(params![network, container], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, u8>(3)?,
                ))
            })
            .map_err(sql(&self.path))?;
        let mut out = vec![];
        for row in rows {
            let (network, container, ip, slot) = row.map_err(sql(&self.path))?;
            if let Ok(ip) = ip.parse() {
                out.push(Endpoint {
                    network,
                    container,
                    ip,
                    slot,
                });
            }
        }
        Ok(out)
    }

    /// Leases an address on `net` to `container`: `wanted`, or the lowest
    /// free one. One transaction: the check and the lease cannot be split
    /// by another run.
    pub fn lease(
        &self,
        net: &Network,
        container: &str,
        wanted: Option<Ipv4Addr>,
    ) -> Result<(Ipv4Addr, u8), EngineError> {
        let subnet = net.subnet()?;
        let gateway = net.gateway_addr()?;
        let tx = rusqlite::Transaction::new_unchecked(
            &self.db,
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(sql(&self.path))?;
        let slots: HashSet<u8> = {
            let mut st = tx
                .prepare("SELECT slot FROM endpoints WHERE container = ?1")
                .map_err(sql(&self.path))?;
            let rows = st
                .query_map(params![container], |r| r.get::<_, u8>(0))
                .map_err(sql(&self.path))?;
            rows.filter_map(Result::ok).collect()
        };
        let slot =
            (0..MAX_SLOTS)
                .find(|s| !slots.contains(s))
                .ok_or_else(|| EngineError::Address {
                    network: net.name.clone(),
                    reason: format!("the container is on {MAX_SLOTS} networks already"),
                })?;
        let used: HashSet<Ipv4Addr> = {
            let mut st = tx
                .prepare("SELECT ip FROM endpoints WHERE network = ?1")
                .map_err(sql(&self.path))?;
            let rows = st
                .query_map(params![net.id], |r| r.get::<_, String>(0))
                .map_err(sql(&self.path))?;
            rows.filter_map(|r| r.ok()?.parse().ok()).collect()
        };
        let ip = match wanted {
            Some(ip) => {
                subnet
                    .check_host(ip, gateway)
                    .map_err(|e| EngineError::Address {
                        network: net.name.clone(),
                        reason: e.to_string(),
                    })?;
                if used.contains(&ip) {
                    return Err(EngineError::Address {
                        network: net.name.clone(),
                        reason: format!("address {ip} is already in use"),
                    });
                }
                ip
            }
            None => subnet
                .next_free(gateway, &used)
                .ok_or_else(|| EngineError::Address {
                    network: net.name.clone(),
                    reason: format!("no address is left in {subnet}"),
                })?,
        };
        tx.execute(
            "INSERT INTO endpoints (network, container, ip, slot) VALUES (?1, ?2, ?3, ?4)",
            params![net.id, container, ip.to_string(), slot],
        )
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                EngineError::Address {
                    network: net.name.clone(),
                    reason: "the container is on this network already".into(),
                }
            }
            e => sql(&self.path)(e),
        })?;
        tx.commit().map_err(sql(&self.path))?;
        Ok((ip, slot))
    }

    /// Drops container `container`'s lease on network `network`; whether
    /// it had one.
    pub fn release(&self, network: &str, container: &str) -> Result<bool, EngineError> {
        let n = self
            .db
            .execute(
                "DELETE FROM endpoints WHERE network = ?1 AND container = ?2",
                params![network, container],
            )
            .map_err(sql(&self.path))?;
        Ok(n > 0)
    }
}

impl Engine {
    /// `network create NAME`: checks the options and records the network
    /// (its bridge is made when a container first needs it).
    pub fn network_create(&self, name: &str, o: &NetworkOptions) -> Result<Network, EngineError> {
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
        if driver != "bridge" {
            return Err(invalid(
                "--driver",
                &driver,
                "berth has the bridge driver (cni and others are not there yet)",
            ));
        }
        let labels = crate::volumes::key_values("--label", &o.labels)?;
        let options = crate::volumes::key_values("-o", &o.options)?;
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
        let subnet = match &o.subnet {
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
        let gateway = match &o.gateway {
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
        let id = crate::run::new_id()?;
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
        };
        db.db
            .execute(
                "INSERT INTO networks (id, name, driver, subnet, gateway, bridge, internal, labels, options, created) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    n.id, n.name, n.driver, n.subnet, n.gateway, n.bridge, n.internal,
                    serde_json::to_string(&n.labels).unwrap_or_default(),
                    serde_json::to_string(&n.options).unwrap_or_default(),
                    n.created
                ],
            )
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    EngineError::NetworkExists(name.to_string())
                }
                e => sql(&db.path)(e),
            })?;
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
        match network::firewall::remove_network(&network::firewall::NetRules {
            bridge: &n.bridge,
            subnet: n.subnet()?,
            internal: n.internal,
        }) {
            // Without nft, there is no table to take the network out of.
            Ok(()) | Err(network::NetworkError::NoNft) => {}
            Err(e) => return Err(net_err(e)),
        }
        crate::dns::stop(&self.root, &n.id);
        network::bridge::remove_link(&n.bridge).map_err(net_err)?;
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
        Ok(n)
    }

    /// `network prune`: removes the networks no container is on.
    pub fn network_prune(&self) -> Result<Vec<String>, EngineError> {
        let db = Store::open(&self.root)?;
        let mut gone = vec![];
        for n in db.networks()? {
            if n.name != DEFAULT_NETWORK
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

    /// `network inspect`: Docker's JSON for network `key`.
    pub fn network_inspect(&self, key: &str) -> Result<serde_json::Value, EngineError> {
        let db = Store::open(&self.root)?;
        let n = db.network(key)?;
        let mut containers = serde_json::Map::new();
        for e in db.endpoints(Some(&n.id), None)? {
            let name = db.find(&e.container).map(|r| r.name).unwrap_or_default();
            let prefix = n.subnet().map(|s| s.prefix).unwrap_or(24);
            containers.insert(
                e.container.clone(),
                serde_json::json!({"Name": name, "IPv4Address": format!("{}/{prefix}", e.ip),
                    "IPv6Address": "", "MacAddress": ""}),
            );
        }
        let mut options = serde_json::Map::new();
        options.insert(BRIDGE_NAME.into(), n.bridge.clone().into());
        for (k, v) in &n.options {
            options.insert(k.clone(), v.clone().into());
        }
        Ok(serde_json::json!({
            "Name": n.name,
            "Id": n.id,
            "Created": crate::inspect::rfc3339(n.created),
            "Scope": "local",
            "Driver": n.driver,
            "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": n.subnet, "Gateway": n.gateway}]},
            "Internal": n.internal,
            "Attachable": false,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": containers,
            "Options": options,
            "Labels": n.labels,
        }))
    }
}

/// Whether `key` asks for a network berth keeps (not none, host or container:NAME).
pub fn is_user_network(key: &str) -> bool {
    !matches!(key, "none" | "host" | "") && !key.starts_with("container:")
}
