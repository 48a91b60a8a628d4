//! The image endpoints beyond listing: `POST /images/create` (pull, with
//! Docker's JSON progress stream), `POST /images/{name}/push`, `POST
//! /images/{name}/tag`, `DELETE /images/{name}`, `GET
//! /images/{name}/history`, `GET /images/{name}/get` and `GET
//! /images/get` (save), `POST /images/load`, `POST /images/prune`, `POST
//! /commit`, and `GET /images/search` (a clear error).
//!
//! Pulls and pushes run the registry client (async) on the server's
//! runtime; their progress becomes dockerd's JSON messages, at most one
//! update per blob every 100 ms. Credentials come from the client's
//! `X-Registry-Auth` header (base64 JSON), for that request only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{body_reader, channel, json, respond, Query, Response};
use crate::router::{blocking, Call, State};

/// How often a blob's progress is reported.
const EVERY: Duration = Duration::from_millis(100);

/// A blob on its way: bytes so far, its size, when it was last
/// reported, and what is being done ("Downloading", "Pushing").
struct Blob {
    current: u64,
    total: Option<u64>,
    reported: Instant,
    action: String,
}

/// Registry progress as dockerd's JSON messages.
struct JsonProgress {
    tx: tokio::sync::mpsc::UnboundedSender<Value>,
    blobs: Mutex<HashMap<String, Blob>>,
}

impl JsonProgress {
    fn send(&self, v: Value) {
        let _ = self.tx.send(v);
    }
}

fn bar(current: u64, total: Option<u64>) -> String {
    match total.filter(|t| *t > 0) {
        Some(t) => {
            let filled = (current.min(t) * 50 / t) as usize;
            let arrow = if filled < 50 { ">" } else { "" };
            format!(
                "[{}{}{}] {}/{}",
                "=".repeat(filled.saturating_sub(usize::from(filled < 50))),
                arrow,
                " ".repeat(50 - filled),
                current,
                t
            )
        }
        None => format!("{current}B"),
    }
}

impl registry::Progress for JsonProgress {
    fn message(&self, line: &str) {
        // "latest: Pulling from x" → id "latest", status "Pulling from x".
        match line.split_once(": ") {
            Some((id, status)) if !id.contains(' ') => {
                self.send(json!({ "status": status, "id": id }))
            }
            _ => self.send(json!({ "status": line })),
        }
    }

    fn start(&self, id: &str, action: &str, total: Option<u64>) {
        if let Ok(mut m) = self.blobs.lock() {
            m.insert(
                id.to_string(),
                Blob {
                    current: 0,
                    total,
                    reported: Instant::now(),
                    action: action.to_string(),
                },
            );
        }
        self.send(json!({
            "status": action, "id": id,
            "progressDetail": {"current": 0, "total": total.unwrap_or(0)},
            "progress": bar(0, total),
        }));
    }

    fn advance(&self, id: &str, bytes: u64) {
        let update = {
            let Ok(mut m) = self.blobs.lock() else { return };
            let Some(b) = m.get_mut(id) else { return };
            b.current += bytes;
            if b.reported.elapsed() < EVERY {
                return;
            }
            b.reported = Instant::now();
            (b.current, b.total, b.action.clone())
        };
        self.send(json!({
            "status": update.2, "id": id,
            "progressDetail": {"current": update.0, "total": update.1.unwrap_or(0)},
            "progress": bar(update.0, update.1),
        }));
    }

    fn done(&self, id: &str, status: &str) {
        if let Ok(mut m) = self.blobs.lock() {
            m.remove(id);
        }
        self.send(json!({ "status": status, "progressDetail": {}, "id": id }));
    }
}

/// A message stream: the JSON lines the returned progress (and the
/// caller, through the sender) produce, as a response body.
fn message_stream() -> (
    Arc<JsonProgress>,
    tokio::sync::mpsc::UnboundedSender<Value>,
    crate::http::Body,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let (out, body) = channel();
    tokio::spawn(async move {
        while let Some(v) = rx.recv().await {
            let mut line = serde_json::to_vec(&v).unwrap_or_default();
            line.extend_from_slice(b"\r\n");
            if out.send(Bytes::from(line)).await.is_err() {
                return;
            }
        }
    });
    let progress = Arc::new(JsonProgress {
        tx: tx.clone(),
        blobs: Mutex::new(HashMap::new()),
    });
    (progress, tx, body)
}

/// An error in a message stream (the status line has gone already).
fn stream_error(message: &str) -> Value {
    json!({ "errorDetail": { "message": message }, "error": message })
}

/// An auth file of one request's own, in a private directory removed
/// with it.
struct RequestAuth(tempfile::TempDir);

