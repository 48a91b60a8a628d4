//! The container endpoints beyond the lifecycle: `rename`, `pause`,
//! `unpause`, `top`, `changes`, `update`, `stats` (streamed or one
//! sample), `export`, and `prune`. The engine does each; this shapes
//! requests and answers as dockerd does.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::fields::Fields;
use crate::http::{channel, empty, json, read_json, respond, Query, Response};
use crate::router::{blocking, Call, State};

/// `POST /containers/{id}/rename?name=`.
pub async fn rename(state: &Arc<State>, id: &str, q: &Query) -> Result<Response, ApiError> {
    let Some(name) = q.get("name").filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request("name: the new name is missing"));
    };
    let (engine, key, name) = (state.engine.clone(), id.to_string(), name.to_string());
    blocking(move || Ok(engine.rename_container(&key, name.trim_start_matches('/'))?)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/pause` and `unpause`.
pub async fn pause(state: &Arc<State>, id: &str, pause: bool) -> Result<Response, ApiError> {
    let (engine, key) = (state.engine.clone(), id.to_string());
    blocking(move || {
        if pause {
            engine.pause_container(&key)?;
        } else {
            engine.unpause_container(&key)?;
        }
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `ps` output as `{"Titles": […], "Processes": [[…]]}`: the columns are
/// split at blanks, the last one (the command) keeps the rest of its line.
fn top_table(text: &str) -> Value {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let titles: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let n = titles.len().max(1);
    let rows: Vec<Vec<String>> = lines
        .map(|l| {
            let mut cols = vec![];
            let mut rest = l.trim_start();
            while cols.len() + 1 < n {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                cols.push(rest[..end].to_string());
                rest = rest[end..].trim_start();
            }
            cols.push(rest.to_string());
            cols
        })
        .collect();
    json!({ "Titles": titles, "Processes": rows })
}

/// `GET /containers/{id}/top?ps_args=`.
pub async fn top(state: &Arc<State>, id: &str, q: &Query) -> Result<Response, ApiError> {
    let args: Vec<String> = q
        .get("ps_args")
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    let (engine, key) = (state.engine.clone(), id.to_string());
    let text = blocking(move || Ok(engine.top(&key, &args)?)).await?;
    Ok(json(StatusCode::OK, &top_table(&text)))
}

/// `GET /containers/{id}/changes`: `[{"Path", "Kind"}]` (0 changed, 1
/// added, 2 deleted).
pub async fn changes(state: &Arc<State>, id: &str) -> Result<Response, ApiError> {
    let (engine, key) = (state.engine.clone(), id.to_string());
    let list = blocking(move || Ok(engine.diff(&key)?)).await?;
    let v: Vec<Value> = list
        .iter()
        .map(|(kind, path)| {
            let kind = match kind {
                'A' => 1,
                'D' => 2,
                _ => 0,
            };
            json!({ "Path": path, "Kind": kind })
        })
        .collect();
    Ok(json(StatusCode::OK, &Value::Array(v)))
}

/// `POST /containers/{id}/update`: resources (as `HostConfig` names them)
/// and `RestartPolicy`.
pub async fn update(state: &Arc<State>, id: &str, call: Call) -> Result<Response, ApiError> {
    let body = read_json(call.req.into_body()).await?;
    let f = Fields::of("", Some(&body))?;
    let limits = crate::create::resources(&f)?;
    let restart =
        crate::create::restart_policy(&Fields::of("RestartPolicy.", f.get("RestartPolicy"))?)?;
    let u = engine::manage::UpdateOptions { limits, restart };
    let (engine, key) = (state.engine.clone(), id.to_string());
    blocking(move || Ok(engine.update_container(&key, &u)?)).await?;
    Ok(json(StatusCode::OK, &json!({ "Warnings": [] })))
}

/// The host's CPU time so far (ns), from /proc/stat, and its CPUs: what
/// the docker CLI divides a container's CPU time by.
fn system_cpu() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse::<u64>().ok())
        .sum();
    let cpus = text
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count() as u64;
    // USER_HZ is 100 on Linux.
    (ticks * 10_000_000, cpus.max(1))
}

/// One sample with the host's CPU time beside it.
#[derive(Clone)]
struct Taken {
    sample: engine::stats::Sample,
    system: u64,
    cpus: u64,
    read: String,
}

fn take(engine: &engine::Engine, key: &str) -> Result<Taken, ApiError> {
    let sample = engine.stats_sample(key)?;
    let (system, cpus) = system_cpu();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    Ok(Taken {
        sample,
        system,
        cpus,
        read: engine::inspect::rfc3339_f(now),
    })
}

fn cpu_json(t: Option<&Taken>) -> Value {
    match t {
        Some(t) => json!({
            "cpu_usage": {"total_usage": t.sample.cpu_ns, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "system_cpu_usage": t.system,
            "online_cpus": t.cpus,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }),
        None => json!({
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }),
    }
}

/// A sample as dockerd's stats JSON, `before` giving `precpu_stats`.
fn stats_json(id: &str, name: &str, now: &Taken, before: Option<&Taken>) -> Value {
    let s = &now.sample;
    json!({
        "id": id,
        "name": format!("/{name}"),
        "read": now.read,
        "preread": before.map_or("0001-01-01T00:00:00Z".to_string(), |b| b.read.clone()),
        "pids_stats": {"current": s.pids},
        "cpu_stats": cpu_json(Some(now)),
        "precpu_stats": cpu_json(before),
        "memory_stats": {"usage": s.memory, "limit": s.memory_limit, "stats": {}},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 0, "minor": 0, "op": "read", "value": s.block_io.0},
            {"major": 0, "minor": 0, "op": "write", "value": s.block_io.1},
        ]},
        "networks": {"eth0": {"rx_bytes": s.net_io.0, "tx_bytes": s.net_io.1,
            "rx_packets": 0, "tx_packets": 0, "rx_errors": 0, "tx_errors": 0,
            "rx_dropped": 0, "tx_dropped": 0}},
    })
}

/// `GET /containers/{id}/stats?stream=&one-shot=`: a sample each second
/// (streamed), or one (`stream=false`: two, a second apart, so the CPU
/// share can be computed; `one-shot`: one at once).
pub async fn stats(state: &Arc<State>, id: &str, q: &Query) -> Result<Response, ApiError> {
    let stream = q.get("stream").is_none_or(|_| q.flag("stream"));
    let one_shot = q.flag("one-shot");
    let (engine, key) = (state.engine.clone(), id.to_string());
    let (rec, first) = blocking(move || {
        let rec = engine.container(&key)?;
        let first = take(&engine, &rec.id)?;
        Ok((rec, first))
    })
    .await?;
    if !stream {
        let before = if one_shot {
            None
        } else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some(first.clone())
        };
        let now = if one_shot {
            first
        } else {
            let (engine, key) = (state.engine.clone(), rec.id.clone());
            blocking(move || take(&engine, &key)).await?
        };
        let v = stats_json(&rec.id, &rec.name, &now, before.as_ref());
        return Ok(json(StatusCode::OK, &v));
    }
    let (tx, body) = channel();
    let engine = state.engine.clone();
    tokio::spawn(async move {
        let mut before: Option<Taken> = None;
        let mut now = first;
        loop {
            let mut line =
                serde_json::to_vec(&stats_json(&rec.id, &rec.name, &now, before.as_ref()))
                    .unwrap_or_default();
            line.push(b'\n');
            if tx.send(Bytes::from(line)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (e, key) = (engine.clone(), rec.id.clone());
            match blocking(move || take(&e, &key)).await {
                Ok(t) => {
                    before = Some(std::mem::replace(&mut now, t));
                }
                // Stopped: the stream ends.
                Err(_) => return,
            }
        }
    });
    Ok(respond(StatusCode::OK, "application/json", body))
}

/// A `Write` that feeds a streamed body (from a blocking thread).
pub(crate) struct BodyWriter(pub tokio::sync::mpsc::Sender<Bytes>);

impl std::io::Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /containers/{id}/export`: its root as a tar stream.
pub async fn export(state: &Arc<State>, id: &str) -> Result<Response, ApiError> {
    let (engine, key) = (state.engine.clone(), id.to_string());
    // Found before the answer starts, so a missing one is a 404.
    let rec = blocking(move || Ok(engine.container(&key)?)).await?;
    let (tx, body) = channel();
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let out = std::io::BufWriter::with_capacity(64 << 10, BodyWriter(tx));
        if let Err(e) = engine.export(&rec.id, out) {
            tracing::warn!("export of {}: {e}", rec.name);
        }
    });
    Ok(respond(StatusCode::OK, "application/x-tar", body))
}

