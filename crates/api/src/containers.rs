//! The container endpoints that map one to one onto the engine: list
//! (`/containers/json` with `all`, `limit` and `filters`), inspect, start,
//! stop, restart, kill, wait (`condition` not-running, next-exit, removed)
//! and delete.

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use serde::Serialize;
use serde_json::{json, Value};

use engine::restart::ListedSettings;
use engine::run::now;
use engine::store::{Record, State as RunState};
use engine::EngineError;

use crate::error::ApiError;
use crate::http::{empty, json, json_body, Query, Response};
use crate::router::{blocking, State};

/// Its state in the list's words; `running`: whether its process lives.
fn state_name(r: &Record, running: bool, settings: &ListedSettings) -> &'static str {
    match r.state {
        RunState::Running if running => {
            if settings.paused {
                "paused"
            } else {
                "running"
            }
        }
        RunState::Running | RunState::Exited => "exited",
        RunState::Created => "created",
    }
}

/// `NetworkSettings.Ports` (`{"80/tcp": [{"HostIp", "HostPort"}]}`) as
/// the list's `Ports` (`[{"IP", "PrivatePort", "PublicPort", "Type"}]`).
fn port_list(ports: &Value) -> Vec<Value> {
    let mut out = vec![];
    for (key, binds) in ports.as_object().into_iter().flatten() {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        let private: u64 = port.parse().unwrap_or(0);
        match binds.as_array() {
            Some(list) if !list.is_empty() => {
                for b in list {
                    let mut e = json!({"PrivatePort": private, "Type": proto});
                    if let Some(ip) = b["HostIp"].as_str() {
                        e["IP"] = json!(if ip.is_empty() { "0.0.0.0" } else { ip });
                    }
                    if let Some(p) = b["HostPort"].as_str().and_then(|p| p.parse::<u64>().ok()) {
                        e["PublicPort"] = json!(p);
                    }
                    out.push(e);
                }
            }
            _ => out.push(json!({"PrivatePort": private, "Type": proto})),
        }
    }
    out
}

/// One container as `/containers/json` lists it: only the fields the
/// list has, written straight from the record and the part of its
/// settings a list shows (not the whole inspect document, which a list of
/// hundreds would build and drop for each).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Summary<'a> {
    id: &'a str,
    names: [String; 1],
    image: &'a str,
    #[serde(rename = "ImageID")]
    image_id: &'a str,
    command: String,
    created: i64,
    ports: Vec<Value>,
    labels: &'a std::collections::BTreeMap<String, String>,
    state: &'static str,
    status: String,
    host_config: ListedHostConfig<'a>,
    network_settings: ListedNetworks<'a>,
    mounts: &'a [Value],
}

/// The list's `HostConfig`.
#[derive(Serialize)]
struct ListedHostConfig<'a> {
    #[serde(rename = "NetworkMode")]
    network_mode: &'a str,
}

/// The list's `NetworkSettings`.
#[derive(Serialize)]
struct ListedNetworks<'a> {
    #[serde(rename = "Networks")]
    networks: &'a std::collections::BTreeMap<String, engine::net_setup::Attachment>,
}

impl<'a> Summary<'a> {
    /// The list's entry for `r`, whose settings are `settings` and whose
    /// process lives when `running`.
    fn of(r: &'a Record, settings: &'a ListedSettings, running: bool) -> Summary<'a> {
        Summary {
            id: &r.id,
            names: [format!("/{}", r.name)],
            image: &r.image,
            image_id: &r.image_id,
            command: r.command.join(" "),
            created: r.created,
            ports: port_list(&engine::inspect::ports_shown(
                &settings.exposed,
                &settings.ports,
                running,
            )),
            labels: &settings.labels,
            state: state_name(r, running, settings),
            status: engine::inspect::status_text_of(r, settings, running, now()),
            host_config: ListedHostConfig {
                network_mode: if settings.network_mode.is_empty() {
                    "none"
                } else {
                    &settings.network_mode
                },
            },
            network_settings: ListedNetworks {
                networks: &settings.networks,
            },
            mounts: &settings.mounts,
        }
    }
}

/// [`Summary`] as a JSON value (for answers that add fields to it).
pub(crate) fn summary(r: &Record) -> Value {
    let settings = ListedSettings::parse(&r.config);
    serde_json::to_value(Summary::of(r, &settings, r.is_running())).unwrap_or(Value::Null)
}

const FILTERS: [&str; 6] = ["id", "name", "status", "ancestor", "label", "exited"];

