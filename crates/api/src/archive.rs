//! `docker cp` through the API: `HEAD /containers/{id}/archive?path=`
//! (what the path is, in the `X-Docker-Container-Path-Stat` header), `GET`
//! (the path as a tar stream, with that header) and `PUT` (a tar stream
//! unpacked into the directory `path`). The engine resolves every path
//! inside the container's root (`engine::archive`).

use std::sync::Arc;

use base64::Engine as _;
use hyper::{header, StatusCode};
use serde_json::json;

use crate::error::ApiError;
use crate::http::{body_reader, channel, empty, respond, Query, Response};
use crate::router::{blocking, Call, State};

/// The header that carries a path's stat.
const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

fn path_of(q: &Query) -> Result<String, ApiError> {
    match q.get("path").filter(|p| !p.is_empty()) {
        Some(p) => Ok(p.to_string()),
        None => Err(ApiError::bad_request("path: which path in the container")),
    }
}

/// The stat of `path` in container `id`, as the header carries it; 404
/// when nothing is there.
async fn stat_header(state: &Arc<State>, id: &str, path: &str) -> Result<String, ApiError> {
    let (engine, key, p) = (state.engine.clone(), id.to_string(), path.to_string());
    let st = blocking(move || Ok(engine.stat_in(&key, &p)?)).await?;
    let Some(st) = st else {
        return Err(ApiError::not_found(format!(
            "Could not find the file {path} in container {id}"
        )));
    };
    let v = json!({
        "name": st.name,
        "size": st.size,
        "mode": st.go_mode(),
        "mtime": engine::inspect::rfc3339(st.mtime),
        "linkTarget": st.link_target,
    });
    Ok(base64::engine::general_purpose::STANDARD.encode(v.to_string()))
}

fn with_stat(mut r: Response, stat: &str) -> Response {
    if let Ok(v) = header::HeaderValue::from_str(stat) {
        r.headers_mut().insert(STAT_HEADER, v);
    }
    r
}

/// `HEAD /containers/{id}/archive?path=`.
pub async fn stat(state: &Arc<State>, id: &str, q: &Query) -> Result<Response, ApiError> {
    let path = path_of(q)?;
    let stat = stat_header(state, id, &path).await?;
    Ok(with_stat(empty(StatusCode::OK), &stat))
}

/// `GET /containers/{id}/archive?path=`.
pub async fn get(state: &Arc<State>, id: &str, q: &Query) -> Result<Response, ApiError> {
    let path = path_of(q)?;
    let stat = stat_header(state, id, &path).await?;
    let (tx, body) = channel();
    let (engine, key) = (state.engine.clone(), id.to_string());
    tokio::task::spawn_blocking(move || {
        let out = std::io::BufWriter::with_capacity(64 << 10, crate::container_ops::BodyWriter(tx));
        if let Err(e) = engine.copy_out(&key, &path, out) {
            tracing::warn!("copy of {path} out of {key}: {e}");
        }
    });
    Ok(with_stat(
        respond(StatusCode::OK, "application/x-tar", body),
        &stat,
    ))
}

/// `PUT /containers/{id}/archive?path=`: the body, a tar stream, unpacked
/// into directory `path`.
pub async fn put(state: &Arc<State>, id: &str, call: Call) -> Result<Response, ApiError> {
    let path = path_of(&call.query)?;
    let (engine, key, p) = (state.engine.clone(), id.to_string(), path.clone());
    let st = blocking(move || Ok(engine.stat_in(&key, &p)?)).await?;
    match st {
        None => {
            return Err(ApiError::not_found(format!(
                "Could not find the file {path} in container {id}"
            )))
        }
        Some(s) if s.mode & libc::S_IFMT != libc::S_IFDIR => {
            return Err(ApiError::bad_request(format!(
                "extraction point is not a directory: {path}"
            )))
        }
        Some(_) => {}
    }
    let opts = engine::archive::CopyInOptions {
        // dockerd's default is to allow it; the docker CLI always refuses.
        overwrite_dir_non_dir: !call.query.flag("noOverwriteDirNonDir"),
        as_container_user: call.query.flag("copyUIDGID"),
    };
    let mut reader = body_reader(call.req.into_body());
    let (engine, key) = (state.engine.clone(), id.to_string());
    blocking(move || {
        let copied = engine.copy_in(&key, &path, &mut reader, opts);
        if copied.is_err() {
            reader.drain();
        }
        Ok(copied?)
    })
    .await?;
    Ok(empty(StatusCode::OK))
}
