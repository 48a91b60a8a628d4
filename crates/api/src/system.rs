//! `/_ping`, `/version` and `/info`: what a client asks first, to learn
//! the API version it may speak and what the engine is.

use std::sync::Arc;

use hyper::{header, StatusCode};
use serde_json::json;

use engine::info::{goarch, kernel_release as kernel};

use crate::error::ApiError;
use crate::http::{full, json, respond, Response};
use crate::router::{blocking, State, API_VERSION, MIN_API_VERSION};

fn api_version() -> String {
    format!("{}.{}", API_VERSION.0, API_VERSION.1)
}

/// `GET|HEAD /_ping`: "OK", with the headers clients negotiate by.
pub fn ping(head: bool) -> Response {
    let mut r = respond(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        full(if head { "" } else { "OK" }),
    );
    let h = r.headers_mut();
    for (k, v) in [
        ("API-Version", api_version()),
        ("OSType", "linux".into()),
        ("Builder-Version", "1".into()),
        ("Docker-Experimental", "false".into()),
        (
            "Cache-Control",
            "no-cache, no-store, must-revalidate".into(),
        ),
        ("Pragma", "no-cache".into()),
    ] {
        if let (Ok(k), Ok(v)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            header::HeaderValue::from_str(&v),
        ) {
            h.insert(k, v);
        }
    }
    r
}

/// `GET /version`.
pub async fn version(_state: &Arc<State>) -> Result<Response, ApiError> {
    let v = env!("CARGO_PKG_VERSION");
    Ok(json(
        StatusCode::OK,
        &json!({
            "Platform": {"Name": "berth"},
            "Components": [{"Name": "Engine", "Version": v,
                "Details": {"ApiVersion": api_version(), "MinAPIVersion": format!("{}.{}", MIN_API_VERSION.0, MIN_API_VERSION.1),
                            "Os": "linux", "Arch": goarch(), "KernelVersion": kernel()}}],
            "Version": v,
            "ApiVersion": api_version(),
            "MinAPIVersion": format!("{}.{}", MIN_API_VERSION.0, MIN_API_VERSION.1),
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": goarch(),
            "KernelVersion": kernel(),
            "BuildTime": "",
        }),
    ))
}

/// `GET /info`: the engine's facts with the fields Docker clients read.
pub async fn info(state: &Arc<State>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let mut v = blocking(move || Ok(engine.info()?)).await?;
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let runtime = state.engine.runtime.display().to_string();
    if let Some(m) = v.as_object_mut() {
        m.insert("ID".into(), json!(""));
        m.insert("Name".into(), json!(hostname));
        m.insert("DockerRootDir".into(), json!(state.engine.root));
        m.insert("LoggingDriver".into(), json!("json-file"));
        m.insert(
            "Runtimes".into(),
            json!({"berth-runtime": {"path": runtime}}),
        );
        m.insert(
            "Plugins".into(),
            json!({"Volume": ["local"], "Network": ["bridge", "host", "none", "cni"],
                   "Authorization": null, "Log": ["json-file", "none"]}),
        );
        m.insert("Swarm".into(), json!({"LocalNodeState": "inactive"}));
        m.insert(
            "IndexServerAddress".into(),
            json!("https://index.docker.io/v1/"),
        );
        m.insert("Labels".into(), json!([]));
        m.insert("Warnings".into(), json!([]));
    }
    Ok(json(StatusCode::OK, &v))
}

/// `GET /system/df`: the space images, containers and volumes take.
pub async fn df(state: &Arc<State>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let v = blocking(move || {
        let containers = engine.containers()?;
        let users = |id: &str| containers.iter().filter(|c| c.image_id == id).count() as i64;
        let images = crate::images::summaries(&engine.root, |_| true, users)?;
        let layers: i64 = images.iter().filter_map(|i| i["Size"].as_i64()).sum();
        let cs: Vec<serde_json::Value> = containers
            .iter()
            .map(|c| {
                let mut v = crate::containers::summary(c);
                v["SizeRw"] = json!(engine.writable_layer_size(&c.id));
                v["SizeRootFs"] = json!(0);
                v
            })
            .collect();
        let vs: Vec<serde_json::Value> = engine
            .volumes()?
            .iter()
            .map(|(vol, used_by)| {
                let mut v = engine::listing::volume_json(&engine, vol);
                v["UsageData"] = json!({
                    "Size": engine.volume_size(&vol.name),
                    "RefCount": used_by.len(),
                });
                v
            })
            .collect();
        Ok(json!({
            "LayersSize": layers,
            "Images": images,
            "Containers": cs,
            "Volumes": vs,
            "BuildCache": [],
        }))
    })
    .await?;
    Ok(json(StatusCode::OK, &v))
}

/// `POST /auth` with `{"username", "password", "serveraddress"}`: the
/// credentials are tried against the registry (nothing is stored: the
/// client keeps them, as with dockerd).
pub async fn auth(call: crate::router::Call) -> Result<Response, ApiError> {
    let body = crate::http::read_json(call.req.into_body()).await?;
    let user = body["username"].as_str().unwrap_or("").to_string();
    let password = body["password"].as_str().unwrap_or("").to_string();
    if user.is_empty() || password.is_empty() {
        return Err(ApiError::bad_request(
            "username and password must not be empty",
        ));
    }
    let server = body["serveraddress"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("docker.io");
    let registry = registry::connect::registry_of_server(server);
    let handle = tokio::runtime::Handle::current();
    let checked = blocking(move || {
        handle
            .block_on(registry::connect::verify_login(
                &registry, false, &user, &password,
            ))
            .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))
    })
    .await;
    checked?;
    Ok(json(
        StatusCode::OK,
        &json!({ "Status": "Login Succeeded", "IdentityToken": "" }),
    ))
}
