//! `network connect` and `network disconnect`: a container gets or loses a
//! place on a network while it exists. The lease (address and interface
//! slot) is recorded at once; a running container also gets (or loses) its
//! interface `eth<slot>` in its namespace now, a stopped one at its next
//! start. Only containers whose network namespace berth makes (those on a
//! network) can be connected: a `--network none|host|container:` one
//! cannot, as with Docker.

use crate::error::{invalid, EngineError};
use crate::net_setup::Attachment;
use crate::restart::ContainerSettings;
use crate::run::Engine;
use crate::store::Store;

/// What `network connect` asks for besides the network and the container.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--ip`: its IPv4 address on the network.
    pub ip: Option<String>,
    /// `--ip6`: its IPv6 address on a dual-stack network.
    pub ip6: Option<String>,
    /// `--alias`: more names it answers to on the network.
    pub aliases: Vec<String>,
    /// `--mac-address`: its interface's MAC address on the network.
    pub mac: Option<String>,
}

impl Engine {
    /// `network connect [--ip IP] [--ip6 IP6] [--alias A]… [--mac-address
    /// MAC] NETWORK CONTAINER`.
    pub fn network_connect(
        &self,
        network: &str,
        container: &str,
        o: &ConnectOptions,
    ) -> Result<Attachment, EngineError> {
        let (ip, ip6, aliases) = (o.ip.as_deref(), o.ip6.as_deref(), &o.aliases);
        let mac = o
            .mac
            .as_deref()
            .map(|m| {
                network::ipam::parse_mac(m)
                    .map(|bytes| (m.to_ascii_lowercase(), bytes))
                    .map_err(|why| invalid("--mac-address", m, why))
            })
            .transpose()?;
        let db = Store::open(&self.root)?;
        let r = db.find(container)?;
        let settings = ContainerSettings::parse(&r.config);
        if !crate::networks::is_user_network(&settings.network_mode) {
            return Err(invalid(
                "network connect",
                &r.name,
                format!(
                    "the container has --network {}: only a container on a network can be connected to another",
                    if settings.network_mode.is_empty() { "none" } else { &settings.network_mode }
                ),
            ));
        }
        let key = if network == "default" {
            crate::networks::DEFAULT_NETWORK
        } else {
            network
        };
        let net = if key == crate::networks::DEFAULT_NETWORK {
            self.default_network(&db)?
        } else {
            db.network(key)?
        };
        if settings.networks.contains_key(&net.name) {
            return Err(invalid(
                "network connect",
                &r.name,
                format!("the container is on network {} already", net.name),
            ));
        }
        let leased = self.lease_network(&db, &r.id, &net.id, ip, ip6, aliases)?;
        let (name, mut att) = leased
            .into_iter()
            .next()
            .expect("a lease names its network");
        if let Some((m, _)) = &mac {
            att.mac = m.clone();
        }
        let applied = (|| {
            db.update_settings(&r.id, |s| {
                s.networks.insert(name.clone(), att.clone());
            })?;
            if r.is_running() && crate::net_setup::netns_path(&self.root, &r.id).exists() {
                let ep = db
                    .endpoints(Some(&net.id), Some(&r.id))?
                    .into_iter()
                    .next()
                    .ok_or_else(|| EngineError::NoSuchNetwork(net.name.clone()))?;
                if net.is_cni() {
                    let m = mac.as_ref().map(|(m, _)| m.as_str());
                    let ips = att.static_ips();
                    let asked = crate::cni::Asked {
                        mac: m,
                        ips: &ips,
                        ports: &[],
                    };
                    crate::cni::attach(self, &db, &r.id, &ep, &net, &asked)?;
                    return Ok(());
                }
                let others = db.endpoints(None, Some(&r.id))?.len() > 1;
                let m = mac.as_ref().map(|(_, bytes)| *bytes);
                crate::net_setup::attach_endpoint(self, &r.id, &ep, &net, !others, m)?;
                network::firewall::add_networks(&[net.rules()?]).map_err(|err| {
                    EngineError::Network {
                        id: r.id.clone(),
                        err,
                    }
                })?;
            }
            Ok(())
        })();
        if let Err(e) = applied {
            let _ = db.release(&net.id, &r.id);
            let _ = db.update_settings(&r.id, |s| {
                s.networks.remove(&name);
            });
            return Err(e);
        }
        crate::events::record(
            &self.root,
            "network",
            "connect",
            &net.id,
            &[("container", r.id.as_str()), ("name", net.name.as_str())],
        );
        Ok(att)
    }

    /// `network disconnect [-f] NETWORK CONTAINER`. With `force`, a
    /// container that is not on the network is no error.
    pub fn network_disconnect(
        &self,
        network: &str,
        container: &str,
        force: bool,
    ) -> Result<(), EngineError> {
        let db = Store::open(&self.root)?;
        let r = db.find(container)?;
        let net = db.network(if network == "default" {
            crate::networks::DEFAULT_NETWORK
        } else {
            network
        })?;
        let Some(ep) = db.endpoints(Some(&net.id), Some(&r.id))?.into_iter().next() else {
            if force {
                return Ok(());
            }
            return Err(invalid(
                "network disconnect",
                &r.name,
                format!("the container is not connected to network {}", net.name),
            ));
        };
        if r.is_running() {
            crate::net_setup::detach_endpoint(&self.root, &r.id, ep.slot)?;
        }
        db.release(&net.id, &r.id)?;
        db.update_settings(&r.id, |s| {
            s.networks.remove(&net.name);
        })?;
        crate::events::record(
            &self.root,
            "network",
            "disconnect",
            &net.id,
            &[("container", r.id.as_str()), ("name", net.name.as_str())],
        );
        Ok(())
    }
}
