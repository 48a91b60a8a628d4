//! HTTP plumbing: the response body (whole, or streamed from a channel),
//! JSON and error responses, the query string, and reading a request body
//! with a bound.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{header, StatusCode};
use serde_json::Value;

use crate::error::ApiError;

/// A response body: whole or streamed.
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;
/// A response.
pub type Response = hyper::Response<Body>;

/// The most read of a request body (dockerd reads whatever comes; a
/// container's create is a few KiB).
pub const MAX_BODY: usize = 8 << 20;

/// A whole body.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// A response with `status`, `content_type` and `body`.
pub fn respond(status: StatusCode, content_type: &str, body: Body) -> Response {
    let mut r = hyper::Response::new(body);
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// `v` as JSON with `status`.
pub fn json(status: StatusCode, v: &Value) -> Response {
    let mut text = serde_json::to_vec(v).unwrap_or_default();
    text.push(b'\n');
    respond(status, "application/json", full(text))
}

/// A JSON answer whose body is serialized already (a list written
/// straight from borrowed records).
pub fn json_body(status: StatusCode, mut text: Vec<u8>) -> Response {
    text.push(b'\n');
    respond(status, "application/json", full(text))
}

/// An empty response with `status` (204, 304).
pub fn empty(status: StatusCode) -> Response {
    let mut r = hyper::Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// The error's response: its status and `{"message": …}`.
pub fn error(e: &ApiError) -> Response {
    json(e.status, &serde_json::json!({ "message": e.message }))
}

/// A body fed from a channel: what is sent is written as it comes; the
/// body ends when every sender is gone.
pub struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(b)) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A streamed body and what feeds it (at most 64 chunks queued: a slow
/// client slows the producer, it does not grow memory).
pub fn channel() -> (tokio::sync::mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    (tx, ChannelBody { rx }.boxed())
}

/// A request's query string, decoded.
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `q` (without the `?`).
    pub fn parse(q: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The value of `key` (the last one given).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order (`names=a&names=b`).
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean as dockerd reads one: absent, "", "0", "false" and
    /// "False" are false, anything else true.
    pub fn flag(&self, key: &str) -> bool {
        !matches!(self.get(key), None | Some("" | "0" | "false" | "False"))
    }

    /// An integer, if given; a value that is not one is refused by name.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value for {key}: {v:?} is not an integer"))
            }),
        }
    }

    /// The `filters` parameter: `{"key": ["value", …]}` (or the old
    /// `{"key": {"value": true}}` form).
    pub fn filters(&self) -> Result<Vec<(String, String)>, ApiError> {
        let Some(text) = self.get("filters").filter(|t| !t.is_empty()) else {
            return Ok(vec![]);
        };
        let v: Value = serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("invalid filters: {e}")))?;
        let Value::Object(m) = v else {
            return Err(ApiError::bad_request("invalid filters: not a JSON object"));
        };
        let mut out = vec![];
        for (k, vals) in m {
            match vals {
                Value::Array(a) => {
                    for x in a {
                        match x {
                            Value::String(s) => out.push((k.clone(), s)),
                            other => {
                                return Err(ApiError::bad_request(format!(
                                    "invalid filter {k}: {other} is not a string"
                                )))
                            }
                        }
                    }
                }
                Value::Object(o) => out.extend(o.keys().map(|x| (k.clone(), x.clone()))),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "invalid filter {k}: {other} is not a list"
                    )))
                }
            }
        }
        Ok(out)
    }
}

/// A request body as a blocking `Read` (for the engine, on a blocking
/// thread): a task copies its frames into a bounded channel.
pub struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    chunk: Bytes,
}

/// Starts copying `body` for a [`BodyReader`] (on the current runtime).
pub fn body_reader(mut body: Incoming) -> BodyReader {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(frame) = body.frame().await {
            let sent = match frame {
                Ok(f) => match f.into_data() {
                    Ok(data) => tx.send(Ok(data)).await,
                    Err(_) => continue,
                },
                Err(e) => tx.send(Err(std::io::Error::other(e))).await,
            };
            if sent.is_err() {
                return;
            }
        }
    });
    BodyReader {
        rx,
        chunk: Bytes::new(),
    }
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(c)) => self.chunk = c,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// How much of a refused upload is read (and dropped) so the client,
/// still sending, gets the answer instead of a broken pipe.
pub const DRAIN_LIMIT: u64 = 64 << 20;

impl BodyReader {
    /// Reads and drops what is left of the body, at most [`DRAIN_LIMIT`]
    /// bytes (beyond that the connection is closed under the client).
    pub fn drain(&mut self) {
        let _ = std::io::copy(
            &mut std::io::Read::take(&mut *self, DRAIN_LIMIT),
            &mut std::io::sink(),
        );
    }
}

/// Reads a JSON request body of at most [`MAX_BODY`] bytes; an empty body
/// is `null`.
pub async fn read_json(body: Incoming) -> Result<Value, ApiError> {
    let bytes = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request body is larger than {} MiB", MAX_BODY >> 20),
                )
            } else {
                ApiError::bad_request(format!("reading the request body: {e}"))
            }
        })?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_read_as_dockerd_reads_them() {
        let q = Query::parse(Some(
            "all=1&t=5&x=&force=false&name=a%2Fb&filters=%7B%22status%22%3A%5B%22exited%22%5D%7D",
        ));
        assert!(q.flag("all"));
        assert!(!q.flag("force") && !q.flag("x") && !q.flag("missing"));
        assert_eq!(q.int("t").unwrap(), Some(5));
        assert_eq!(q.get("name"), Some("a/b"));
        assert_eq!(q.filters().unwrap(), [("status".into(), "exited".into())]);
        let bad = Query::parse(Some("t=soon&filters=%5B%5D"));
        assert!(bad.int("t").unwrap_err().message.contains("\"soon\""));
        assert!(bad.filters().is_err());
    }
}
