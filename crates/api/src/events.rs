//! `GET /events?since=&until=&filters=`: the engine's event log
//! (`engine::events`), as dockerd streams it: one JSON object per line,
//! the past ones between `since` and `until` first, then (unless `until`
//! has passed) each new one as it is logged, until the client goes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;

use crate::error::ApiError;
use crate::http::{channel, respond, Query, Response};
use crate::router::{blocking, State};

/// How often a followed log is read again.
const POLL: Duration = Duration::from_millis(100);

/// An event as dockerd sends it: with `scope`, and for containers the
/// older fields (`status`, `id`, `from`) that older clients read.
fn render(e: &engine::events::Event) -> Option<Bytes> {
    let mut v = serde_json::to_value(e).ok()?;
    v["scope"] = "local".into();
    if e.typ == "container" {
        v["status"] = e.action.clone().into();
        v["id"] = e.actor.id.clone().into();
        if let Some(image) = e.actor.attributes.get("image") {
            v["from"] = image.clone().into();
        }
    }
    let mut line = serde_json::to_vec(&v).ok()?;
    line.push(b'\n');
    Some(line.into())
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `GET /events`.
pub async fn events(state: &Arc<State>, q: &Query) -> Result<Response, ApiError> {
    let filters = q.filters()?;
    engine::events::check_filters(&filters)?;
    let since = crate::logs::time_param(q, "since")?;
    let until = crate::logs::time_param(q, "until")?;
    let root = state.engine.root.clone();
    let (tx, body) = channel();
    tokio::spawn(async move {
        let in_window = |e: &engine::events::Event| {
            let t = e.time_nano as f64 / 1e9;
            since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
        };
        let r = root.clone();
        let Ok((past, mut pos)) = blocking(move || {
            let pos = engine::events::end(&r);
            let past = if since.is_some() || until.is_some() {
                engine::events::read(&r)
            } else {
                vec![]
            };
            Ok((past, pos))
        })
        .await
        else {
            return;
        };
        for e in past.iter().filter(|e| in_window(e)) {
            if engine::events::matches(&filters, e) {
                if let Some(b) = render(e) {
                    if tx.send(b).await.is_err() {
                        return;
                    }
                }
            }
        }
        loop {
            if until.is_some_and(|u| unix_now() > u) || tx.is_closed() {
                return;
            }
            tokio::time::sleep(POLL).await;
            let r = root.clone();
            let Ok((new, next)) = blocking(move || Ok(engine::events::read_from(&r, pos))).await
            else {
                return;
            };
            pos = next;
            for e in new.iter().filter(|e| engine::events::matches(&filters, e)) {
                if until.is_some_and(|u| e.time_nano as f64 / 1e9 > u) {
                    return;
                }
                if let Some(b) = render(e) {
                    if tx.send(b).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(respond(StatusCode::OK, "application/json", body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn container_events_carry_the_older_fields() {
        let e = engine::events::Event {
            typ: "container".into(),
            action: "start".into(),
            actor: engine::events::Actor {
                id: "abc".into(),
                attributes: [("image".to_string(), "bb:1".to_string())].into(),
            },
            time: 1,
            time_nano: 1_000_000_000,
        };
        let v: Value = serde_json::from_slice(&render(&e).unwrap()).unwrap();
        assert_eq!(v["status"], "start");
        assert_eq!(v["id"], "abc");
        assert_eq!(v["from"], "bb:1");
        assert_eq!(v["Actor"]["Attributes"]["image"], "bb:1");
        assert_eq!(v["scope"], "local");
    }
}