/// Whether `r` passes the `filters` (each key any of its values).
fn passes(
    r: &Record,
    running: bool,
    settings: &ListedSettings,
    filters: &[(String, String)],
) -> Result<bool, ApiError> {
    let mut keys: Vec<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        let vals = filters
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str());
        let ok = match key {
            "id" => vals.into_iter().any(|v| r.id.starts_with(v)),
            "name" => vals.into_iter().any(|v| r.name.contains(v.trim_start_matches('/'))),
            "status" => vals
                .into_iter()
                .any(|v| v == state_name(r, running, settings)),
            "ancestor" => vals.into_iter().any(|v| r.image == v || r.image_id.contains(v)),
            // Every label asked for, as dockerd matches them (other keys: any).
            "label" => vals
                .into_iter()
                .all(|v| engine::listing::label_matches(&settings.labels, v)),
            "exited" => vals.into_iter().any(|v| {
                r.state == RunState::Exited && v.parse::<i64>().ok() == Some(r.exit_code)
            }),
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter '{other}' (berth filters containers by id, name, status, ancestor, label and exited)"
                )))
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `GET /containers/json`.
pub async fn list(state: &Arc<State>, q: &Query) -> Result<Response, ApiError> {
    let all = q.flag("all");
    let limit = q.int("limit")?.filter(|n| *n > 0);
    let filters = q.filters()?;
    if let Some((k, _)) = filters.iter().find(|(k, _)| !FILTERS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "invalid filter '{k}' (berth filters containers by {})",
            FILTERS.join(", ")
        )));
    }
    let engine = state.engine.clone();
    let v = blocking(move || {
        let mut recs =
            crate::router::with_store(&engine.root.clone(), |db| Ok(engine.containers_in(db)?))?;
        // Newest first, as dockerd lists them.
        recs.sort_by_key(|r| std::cmp::Reverse(r.created));
        let mut kept = vec![];
        for r in &recs {
            let running = r.is_running();
            if !(all || limit.is_some() || running) {
                continue;
            }
            let settings = ListedSettings::parse(&r.config);
            if passes(r, running, &settings, &filters)? {
                kept.push((r, settings, running));
            }
            if limit.is_some_and(|n| kept.len() as i64 >= n) {
                break;
            }
        }
        let out: Vec<Summary> = kept
            .iter()
            .map(|(r, settings, running)| Summary::of(r, settings, *running))
            .collect();
        serde_json::to_vec(&out).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("writing the container list: {e}"),
            )
        })
    })
    .await?;
    Ok(json_body(StatusCode::OK, v))
}

/// `GET /containers/{id}/json`.
pub async fn inspect(state: &Arc<State>, id: &str) -> Result<Response, ApiError> {
    let (engine, id) = (state.engine.clone(), id.to_string());
    let v = blocking(move || {
        crate::router::with_store(&engine.root.clone(), |db| {
            Ok(engine::inspect::container_json(
                &engine.container_in(db, &id)?,
            ))
        })
    })
    .await?;
    Ok(json(StatusCode::OK, &v))
}

