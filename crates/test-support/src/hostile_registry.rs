//! A hostile registry on 127.0.0.1 for tests: a plain HTTP/1.1 server that
//! answers the distribution API the way a test says, including the ways a
//! real registry never would (an endless manifest, a blob far larger than
//! declared, silence), and records every request path it got.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// How the server answers one request.
#[derive(Clone)]
pub enum Reply {
    /// 200 with this body, content type and (optional) Docker-Content-Digest.
    Body {
        /// The body.
        body: Vec<u8>,
        /// Content-Type.
        content_type: String,
    },
    /// 200, chunked, and the chunks never end.
    Endless,
    /// 200 declaring no length (connection-delimited), then `bytes` of zeros.
    Zeros(u64),
    /// Accepts the request and never answers.
    Silent,
    /// 404.
    NotFound,
}

/// The answer for a request path.
pub type Router = dyn Fn(&str) -> Reply + Send + Sync;

/// A running hostile registry; stops accepting when dropped.
pub struct HostileRegistry {
    addr: String,
    paths: Arc<Mutex<Vec<String>>>,
    _stop: Arc<()>,
}

impl HostileRegistry {
    /// Starts a server on a free loopback port answering with `route`.
    pub fn start(route: impl Fn(&str) -> Reply + Send + Sync + 'static) -> HostileRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let paths = Arc::new(Mutex::new(vec![]));
        let stop = Arc::new(());
        let weak = Arc::downgrade(&stop);
        let route: Arc<Router> = Arc::new(route);
        let recorded = paths.clone();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while weak.upgrade().is_some() {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (route, recorded) = (route.clone(), recorded.clone());
                        std::thread::spawn(move || serve(stream, &*route, &recorded));
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        HostileRegistry {
            addr,
            paths,
            _stop: stop,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Every request path received so far.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, route: &Router, recorded: &Mutex<Vec<String>>) {
    let _ = stream.set_nonblocking(false);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
        }
        recorded.lock().unwrap().push(path.clone());
        let reply = if path == "/v2/" {
            Reply::Body {
                body: b"{}".to_vec(),
                content_type: "application/json".into(),
            }
        } else {
            route(&path)
        };
        let ok = match reply {
            Reply::Body { body, content_type } => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                out.write_all(head.as_bytes()).is_ok() && out.write_all(&body).is_ok()
            }
            Reply::NotFound => out
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .is_ok(),
            Reply::Endless => {
                let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nTransfer-Encoding: chunked\r\n\r\n");
                let chunk = vec![b' '; 64 * 1024];
                let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                framed.extend_from_slice(&chunk);
                framed.extend_from_slice(b"\r\n");
                while out.write_all(&framed).is_ok() {}
                return;
            }
            Reply::Zeros(n) => {
                let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n");
                let chunk = vec![0u8; 64 * 1024];
                let mut left = n;
                while left > 0 {
                    let k = left.min(chunk.len() as u64) as usize;
                    if out.write_all(&chunk[..k]).is_err() {
                        break;
                    }
                    left -= k as u64;
                }
                return;
            }
            Reply::Silent => {
                std::thread::sleep(std::time::Duration::from_secs(600));
                return;
            }
        };
        if !ok {
            return;
        }
    }
}
