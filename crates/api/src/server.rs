//! The listeners: unix sockets (mode 0660, group `berth` when that group
//! exists), TCP (plain on a loopback address only; beyond loopback only
//! with mutual TLS, `--tlsverify`), and sockets handed over by systemd
//! (`fd://`, socket activation), each connection served by hyper
//! (HTTP/1.1 with upgrades, 30 s to send the headers, or to finish the
//! TLS handshake), until SIGINT or SIGTERM. Nothing of the engine's is
//! touched on the way out: running containers run on under their shims.

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
    /// The TLS files are unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// `fd://` without sockets handed over (LISTEN_FDS, LISTEN_PID).
    #[error("fd://: {0}")]
    Activation(String),
}

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A unix socket at this path.
    Unix(PathBuf),
    /// TCP (plain only on loopback; see [`check_hosts`]).
    Tcp(std::net::SocketAddr),
    /// The sockets systemd handed over (`fd://`).
    Activated,
}

/// Refuses what would give root to the network: TCP beyond loopback
/// without mutual TLS.
pub fn check_hosts(hosts: &[Host], tls: Option<&crate::tls::TlsOptions>) -> Result<(), ServeError> {
    for h in hosts {
        if let Host::Tcp(addr) = h {
            if !addr.ip().is_loopback() && !tls.is_some_and(|t| t.verify) {
                return Err(ServeError::BadHost {
                    host: format!("tcp://{addr}"),
                    reason: "TCP beyond loopback needs --tlsverify (mutual TLS): whoever reaches it is root".into(),
                });
            }
        }
    }
    Ok(())
}

impl Host {
    /// Parses `unix:///path`, `tcp://ADDR:PORT` or `fd://`.
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
            return Ok(Host::Tcp(addr));
        }
        if s == "fd://" {
            return Ok(Host::Activated);
        }
        Err(bad("use unix:///PATH, tcp://ADDR:PORT or fd://"))
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

/// The sockets systemd handed over: descriptors 3 to 3+LISTEN_FDS-1,
/// when LISTEN_PID is this process (then both variables are cleared, so
/// children do not take them too).
fn activated() -> Result<Vec<Listener>, ServeError> {
    use std::os::fd::FromRawFd;
    let pid = std::env::var("LISTEN_PID").unwrap_or_default();
    if pid.parse::<u32>().ok() != Some(std::process::id()) {
        return Err(ServeError::Activation(
            "no sockets were handed over (LISTEN_PID is not this process)".into(),
        ));
    }
    let n: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| ServeError::Activation("LISTEN_FDS names no sockets".into()))?;
    let mut out = vec![];
    for fd in 3..3 + n {
        let err = |err| ServeError::Listen {
            what: format!("fd {fd}"),
            err,
        };
        let addr = nix::sys::socket::getsockname::<nix::sys::socket::SockaddrStorage>(fd)
            .map_err(|e| err(e.into()))?;
        // SAFETY: systemd handed this descriptor to us, and nothing else
        // in the process owns it.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        if addr.as_unix_addr().is_some() {
            let l = std::os::unix::net::UnixListener::from(owned);
            l.set_nonblocking(true).map_err(err)?;
            out.push(Listener::Unix(
                tokio::net::UnixListener::from_std(l).map_err(err)?,
            ));
        } else {
            let l = std::net::TcpListener::from(owned);
            l.set_nonblocking(true).map_err(err)?;
            let local = l.local_addr().map_err(err)?;
            out.push(Listener::Tcp(
                tokio::net::TcpListener::from_std(l).map_err(err)?,
                local,
            ));
        }
    }
    Ok(out)
}

/// A bound listener.
enum Listener {
    Unix(tokio::net::UnixListener),
    Tcp(tokio::net::TcpListener, std::net::SocketAddr),
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

/// Serves the engine's API on `hosts` (TCP ones with `tls` when given)
/// until SIGINT or SIGTERM; removes its sockets on the way out.
pub fn serve(
    engine: engine::Engine,
    hosts: &[Host],
    tls: Option<&crate::tls::TlsOptions>,
) -> Result<(), ServeError> {
    check_hosts(hosts, tls)?;
    let acceptor = tls.map(crate::tls::acceptor).transpose()?;
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
        let mut listeners = vec![];
        for h in hosts {
            match h {
                Host::Unix(path) => {
                    listeners.push(Listener::Unix(unix_listener(path)?));
                    sockets.push(path.clone());
                }
                Host::Tcp(addr) => {
                    let l = tokio::net::TcpListener::bind(addr).await.map_err(|err| {
                        ServeError::Listen {
                            what: addr.to_string(),
                            err,
                        }
                    })?;
                    listeners.push(Listener::Tcp(l, *addr));
                }
                Host::Activated => {
                    let handed = activated()?;
                    for l in &handed {
                        if let Listener::Tcp(_, addr) = l {
                            check_hosts(&[Host::Tcp(*addr)], tls)?;
                        }
                    }
                    listeners.extend(handed);
                }
            }
        }
        for l in listeners {
            let state = state.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                loop {
                    match &l {
                        Listener::Unix(u) => match u.accept().await {
                            Ok((s, _)) => serve_connection(state.clone(), s),
                            Err(e) => {
                                tracing::warn!("accept: {e}");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        },
                        Listener::Tcp(t, _) => match t.accept().await {
                            Ok((s, peer)) => {
                                let _ = s.set_nodelay(true);
                                match &acceptor {
                                    None => serve_connection(state.clone(), s),
                                    Some(a) => {
                                        let (a, state) = (a.clone(), state.clone());
                                        tokio::spawn(async move {
                                            let shake = tokio::time::timeout(
                                                Duration::from_secs(30),
                                                a.accept(s),
                                            );
                                            match shake.await {
                                                Ok(Ok(tls)) => serve_connection(state, tls),
                                                Ok(Err(e)) => {
                                                    tracing::info!("TLS handshake with {peer}: {e}")
                                                }
                                                Err(_) => tracing::info!(
                                                    "TLS handshake with {peer}: timed out"
                                                ),
                                            }
                                        });
                                    }
                                }
                            }
                            Err(e) => {
                                tracing::warn!("accept: {e}");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        },
                    }
                }
            });
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
        let open = [Host::parse("tcp://0.0.0.0:2375").unwrap()];
        let e = check_hosts(&open, None).unwrap_err().to_string();
        assert!(e.contains("beyond loopback needs --tlsverify"), "{e}");
        let one_way = crate::tls::TlsOptions {
            verify: false,
            ..Default::default()
        };
        assert!(check_hosts(&open, Some(&one_way)).is_err());
        let mutual = crate::tls::TlsOptions {
            verify: true,
            ..Default::default()
        };
        assert!(check_hosts(&open, Some(&mutual)).is_ok());
        assert_eq!(Host::parse("fd://").unwrap(), Host::Activated);
        for (h, says) in [
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
