//! `POST /containers/{id}/attach` (the connection hijack: `Upgrade: tcp`,
//! answered with 101, then the raw stream both ways) and
//! `POST /containers/{id}/resize`.
//!
//! The container's side is its shim's attach socket, whose frames are
//! Docker's multiplexed-stream frames already (`shim::protocol`): output
//! frames go to the client as they are (without a terminal) or as their
//! bare payload (with one); what the client sends becomes stdin frames,
//! and its end of input a close-stdin frame.
//!
//! The docker CLI attaches before it starts (`docker run`, `start -a`):
//! an attach to a container that does not run registers here and waits;
//! the `start` that follows starts the container under a shim that waits
//! for its first client, and hands each waiting attach its socket, so no
//! output is lost. What the client types meanwhile is kept (at most
//! 1 MiB) and sent once the container runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hyper::{header, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use engine::store::State as RunState;
use shim::protocol;

use crate::error::ApiError;
use crate::http::{empty, full, respond, Response};
use crate::router::{blocking, Call, State};

/// What an attach waiting for its container's start gets.
type Socket = Result<(std::os::unix::net::UnixStream, bool), String>;

/// The attaches waiting for a start, by container id.
#[derive(Default)]
pub struct Waiting(Mutex<HashMap<String, Vec<oneshot::Sender<Socket>>>>);

impl Waiting {
    fn add(&self, id: &str) -> oneshot::Receiver<Socket> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut m) = self.0.lock() {
            m.entry(id.to_string()).or_default().push(tx);
        }
        rx
    }

    /// The attaches still waiting for container `id` (their clients there).
    fn take(&self, id: &str) -> Vec<oneshot::Sender<Socket>> {
        let mut m = match self.0.lock() {
            Ok(m) => m,
            Err(_) => return vec![],
        };
        // Whose clients have gone meanwhile are dropped, of every container.
        m.retain(|_, v| {
            v.retain(|tx| !tx.is_closed());
            !v.is_empty()
        });
        m.remove(id).unwrap_or_default()
    }
}

/// The most kept of what a client sends before its container runs.
const MAX_EARLY_INPUT: usize = 1 << 20;

/// What the client asked to see and send.
#[derive(Debug, Clone)]
pub(crate) struct Streams {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    /// Output in stdcopy frames (no terminal, not a websocket).
    framed: bool,
    /// The client's end of input closes the container's stdin.
    close_stdin: bool,
    /// With a terminal: the keys that end the attach and leave the
    /// container running (`detachKeys`, else ctrl-p,ctrl-q), as dockerd
    /// watches them.
    detach: Option<engine::attach::Escape>,
}

/// Where the container's attach socket comes from.
pub(crate) enum Source {
    Now(std::os::unix::net::UnixStream),
    AtStart(oneshot::Receiver<Socket>),
}

/// An attach, ready to relay: what the client asked for, the log so far
/// (`logs=1`), and where the container's side comes from (None: only the
/// log was asked for).
pub(crate) struct Prepared {
    pub(crate) streams: Streams,
    pub(crate) tty: bool,
    pub(crate) past: Vec<u8>,
    pub(crate) source: Option<Source>,
}

/// Reads an attach's query and finds its container (`raw`: output goes
/// without stdcopy frames, as over a websocket).
pub(crate) async fn prepare(
    state: &Arc<State>,
    id: &str,
    q: &crate::http::Query,
    raw: bool,
) -> Result<Prepared, ApiError> {
    let (logs, stream) = (q.flag("logs"), q.flag("stream"));
    if !logs && !stream {
        return Err(ApiError::bad_request(
            "attach needs stream=1 (what comes), logs=1 (what came) or both",
        ));
    }
    let detach_keys = q.get("detachKeys").filter(|k| !k.is_empty());
    let escape = engine::attach::Escape::new(detach_keys)
        .map_err(|e| ApiError::bad_request(format!("detachKeys: {e}")))?;
    let (engine, key) = (state.engine.clone(), id.to_string());
    let (stdout, stderr) = (q.flag("stdout"), q.flag("stderr"));
    let (rec, tty, stdin_once, past) = blocking(move || {
        let r = engine.container(&key)?;
        let settings = engine::restart::ContainerSettings::parse(&r.config);
        let (tty, stdin_once) = (settings.tty, settings.stdin_once);
        let past = if logs {
            crate::logs::past(&engine, &r.id, stdout, stderr, tty || raw)
        } else {
            vec![]
        };
        Ok((r, tty, stdin_once, past))
    })
    .await?;
    let streams = Streams {
        stdin: q.flag("stdin"),
        stdout,
        stderr,
        framed: !tty && !raw,
        // As dockerd: the client's end of input closes the container's
        // stdin only for `run -i` (StdinOnce) without a terminal; a client
        // that detaches (ctrl-p ctrl-q) or goes leaves it open.
        close_stdin: stdin_once && !tty,
        detach: tty.then_some(escape),
    };
    if !stream {
        return Ok(Prepared {
            streams,
            tty,
            past,
            source: None,
        });
    }
    let source = if rec.is_running() {
        let (engine, key) = (state.engine.clone(), rec.id.clone());
        let (sock, _) = blocking(move || Ok(engine.attach_socket(&key)?)).await?;
        Source::Now(sock)
    } else if rec.state == RunState::Running {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "container {} lost its supervisor: berth system check repairs it",
                rec.name
            ),
        ));
    } else {
        Source::AtStart(state.waiting.add(&rec.id))
    };
    Ok(Prepared {
        streams,
        tty,
        past,
        source: Some(source),
    })
}

