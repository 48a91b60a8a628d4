//! A real registry for tests: Debian's `docker-registry` (distribution
//! 2.8) started on 127.0.0.1 with a free port and its own storage
//! directory, optionally behind htpasswd basic auth; stopped (and its
//! storage removed) on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The registry binary.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A running registry.
pub struct LocalRegistry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Its storage and config.
    pub dir: tempfile::TempDir,
}

/// Whether the registry binary is installed.
pub fn have_registry() -> bool {
    std::path::Path::new(REGISTRY_BIN).exists()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("pick a free port")
}

impl LocalRegistry {
    /// An anonymous registry.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A registry that wants `user`/`password` (HTTP basic auth).
    pub fn with_basic_auth(user: &str, password: &str) -> Self {
        Self::start_with(Some(Auth::Basic(user, password)))
    }

    /// A registry that wants Bearer tokens from a token service of the
    /// test's own, which grants them for `user`/`password` (Docker Hub's
    /// scheme). Returns the registry; the token service lives as long.
    pub fn with_token_auth(user: &str, password: &str) -> (Self, TokenServer) {
        let server = TokenServer::start(user, password);
        let reg = Self::start_with(Some(Auth::Token(&server)));
        (reg, server)
    }

    fn start_with(auth: Option<Auth>) -> Self {
        let mut dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .unwrap();
        let mut last_err = String::new();
        // A port picked free can be taken before the registry binds it: retry.
        for _ in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            let mut config = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            );
            match auth {
                Some(Auth::Basic(user, password)) => {
                    let hash = bcrypt::hash(password, 4).unwrap();
                    let htpasswd = dir.path().join("htpasswd");
                    std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
                    config.push_str(&format!(
                        "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                        htpasswd.display()
                    ));
                }
                Some(Auth::Token(server)) => {
                    let bundle = dir.path().join("token-ca.pem");
                    std::fs::write(&bundle, &server.cert_pem).unwrap();
                    config.push_str(&format!(
                        "auth:\n  token:\n    realm: http://{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                        server.addr,
                        bundle.display()
                    ));
                }
                None => {}
            }
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let mut reg = LocalRegistry { child, addr, dir };
            if reg.wait_ready() {
                return reg;
            }
            last_err = reg.log();
            let _ = reg.child.kill();
            let _ = reg.child.wait();
            dir = std::mem::replace(&mut reg.dir, tempfile::tempdir().unwrap());
        }
        panic!("docker-registry did not start: {last_err}");
    }

    /// Waits until `/v2/` answers (any status).
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if self.get("/v2/").is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// GET `path` anonymously: (status, body), or None if nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(&self.addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let status = out.split_whitespace().nth(1)?.parse().ok()?;
        let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        Some((status, body.to_string()))
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `ADDR/name`.
    pub fn image(&self, name: &str) -> String {
        format!("{}/{name}", self.addr)
    }

    /// Where the registry keeps its data.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a test registry authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    Basic(&'a str, &'a str),
    Token(&'a TokenServer),
}

const SERVICE: &str = "berth-test-registry";
const ISSUER: &str = "berth-test-token-service";

