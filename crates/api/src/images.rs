//! `GET /images/json` and `GET /images/{name}/json`: the image store's
//! images as dockerd lists and inspects them.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{json, Query, Response};
use crate::router::{blocking, State};

/// A name as Docker shows it ("familiar"): the docker CLI sends
/// `docker.io/library/x` for `x`, which berth keeps as `x`.
pub fn familiar(name: &str) -> String {
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
        .to_string()
}

fn io(e: std::io::Error) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the image store: {e}"),
    )
}

/// One summary per image (its names together) of the names `wanted`
/// picks, as `GET /images/json` lists them; `containers` counts the users
/// of an image id (-1: not counted).
pub(crate) fn summaries(
    root: &std::path::Path,
    wanted: impl Fn(&str) -> bool,
    containers: impl Fn(&str) -> i64,
) -> Result<Vec<Value>, ApiError> {
    let refs = image::refs::Refs::new(root).load().map_err(io)?;
    let store = image::ContentStore::open(root)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut by_config: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for (name, r) in &refs {
        if wanted(name) {
            by_config.entry(r.config.as_str()).or_default().push(name);
        }
    }
    let mut out = vec![];
    for (config, names) in by_config {
        let rec = &refs[names[0]];
        let created = image::refs::read_config(&store, rec)
            .ok()
            .and_then(|c| {
                c["created"]
                    .as_str()
                    .and_then(engine::inspect::parse_rfc3339_f)
            })
            .map_or(0, |t| t as i64);
        // A dangling image (`<none>:ID`, a commit without a name) has no
        // tags or digests, as dockerd lists it: the docker CLI shows it as
        // <none> and drops names it cannot parse.
        let names: Vec<&String> = names
            .into_iter()
            .filter(|n| !n.starts_with("<none>"))
            .collect();
        let digests: Vec<String> = names
            .iter()
            .map(|n| {
                format!(
                    "{}@{}",
                    n.rsplit_once(':').map_or(n.as_str(), |(r, _)| r),
                    rec.manifest
                )
            })
            .collect();
        out.push(json!({
            "Id": config,
            "ParentId": "",
            "RepoTags": names,
            "RepoDigests": digests,
            "Created": created,
            "Size": rec.size,
            "VirtualSize": rec.size,
            "SharedSize": -1,
            "Labels": {},
            "Containers": containers(config),
        }));
    }
    Ok(out)
}

/// `GET /images/json`: one entry per image (its names together).
pub async fn list(
    state: &Arc<State>,
    q: &Query,
    version: (u32, u32),
) -> Result<Response, ApiError> {
    let mut references = vec![];
    let mut dangling = None;
    for (k, v) in q.filters()? {
        match k.as_str() {
            "reference" => references.push(v),
            "dangling" => {
                dangling = Some(match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "invalid filter 'dangling={v}' (true or false)"
                        )))
                    }
                })
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter '{k}' (berth filters images by reference and dangling)"
                )))
            }
        }
    }
    let root = state.engine.root.clone();
    let v = blocking(move || {
        // Each key any of its values; the keys all together.
        let wanted = |name: &str| {
            let named = references.is_empty()
                || references.iter().any(|pat| {
                    name == pat
                        || name.starts_with(&format!("{pat}:"))
                        || name.ends_with(&format!("/{pat}"))
                });
            named && dangling.is_none_or(|d| name.starts_with("<none>") == d)
        };
        let mut list = summaries(&root, wanted, |_| -1)?;
        // VirtualSize went in API 1.44.
        if version >= (1, 44) {
            for i in &mut list {
                if let Some(m) = i.as_object_mut() {
                    m.remove("VirtualSize");
                }
            }
        }
        Ok(Value::Array(list))
    })
    .await?;
    Ok(json(StatusCode::OK, &v))
}

/// `GET /images/{name}/json`.
pub async fn inspect(state: &Arc<State>, name: &str) -> Result<Response, ApiError> {
    let (root, name) = (state.engine.root.clone(), name.to_string());
    let v = blocking(move || {
        let refs = image::refs::Refs::new(&root).load().map_err(io)?;
        let (key, rec) = image::refs::find(&refs, &name)
            .ok_or_else(|| ApiError::not_found(format!("No such image: {name}")))?;
        let store = image::ContentStore::open(&root)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        image::refs::inspect_json(&store, &refs, &key, rec).map_err(io)
    })
    .await?;
    Ok(json(StatusCode::OK, &v))
}
