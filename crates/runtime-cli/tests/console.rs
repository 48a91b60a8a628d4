//! `--console-socket`: the runtime sends the pty master over the socket;
//! the container's stdio is the slave, a real terminal.

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use serde_json::json;
use test_support::{unique_id, Bundle, RuntimeCli};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

#[test]
fn console_socket_receives_a_working_pty() {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&[
        "sh",
        "-c",
        "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; stty size; echo done",
    ]);
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({"height": 33, "width": 101});
    let id = unique_id("tty");
    b.set_unique_cgroup(&id);
    b.write();
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || test_support::receive_fd(&listener).0);
    rt.run(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ])
    .ok();
    let master = receiver.join().unwrap();
    rt.run(&["start", &id]).ok();
    let mut f = std::fs::File::from(master);
    let mut out = String::new();
    let end = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 256];
    while !out.contains("done") && Instant::now() < end {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(out.contains("is-a-tty"), "{out:?}");
    assert!(out.contains("33 101"), "console size not applied: {out:?}");
    rt.run(&["delete", "--force", &id]).ok();
}

#[test]
fn foreground_run_with_a_terminal_proxies_it() {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    // The default spec: terminal true, an interactive shell.
    assert_eq!(b.config["process"]["terminal"], json!(true));
    b.config["process"]["args"] = json!(["sh"]);
    let id = unique_id("tty");
    b.set_unique_cgroup(&id);
    b.write();
    let mut cmd = rt.command();
    cmd.args(["run", "--bundle", b.path().to_str().unwrap(), &id]);
    let (code, out) =
        test_support::run_in_pty_with_input(&mut cmd, b"tty; echo typed-$((6*7))\nexit 9\n");
    assert_eq!(code, 9, "{out}");
    assert!(out.contains("typed-42"), "{out}");
    assert!(out.contains("/dev/pts/0"), "{out}");
}

#[test]
fn terminal_container_has_dev_console_on_its_pty() {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.config["process"]["args"] = json!([
        "sh",
        "-c",
        "stat -c '%t:%T' /dev/console; stat -L -c '%t:%T' /proc/self/fd/0"
    ]);
    let id = unique_id("tty");
    b.set_unique_cgroup(&id);
    b.write();
    let mut cmd = rt.command();
    cmd.args(["run", "--bundle", b.path().to_str().unwrap(), &id]);
    let (code, out) = test_support::run_in_pty(&mut cmd);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], lines[1], "/dev/console is the container's pty");
    assert!(
        lines[0].starts_with("88:"),
        "a devpts node (major 136 = 0x88): {out}"
    );
}
