//! Exec: `POST /containers/{id}/exec` (create), `POST /exec/{id}/start`
//! (the connection hijack, as attach; or detached), `POST
//! /exec/{id}/resize` and `GET /exec/{id}/json`.
//!
//! An exec instance is a request to run a process, kept by the server
//! until it has run (dockerd keeps them in memory too; they are not
//! containers, so the engine's database has no place for them). At start
//! the engine runs the runtime's `exec` with pipes (or a terminal) that
//! the server copies to the client: without a terminal, stdout and stderr
//! as Docker's multiplexed-stream frames; with one, raw. The client's
//! input goes to the process; its end of input closes the process's
//! stdin. Once the output has ended and the runtime has returned, the
//! exit status is recorded before the connection closes, so the docker
//! CLI's inspect that follows reads it.
//!
//! Reads and writes of the process's pipes run on threads of their own
//! (the engine's descriptors are blocking ones), joined to the
//! connection through bounded channels.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use engine::exec::ExecOptions;
use engine::exec_spawn::{ExecChild, ExecStdio};
use shim::protocol;

use crate::error::ApiError;
use crate::fields::{wrong, Fields};
use crate::http::{empty, json, read_json, Response};
use crate::router::{blocking, Call, State};

/// The most exec instances kept; finished ones go first when it is reached.
const MAX_EXECS: usize = 1024;

/// Where an exec instance is.
enum Phase {
    Created,
    Running {
        pid: Option<i32>,
        terminal: Option<Arc<OwnedFd>>,
    },
    Exited {
        code: i32,
        pid: Option<i32>,
    },
}

/// One exec instance.
struct Instance {
    container: String,
    opts: ExecOptions,
    stdout: bool,
    stderr: bool,
    console: Option<(u16, u16)>,
    /// `DetachKeys` (empty: ctrl-p,ctrl-q), watched with a terminal.
    detach_keys: String,
    phase: Phase,
    made: Instant,
}

/// The exec instances, by id.
#[derive(Default)]
pub struct Execs(Mutex<HashMap<String, Instance>>);

impl Execs {
    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Instance) -> T) -> Result<T, ApiError> {
        let mut m = self.lock();
        match m.get_mut(id) {
            Some(i) => Ok(f(i)),
            None => Err(ApiError::not_found(format!("No such exec instance: {id}"))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instance>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, id: String, i: Instance) -> Result<(), ApiError> {
        let mut m = self.lock();
        if m.len() >= MAX_EXECS {
            // The finished ones, oldest first, until there is room.
            let mut done: Vec<(Instant, String)> = m
                .iter()
                .filter(|(_, i)| !matches!(i.phase, Phase::Running { .. }))
                .map(|(k, i)| (i.made, k.clone()))
                .collect();
            done.sort();
            for (_, k) in done.into_iter().take(m.len() + 1 - MAX_EXECS) {
                m.remove(&k);
            }
        }
        if m.len() >= MAX_EXECS {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{MAX_EXECS} execs are running already"),
            ));
        }
        m.insert(id, i);
        Ok(())
    }

    fn finish(&self, id: &str, code: i32) {
        let _ = self.with(id, |i| {
            let pid = match i.phase {
                Phase::Running { pid, .. } => pid,
                _ => None,
            };
            i.phase = Phase::Exited { code, pid };
        });
    }
}

/// `ConsoleSize`: `[height, width]`.
fn console_size(f: &Fields<'_>) -> Result<Option<(u16, u16)>, ApiError> {
    let Some(v) = f.get("ConsoleSize") else {
        return Ok(None);
    };
    let dims: Option<Vec<u16>> = v.as_array().and_then(|a| {
        a.iter()
            .map(|x| x.as_u64().and_then(|n| u16::try_from(n).ok()))
            .collect()
    });
    match dims.as_deref() {
        Some([h, w]) => Ok((*h > 0 && *w > 0).then_some((*h, *w))),
        _ => Err(wrong(
            f.at,
            "ConsoleSize",
            "[height, width] from 0 to 65535",
            v,
        )),
    }
}