/// `POST /containers/{id}/start`: 204, or 304 when it runs already.
pub async fn start(state: &Arc<State>, id: &str) -> Result<Response, ApiError> {
    let (engine, key) = (state.engine.clone(), id.to_string());
    let rec = blocking(move || Ok(engine.container(&key)?)).await?;
    if rec.is_running() {
        return Ok(empty(StatusCode::NOT_MODIFIED));
    }
    // Attached clients (docker run, start -a) get it from its first output.
    if crate::attach::start_waiting(state, &rec.id).await? {
        return Ok(empty(StatusCode::NO_CONTENT));
    }
    let engine = state.engine.clone();
    let started = blocking(move || {
        engine.start_container(&rec.id)?;
        Ok(true)
    })
    .await?;
    Ok(empty(if started {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

/// The stop timeout of a request: `t` (or `timeout`, newer clients), seconds.
fn stop_timeout(q: &Query) -> Result<Option<Duration>, ApiError> {
    let t = match q.int("t")? {
        Some(t) => Some(t),
        None => q.int("timeout")?,
    };
    Ok(t.map(|t| Duration::from_secs(t.max(0) as u64)))
}

/// `POST /containers/{id}/stop`: 204, or 304 when it was not running.
pub async fn stop(state: &Arc<State>, id: &str, q: &Query) -> Result<Response, ApiError> {
    let timeout = stop_timeout(q)?;
    let signal = q.get("signal").filter(|s| !s.is_empty()).map(String::from);
    let (engine, id) = (state.engine.clone(), id.to_string());
    let stopped = blocking(move || {
        let r = engine.container(&id)?;
        if !r.is_running() {
            return Ok(false);
        }
        engine.stop_container(&r.id, timeout, signal.as_deref())?;
        Ok(true)
    })
    .await?;
    Ok(empty(if stopped {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

/// `POST /containers/{id}/restart`.
pub async fn restart(state: &Arc<State>, id: &str, q: &Query) -> Result<Response, ApiError> {
    let timeout = stop_timeout(q)?;
    let (engine, id) = (state.engine.clone(), id.to_string());
    blocking(move || Ok(engine.restart_container(&id, timeout).map(|_| ())?)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/kill`: 409 when it is not running.
pub async fn kill(state: &Arc<State>, id: &str, q: &Query) -> Result<Response, ApiError> {
    let signal = q
        .get("signal")
        .filter(|s| !s.is_empty())
        .unwrap_or("KILL")
        .to_string();
    let (engine, id) = (state.engine.clone(), id.to_string());
    blocking(move || match engine.kill_container(&id, &signal) {
        Err(EngineError::NotRunning(name)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Cannot kill container: {name}: container is not running"),
        )),
        other => Ok(other.map(|_| ())?),
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `DELETE /containers/{id}`: `force` kills a running one, `v` removes
/// its anonymous volumes.
pub async fn remove(state: &Arc<State>, id: &str, q: &Query) -> Result<Response, ApiError> {
    let (force, volumes) = (q.flag("force"), q.flag("v"));
    if q.flag("link") {
        return Err(ApiError::not_implemented(
            "DELETE /containers/{id}?link=1 (links)",
        ));
    }
    let (engine, id) = (state.engine.clone(), id.to_string());
    blocking(move || match engine.remove_container(&id, force, volumes) {
        Err(EngineError::Running(name)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("cannot remove container \"/{name}\": container is running: stop the container before removing or force remove"),
        )),
        other => Ok(other.map(|_| ())?),
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// What `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    NotRunning,
    NextExit,
    Removed,
}

/// `POST /containers/{id}/wait?condition=`: `{"StatusCode": n}` once the
/// container is not running (at once if it is not), has exited after its
/// next start, or is removed. As dockerd, the headers go at once and the
/// body when the wait is over: the docker CLI waits for the headers before
/// it starts the container. The engine's store is read every few
/// milliseconds; a client that goes away ends the wait.
pub async fn wait(state: &Arc<State>, id: &str, q: &Query) -> Result<Response, ApiError> {
    let condition = match q.get("condition").unwrap_or("") {
        "" | "not-running" => Condition::NotRunning,
        "next-exit" => Condition::NextExit,
        "removed" => Condition::Removed,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid condition: {other:?} (not-running, next-exit or removed)"
            )))
        }
    };
    let engine = state.engine.clone();
    let key = id.to_string();
    let look = move || {
        let (engine, key) = (engine.clone(), key.clone());
        async move {
            blocking(move || match engine.container(&key) {
                Ok(r) => Ok(Some(r)),
                Err(EngineError::NoSuchContainer(_)) => Ok(None),
                Err(e) => Err(e.into()),
            })
            .await
        }
    };
    let root = state.engine.root.clone();
    let since = engine::events::end(&root);
    let first = look()
        .await?
        .ok_or_else(|| ApiError::from(EngineError::NoSuchContainer(id.to_string())))?;
    let (tx, body) = crate::http::channel();
    tokio::spawn(async move {
        let answer = match wait_for(first, condition, look, &tx, (&root, since)).await {
            Ok(code) => json!({"StatusCode": code, "Error": null}),
            Err(e) => json!({"StatusCode": -1, "Error": {"Message": e.message}}),
        };
        let mut text = serde_json::to_vec(&answer).unwrap_or_default();
        text.push(b'\n');
        let _ = tx.send(text.into()).await;
    });
    Ok(crate::http::respond(
        StatusCode::OK,
        "application/json",
        body,
    ))
}

/// Polls `look` until `condition` holds, from `first`; the exit status.
async fn wait_for<F, Fut>(
    first: Record,
    condition: Condition,
    look: F,
    client: &tokio::sync::mpsc::Sender<bytes::Bytes>,
    (root, since): (&std::path::Path, u64),
) -> Result<i64, ApiError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<Record>, ApiError>>,
{
    let mut last = first.clone();
    let mut pause = Duration::from_millis(2);
    loop {
        let now = look().await?;
        let done = match (&now, condition) {
            (None, _) => true,
            (Some(r), Condition::NotRunning) => !r.is_running(),
            (Some(r), Condition::NextExit) => {
                !r.is_running() && (first.is_running() || r.started != first.started)
            }
            (Some(_), Condition::Removed) => false,
        };
        let gone = now.is_none();
        if let Some(r) = now {
            last = r;
        }
        if done {
            if last.state == RunState::Exited && !gone {
                return Ok(last.exit_code);
            }
            // Removed (--rm) before it was seen exited: its `die` event
            // since the wait began has the status.
            let (events, _) = engine::events::read_from(root, since);
            return Ok(events
                .iter()
                .rev()
                .find(|e| e.actor.id == last.id && e.action == "die")
                .and_then(|e| e.actor.attributes.get("exitCode")?.parse().ok())
                .unwrap_or(if last.state == RunState::Exited {
                    last.exit_code
                } else {
                    0
                }));
        }
        if client.is_closed() {
            return Err(ApiError::bad_request("the client went away"));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ports_list_as_dockerd_lists_them() {
        let p = json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}], "53/udp": null});
        let mut l = port_list(&p);
        l.sort_by_key(|e| e["PrivatePort"].as_u64());
        assert_eq!(
            l,
            [
                json!({"PrivatePort": 53, "Type": "udp"}),
                json!({"PrivatePort": 80, "Type": "tcp", "IP": "0.0.0.0", "PublicPort": 8080})
            ]
        );
    }
}
