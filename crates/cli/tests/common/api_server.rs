//! A `berth serve` of the test's own, on a socket in the fixture's
//! directory, and the docker CLI pointed at it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Fixture;

/// A `berth serve` on `<dir>/api.sock`; stopped (SIGTERM) on drop.
pub struct Server {
    pub child: Child,
    pub sock: PathBuf,
}

impl Server {
    pub fn start(f: &Fixture) -> Server {
        let sock = f.dir.path().join("api.sock");
        let log = std::fs::File::create(f.dir.path().join("serve.log")).unwrap();
        let child = f
            .command(&["serve", "-H", &format!("unix://{}", sock.display())])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&sock).is_err() {
            assert!(Instant::now() < end, "berth serve did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, sock }
    }

    pub fn stop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let end = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < end, "berth serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The docker CLI against this server, with a config dir of the test's.
    pub fn docker(&self, f: &Fixture, args: &[&str]) -> test_support::Outcome {
        test_support::run_through_files(&mut self.docker_command(f, args))
    }

    /// The docker CLI command for `args`, not started.
    pub fn docker_command(&self, f: &Fixture, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", f.dir.path().join("docker-cli"))
            .args(args);
        c
    }

    /// A request that hijacks the connection (attach, exec start): checks
    /// the 101 and returns the stream that follows it (read byte by byte
    /// up to the head's end, so nothing after it is lost).
    pub fn hijack(&self, method: &str, path: &str, body: &[u8]) -> UnixStream {
        let mut s = UnixStream::connect(&self.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut got = Vec::new();
        let mut b = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            match s.read(&mut b) {
                Ok(1) => got.push(b[0]),
                other => panic!("{method} {path}: no answer ({other:?}): {got:?}"),
            }
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 101"), "{method} {path}: {text}");
        s
    }

    /// One raw HTTP/1.1 request; the status and the body.
    pub fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let mut s = UnixStream::connect(&self.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        // A server that answers before the body is read (413) may close.
        let _ = s.write_all(body);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, body.to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.stop();
        }
    }
}

/// Retries `check` for up to 10 s.
pub fn eventually(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if Instant::now() > end => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