/// `POST /containers/prune?filters=` (`label`, `until`): the stopped
/// containers go.
pub async fn prune(state: &Arc<State>, q: &Query) -> Result<Response, ApiError> {
    let filters = q.filters()?;
    let mut labels = vec![];
    let mut until = None;
    for (k, v) in filters {
        match k.as_str() {
            "label" => labels.push(v),
            "until" => {
                until = Some(
                    v.parse::<f64>()
                        .ok()
                        .or_else(|| engine::inspect::parse_rfc3339_f(&v))
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "invalid filter 'until={v}': a Unix time or RFC 3339 time"
                            ))
                        })?,
                )
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter '{k}' (berth prunes containers by label and until)"
                )))
            }
        }
    }
    let engine = state.engine.clone();
    let v = blocking(move || {
        let mut gone = vec![];
        let mut space = 0;
        for r in engine.containers()? {
            if r.is_running() || until.is_some_and(|u| r.created as f64 >= u) {
                continue;
            }
            let own = engine::restart::ContainerSettings::parse(&r.config).labels;
            let labelled = labels
                .iter()
                .all(|l| engine::listing::label_matches(&own, l));
            if !labelled {
                continue;
            }
            let size = engine.writable_layer_size(&r.id);
            engine.remove_container(&r.id, false, false)?;
            space += size;
            gone.push(r.id);
        }
        Ok(json!({ "ContainersDeleted": gone, "SpaceReclaimed": space }))
    })
    .await?;
    Ok(json(StatusCode::OK, &v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_keeps_the_command_whole() {
        let v = top_table(
            "UID        PID  PPID  C STIME TTY          TIME CMD\nroot     20740 20737  0 21:27 ?        00:00:00 sleep 1000\n",
        );
        assert_eq!(v["Titles"].as_array().unwrap().len(), 8);
        assert_eq!(v["Processes"][0][1], "20740");
        assert_eq!(v["Processes"][0][7], "sleep 1000");
    }
}