impl RequestAuth {
    fn path(&self) -> std::path::PathBuf {
        self.0.path().join("auth.json")
    }
}

/// The credentials in `X-Registry-Auth` (base64 JSON `{username,
/// password, serveraddress}`) as an auth file of this request's own;
/// None without credentials.
fn request_auth(
    state: &State,
    call: &Call,
    registry_of: &str,
) -> Result<Option<RequestAuth>, ApiError> {
    let Some(header) = call.req.headers().get("X-Registry-Auth") else {
        return Ok(None);
    };
    let raw = header.as_bytes();
    let decoded = base64::engine::general_purpose::URL_SAFE
        .decode(raw)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw))
        .map_err(|_| ApiError::bad_request("X-Registry-Auth: not base64"))?;
    if decoded.iter().all(u8::is_ascii_whitespace) || decoded == b"{}" || decoded == b"null" {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(&decoded)
        .map_err(|e| ApiError::bad_request(format!("X-Registry-Auth: invalid JSON: {e}")))?;
    let (Some(user), Some(password)) = (v["username"].as_str(), v["password"].as_str()) else {
        return Ok(None);
    };
    let dir = state.engine.root.join("tmp");
    berth_fs::private_dir(&dir)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    // tempdir makes it 0700.
    let file = RequestAuth(
        tempfile::Builder::new()
            .prefix(".auth-")
            .tempdir_in(&dir)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
    );
    let server = v["serveraddress"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or(registry_of);
    registry::AuthFile::new(&file.path())
        .set(
            &registry::connect::registry_of_server(server),
            user,
            password,
        )
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Some(file))
}

/// The registry part of a reference (`127.0.0.1:5000/x` → `127.0.0.1:5000`).
fn registry_part(reference: &str) -> &str {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// `POST /images/create?fromSrc=-&repo=&tag=&changes=&message=`: `docker
/// import` of the tar archive (plain or gzip) in the body; the answer is
/// Docker's message stream ending with the new image's id.
async fn import(state: &Arc<State>, call: Call) -> Result<Response, ApiError> {
    let q = &call.query;
    let src = q.get("fromSrc").unwrap_or("");
    if src != "-" {
        return Err(ApiError::bad_request(format!(
            "fromSrc {src:?}: berth imports the archive sent in the request's body \
             (fromSrc=-) and fetches no URL"
        )));
    }
    let name = match (
        q.get("repo").filter(|r| !r.is_empty()),
        q.get("tag").filter(|t| !t.is_empty()),
    ) {
        (Some(r), Some(t)) => Some(format!("{r}:{t}")),
        (Some(r), None) => Some(r.to_string()),
        (None, Some(_)) => return Err(ApiError::bad_request("tag: given without repo")),
        (None, None) => None,
    };
    let changes = q.all("changes");
    let message = q.get("message").filter(|m| !m.is_empty()).map(String::from);
    let mut reader = body_reader(call.req.into_body());
    let engine = state.engine.clone();
    let (_, id) = blocking(move || {
        let made = engine.import_image(
            &mut reader,
            "berth import -",
            message.as_deref(),
            name.as_deref(),
            &changes,
        );
        if made.is_err() {
            reader.drain();
        }
        Ok(made?)
    })
    .await?;
    let mut out = serde_json::to_vec(&json!({ "status": id })).unwrap_or_default();
    out.extend_from_slice(b"\r\n");
    Ok(respond(
        StatusCode::OK,
        "application/json",
        crate::http::full(out),
    ))
}

/// `POST /images/create?fromImage=&tag=&platform=`: a pull.
pub async fn create(state: &Arc<State>, call: Call) -> Result<Response, ApiError> {
    let q = &call.query;
    if q.get("fromSrc").is_some() {
        return import(state, call).await;
    }
    let Some(from) = q.get("fromImage").filter(|f| !f.is_empty()) else {
        return Err(ApiError::bad_request("fromImage: which image to pull"));
    };
    let reference = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None => from.to_string(),
    };
    let platform = q
        .get("platform")
        .filter(|p| !p.is_empty())
        .map(image::manifest::Platform::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("platform: {e}")))?;
    let auth = request_auth(state, &call, registry_part(&reference))?;
    let opts = registry::PullOptions {
        platform,
        insecure: false,
        auth_file: Some(
            auth.as_ref()
                .map(|f| f.path())
                .unwrap_or_else(|| state.engine.root.join("auth.json")),
        ),
        concurrency: 0,
    };
    let (progress, tx, body) = message_stream();
    let root = state.engine.root.clone();
    // The registry client's future is not provably Send: it runs on a
    // blocking thread, driven by this runtime's handle.
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _auth = auth;
        match handle.block_on(registry::pull(&root, &reference, &opts, progress)) {
            Ok(p) => {
                engine::events::record(&root, "image", "pull", &p.name, &[("name", &p.name)]);
                let _ = tx.send(json!({ "status": format!("Digest: {}", p.digest) }));
                let word = if p.downloaded {
                    "Downloaded newer image for"
                } else {
                    "Image is up to date for"
                };
                let _ = tx.send(json!({ "status": format!("Status: {word} {}", p.name) }));
            }
            Err(e) => {
                let _ = tx.send(stream_error(&e.to_string()));
            }
        }
    });
    Ok(respond(StatusCode::OK, "application/json", body))
}

