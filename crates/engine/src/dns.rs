//! The DNS server of each user-defined network ([`network::dns`]), kept
//! daemonless: the first run of a container on the network starts it as
//! `berth network dns-serve ID`, a process in a session of its own that
//! listens on the network's gateway, port 53. It answers the names,
//! `--network-alias`es and short ids of the network's running containers
//! from the engine's database, and forwards the rest to the host's
//! resolvers. It exits by itself once no container on the network has run
//! for a few seconds, and `network rm` stops it. The default `bridge`
//! network has none: there, as on Docker's, containers find each other by
//! address only.

use std::io::Read;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::EngineError;
use crate::networks::Network;
use crate::restart::{ContainerSettings, Supervisor};
use crate::run::Engine;
use crate::store::Store;

/// How long the server stays without a running container on its network.
const IDLE: Duration = Duration::from_secs(3);
/// How long a starting server gets to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

fn dir(root: &Path) -> PathBuf {
    root.join("dns")
}

fn pid_file(root: &Path, network_id: &str) -> PathBuf {
    dir(root).join(format!("{network_id}.pid"))
}

fn io(op: &'static str, path: &Path) -> impl Fn(std::io::Error) -> EngineError {
    let path = path.to_path_buf();
    move |err| EngineError::Io {
        op,
        path: path.clone(),
        err,
    }
}

/// Whether network `n` has a DNS server of berth's (user-defined bridge
/// networks do; the default one does not).
pub fn has_dns(n: &Network) -> bool {
    n.name != crate::networks::DEFAULT_NETWORK && !n.is_cni()
}

/// Starts network `n`'s DNS server unless one serves its gateway already,
/// and waits until it does.
pub(crate) fn ensure(engine: &Engine, n: &Network) -> Result<(), EngineError> {
    let gateway = n.gateway_addr()?;
    // The port is the lock: a server holds it while it serves.
    match std::net::UdpSocket::bind((gateway, 53)) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Ok(()),
        Err(e) => return Err(io("bind the DNS port of", Path::new(&n.gateway))(e)),
        Ok(probe) => drop(probe),
    }
    let d = dir(&engine.root);
    berth_fs::private_dir(&d).map_err(|e| EngineError::Io {
        op: "create",
        path: d.clone(),
        err: std::io::Error::other(e.to_string()),
    })?;
    let log_path = d.join(format!("{}.log", n.id));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io("open", &log_path))?;
    let mut cmd = Command::new(&engine.berth);
    cmd.arg("--root")
        .arg(&engine.root)
        .args(["network", "dns-serve", &n.id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the closure touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            // A foreground run blocks the signals it forwards: the server
            // must not inherit that (`network rm` stops it with SIGTERM).
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&nix::sys::signal::SigSet::empty()),
                None,
            )
            .map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(io("start the DNS server", &engine.berth))?;
    let mut out = child.stdout.take().expect("piped");
    // One line, "ready", once it serves (or another does); bounded wait.
    let fd = out.as_fd();
    let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
    let ready = matches!(
        nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(READY_TIMEOUT.as_millis() as u16)),
        Ok(n) if n > 0
    );
    let mut line = [0u8; 16];
    let n_read = if ready {
        out.read(&mut line).unwrap_or(0)
    } else {
        0
    };
    if !line[..n_read].starts_with(b"ready") {
        let _ = child.kill();
        let _ = child.wait();
        let said = std::fs::read_to_string(&log_path).unwrap_or_default();
        return Err(EngineError::Dns {
            network: n.name.clone(),
            reason: format!(
                "its DNS server did not start within {}s: {}",
                READY_TIMEOUT.as_secs(),
                said.lines().last().unwrap_or("no word from it")
            ),
        });
    }
    // It runs on in its own session. Whoever reaps our orphans reaps it
    // (init once we are gone; a foreground run's wait loop before).
    drop(child);
    Ok(())
}