/// `POST /containers/{id}/attach?stream=&logs=&stdin=&stdout=&stderr=`.
pub async fn attach(state: &Arc<State>, id: &str, mut call: Call) -> Result<Response, ApiError> {
    if !wants_upgrade(&call.req) {
        return Err(ApiError::bad_request(
            "attach hijacks the connection: send Connection: Upgrade and Upgrade: tcp",
        ));
    }
    let p = prepare(state, id, &call.query, false).await?;
    let on_upgrade = hyper::upgrade::on(&mut call.req);
    let tty = p.tty;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let mut io = TokioIo::new(upgraded);
                if !p.past.is_empty() && io.write_all(&p.past).await.is_err() {
                    return;
                }
                match p.source {
                    Some(source) => relay(io, source, p.streams).await,
                    // What came, and no more.
                    None => {
                        let _ = io.shutdown().await;
                    }
                }
            }
            Err(e) => tracing::debug!("attach upgrade: {e}"),
        }
    });
    Ok(hijacked(tty))
}

/// Whether the request asks for the connection hijack (`Upgrade: tcp`).
pub(crate) fn wants_upgrade<B>(req: &hyper::Request<B>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
}

/// The 101 that hands the connection over to the raw stream (bare bytes
/// with a terminal, multiplexed frames without).
pub(crate) fn hijacked(tty: bool) -> Response {
    let mut r = respond(
        StatusCode::SWITCHING_PROTOCOLS,
        if tty {
            "application/vnd.docker.raw-stream"
        } else {
            "application/vnd.docker.multiplexed-stream"
        },
        full(""),
    );
    let h = r.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    h.insert(header::UPGRADE, header::HeaderValue::from_static("tcp"));
    r
}

/// `?h=&w=`: a terminal's size.
pub(crate) fn size_query(q: &crate::http::Query) -> Result<(u16, u16), ApiError> {
    let dim = |k: &str| -> Result<u16, ApiError> {
        q.int(k)?
            .and_then(|v| u16::try_from(v).ok())
            .ok_or_else(|| ApiError::bad_request(format!("{k}: a terminal size from 0 to 65535")))
    };
    Ok((dim("h")?, dim("w")?))
}

