//! The engine database's side of networks: the `networks` rows and the
//! `endpoints`, each container's lease on a network (its IPv4 and, on a
//! dual-stack network, IPv6 address, and its interface slot), taken in one
//! `BEGIN IMMEDIATE` transaction so that concurrent runs never share an
//! address.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use rusqlite::params;

use crate::error::EngineError;
use crate::networks::{Endpoint, Network, MAX_SLOTS};
use crate::store::{sql, Store};

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
            subnet6: r.get(10)?,
            gateway6: r.get(11)?,
            ip_range: r.get(12)?,
        })
    }

    /// Every network, by name.
    pub fn networks(&self) -> Result<Vec<Network>, EngineError> {
        let mut st = self
            .db
            .prepare(
                "SELECT id, name, driver, subnet, gateway, bridge, internal, labels, options, created, subnet6, gateway6, ip_range \
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
                "SELECT network, container, ip, slot, ip6 FROM endpoints \
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
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(sql(&self.path))?;
        let mut out = vec![];
        for row in rows {
            let (network, container, ip, slot, ip6) = row.map_err(sql(&self.path))?;
            // A CNI lease has no address until its plugins give one.
            out.push(Endpoint {
                network,
                container,
                ip: ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
                ip6: ip6.parse().ok(),
                slot,
            });
        }
        Ok(out)
    }

    /// Leases an address on `net` to `container`: `wanted`, or the next
    /// free one after the last handed out (wrapping round). One
    /// transaction: the check, the lease and the turn cannot be split by
    /// another run.
    pub fn lease(
        &self,
        net: &Network,
        container: &str,
        wanted: Option<Ipv4Addr>,
        wanted6: Option<Ipv6Addr>,
    ) -> Result<(Ipv4Addr, Option<Ipv6Addr>, u8), EngineError> {
        let v6 = net.subnet6()?;
        if let (Some(ip6), None) = (wanted6, v6) {
            return Err(EngineError::Address {
                network: net.name.clone(),
                reason: format!(
                    "--ip6 {ip6}: the network has no IPv6 subnet (network create --ipv6)"
                ),
            });
        }
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
        if net.is_cni() {
            // Its plugins choose the address at each start; until then
            // the lease holds the slot and a placeholder unique to it.
            tx.execute(
                "INSERT INTO endpoints (network, container, ip, slot, ip6) VALUES (?1, ?2, ?3, ?4, '')",
                params![net.id, container, cni_placeholder(container), slot],
            )
            .map_err(|e| taken(e, net, &self.path))?;
            tx.commit().map_err(sql(&self.path))?;
            return Ok((Ipv4Addr::UNSPECIFIED, None, slot));
        }
        let subnet = net.subnet()?;
        let gateway = net.gateway_addr()?;
        let (last, last6): (String, String) = tx
            .query_row(
                "SELECT last_ip, last_ip6 FROM networks WHERE id = ?1",
                params![net.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(sql(&self.path))?;
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
            None => match net.ip_range.parse::<network::ipam::Subnet>() {
                Ok(range) => subnet.next_free_in(&range, gateway, &used, last.parse().ok()),
                Err(_) => subnet.next_free(gateway, &used, last.parse().ok()),
            }
            .ok_or_else(|| EngineError::Address {
                network: net.name.clone(),
                reason: format!("no address is left in {subnet}"),
            })?,
        };
        let ip6 = match v6 {
            None => None,
            Some((subnet6, gateway6)) => {
                let used6: HashSet<Ipv6Addr> = {
                    let mut st = tx
                        .prepare("SELECT ip6 FROM endpoints WHERE network = ?1 AND ip6 != ''")
                        .map_err(sql(&self.path))?;
                    let rows = st
                        .query_map(params![net.id], |r| r.get::<_, String>(0))
                        .map_err(sql(&self.path))?;
                    rows.filter_map(|r| r.ok()?.parse().ok()).collect()
                };
                let bad = |reason: String| EngineError::Address {
                    network: net.name.clone(),
                    reason,
                };
                Some(match wanted6 {
                    Some(a) => {
                        subnet6
                            .check_host(a, gateway6)
                            .map_err(|e| bad(e.to_string()))?;
                        if used6.contains(&a) {
                            return Err(bad(format!("address {a} is already in use")));
                        }
                        a
                    }
                    None => subnet6
                        .next_free(gateway6, &used6, last6.parse().ok())
                        .ok_or_else(|| bad(format!("no address is left in {subnet6}")))?,
                })
            }
        };
        tx.execute(
            "INSERT INTO endpoints (network, container, ip, slot, ip6) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                net.id,
                container,
                ip.to_string(),
                slot,
                ip6.map(|a| a.to_string()).unwrap_or_default()
            ],
        )
        .map_err(|e| taken(e, net, &self.path))?;
        // The cursor moves for addresses handed out, not for ones asked for.
        if wanted.is_none() {
            tx.execute(
                "UPDATE networks SET last_ip = ?2 WHERE id = ?1",
                params![net.id, ip.to_string()],
            )
            .map_err(sql(&self.path))?;
        }
        if let (Some(a), None) = (ip6, wanted6) {
            tx.execute(
                "UPDATE networks SET last_ip6 = ?2 WHERE id = ?1",
                params![net.id, a.to_string()],
            )
            .map_err(sql(&self.path))?;
        }
        tx.commit().map_err(sql(&self.path))?;
        Ok((ip, ip6, slot))
    }

    /// Records the addresses CNI network `network`'s plugins gave
    /// container `container` (None: none of that family). A lease of
    /// another container that still shows one of them is stale (the
    /// plugins' address management gave it back) and loses it.
    pub fn set_endpoint_addresses(
        &self,
        network: &str,
        container: &str,
        ip: Option<String>,
        ip6: Option<String>,
    ) -> Result<(), EngineError> {
        let tx = rusqlite::Transaction::new_unchecked(
            &self.db,
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(sql(&self.path))?;
        let ip = ip.unwrap_or_else(|| cni_placeholder(container));
        let ip6 = ip6.unwrap_or_default();
        tx.execute(
            "UPDATE endpoints SET ip = 'cni:' || container WHERE network = ?1 AND ip = ?2 AND container != ?3",
            params![network, ip, container],
        )
        .map_err(sql(&self.path))?;
        if !ip6.is_empty() {
            tx.execute(
                "UPDATE endpoints SET ip6 = '' WHERE network = ?1 AND ip6 = ?2 AND container != ?3",
                params![network, ip6, container],
            )
            .map_err(sql(&self.path))?;
        }
        tx.execute(
            "UPDATE endpoints SET ip = ?3, ip6 = ?4 WHERE network = ?1 AND container = ?2",
            params![network, container, ip, ip6],
        )
        .map_err(sql(&self.path))?;
        tx.commit().map_err(sql(&self.path))
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

/// The address column of a CNI lease without an address: unique per
/// container, and no address.
fn cni_placeholder(container: &str) -> String {
    format!("cni:{container}")
}

/// A refused lease insert: the container has one on the network already.
fn taken(e: rusqlite::Error, net: &Network, path: &std::path::Path) -> EngineError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            EngineError::Address {
                network: net.name.clone(),
                reason: "the container is on this network already".into(),
            }
        }
        e => sql(path)(e),
    }
}