/// The names network `n`'s containers answer to, for the server: each
/// running container's name, short id and aliases on `n`.
fn lookup(db: &Store, n: &Network, name: &str) -> Vec<IpAddr> {
    let Ok(endpoints) = db.endpoints(Some(&n.id), None) else {
        return vec![];
    };
    let mut out = vec![];
    for e in endpoints {
        let Ok(r) = db.find(&e.container) else {
            continue;
        };
        if !r.is_running() {
            continue;
        }
        let matches = r.name.eq_ignore_ascii_case(name)
            || (name.len() == 12 && r.id.starts_with(name))
            || ContainerSettings::parse(&r.config)
                .networks
                .get(&n.name)
                .is_some_and(|a| a.aliases.iter().any(|x| x.eq_ignore_ascii_case(name)));
        if matches {
            out.push(IpAddr::V4(e.ip));
            out.extend(e.ip6.map(IpAddr::V6));
        }
    }
    out
}

/// Whether a container on network `id` runs (or the server is young).
fn wanted(db: &Store, id: &str) -> bool {
    let Ok(endpoints) = db.endpoints(Some(id), None) else {
        return false;
    };
    endpoints
        .iter()
        .any(|e| db.find(&e.container).is_ok_and(|r| r.is_running()))
}

impl Engine {
    /// The body of `berth network dns-serve ID`: serves network `id` until
    /// it has had no running container for a while, or is gone. Prints
    /// `ready` on stdout once it serves (also when another server already
    /// does, and then returns).
    pub fn dns_serve(&self, id: &str) -> Result<(), EngineError> {
        let db = Store::open(&self.root)?;
        let n = db.network(id)?;
        let gateway = n.gateway_addr()?;
        let socket = match network::dns::bind(gateway) {
            Ok(s) => s,
            Err(network::NetworkError::Io { err, .. })
                if err.kind() == std::io::ErrorKind::AddrInUse =>
            {
                println!("ready (another server)");
                return Ok(());
            }
            Err(err) => {
                return Err(EngineError::Network {
                    id: n.name.clone(),
                    err,
                })
            }
        };
        let pid = pid_file(&self.root, &n.id);
        let me = Supervisor::of(std::process::id() as i64).unwrap_or_default();
        std::fs::write(&pid, serde_json::to_vec(&me).unwrap_or_default())
            .map_err(io("write", &pid))?;
        let upstreams = network::dns::upstreams(
            &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        );
        {
            use std::io::Write;
            let mut out = std::io::stdout();
            let _ = writeln!(out, "ready");
            let _ = out.flush();
        }
        // Nothing more goes to the pipe: the starter stops reading.
        // SAFETY: plain close of our stdout, which nothing else uses now.
        unsafe { libc::close(1) };
        let mut idle_since: Option<Instant> = None;
        // One store for the UDP loop and the TCP threads.
        let db = std::sync::Arc::new(std::sync::Mutex::new(db));
        let names: network::dns::Names = {
            let (db, n) = (db.clone(), n.clone());
            std::sync::Arc::new(move |name: &str| match db.lock() {
                Ok(db) => lookup(&db, &n, name),
                Err(_) => vec![],
            })
        };
        let served = network::dns::serve(socket, upstreams, names, || {
            let Ok(db) = db.lock() else { return false };
            if db.network(&n.id).is_err() {
                return false;
            }
            if wanted(&db, &n.id) {
                idle_since = None;
                return true;
            }
            let since = *idle_since.get_or_insert_with(Instant::now);
            since.elapsed() < IDLE
        });
        // Only our own pid file: a later server may have written its own.
        if std::fs::read(&pid)
            .ok()
            .and_then(|b| serde_json::from_slice::<Supervisor>(&b).ok())
            == Some(me)
        {
            let _ = std::fs::remove_file(&pid);
        }
        served.map_err(|err| EngineError::Network {
            id: n.name.clone(),
            err,
        })
    }
}

/// Stops network `network_id`'s DNS server, if it runs (the pid file's
/// process, told apart from a later one with the same pid by its start).
pub(crate) fn stop(root: &Path, network_id: &str) {
    let pid = pid_file(root, network_id);
    let Some(s) = std::fs::read(&pid)
        .ok()
        .and_then(|b| serde_json::from_slice::<Supervisor>(&b).ok())
    else {
        return;
    };
    if s.alive() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(s.pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let end = Instant::now() + Duration::from_secs(2);
        while s.alive() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let _ = std::fs::remove_file(&pid);
    let _ = std::fs::remove_file(dir(root).join(format!("{network_id}.log")));
}
