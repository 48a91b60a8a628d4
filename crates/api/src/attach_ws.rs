//! `GET /containers/{id}/attach/ws`: attach over a websocket (what web
//! consoles and docker-py's `attach_socket(ws=True)` use). The same
//! attach as the hijack (`crate::attach`), its output sent as binary
//! messages without stdcopy frames (as dockerd sends them), each message
//! from the client going to the container's stdin.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use hyper::{header, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Message, Role};

use crate::error::ApiError;
use crate::http::{full, respond, Response};
use crate::router::{Call, State};

/// The most a client message may carry (stdin, typed or pasted).
const MAX_MESSAGE: usize = 1 << 20;

/// `GET /containers/{id}/attach/ws?stream=&logs=&stdin=&stdout=&stderr=`.
pub async fn attach_ws(state: &Arc<State>, id: &str, mut call: Call) -> Result<Response, ApiError> {
    let h = call.req.headers();
    let is_ws = h
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = h.get("Sec-WebSocket-Key").map(|k| k.as_bytes().to_vec());
    let (true, Some(key)) = (is_ws, key) else {
        return Err(ApiError::bad_request(
            "attach/ws is a websocket: send Upgrade: websocket and Sec-WebSocket-Key",
        ));
    };
    let p = crate::attach::prepare(state, id, &call.query, true).await?;
    let on_upgrade = hyper::upgrade::on(&mut call.req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::debug!("attach/ws upgrade: {e}");
                return;
            }
        };
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            upgraded,
            Role::Server,
            Some(config),
        )
        .await;
        if !p.past.is_empty() && ws.send(Message::binary(p.past)).await.is_err() {
            return;
        }
        let Some(source) = p.source else {
            let _ = ws.close(None).await;
            return;
        };
        // The attach relay on one side of a pipe, the websocket on the other.
        let (ours, theirs) = tokio::io::duplex(64 << 10);
        let relay = tokio::spawn(crate::attach::relay(theirs, source, p.streams));
        let (mut from_relay, mut to_relay) = tokio::io::split(ours);
        let mut buf = vec![0u8; 32 << 10];
        loop {
            tokio::select! {
                n = from_relay.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if ws.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                            break;
                        }
                    }
                },
                m = ws.next() => match m {
                    Some(Ok(Message::Binary(b))) => {
                        if to_relay.write_all(&b).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Text(t))) => {
                        if to_relay.write_all(t.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                    // The client went: so does the attach (the container runs on).
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        let _ = ws.close(None).await;
        relay.abort();
    });
    let mut r = respond(StatusCode::SWITCHING_PROTOCOLS, "text/plain", full(""));
    let h = r.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&derive_accept_key(&key)) {
        h.insert("Sec-WebSocket-Accept", v);
    }
    Ok(r)
}