/// `POST /images/{name}/push?tag=`.
pub async fn push(state: &Arc<State>, name: &str, call: Call) -> Result<Response, ApiError> {
    let destination = match call.query.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name.to_string(),
    };
    let (engine, key) = (state.engine.clone(), destination.clone());
    let img = blocking(move || Ok(engine.named_image(&key)?)).await?;
    let auth = request_auth(state, &call, registry_part(&destination))?;
    let opts = registry::PushOptions {
        insecure: false,
        auth_file: Some(
            auth.as_ref()
                .map(|f| f.path())
                .unwrap_or_else(|| state.engine.root.join("auth.json")),
        ),
        concurrency: 0,
    };
    let (progress, tx, body) = message_stream();
    let root = state.engine.root.clone();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _auth = auth;
        match handle.block_on(registry::push(&root, &img, &destination, &opts, progress)) {
            Ok(p) => {
                engine::events::record(
                    &root,
                    "image",
                    "push",
                    &destination,
                    &[("name", &destination)],
                );
                let _ = tx.send(json!({
                    "status": format!("{}: digest: {} size: {}", p.tag, p.digest, p.size),
                }));
                let _ = tx.send(json!({
                    "progressDetail": {},
                    "aux": {"Tag": p.tag, "Digest": p.digest.to_string(), "Size": p.size},
                }));
            }
            Err(e) => {
                let _ = tx.send(stream_error(&e.to_string()));
            }
        }
    });
    Ok(respond(StatusCode::OK, "application/json", body))
}

/// `POST /images/{name}/tag?repo=&tag=`: 201.
pub async fn tag(state: &Arc<State>, name: &str, q: &Query) -> Result<Response, ApiError> {
    let Some(repo) = q.get("repo").filter(|r| !r.is_empty()) else {
        return Err(ApiError::bad_request("repo: the new name"));
    };
    let repo = crate::images::familiar(repo);
    let target = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo,
    };
    let (engine, source) = (state.engine.clone(), name.to_string());
    blocking(move || Ok(engine.tag_image(&source, &target)?)).await?;
    Ok(crate::http::empty(StatusCode::CREATED))
}

/// `DELETE /images/{name}?force=`: `[{"Untagged"}, {"Deleted"}]`.
pub async fn remove(state: &Arc<State>, name: &str, q: &Query) -> Result<Response, ApiError> {
    let (engine, key, force) = (state.engine.clone(), name.to_string(), q.flag("force"));
    let removed = blocking(move || Ok(engine.remove_image(&key, force)?)).await?;
    let v: Vec<Value> = removed
        .into_iter()
        .map(|r| match r {
            engine::images::Removed::Untagged(k) => json!({ "Untagged": k }),
            engine::images::Removed::Deleted(id) => json!({ "Deleted": id }),
        })
        .collect();
    Ok(json(StatusCode::OK, &Value::Array(v)))
}

