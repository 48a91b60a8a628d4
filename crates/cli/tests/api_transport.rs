//! How `berth serve` listens beyond its unix socket: TCP with mutual TLS
//! (the docker CLI with a client certificate the CA signed gets in; one
//! with a stranger's certificate, or none, does not), plain TCP beyond
//! loopback refused, and a socket handed over as systemd does (`fd://`).

mod common;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Fixture, BERTH};
use test_support::pki::Pki;

/// A free TCP port on 127.0.0.1 (free when asked).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `berth serve` of the test's: stopped (SIGTERM, checked) by `stop`,
/// and killed on drop when a failed assertion got there first.
struct Serving(Option<Child>);

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn stop(mut serving: Serving) {
    let Some(mut child) = serving.0.take() else {
        return;
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    test_support::wait_timeout(&mut child, Duration::from_secs(10))
        .expect("berth serve did not stop on SIGTERM");
}

#[test]
fn tcp_needs_mutual_tls_and_gets_it() {
    let f = Fixture::new();
    let pki = Pki::generate(f.dir.path());
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(f.dir.path().join("serve.log")).unwrap();
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();
    let child = f
        .command(&[
            "serve",
            "-H",
            &format!("tcp://{addr}"),
            "--tlsverify",
            "--tlscacert",
            &p(&pki.ca),
            "--tlscert",
            &p(&pki.server_cert),
            "--tlskey",
            &p(&pki.server_key),
        ])
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let child = Serving(Some(child));
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < end, "berth serve did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let docker = |cert: &std::path::Path, key: &std::path::Path, args: &[&str]| {
        let mut c = Command::new("docker");
        c.env_remove("DOCKER_HOST")
            .env("DOCKER_CONFIG", f.dir.path().join("docker-cli"))
            .args(["-H", &format!("tcp://{addr}"), "--tlsverify", "--tlscacert"])
            .arg(&pki.ca)
            .arg("--tlscert")
            .arg(cert)
            .arg("--tlskey")
            .arg(key)
            .args(args);
        test_support::run_through_files(&mut c)
    };
    let o = docker(
        &pki.client_cert,
        &pki.client_key,
        &["run", "--rm", "bb:1", "echo", "over-tls"],
    )
    .ok();
    assert_eq!(o.stdout, "over-tls\n");
    let o = docker(&pki.stranger_cert, &pki.stranger_key, &["version"]);
    assert_ne!(
        o.code, 0,
        "a certificate the CA did not sign is refused: {o:?}"
    );
    assert!(!o.stdout.contains("Server:"), "{o:?}");
    // No client certificate at all.
    let o = test_support::run_through_files(
        Command::new("curl")
            .args(["-s", "--max-time", "10", "--cacert"])
            .arg(&pki.ca)
            .arg(format!("https://{addr}/_ping")),
    );
    assert_ne!(o.code, 0, "{o:?}");
    assert_ne!(o.stdout, "OK");
    stop(child);

    // Plain TCP beyond loopback is refused at the start.
    let o = f.berth(&["serve", "-H", &format!("tcp://0.0.0.0:{}", free_port())]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("needs --tlsverify"), "{o:?}");
    let o = f.berth(&["serve", "-H", &format!("tcp://{addr}"), "--tlsverify"]);
    assert!(o.stderr.contains("--tlscert"), "{o:?}");
    f.assert_clean();
}

#[test]
fn a_socket_handed_over_by_systemd_is_served() {
    let f = Fixture::new();
    let sock = f.dir.path().join("activated.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" --root \"$1\" serve -H fd://")
        .arg(BERTH)
        .arg(f.root())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only dup2 and fcntl between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            // Descriptor 3, kept across exec (dup2 onto itself would keep
            // its close-on-exec flag).
            let ok = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0) >= 0
            } else {
                libc::dup2(fd, 3) >= 0
            };
            if !ok {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = Serving(Some(cmd.spawn().unwrap()));
    let mut c = Command::new("docker");
    c.env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .env("DOCKER_CONFIG", f.dir.path().join("docker-cli"))
        .args(["version", "-f", "{{.Server.APIVersion}}"]);
    let o = test_support::run_through_files(&mut c).ok();
    assert_eq!(o.stdout.trim(), "1.47");
    stop(child);
    drop(listener);
    // Without sockets handed over, fd:// is a clear error.
    let o = f.berth(&["serve", "-H", "fd://"]);
    assert!(o.stderr.contains("no sockets were handed over"), "{o:?}");
    f.assert_clean();
}

/// Attach with `logs=1` (what came first, then what comes) and over a
/// websocket, with docker-py (whose websocket needs TCP: plain, loopback).
#[test]
fn attach_sends_the_log_and_works_over_a_websocket() {
    let f = Fixture::new();
    let port = free_port();
    let child = f
        .command(&["serve", "-H", &format!("tcp://127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Serving(Some(child));
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "berth serve did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let script = r#"
import sys, time, docker
c = docker.DockerClient(base_url="tcp://127.0.0.1:" + sys.argv[1], timeout=60)
ct = c.containers.run("bb:1", ["sh", "-c", "echo before; cat; echo after >&2"], detach=True, stdin_open=True, name="ws")
deadline = time.time() + 20
while ct.logs() != b"before\n":
    assert time.time() < deadline, ct.logs()
    time.sleep(0.05)
ws = c.api.attach_socket(ct.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1, "logs": 1}, ws=True)
assert ws.recv() == b"before\n"
ws.send("typed\n")
assert ws.recv() == b"typed\n"
ws.close()
# logs=1 without stream: what came, framed, then the end. (Read raw:
# docker-py reads a hijacked socket past its own buffer, which may hold
# what came with the 101.)
import socket, struct
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /v1.47/containers/ws/attach?logs=1&stdout=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
data = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    data += d
head, body = data.split(b"\r\n\r\n", 1)
assert head.startswith(b"HTTP/1.1 101"), head
out = b""
while body:
    kind, n = struct.unpack(">BxxxI", body[:8])
    assert kind == 1, body
    out, body = out + body[8:8 + n], body[8 + n:]
assert out == b"before\ntyped\n", out
ct.remove(force=True)
print("OK")
"#;
    let o = test_support::run_through_files(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(port.to_string()),
    );
    assert_eq!(o.stdout.trim(), "OK", "{o:?}");
    stop(child);
    f.assert_clean();
}