/// Copies between the client and the container's attach socket until the
/// container exits (or the client goes).
pub(crate) async fn relay<C>(client: C, source: Source, streams: Streams)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut from_client, mut to_client) = tokio::io::split(client);
    let mut early = Vec::new();
    // The client's input ended before the start (a half-close, as the
    // docker CLI does without -i, or the end of piped input).
    let mut ended = false;
    let sock = match source {
        Source::Now(s) => s,
        Source::AtStart(mut rx) => {
            let mut buf = vec![0u8; 8192];
            let got = loop {
                tokio::select! {
                    s = &mut rx => break s,
                    n = from_client.read(&mut buf), if streams.stdin && !ended => match n {
                        Ok(0) | Err(_) => ended = true,
                        Ok(n) if early.len() + n <= MAX_EARLY_INPUT => early.extend_from_slice(&buf[..n]),
                        Ok(_) => {}
                    },
                }
            };
            match got {
                Ok(Ok((s, _))) => s,
                Ok(Err(why)) => {
                    let _ = to_client
                        .write_all(&protocol::frame(protocol::STDERR, why.as_bytes()))
                        .await;
                    return;
                }
                Err(_) => return,
            }
        }
    };
    if sock.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(sock) = tokio::net::UnixStream::from_std(sock) else {
        return;
    };
    let (mut from_shim, mut to_shim) = sock.into_split();
    let (detached_tx, mut detached) = oneshot::channel::<()>();
    let mut escape = streams.detach.clone();
    let (stdin, close_stdin) = (streams.stdin, streams.close_stdin);
    let input = tokio::spawn(async move {
        if !stdin {
            // Nothing to send; the socket's write side stays open (its end
            // would read to the shim as a client that went).
            let _keep = to_shim;
            std::future::pending::<()>().await;
            return;
        }
        let mut early = early;
        if let Some(e) = escape.as_mut() {
            let (data, typed) = e.feed(&early);
            if typed {
                let _ = to_shim
                    .write_all(&protocol::frame(protocol::STDIN, &data))
                    .await;
                let _ = detached_tx.send(());
                return;
            }
            early = data;
        }
        if !early.is_empty()
            && to_shim
                .write_all(&protocol::frame(protocol::STDIN, &early))
                .await
                .is_err()
        {
            return;
        }
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let read = if ended {
                Ok(0)
            } else {
                from_client.read(&mut buf).await
            };
            match read {
                Ok(0) | Err(_) => {
                    if close_stdin {
                        let _ = to_shim
                            .write_all(&protocol::frame(protocol::CLOSE_STDIN, &[]))
                            .await;
                    }
                    // Keep the socket open: the output still comes.
                    std::future::pending::<()>().await;
                }
                Ok(n) => {
                    let (data, typed) = match escape.as_mut() {
                        Some(e) => e.feed(&buf[..n]),
                        None => (buf[..n].to_vec(), false),
                    };
                    if !data.is_empty()
                        && to_shim
                            .write_all(&protocol::frame(protocol::STDIN, &data))
                            .await
                            .is_err()
                    {
                        return;
                    }
                    if typed {
                        // The attach ends; the container runs on.
                        let _ = detached_tx.send(());
                        return;
                    }
                }
            }
        }
    });
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    'out: loop {
        let n = tokio::select! {
            read = from_shim.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            Ok(()) = &mut detached => break,
        };
        pending.extend_from_slice(&buf[..n]);
        loop {
            let (kind, payload) = match protocol::take(&mut pending) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => break 'out,
            };
            let wanted = match kind {
                protocol::STDOUT => streams.stdout,
                protocol::STDERR => streams.stderr,
                protocol::EXIT | protocol::ERROR => break 'out,
                _ => false,
            };
            if !wanted {
                continue;
            }
            let out = if streams.framed {
                protocol::frame(kind, &payload)
            } else {
                payload
            };
            if to_client.write_all(&out).await.is_err() {
                break 'out;
            }
        }
    }
    let _ = to_client.shutdown().await;
    input.abort();
}

/// Hands the attaches waiting for container `id` their sockets, the first
/// starting it. False when none waits (the caller starts it plainly).
pub async fn start_waiting(state: &Arc<State>, id: &str) -> Result<bool, ApiError> {
    let waiters = state.waiting.take(id);
    if waiters.is_empty() {
        return Ok(false);
    }
    let (engine, key) = (state.engine.clone(), id.to_string());
    let n = waiters.len();
    let sockets = blocking(move || {
        let mut out = vec![engine.start_for_attach(&key)?];
        for _ in 1..n {
            out.push(engine.attach_socket(&key)?);
        }
        Ok(out)
    })
    .await?;
    for (tx, s) in waiters.into_iter().zip(sockets) {
        let _ = tx.send(Ok(s));
    }
    Ok(true)
}

/// `POST /containers/{id}/resize?h=&w=`: the terminal's new size.
pub async fn resize(state: &Arc<State>, id: &str, call: &Call) -> Result<Response, ApiError> {
    let (h, w) = size_query(&call.query)?;
    let (engine, key) = (state.engine.clone(), id.to_string());
    blocking(move || {
        let (mut sock, tty) = engine.attach_socket(&key)?;
        if !tty {
            return Err(ApiError::bad_request(format!(
                "container {key} has no terminal to resize"
            )));
        }
        let mut p = h.to_be_bytes().to_vec();
        p.extend(w.to_be_bytes());
        std::io::Write::write_all(&mut sock, &protocol::frame(protocol::RESIZE, &p))
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("resize: {e}")))
    })
    .await?;
    Ok(empty(StatusCode::OK))
}
