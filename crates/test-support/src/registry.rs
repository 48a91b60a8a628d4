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
        Self::start_with(Some((user, password)))
    }

    fn start_with(auth: Option<(&str, &str)>) -> Self {
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
            if let Some((user, password)) = auth {
                let hash = bcrypt::hash(password, 4).unwrap();
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    htpasswd.display()
                ));
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
