//! The listeners: unix sockets (mode 0660, group `berth` when that group
//! exists) and plain TCP on a loopback address only, each connection
//! served by hyper (HTTP/1.1 with upgrades, 30 s to send the headers),
//! until SIGINT or SIGTERM. Nothing of the engine's is touched on the way
//! out: running containers run on under their shims.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::router::State;

/// The default socket, as dockerd's `/var/run/docker.sock`.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

/// Why `berth serve` could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A `--host` berth cannot listen on.
    #[error("--host {host}: {reason}")]
    BadHost {
        /// The value.
        host: String,
        /// Why.
        reason: String,
    },
    /// Listening failed.
    #[error("listen on {what}: {err}")]
    Listen {
        /// The address.
        what: String,
        /// The error.
        err: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A unix socket at this path.
    Unix(PathBuf),
    /// Plain TCP on a loopback address.
    Tcp(std::net::SocketAddr),
}

impl Host {
    /// Parses `unix:///path` or `tcp://127.0.0.1:port`; plain TCP on any
    /// other address is refused (it would give root to the network).
    pub fn parse(s: &str) -> Result<Host, ServeError> {
        let bad = |reason: &str| ServeError::BadHost {
            host: s.to_string(),
            reason: reason.to_string(),
        };
        if let Some(p) = s.strip_prefix("unix://") {
            if !p.starts_with('/') {
                return Err(bad("give an absolute path: unix:///run/berth/berth.sock"));
            }
            return Ok(Host::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s.strip_prefix("tcp://") {
            let addr: std::net::SocketAddr = a
                .parse()
                .map_err(|_| bad("give an address and a port: tcp://127.0.0.1:2375"))?;
            if !addr.ip().is_loopback() {
                return Err(bad(
                    "plain TCP is refused beyond loopback: whoever reaches it is root (TLS, --tlsverify, is not there yet)",
                ));
            }
            return Ok(Host::Tcp(addr));
        }
        Err(bad("use unix:///PATH or tcp://127.0.0.1:PORT"))
    }
}

/// Makes the socket at `path` (mode 0660): a stale one (nothing answers)
/// is replaced, a live one or anything that is not a socket is refused.
/// Only for the start, while the runtime's other threads are idle (the
/// umask is the process's).
fn unix_listener(path: &Path) -> Result<tokio::net::UnixListener, ServeError> {
    let err = |err| ServeError::Listen {
        what: path.display().to_string(),
        err,
    };
    if let Ok(m) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !m.file_type().is_socket() {
            return Err(err(std::io::Error::other(
                "something that is not a socket is there",
            )));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err(std::io::Error::other(
                "another server listens there already",
            )));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    // Made 0660 by the umask at bind, not changed after by name (a name
    // another user could swap for a link in between); the group is set on
    // the name without following a link.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o117));
    let bound = tokio::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let l = bound.map_err(err)?;
    if let Ok(Some(g)) = nix::unistd::Group::from_name("berth") {
        std::os::unix::fs::lchown(path, None, Some(g.gid.as_raw())).map_err(err)?;
    }
    Ok(l)
}

/// Serves one connection.
fn serve_connection<S>(state: Arc<State>, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let service = service_fn(move |req| crate::router::handle(state.clone(), req));
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        if let Err(e) = conn.await {
            tracing::debug!("connection: {e}");
        }
    });
}

/// Serves the engine's API on `hosts` until SIGINT or SIGTERM; removes
/// its sockets on the way out.
pub fn serve(engine: engine::Engine, hosts: &[Host]) -> Result<(), ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    // One connection to the engine's database held for the server's life:
    // while one is open, SQLite keeps the WAL index in shared memory, and
    // each request's own connection starts without reading the WAL again
    // (about 4 ms with 500 containers' worth of it).
    let _held = engine::store::Store::open(&engine.root).ok();
    rt.block_on(async move {
        let state = Arc::new(State {
            engine,
            waiting: Default::default(),
            execs: Default::default(),
        });
        let mut sockets = vec![];
        for h in hosts {
            match h {
                Host::Unix(path) => {
                    let l = unix_listener(path)?;
                    sockets.push(path.clone());
                    let state = state.clone();
                    tokio::spawn(async move {
                        loop {
                            match l.accept().await {
                                Ok((s, _)) => serve_connection(state.clone(), s),
                                Err(e) => {
                                    tracing::warn!("accept: {e}");
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                }
                            }
                        }
                    });
                }
                Host::Tcp(addr) => {
                    let l = tokio::net::TcpListener::bind(addr).await.map_err(|err| {
                        ServeError::Listen {
                            what: addr.to_string(),
                            err,
                        }
                    })?;
                    let state = state.clone();
                    tokio::spawn(async move {
                        loop {
                            match l.accept().await {
                                Ok((s, _)) => {
                                    let _ = s.set_nodelay(true);
                                    serve_connection(state.clone(), s)
                                }
                                Err(e) => {
                                    tracing::warn!("accept: {e}");
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                }
                            }
                        }
                    });
                }
            }
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|err| ServeError::Listen {
                what: "SIGTERM".into(),
                err,
            })?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        for s in sockets {
            let _ = std::fs::remove_file(s);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_and_open_tcp_is_refused() {
        assert_eq!(
            Host::parse("unix:///run/x.sock").unwrap(),
            Host::Unix("/run/x.sock".into())
        );
        assert_eq!(
            Host::parse("tcp://127.0.0.1:2375").unwrap(),
            Host::Tcp("127.0.0.1:2375".parse().unwrap())
        );
        for (h, says) in [
            ("tcp://0.0.0.0:2375", "beyond loopback"),
            ("unix://rel.sock", "absolute"),
            ("tcp://localhost", "address and a port"),
            ("ssh://x", "use unix"),
        ] {
            let e = Host::parse(h).unwrap_err().to_string();
            assert!(e.contains(says), "{h}: {e}");
        }
    }

    #[test]
    fn a_file_that_is_not_a_socket_is_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.sock");
        std::fs::write(&p, "data").unwrap();
        let e = unix_listener(&p).unwrap_err().to_string();
        assert!(e.contains("not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "data");
    }
}
