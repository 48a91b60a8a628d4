//! Requests to handlers: the API version prefix (`/v1.NN/`, or none),
//! the method and the path's segments. Every handler's error becomes
//! dockerd's `{"message": …}` with its status.

use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use crate::error::ApiError;
use crate::http::{error, Query, Response};
use crate::images::familiar;

/// The newest API version served.
pub const API_VERSION: (u32, u32) = (1, 47);
/// The oldest API version served.
pub const MIN_API_VERSION: (u32, u32) = (1, 24);

/// What every handler shares: the engine (the server keeps no state of
/// its own beyond the attaches waiting for a start, which live as long as
/// their connections).
pub struct State {
    /// The engine, as `berth` makes it.
    pub engine: engine::Engine,
    /// Attaches waiting for their container's start.
    pub waiting: crate::attach::Waiting,
    /// The exec instances.
    pub execs: crate::exec::Execs,
}

/// One request, parsed.
pub struct Call {
    /// The method.
    pub method: Method,
    /// The path's segments after the version, decoded.
    pub path: Vec<String>,
    /// The query string.
    pub query: Query,
    /// The API version the client speaks.
    pub version: (u32, u32),
    /// The request (its headers and body).
    pub req: Request<Incoming>,
}

/// `/v1.47/containers/json` → ((1, 47), ["containers", "json"]).
fn split_version(path: &str) -> Result<((u32, u32), Vec<String>), ApiError> {
    let mut segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect();
    let mut version = API_VERSION;
    if let Some(v) = segs.first().and_then(|s| s.strip_prefix('v')) {
        if let Some((a, b)) = v.split_once('.') {
            if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                version = (a, b);
                segs.remove(0);
                if version > API_VERSION {
                    return Err(ApiError::bad_request(format!(
                        "client version {a}.{b} is too new. Maximum supported API version is {}.{}",
                        API_VERSION.0, API_VERSION.1
                    )));
                }
                if version < MIN_API_VERSION {
                    return Err(ApiError::bad_request(format!(
                        "client version {a}.{b} is too old. Minimum supported API version is {}.{}, please upgrade your client to a newer version",
                        MIN_API_VERSION.0, MIN_API_VERSION.1
                    )));
                }
            }
        }
    }
    Ok((version, segs))
}

/// Serves one request.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response, Infallible> {
    let (version, path) = match split_version(req.uri().path()) {
        Ok(v) => v,
        Err(e) => return Ok(error(&e)),
    };
    let call = Call {
        method: req.method().clone(),
        query: Query::parse(req.uri().query()),
        path,
        version,
        req,
    };
    let what = format!("{} /{}", call.method, call.path.join("/"));
    let answer = route(state, call).await;
    Ok(match answer {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::warn!("{what}: {}", e.message);
            }
            error(&e)
        }
    })
}

