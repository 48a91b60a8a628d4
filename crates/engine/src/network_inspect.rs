//! `network inspect`: a network as Docker's JSON shows it (its IPAM
//! config, its containers and their addresses, options and labels).

use crate::error::EngineError;
use crate::networks::BRIDGE_NAME;
use crate::run::Engine;
use crate::store::Store;

impl Engine {
    /// `network inspect`: Docker's JSON for network `key`.
    pub fn network_inspect(&self, key: &str) -> Result<serde_json::Value, EngineError> {
        let db = Store::open(&self.root)?;
        let n = db.network(key)?;
        let mut containers = serde_json::Map::new();
        for e in db.endpoints(Some(&n.id), None)? {
            let name = db.find(&e.container).map(|r| r.name).unwrap_or_default();
            let prefix = n.subnet().map(|s| s.prefix).unwrap_or(24);
            let v6 = match (e.ip6, n.subnet6().ok().flatten()) {
                (Some(a), Some((s6, _))) => format!("{a}/{}", s6.prefix),
                _ => String::new(),
            };
            let mac = db
                .find(&e.container)
                .ok()
                .and_then(|r| {
                    crate::restart::ContainerSettings::parse(&r.config)
                        .networks
                        .get(&n.name)
                        .map(|a| a.mac.clone())
                })
                .unwrap_or_default();
            let v4 = if e.ip.is_unspecified() {
                String::new()
            } else {
                format!("{}/{prefix}", e.ip)
            };
            containers.insert(
                e.container.clone(),
                serde_json::json!({"Name": name, "IPv4Address": v4,
                    "IPv6Address": v6, "MacAddress": mac}),
            );
        }
        let mut ipam = vec![];
        if !n.subnet.is_empty() {
            let mut v4 = serde_json::json!({"Subnet": n.subnet, "Gateway": n.gateway});
            if !n.ip_range.is_empty() {
                v4["IPRange"] = n.ip_range.clone().into();
            }
            ipam.push(v4);
        }
        if !n.subnet6.is_empty() {
            ipam.push(serde_json::json!({"Subnet": n.subnet6, "Gateway": n.gateway6}));
        }
        let mut options = serde_json::Map::new();
        if !n.is_cni() {
            options.insert(BRIDGE_NAME.into(), n.bridge.clone().into());
        }
        for (k, v) in &n.options {
            options.insert(k.clone(), v.clone().into());
        }
        Ok(serde_json::json!({
            "Name": n.name,
            "Id": n.id,
            "Created": crate::inspect::rfc3339(n.created),
            "Scope": "local",
            "Driver": n.driver,
            "EnableIPv6": !n.subnet6.is_empty(),
            "IPAM": {"Driver": if n.is_cni() { "cni" } else { "default" }, "Options": {}, "Config": ipam},
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
