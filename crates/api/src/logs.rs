//! `GET /containers/{id}/logs`: the container's json-file log (rotated
//! files first), with `stdout`, `stderr`, `tail`, `since`, `until`,
//! `timestamps` and `follow`. Without a terminal each chunk is framed as
//! dockerd's stdcopy does (an 8-byte header: the stream, three zero bytes,
//! the length in big-endian); with one, the bytes go as they are.
//! `follow` reads the file as it grows until the container stops (or the
//! client goes); the reading is the engine's (`engine::log_reader`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::Value;

use crate::error::ApiError;
use crate::http::{channel, respond, Query, Response};
use crate::router::{blocking, State};

/// What the client asked for.
#[derive(Debug, Clone)]
struct Want {
    stdout: bool,
    stderr: bool,
    timestamps: bool,
    tail: Option<usize>,
    since: Option<f64>,
    until: Option<f64>,
    tty: bool,
}

/// dockerd's stdcopy header for `stream` (1 stdout, 2 stderr) and `len` bytes.
pub fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let n = (len as u32).to_be_bytes();
    [stream, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

/// One json-file line as the client gets it; None when it is not wanted.
fn render(line: &str, w: &Want) -> Option<Bytes> {
    let v: Value = serde_json::from_str(line).ok()?;
    let stream = if v["stream"] == "stderr" { 2 } else { 1 };
    if (stream == 1 && !w.stdout) || (stream == 2 && !w.stderr) {
        return None;
    }
    let time = v["time"].as_str().unwrap_or("");
    if w.since.is_some() || w.until.is_some() {
        if let Some(t) = engine::inspect::parse_rfc3339_f(time) {
            if w.since.is_some_and(|s| t < s) || w.until.is_some_and(|u| t >= u) {
                return None;
            }
        }
    }
    let text = v["log"].as_str().unwrap_or("");
    let mut payload = Vec::with_capacity(text.len() + 40);
    if w.timestamps {
        payload.extend_from_slice(time.as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(text.as_bytes());
    if w.tty {
        return Some(payload.into());
    }
    let mut out = frame_header(stream, payload.len()).to_vec();
    out.extend_from_slice(&payload);
    Some(out.into())
}

/// Everything container `id` has logged so far on the streams asked for,
/// as an attach with `logs=1` sends it first (framed unless `tty`; empty
/// when its log driver keeps nothing readable). Blocking.
pub(crate) fn past(
    engine: &engine::Engine,
    id: &str,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> Vec<u8> {
    let want = Want {
        stdout,
        stderr,
        timestamps: false,
        tail: None,
        since: None,
        until: None,
        tty,
    };
    let Ok(path) = engine.log_path(id) else {
        return vec![];
    };
    let Ok(Some((_, lines))) = engine::log_reader::LogReader::open(&path) else {
        return vec![];
    };
    lines
        .iter()
        .filter_map(|l| render(l, &want))
        .flat_map(|b| b.to_vec())
        .collect()
}

/// A time parameter: Unix seconds, with a fraction.
pub(crate) fn time_param(q: &Query, key: &str) -> Result<Option<f64>, ApiError> {
    match q.get(key) {
        None | Some("") | Some("0") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!("invalid value for {key}: {v:?} is not a Unix time"))
        }),
    }
}

/// `GET /containers/{id}/logs`.
pub async fn logs(state: &Arc<State>, id: &str, q: &Query) -> Result<Response, ApiError> {
    let mut want = Want {
        stdout: q.flag("stdout"),
        stderr: q.flag("stderr"),
        timestamps: q.flag("timestamps"),
        tail: match q.get("tail").unwrap_or("all") {
            "all" | "" => None,
            n => Some(n.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid value for tail: {n:?} (a number or all)"))
            })?),
        },
        since: time_param(q, "since")?,
        until: time_param(q, "until")?,
        tty: false,
    };
    if !want.stdout && !want.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let follow = q.flag("follow");
    let (engine, key) = (state.engine.clone(), id.to_string());
    let (path, tty, container) = blocking(move || {
        let r = engine.container(&key)?;
        let settings = engine::restart::ContainerSettings::parse(&r.config);
        Ok((engine.log_path(&r.id)?, settings.tty, r.id))
    })
    .await?;
    want.tty = tty;
    let (tx, body) = channel();
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let send = |b: Bytes| tx.blocking_send(b).is_ok();
        let Ok(Some((mut reader, lines))) = engine::log_reader::LogReader::open(&path) else {
            return;
        };
        let rendered: Vec<Bytes> = lines.iter().filter_map(|l| render(l, &want)).collect();
        let skip = want.tail.map_or(0, |n| rendered.len().saturating_sub(n));
        for b in rendered.into_iter().skip(skip) {
            if !send(b) {
                return;
            }
        }
        if !follow {
            return;
        }
        loop {
            let running = engine.container(&container).is_ok_and(|r| r.is_running());
            let Ok(Some(more)) = reader.more() else {
                return;
            };
            for l in &more {
                if let Some(b) = render(l, &want) {
                    if !send(b) {
                        return;
                    }
                }
            }
            if (!running && more.is_empty()) || tx.is_closed() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok(respond(StatusCode::OK, content_type, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want() -> Want {
        Want {
            stdout: true,
            stderr: true,
            timestamps: false,
            tail: None,
            since: None,
            until: None,
            tty: false,
        }
    }

    #[test]
    fn lines_are_framed_as_stdcopy() {
        let line = r#"{"log":"hi\n","stream":"stderr","time":"2026-01-01T00:00:00.5Z"}"#;
        let b = render(line, &want()).unwrap();
        assert_eq!(&b[..8], &[2, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(&b[8..], b"hi\n");
        let raw = render(
            line,
            &Want {
                tty: true,
                timestamps: true,
                ..want()
            },
        )
        .unwrap();
        assert_eq!(&raw[..], b"2026-01-01T00:00:00.5Z hi\n");
        assert!(render(
            line,
            &Want {
                stderr: false,
                ..want()
            }
        )
        .is_none());
        let later = engine::inspect::parse_rfc3339_f("2026-01-01T00:00:01Z");
        assert!(render(
            line,
            &Want {
                since: later,
                ..want()
            }
        )
        .is_none());
    }
}