async fn route(state: Arc<State>, call: Call) -> Result<Response, ApiError> {
    let segs: Vec<&str> = call.path.iter().map(String::as_str).collect();
    let m = &call.method;
    let get = m == Method::GET || m == Method::HEAD;
    match segs.as_slice() {
        ["_ping"] if get => Ok(crate::system::ping(m == Method::HEAD)),
        ["version"] if get => crate::system::version(&state).await,
        ["info"] if get => crate::system::info(&state).await,
        ["containers", "json"] if get => crate::containers::list(&state, &call.query).await,
        ["containers", "create"] if m == Method::POST => crate::create::create(&state, call).await,
        ["containers", id, "json"] if get => crate::containers::inspect(&state, id).await,
        ["containers", id, "start"] if m == Method::POST => {
            crate::containers::start(&state, id).await
        }
        ["containers", id, "attach"] if m == Method::POST => {
            let id = id.to_string();
            crate::attach::attach(&state, &id, call).await
        }
        ["containers", id, "attach", "ws"] if get => {
            let id = id.to_string();
            crate::attach_ws::attach_ws(&state, &id, call).await
        }
        ["containers", id, "resize"] if m == Method::POST => {
            crate::attach::resize(&state, id, &call).await
        }
        ["containers", id, "stop"] if m == Method::POST => {
            crate::containers::stop(&state, id, &call.query).await
        }
        ["containers", id, "restart"] if m == Method::POST => {
            crate::containers::restart(&state, id, &call.query).await
        }
        ["containers", id, "kill"] if m == Method::POST => {
            crate::containers::kill(&state, id, &call.query).await
        }
        ["containers", id, "wait"] if m == Method::POST => {
            crate::containers::wait(&state, id, &call.query).await
        }
        ["containers", id] if m == Method::DELETE => {
            crate::containers::remove(&state, id, &call.query).await
        }
        ["containers", id, "exec"] if m == Method::POST => {
            let id = id.to_string();
            crate::exec::create(&state, &id, call).await
        }
        ["exec", id, "start"] if m == Method::POST => {
            let id = id.to_string();
            crate::exec::start(&state, &id, call).await
        }
        ["exec", id, "resize"] if m == Method::POST => crate::exec::resize(&state, id, &call).await,
        ["exec", id, "json"] if get => crate::exec::inspect(&state, id).await,
        ["containers", "prune"] if m == Method::POST => {
            crate::container_ops::prune(&state, &call.query).await
        }
        ["containers", id, "rename"] if m == Method::POST => {
            crate::container_ops::rename(&state, id, &call.query).await
        }
        ["containers", id, "pause"] if m == Method::POST => {
            crate::container_ops::pause(&state, id, true).await
        }
        ["containers", id, "unpause"] if m == Method::POST => {
            crate::container_ops::pause(&state, id, false).await
        }
        ["containers", id, "top"] if get => {
            crate::container_ops::top(&state, id, &call.query).await
        }
        ["containers", id, "changes"] if get => crate::container_ops::changes(&state, id).await,
        ["containers", id, "update"] if m == Method::POST => {
            let id = id.to_string();
            crate::container_ops::update(&state, &id, call).await
        }
        ["containers", id, "stats"] if get => {
            crate::container_ops::stats(&state, id, &call.query).await
        }
        ["containers", id, "export"] if get => crate::container_ops::export(&state, id).await,
        ["containers", id, "archive"] if m == Method::HEAD => {
            crate::archive::stat(&state, id, &call.query).await
        }
        ["containers", id, "archive"] if m == Method::GET => {
            crate::archive::get(&state, id, &call.query).await
        }
        ["containers", id, "archive"] if m == Method::PUT => {
            let id = id.to_string();
            crate::archive::put(&state, &id, call).await
        }
        ["containers", id, "logs"] if get => crate::logs::logs(&state, id, &call.query).await,
        ["volumes"] if get => crate::volumes::list(&state, &call.query).await,
        ["volumes", "create"] if m == Method::POST => crate::volumes::create(&state, call).await,
        ["volumes", "prune"] if m == Method::POST => {
            crate::volumes::prune(&state, &call.query, call.version).await
        }
        ["volumes", name] if get => crate::volumes::inspect(&state, name).await,
        ["volumes", name] if m == Method::DELETE => {
            crate::volumes::remove(&state, name, &call.query).await
        }
        ["networks"] if get => crate::networks::list(&state, &call.query).await,
        ["networks", "create"] if m == Method::POST => crate::networks::create(&state, call).await,
        ["networks", "prune"] if m == Method::POST => {
            crate::networks::prune(&state, &call.query).await
        }
        ["networks", id] if get => crate::networks::inspect(&state, id).await,
        ["networks", id] if m == Method::DELETE => crate::networks::remove(&state, id).await,
        ["networks", id, "connect"] if m == Method::POST => {
            let id = id.to_string();
            crate::networks::connect(&state, &id, call).await
        }
        ["networks", id, "disconnect"] if m == Method::POST => {
            let id = id.to_string();
            crate::networks::disconnect(&state, &id, call).await
        }
        ["events"] if get => crate::events::events(&state, &call.query).await,
        ["images", "json"] if get => crate::images::list(&state, &call.query, call.version).await,
        ["images", "create"] if m == Method::POST => crate::image_ops::create(&state, call).await,
        ["images", "search"] if get => crate::image_ops::search().await,
        ["images", "get"] if get => {
            let names = call
                .query
                .all("names")
                .iter()
                .map(|n| familiar(n))
                .collect();
            crate::image_ops::save(&state, names).await
        }
        ["images", "load"] if m == Method::POST => crate::image_ops::load(&state, call).await,
        ["images", "prune"] if m == Method::POST => {
            crate::image_ops::prune(&state, &call.query).await
        }
        ["images", rest @ .., "json"] if get && !rest.is_empty() => {
            crate::images::inspect(&state, &familiar(&rest.join("/"))).await
        }
        ["images", rest @ .., "history"] if get && !rest.is_empty() => {
            crate::image_ops::history(&state, &familiar(&rest.join("/"))).await
        }
        ["images", rest @ .., "get"] if get && !rest.is_empty() => {
            crate::image_ops::save(&state, vec![familiar(&rest.join("/"))]).await
        }
        ["images", rest @ .., "tag"] if m == Method::POST && !rest.is_empty() => {
            crate::image_ops::tag(&state, &familiar(&rest.join("/")), &call.query).await
        }
        ["images", rest @ .., "push"] if m == Method::POST && !rest.is_empty() => {
            let name = familiar(&rest.join("/"));
            crate::image_ops::push(&state, &name, call).await
        }
        ["images", rest @ ..] if m == Method::DELETE && !rest.is_empty() => {
            crate::image_ops::remove(&state, &familiar(&rest.join("/")), &call.query).await
        }
        ["commit"] if m == Method::POST => crate::image_ops::commit(&state, &call.query).await,
        ["system", "df"] if get => crate::system::df(&state).await,
        ["auth"] if m == Method::POST => crate::system::auth(call).await,
        ["build"] => Err(ApiError::not_implemented(&format!(
            "{} /{}",
            call.method,
            segs.join("/")
        ))),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("page not found: {} /{}", call.method, segs.join("/")),
        )),
    }
}

thread_local! {
    /// Each blocking thread's own connection to the engine's database,
    /// kept (a new connection costs its pragmas and checks each time).
    static STORE: std::cell::RefCell<Option<engine::store::Store>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's kept connection to the store at `root`.
pub fn with_store<T>(
    root: &std::path::Path,
    f: impl FnOnce(&engine::store::Store) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    STORE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(engine::store::Store::open(root)?);
        }
        match slot.as_ref() {
            Some(db) => f(db),
            None => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no store")),
        }
    })
}

/// Runs a blocking engine call on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the engine call failed: {e}"),
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_split_off_and_checked() {
        let (v, p) = split_version("/v1.43/containers/abc/json").unwrap();
        assert_eq!(
            (v, p),
            (
                (1, 43),
                vec!["containers".into(), "abc".into(), "json".into()]
            )
        );
        let (v, p) = split_version("/_ping").unwrap();
        assert_eq!((v, p), (API_VERSION, vec!["_ping".to_string()]));
        let (_, p) = split_version("/images/localhost%2Fbb:1/json").unwrap();
        assert_eq!(p, ["images", "localhost/bb:1", "json"]);
        assert!(split_version("/v1.99/info")
            .unwrap_err()
            .message
            .contains("too new. Maximum supported API version is 1.47"));
        assert!(split_version("/v1.12/info")
            .unwrap_err()
            .message
            .contains("too old"));
    }
}