/// `POST /containers/{id}/exec`.
pub async fn create(state: &Arc<State>, id: &str, call: Call) -> Result<Response, ApiError> {
    let body = read_json(call.req.into_body()).await?;
    let f = Fields::of("", Some(&body))?;
    let cmd = f.strings("Cmd")?.unwrap_or_default();
    if cmd.is_empty() {
        return Err(ApiError::bad_request("Cmd: no command given"));
    }
    let opts = ExecOptions {
        cmd,
        env: f.strings("Env")?.unwrap_or_default(),
        user: f.string("User")?,
        workdir: f.string("WorkingDir")?,
        interactive: f.boolean("AttachStdin")?,
        tty: f.boolean("Tty")?,
        detach: false,
        privileged: f.boolean("Privileged")?,
    };
    if let Some(w) = &opts.workdir {
        if !w.starts_with('/') {
            return Err(ApiError::bad_request(format!(
                "WorkingDir: {w:?} is not an absolute path"
            )));
        }
    }
    let console = console_size(&f)?;
    let detach_keys = f.string("DetachKeys")?.unwrap_or_default();
    if !detach_keys.is_empty() {
        engine::attach::Escape::new(Some(&detach_keys))
            .map_err(|e| ApiError::bad_request(format!("DetachKeys: {e}")))?;
    }
    let (stdout, stderr) = (f.boolean("AttachStdout")?, f.boolean("AttachStderr")?);
    let (engine, key) = (state.engine.clone(), id.to_string());
    let rec = blocking(move || Ok(engine.container(&key)?)).await?;
    if !rec.is_running() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("container {} is not running", rec.id),
        ));
    }
    let exec_id = blocking(|| Ok(engine::run::new_id()?)).await?;
    state.execs.insert(
        exec_id.clone(),
        Instance {
            container: rec.id,
            opts,
            stdout,
            stderr,
            console,
            detach_keys,
            phase: Phase::Created,
            made: Instant::now(),
        },
    )?;
    Ok(json(StatusCode::CREATED, &json!({ "Id": exec_id })))
}

/// `GET /exec/{id}/json`.
pub async fn inspect(state: &Arc<State>, id: &str) -> Result<Response, ApiError> {
    let v = state.execs.with(id, |i| {
        let (running, code, pid) = match &i.phase {
            Phase::Created => (false, Value::Null, 0),
            Phase::Running { pid, .. } => (true, Value::Null, pid.unwrap_or(0)),
            Phase::Exited { code, pid } => (false, json!(code), pid.unwrap_or(0)),
        };
        json!({
            "ID": id,
            "Running": running,
            "ExitCode": code,
            "ProcessConfig": {
                "tty": i.opts.tty,
                "entrypoint": i.opts.cmd[0],
                "arguments": i.opts.cmd[1..],
                "privileged": i.opts.privileged,
                "user": i.opts.user.clone().unwrap_or_default(),
            },
            "OpenStdin": i.opts.interactive,
            "OpenStderr": i.stderr,
            "OpenStdout": i.stdout,
            "CanRemove": false,
            "ContainerID": i.container,
            "DetachKeys": i.detach_keys,
            "Pid": pid,
        })
    })?;
    Ok(json(StatusCode::OK, &v))
}

/// `POST /exec/{id}/resize?h=&w=`.
pub async fn resize(state: &Arc<State>, id: &str, call: &Call) -> Result<Response, ApiError> {
    let (h, w) = crate::attach::size_query(&call.query)?;
    let terminal = state.execs.with(id, |i| match &i.phase {
        Phase::Running { terminal, .. } => Ok(terminal.clone()),
        _ => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("exec {id} is not running"),
        )),
    })??;
    let Some(t) = terminal else {
        return Err(ApiError::bad_request(format!(
            "exec {id} has no terminal to resize"
        )));
    };
    set_size(&t, h, w);
    Ok(empty(StatusCode::CREATED))
}