/// `GET /images/{name}/history`.
pub async fn history(state: &Arc<State>, name: &str) -> Result<Response, ApiError> {
    let (engine, key) = (state.engine.clone(), name.to_string());
    let (id, steps) = blocking(move || Ok(engine.image_history(&key)?)).await?;
    let root = state.engine.root.clone();
    let tags = blocking(move || {
        Ok(image::refs::Refs::new(&root)
            .load()
            .map(|m| {
                m.iter()
                    .filter(|(_, r)| r.config == id)
                    .map(|(k, _)| k.clone())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default())
    })
    .await?;
    let v: Vec<Value> = steps
        .iter()
        .enumerate()
        .map(|(i, h)| {
            json!({
                "Id": h.id,
                "Created": engine::inspect::parse_rfc3339_f(&h.created).map_or(0, |t| t as i64),
                "CreatedBy": h.created_by,
                "Tags": if i == 0 { json!(tags) } else { Value::Null },
                "Size": 0,
                "Comment": h.comment,
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &Value::Array(v)))
}

/// `GET /images/{name}/get` and `GET /images/get?names=…`: a docker-archive.
pub async fn save(state: &Arc<State>, names: Vec<String>) -> Result<Response, ApiError> {
    if names.is_empty() {
        return Err(ApiError::bad_request("names: which images to save"));
    }
    // Every name is found before the answer starts (a missing one is 404).
    let (engine, check) = (state.engine.clone(), names.clone());
    blocking(move || {
        let refs = image::refs::Refs::new(&engine.root)
            .load()
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        for n in &check {
            if image::refs::find(&refs, n).is_none() {
                return Err(engine::EngineError::NoSuchImage(n.clone()).into());
            }
        }
        Ok(())
    })
    .await?;
    let (tx, body) = channel();
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let out = std::io::BufWriter::with_capacity(64 << 10, crate::container_ops::BodyWriter(tx));
        if let Err(e) = engine.save_images(&names, out) {
            tracing::warn!("save of {names:?}: {e}");
        }
    });
    Ok(respond(StatusCode::OK, "application/x-tar", body))
}

/// `POST /images/load?quiet=`: the body, an image archive, loaded.
pub async fn load(state: &Arc<State>, call: Call) -> Result<Response, ApiError> {
    let mut reader = body_reader(call.req.into_body());
    let engine = state.engine.clone();
    let names = blocking(move || {
        let loaded =
            engine.load_images(&mut reader, &image::manifest::Platform::linux_amd64(), &());
        if loaded.is_err() {
            reader.drain();
        }
        Ok(loaded?)
    })
    .await?;
    let mut out = Vec::new();
    for n in names {
        let line = json!({ "stream": format!("Loaded image: {n}\n") });
        out.extend(serde_json::to_vec(&line).unwrap_or_default());
        out.extend_from_slice(b"\r\n");
    }
    Ok(respond(
        StatusCode::OK,
        "application/json",
        crate::http::full(out),
    ))
}

/// `POST /images/prune?filters=` (`dangling`): the names no container
/// uses (only `<none>` ones unless `dangling=false`), then the blobs and
/// snapshots nothing refers to.
pub async fn prune(state: &Arc<State>, q: &Query) -> Result<Response, ApiError> {
    let mut dangling_only = true;
    for (k, v) in q.filters()? {
        match k.as_str() {
            "dangling" => dangling_only = !matches!(v.as_str(), "false" | "0"),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter '{k}' (berth prunes images by dangling)"
                )))
            }
        }
    }
    let engine = state.engine.clone();
    let v = blocking(move || {
        let used: std::collections::HashSet<String> = engine
            .containers()?
            .into_iter()
            .map(|c| c.image_id)
            .collect();
        let refs = image::refs::Refs::new(&engine.root)
            .load()
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let mut deleted = vec![];
        for (name, rec) in &refs {
            if used.contains(&rec.config) || (dangling_only && !name.starts_with("<none>")) {
                continue;
            }
            for r in engine.remove_image(name, false)? {
                deleted.push(match r {
                    engine::images::Removed::Untagged(k) => json!({ "Untagged": k }),
                    engine::images::Removed::Deleted(id) => json!({ "Deleted": id }),
                });
            }
        }
        let gone = engine.prune_images()?;
        Ok(json!({ "ImagesDeleted": deleted, "SpaceReclaimed": gone.bytes }))
    })
    .await?;
    Ok(json(StatusCode::OK, &v))
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`.
pub async fn commit(state: &Arc<State>, q: &Query) -> Result<Response, ApiError> {
    let Some(container) = q.get("container").filter(|c| !c.is_empty()) else {
        return Err(ApiError::bad_request(
            "container: which container to commit",
        ));
    };
    let name = match (
        q.get("repo")
            .filter(|r| !r.is_empty())
            .map(crate::images::familiar),
        q.get("tag"),
    ) {
        (Some(r), Some(t)) if !t.is_empty() => format!("{r}:{t}"),
        (Some(r), _) => r,
        (None, _) => String::new(),
    };
    let opts = engine::commit::CommitOptions {
        name,
        changes: q.all("changes"),
        message: q.get("comment").filter(|c| !c.is_empty()).map(String::from),
        author: q.get("author").filter(|a| !a.is_empty()).map(String::from),
        pause: q.get("pause").is_none_or(|_| q.flag("pause")),
    };
    let (engine, key) = (state.engine.clone(), container.to_string());
    let id = blocking(move || {
        let store = image::ContentStore::open(&engine.root)
            .map_err(|e| ApiError::from(engine::EngineError::from(e)))?;
        Ok(engine.commit(&store, &key, &opts)?)
    })
    .await?;
    Ok(json(StatusCode::CREATED, &json!({ "Id": id })))
}

/// `GET /images/search`: Docker Hub's search is not reachable from berth.
pub async fn search() -> Result<Response, ApiError> {
    Err(ApiError::not_implemented(
        "GET /images/search (berth pulls by name from any registry; it has no search index)",
    ))
}
