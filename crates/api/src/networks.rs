//! Networks: `GET /networks` (filters), `GET /networks/{id}`, `POST
//! /networks/create`, `DELETE /networks/{id}`, `POST
//! /networks/{id}/connect|disconnect`, `POST /networks/prune`. The
//! engine's networks as dockerd shows them, with the two built-in ones
//! that have no record: `host` and `none`.

use std::sync::Arc;

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::fields::{wrong, Fields};
use crate::http::{empty, json, read_json, Query, Response};
use crate::router::{blocking, Call, State};

/// `host` and `none`: always there, never in the engine's database.
fn builtin(name: &str) -> Option<Value> {
    let driver = match name {
        "host" => "host",
        "none" => "null",
        _ => return None,
    };
    // A fixed id per name (dockerd's are random per daemon).
    let id = format!("{:0<64}", hex(format!("{name}-network").as_bytes()));
    Some(json!({
        "Name": name,
        "Id": id,
        "Created": "0001-01-01T00:00:00Z",
        "Scope": "local",
        "Driver": driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": []},
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": {},
        "Options": {},
        "Labels": {},
    }))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether a built-in network passes the filters (only name, id, driver
/// and type apply; a label filter leaves it out).
fn builtin_passes(v: &Value, filters: &[(String, String)]) -> bool {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let mut keys: std::collections::BTreeMap<&str, bool> = Default::default();
    for (k, val) in filters {
        let ok = match k.as_str() {
            "name" => s("Name").contains(val.as_str()),
            "id" => s("Id").starts_with(val.as_str()),
            "driver" => s("Driver") == *val,
            "type" => val == "builtin",
            "dangling" => matches!(val.as_str(), "true" | "1"),
            _ => false,
        };
        *keys.entry(k).or_default() |= ok;
    }
    keys.values().all(|ok| *ok)
}

/// `GET /networks?filters=`.
pub async fn list(state: &Arc<State>, q: &Query) -> Result<Response, ApiError> {
    let mut filters = q.filters()?;
    // `dangling` (no container on it) is decided here, from the inspect.
    let dangling: Option<bool> = match filters.iter().position(|(k, _)| k == "dangling") {
        Some(i) => match filters.remove(i).1.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter 'dangling={other}': dangling takes true or false"
                )))
            }
        },
        None => None,
    };
    let engine = state.engine.clone();
    let v = blocking(move || {
        let mut out = vec![];
        for n in engine.networks()? {
            if !engine::listing::network_matches(&filters, &n)? {
                continue;
            }
            let v = engine.network_inspect(&n.id)?;
            let empty = v["Containers"].as_object().is_none_or(|m| m.is_empty());
            if dangling.is_none_or(|d| d == empty) {
                out.push(v);
            }
        }
        for name in ["host", "none"] {
            let v = builtin(name).unwrap_or_default();
            let mut f = filters.clone();
            if let Some(d) = dangling {
                f.push(("dangling".into(), d.to_string()));
            }
            if builtin_passes(&v, &f) {
                out.push(v);
            }
        }
        Ok(Value::Array(out))
    })
    .await?;
    Ok(json(StatusCode::OK, &v))
}

/// `GET /networks/{id}` (by id, id prefix or name).
pub async fn inspect(state: &Arc<State>, key: &str) -> Result<Response, ApiError> {
    if let Some(v) = builtin(key) {
        return Ok(json(StatusCode::OK, &v));
    }
    let (engine, key) = (state.engine.clone(), key.to_string());
    let v = blocking(move || Ok(engine.network_inspect(&key)?)).await?;
    Ok(json(StatusCode::OK, &v))
}