/// Gives the pty master `t` the size `h`×`w`.
fn set_size(t: &OwnedFd, h: u16, w: u16) {
    let ws = libc::winsize {
        ws_row: h,
        ws_col: w,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer; `t` is open.
    unsafe { libc::ioctl(t.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// `POST /exec/{id}/start` with `{"Detach": …, "Tty": …}`.
pub async fn start(state: &Arc<State>, id: &str, call: Call) -> Result<Response, ApiError> {
    let (parts, body) = call.req.into_parts();
    let mut req = hyper::Request::from_parts(parts, ());
    let body = read_json(body).await?;
    let f = Fields::of("", Some(&body))?;
    let detach = f.boolean("Detach")?;
    let size = console_size(&f)?;
    if !detach && !crate::attach::wants_upgrade(&req) {
        return Err(ApiError::bad_request(
            "exec start hijacks the connection: send Connection: Upgrade and Upgrade: tcp (or Detach)",
        ));
    }
    let (container, opts, streams, console, keys) = state.execs.with(id, |i| match i.phase {
        Phase::Created => {
            i.phase = Phase::Running {
                pid: None,
                terminal: None,
            };
            Ok((
                i.container.clone(),
                i.opts.clone(),
                (i.stdout, i.stderr),
                size.or(i.console),
                (!i.detach_keys.is_empty()).then(|| i.detach_keys.clone()),
            ))
        }
        _ => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("exec {id} has already started"),
        )),
    })??;
    let (state, id) = (state.clone(), id.to_string());
    if detach {
        let child = match spawn(&state, &id, &container, &opts, ExecStdio::Null, console).await {
            Ok(c) => c,
            Err(failed) => {
                state.execs.finish(&id, failed.code);
                return Err(failed.error);
            }
        };
        std::thread::spawn(move || {
            let code = finish(child, vec![]);
            state.execs.finish(&id, code);
        });
        return Ok(empty(StatusCode::OK));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let tty = opts.tty;
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::debug!("exec upgrade: {e}");
                state.execs.finish(&id, 126);
                return;
            }
        };
        let (mut from_client, mut to_client) = tokio::io::split(upgraded);
        let code = match spawn(&state, &id, &container, &opts, ExecStdio::Piped, console).await {
            Ok(child) => {
                // Checked at create; with a terminal, as dockerd.
                let escape = engine::attach::Escape::new(keys.as_deref())
                    .ok()
                    .filter(|_| tty);
                relay(child, &mut from_client, &mut to_client, streams, escape).await
            }
            Err(failed) => {
                // As dockerd: the reason goes down the stream, the status
                // to the exec's record.
                let text = format!("{}\r\n", failed.error.message);
                let out = if tty {
                    text.into_bytes()
                } else {
                    protocol::frame(protocol::STDOUT, text.as_bytes())
                };
                let _ = to_client.write_all(&out).await;
                failed.code
            }
        };
        state.execs.finish(&id, code);
        let _ = to_client.shutdown().await;
    });
    Ok(crate::attach::hijacked(tty))
}

/// An exec that did not start: why, and the exit status it gets
/// (dockerd's: 127 for a program not found, else 126).
struct Failed {
    error: ApiError,
    code: i32,
}

impl From<ApiError> for Failed {
    fn from(error: ApiError) -> Self {
        Failed { error, code: 126 }
    }
}

impl From<engine::EngineError> for Failed {
    fn from(e: engine::EngineError) -> Self {
        let code = if e.exit_code() == 127 { 127 } else { 126 };
        Failed {
            error: e.into(),
            code,
        }
    }
}

/// Starts the exec on the blocking pool and records it as running.
async fn spawn(
    state: &Arc<State>,
    id: &str,
    container: &str,
    opts: &ExecOptions,
    stdio: ExecStdio,
    console: Option<(u16, u16)>,
) -> Result<ExecChild, Failed> {
    let (engine, key, opts) = (state.engine.clone(), container.to_string(), opts.clone());
    let spawned = blocking(move || {
        Ok(engine.exec_spawn(&key, &opts, stdio).map(|mut child| {
            if let (Some(t), Some((h, w))) = (&child.terminal, console) {
                set_size(t, h, w);
            }
            child.pid_within(Duration::from_secs(1));
            child
        }))
    })
    .await?;
    let child = spawned?;
    // A second descriptor of the terminal's master, for resizes.
    let terminal = child
        .terminal
        .as_ref()
        .and_then(|t| t.try_clone().ok())
        .map(Arc::new);
    let pid = child.pid();
    state
        .execs
        .with(id, |i| i.phase = Phase::Running { pid, terminal })?;
    Ok(child)
}