/// A token service on 127.0.0.1 (the Docker registry token protocol): for
/// `GET /token?service=…&scope=repository:NAME:ACTIONS` with the right
/// Basic credentials it returns a JWT (ES256, signed by a key whose
/// self-signed certificate the registry trusts, sent in `x5c`) granting
/// those actions; without credentials or with wrong ones, 401.
pub struct TokenServer {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    cert_pem: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// How many tokens it issued.
    pub issued: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl TokenServer {
    fn start(user: &str, password: &str) -> Self {
        use base64::Engine as _;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["berth-test-token".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_pem = cert.pem();
        let x5c = base64::engine::general_purpose::STANDARD.encode(cert.der());
        let signer = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &ring::rand::SystemRandom::new(),
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicU64::new(0));
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let (stop2, issued2) = (stop.clone(), issued.clone());
        std::thread::spawn(move || {
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            while !stop2.load(Ordering::Relaxed) {
                let mut conn = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                conn.set_nonblocking(false).ok();
                conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).into_owned();
                let authorized = text.lines().any(|l| {
                    l.split_once(':').is_some_and(|(k, v)| {
                        k.eq_ignore_ascii_case("authorization") && v.trim() == expected
                    })
                });
                if !authorized {
                    let body = r#"{"details":"incorrect username or password"}"#;
                    let _ = write!(conn, "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                    continue;
                }
                let target = text.split_whitespace().nth(1).unwrap_or("/");
                let query = target.split_once('?').map(|x| x.1).unwrap_or("");
                let mut access = vec![];
                for pair in query.split('&') {
                    let Some(scope) = pair.strip_prefix("scope=") else {
                        continue;
                    };
                    let scope = scope
                        .replace("%3A", ":")
                        .replace("%2C", ",")
                        .replace("%2F", "/");
                    let parts: Vec<&str> = scope.splitn(3, ':').collect();
                    if let [kind, name, actions] = parts.as_slice() {
                        access.push(serde_json::json!({
                            "type": kind, "name": name,
                            "actions": actions.split(',').collect::<Vec<_>>()
                        }));
                    }
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
                let claims = serde_json::json!({
                    "iss": ISSUER, "sub": "tester", "aud": SERVICE,
                    "exp": now + 300, "nbf": now - 10, "iat": now,
                    "jti": format!("{now}-{}", issued2.load(Ordering::Relaxed)),
                    "access": access,
                });
                let signing_input = format!(
                    "{}.{}",
                    b64.encode(header.to_string()),
                    b64.encode(claims.to_string())
                );
                let sig = signer
                    .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
                    .unwrap();
                let token = format!("{signing_input}.{}", b64.encode(sig.as_ref()));
                issued2.fetch_add(1, Ordering::Relaxed);
                let body =
                    serde_json::json!({"token": token, "access_token": token, "expires_in": 300})
                        .to_string();
                let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            }
        });
        TokenServer {
            addr,
            cert_pem,
            stop,
            issued,
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A TCP proxy on 127.0.0.1 in front of a registry that forwards the
/// server's answers at a limited rate (so a test can act in the middle of
/// a download) and keeps what clients sent (so a test can see which
/// requests were made). Stops on drop.
pub struct ThrottledProxy {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    sent: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    served: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ThrottledProxy {
    /// A proxy to `target` passing at most `bytes_per_sec` of answers per connection.
    pub fn start(target: &str, bytes_per_sec: u64) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let served = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let target = target.to_string();
        let (s2, sv2, st2) = (sent.clone(), served.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st2.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                client.set_nonblocking(false).ok();
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let log = s2.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c_in.read(&mut buf) {
                        if n == 0 || s_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        log.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = s_out.shutdown(std::net::Shutdown::Write);
                });
                let (mut s_in, mut c_out) = (server, client);
                let (served, stop) = (sv2.clone(), st2.clone());
                std::thread::spawn(move || {
                    let chunk = (bytes_per_sec / 20).clamp(1024, 16384) as usize;
                    let mut buf = vec![0u8; chunk];
                    let start = Instant::now();
                    let mut total = 0u64;
                    while let Ok(n) = s_in.read(&mut buf) {
                        if n == 0
                            || stop.load(Ordering::Relaxed)
                            || c_out.write_all(&buf[..n]).is_err()
                        {
                            break;
                        }
                        total += n as u64;
                        served.fetch_add(n as u64, Ordering::Relaxed);
                        let due = Duration::from_secs_f64(total as f64 / bytes_per_sec as f64);
                        if let Some(wait) = due.checked_sub(start.elapsed()) {
                            std::thread::sleep(wait);
                        }
                    }
                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        ThrottledProxy {
            addr,
            sent,
            served,
            stop,
        }
    }

    /// Everything clients sent so far, as text (request lines and headers).
    pub fn requests(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().unwrap()).into_owned()
    }

    /// Bytes of answers passed to clients so far.
    pub fn served(&self) -> u64 {
        self.served.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for ThrottledProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
