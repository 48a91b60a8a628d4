//! Volumes: `GET /volumes` (filters), `POST /volumes/create`, `GET
//! /volumes/{name}`, `DELETE /volumes/{name}` (`force`), `POST
//! /volumes/prune` (`filters` all, label). The engine's volumes, as
//! dockerd shows them.

use std::sync::Arc;

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::fields::Fields;
use crate::http::{empty, json, read_json, Query, Response};
use crate::router::{blocking, Call, State};

/// `GET /volumes`: `{"Volumes": […], "Warnings": []}`.
pub async fn list(state: &Arc<State>, q: &Query) -> Result<Response, ApiError> {
    let filters = q.filters()?;
    let engine = state.engine.clone();
    let v = blocking(move || {
        let mut out = vec![];
        for (v, users) in engine.volumes()? {
            if engine::listing::volume_matches(&filters, &v, &users)? {
                out.push(engine::listing::volume_json(&engine, &v));
            }
        }
        Ok(json!({ "Volumes": out, "Warnings": [] }))
    })
    .await?;
    Ok(json(StatusCode::OK, &v))
}

/// `POST /volumes/create` with `{"Name", "Driver", "DriverOpts", "Labels"}`.
pub async fn create(state: &Arc<State>, call: Call) -> Result<Response, ApiError> {
    let body = read_json(call.req.into_body()).await?;
    let f = Fields::of("", Some(&body))?;
    let name = f.string("Name")?;
    let driver = f.string("Driver")?.unwrap_or_else(|| "local".into());
    let options = f.string_map("DriverOpts")?;
    let labels = f.string_map("Labels")?;
    f.unsupported("ClusterVolumeSpec", "cluster volumes are Swarm's")?;
    let engine = state.engine.clone();
    let v = blocking(move || {
        let v = engine.create_volume(name.as_deref(), &driver, &options, &labels)?;
        Ok(engine::listing::volume_json(&engine, &v))
    })
    .await?;
    Ok(json(StatusCode::CREATED, &v))
}

/// `GET /volumes/{name}`.
pub async fn inspect(state: &Arc<State>, name: &str) -> Result<Response, ApiError> {
    let (engine, name) = (state.engine.clone(), name.to_string());
    let v = blocking(move || {
        let v = engine.volume(&name)?;
        Ok(engine::listing::volume_json(&engine, &v))
    })
    .await?;
    Ok(json(StatusCode::OK, &v))
}

/// `DELETE /volumes/{name}?force=`: 204; 409 while a container mounts it.
pub async fn remove(state: &Arc<State>, name: &str, q: &Query) -> Result<Response, ApiError> {
    let (engine, name, force) = (state.engine.clone(), name.to_string(), q.flag("force"));
    blocking(move || Ok(engine.remove_volume(&name, force)?)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /volumes/prune?filters=`: the unused anonymous volumes (all unused
/// ones with `all=true`, or for a client older than API 1.42, which
/// pruned every unused volume), narrowed by `label` filters.
pub async fn prune(
    state: &Arc<State>,
    q: &Query,
    version: (u32, u32),
) -> Result<Response, ApiError> {
    let mut all = version < (1, 42);
    let mut labels = vec![];
    for (k, v) in q.filters()? {
        match k.as_str() {
            "all" => all = matches!(v.as_str(), "true" | "1"),
            "label" => labels.push((k, v)),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter '{k}' (berth prunes volumes by all and label)"
                )))
            }
        }
    }
    let engine = state.engine.clone();
    let v = blocking(move || {
        let removed = if labels.is_empty() {
            engine.prune_volumes(all)?
        } else {
            let keep: Vec<String> = engine
                .volumes()?
                .into_iter()
                .filter(|(v, _)| !engine::listing::volume_matches(&labels, v, &[]).unwrap_or(false))
                .map(|(v, _)| v.name)
                .collect();
            engine.prune_volumes_except(all, &keep)?
        };
        let space: u64 = removed.iter().map(|(_, s)| s).sum();
        let names: Vec<Value> = removed.into_iter().map(|(n, _)| n.into()).collect();
        Ok(json!({ "VolumesDeleted": names, "SpaceReclaimed": space }))
    })
    .await?;
    Ok(json(StatusCode::OK, &v))
}