/// Copies `from` to `to` (framed as `kind`, when given) until its end;
/// with `to` gone, what is read is dropped.
fn copy_out(mut from: std::fs::File, to: Option<(tokio::sync::mpsc::Sender<Bytes>, Option<u8>)>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // EIO: a terminal whose other side has closed.
            Err(_) => return,
        };
        if let Some((tx, kind)) = &to {
            let chunk = match kind {
                Some(k) => Bytes::from(protocol::frame(*k, &buf[..n])),
                None => Bytes::copy_from_slice(&buf[..n]),
            };
            // A client that went: the rest is read and dropped.
            let _ = tx.blocking_send(chunk);
        }
    }
}

/// Waits for the readers of the exec's output to reach its end, then for
/// the runtime to return; the exit status.
fn finish(mut child: ExecChild, readers: Vec<std::thread::JoinHandle<()>>) -> i32 {
    // A terminal nobody reads (a detached exec) is drained, so the
    // process does not block on its output.
    let drain = child
        .terminal
        .take()
        .map(|t| std::thread::spawn(move || copy_out(t.into(), None)));
    for r in readers.into_iter().chain(drain) {
        let _ = r.join();
    }
    child.wait().unwrap_or(126)
}

/// Copies between the client and the exec until its output ends and the
/// runtime returns; its exit status.
async fn relay<R, W>(
    mut child: ExecChild,
    from_client: &mut R,
    to_client: &mut W,
    (stdout, stderr): (bool, bool),
    mut escape: Option<engine::attach::Escape>,
) -> i32
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let mut readers = vec![];
    // Where the client's input goes: the terminal, or the process's
    // stdin (closed at the client's end of input).
    let mut input: Option<std::fs::File> = None;
    if let Some(t) = child.terminal.take() {
        let file = std::fs::File::from(t);
        input = file.try_clone().ok();
        let to = (stdout || stderr).then(|| (tx.clone(), None));
        readers.push(std::thread::spawn(move || copy_out(file, to)));
    }
    for (pipe, wanted, kind) in [
        (
            child.stdout.take().map(OwnedFd::from),
            stdout,
            protocol::STDOUT,
        ),
        (
            child.stderr.take().map(OwnedFd::from),
            stderr,
            protocol::STDERR,
        ),
    ] {
        if let Some(fd) = pipe {
            let to = wanted.then(|| (tx.clone(), Some(kind)));
            let file = std::fs::File::from(fd);
            readers.push(std::thread::spawn(move || copy_out(file, to)));
        }
    }
    drop(tx);
    if let Some(stdin) = child.stdin.take() {
        input = Some(std::fs::File::from(OwnedFd::from(stdin)));
    }
    let (in_tx, mut in_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let mut in_tx = input.map(|mut f| {
        std::thread::spawn(move || {
            while let Some(chunk) = in_rx.blocking_recv() {
                if f.write_all(&chunk).is_err() {
                    return;
                }
            }
        });
        in_tx
    });
    let (done_tx, mut done) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(finish(child, readers));
    });
    let mut buf = vec![0u8; 32 * 1024];
    let (mut client_ok, mut output) = (true, true);
    loop {
        tokio::select! {
            chunk = rx.recv(), if output => match chunk {
                Some(c) => {
                    if client_ok && to_client.write_all(&c).await.is_err() {
                        client_ok = false;
                    }
                }
                None => output = false,
            },
            n = from_client.read(&mut buf), if in_tx.is_some() => match n {
                Ok(0) | Err(_) => in_tx = None,
                Ok(n) => {
                    let (data, typed) = match escape.as_mut() {
                        Some(e) => e.feed(&buf[..n]),
                        None => (buf[..n].to_vec(), false),
                    };
                    let sent = match &in_tx {
                        Some(s) => data.is_empty() || s.send(data).await.is_ok(),
                        None => false,
                    };
                    if !sent {
                        in_tx = None;
                    }
                    if typed {
                        // The client goes; the process runs on, its
                        // output drained, until it exits.
                        in_tx = None;
                        client_ok = false;
                        let _ = to_client.shutdown().await;
                    }
                }
            },
            code = &mut done => {
                // The readers have ended: what they sent is all queued.
                while let Ok(c) = rx.try_recv() {
                    if client_ok && to_client.write_all(&c).await.is_err() {
                        client_ok = false;
                    }
                }
                return code.unwrap_or(126);
            }
        }
    }
}