/// `POST /networks/create`: `{"Name", "Driver", "Internal", "EnableIPv6",
/// "IPAM": {"Config": [{"Subnet", "Gateway", "IPRange"}]}, "Options",
/// "Labels"}` → 201 `{"Id", "Warning"}`.
pub async fn create(state: &Arc<State>, call: Call) -> Result<Response, ApiError> {
    let body = read_json(call.req.into_body()).await?;
    let f = Fields::of("", Some(&body))?;
    let Some(name) = f.string("Name")? else {
        return Err(ApiError::bad_request("Name: a network needs a name"));
    };
    if builtin(&name).is_some() || name == "default" {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{name} is a pre-defined network and cannot be created"),
        ));
    }
    let mut o = engine::networks::NetworkOptions {
        driver: f.string("Driver")?,
        internal: f.boolean("Internal")?,
        ipv6: f.boolean("EnableIPv6")?,
        labels: f.string_map("Labels")?,
        options: f.string_map("Options")?,
        ..Default::default()
    };
    f.unsupported("Ingress", "ingress networks are Swarm's")?;
    f.unsupported(
        "ConfigOnly",
        "configuration-only networks are not there yet",
    )?;
    f.unsupported(
        "ConfigFrom",
        "configuration-only networks are not there yet",
    )?;
    let ipam = Fields::of("IPAM.", f.get("IPAM"))?;
    if let Some(d) = ipam.string("Driver")? {
        if d != "default" {
            return Err(ApiError::bad_request(format!(
                "IPAM.Driver: {d:?}: berth has the default IPAM driver only"
            )));
        }
    }
    match ipam.get("Config") {
        None => {}
        Some(Value::Array(list)) => {
            for c in list {
                let c = Fields::of("IPAM.Config.", Some(c))?;
                o.subnets.extend(c.string("Subnet")?);
                o.gateways.extend(c.string("Gateway")?);
                if let Some(r) = c.string("IPRange")? {
                    o.ip_range = Some(r);
                }
                c.unsupported(
                    "AuxiliaryAddresses",
                    "auxiliary addresses are not there yet",
                )?;
            }
        }
        Some(v) => return Err(wrong("IPAM.", "Config", "a list", v)),
    }
    let engine = state.engine.clone();
    let id = blocking(move || Ok(engine.network_create(&name, &o)?.id)).await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({ "Id": id, "Warning": "" }),
    ))
}

/// `DELETE /networks/{id}`: 204; 409 while a container is on it.
pub async fn remove(state: &Arc<State>, key: &str) -> Result<Response, ApiError> {
    if builtin(key).is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{key} is a pre-defined network and cannot be removed"),
        ));
    }
    let (engine, key) = (state.engine.clone(), key.to_string());
    blocking(move || Ok(engine.network_remove(&key)?)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /networks/{id}/connect` with `{"Container", "EndpointConfig":
/// {"IPAMConfig": {"IPv4Address", "IPv6Address"}, "Aliases", "MacAddress"}}`.
pub async fn connect(state: &Arc<State>, key: &str, call: Call) -> Result<Response, ApiError> {
    let body = read_json(call.req.into_body()).await?;
    let f = Fields::of("", Some(&body))?;
    let Some(container) = f.string("Container")? else {
        return Err(ApiError::bad_request(
            "Container: which container to connect",
        ));
    };
    let ep = Fields::of("EndpointConfig.", f.get("EndpointConfig"))?;
    let ipam = Fields::of("EndpointConfig.IPAMConfig.", ep.get("IPAMConfig"))?;
    let o = engine::connect::ConnectOptions {
        ip: ipam.string("IPv4Address")?,
        ip6: ipam.string("IPv6Address")?,
        aliases: ep.strings("Aliases")?.unwrap_or_default(),
        mac: ep.string("MacAddress")?,
    };
    let (engine, key) = (state.engine.clone(), key.to_string());
    blocking(move || {
        engine.network_connect(&key, &container, &o)?;
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::OK))
}

/// `POST /networks/{id}/disconnect` with `{"Container", "Force"}`.
pub async fn disconnect(state: &Arc<State>, key: &str, call: Call) -> Result<Response, ApiError> {
    let body = read_json(call.req.into_body()).await?;
    let f = Fields::of("", Some(&body))?;
    let Some(container) = f.string("Container")? else {
        return Err(ApiError::bad_request(
            "Container: which container to disconnect",
        ));
    };
    let force = f.boolean("Force")?;
    let (engine, key) = (state.engine.clone(), key.to_string());
    blocking(move || Ok(engine.network_disconnect(&key, &container, force)?)).await?;
    Ok(empty(StatusCode::OK))
}

/// `POST /networks/prune?filters=` (`label`): the networks no container is on.
pub async fn prune(state: &Arc<State>, q: &Query) -> Result<Response, ApiError> {
    let filters = q.filters()?;
    if let Some((k, _)) = filters.iter().find(|(k, _)| k != "label") {
        return Err(ApiError::bad_request(format!(
            "invalid filter '{k}' (berth prunes networks by label)"
        )));
    }
    let engine = state.engine.clone();
    let gone = blocking(move || {
        Ok(engine.network_prune_where(|n| {
            engine::listing::network_matches(&filters, n).unwrap_or(false)
        })?)
    })
    .await?;
    Ok(json(StatusCode::OK, &json!({ "NetworksDeleted": gone })))
}
