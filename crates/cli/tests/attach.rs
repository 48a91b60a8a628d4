//! Attaching: `run -dit` then `attach` under a real pty (typing reaches
//! the container's shell, the detach keys leave it running, a second
//! attach finds it as it was and gets its exit status), `run -i` and
//! `start -ai` with piped stdin, sig-proxy, a plain foreground run's log
//! and attach, and the errors of attaching to what cannot be attached to.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

mod common;
use common::pty::{exit_code, UserTerminal};
use common::Fixture;

fn state(f: &Fixture, name: &str) -> String {
    f.berth(&["inspect", "-f", "{{.State.Status}}", name])
        .ok()
        .stdout
        .trim()
        .to_string()
}

#[test]
fn a_detached_terminal_is_attached_to_left_and_attached_again() {
    let f = Fixture::new();
    f.berth(&["run", "-dit", "--name", "shell", "bb:1", "sh"])
        .ok();
    let (mut term, mut child) = UserTerminal::spawn(f.command(&["attach", "shell"]), 30, 90);
    term.type_in("echo \"first-$((6 * 7)) $(stty size)\"\r");
    term.wait_for("first-42 30 90");
    // ctrl-p ctrl-q: berth leaves, the shell runs on.
    term.type_in("\x10\x11");
    assert_eq!(exit_code(&mut child), 0, "{}", term.seen());
    assert_eq!(state(&f, "shell"), "running");
    // A second attach, with other keys and another size, finds the same shell.
    let (mut term, mut child) = UserTerminal::spawn(
        f.command(&["attach", "--detach-keys", "ctrl-a,x", "shell"]),
        20,
        60,
    );
    term.type_in("echo \"second-$((6 * 7)) $(stty size)\"\r");
    term.wait_for("second-42 20 60");
    term.type_in("exit 3\r");
    assert_eq!(exit_code(&mut child), 3, "{}", term.seen());
    assert_eq!(state(&f, "shell"), "exited");
    // What it printed is in its log too.
    let o = f.berth(&["logs", "shell"]).ok();
    assert!(
        o.stdout.contains("first-42") && o.stdout.contains("second-42"),
        "{o:?}"
    );
    f.berth(&["rm", "shell"]).ok();
    f.assert_clean();
}

#[test]
fn run_it_detaches_with_the_keys_and_leaves_the_container_running() {
    let f = Fixture::new();
    let (mut term, mut child) = UserTerminal::spawn(
        f.command(&["run", "-it", "--name", "left", "bb:1", "sh"]),
        24,
        80,
    );
    term.type_in("echo up-$((1 + 1))\r");
    term.wait_for("up-2");
    term.type_in("\x10\x11");
    assert_eq!(exit_code(&mut child), 0, "{}", term.seen());
    assert_eq!(state(&f, "left"), "running");
    f.berth(&["rm", "-f", "left"]).ok();
    f.assert_clean();
}

/// Writes `input` to the stdin of `args`, returns its outcome.
fn with_stdin(f: &Fixture, args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = f
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn piped_stdin_reaches_run_i_start_ai_and_attach() {
    let f = Fixture::new();
    // run -i: the end of our stdin ends the container's (cat exits).
    let o = with_stdin(&f, &["run", "--rm", "-i", "bb:1", "cat"], "through-run\n");
    assert_eq!(o, (0, "through-run\n".into(), String::new()));
    // create -i, then start -ai.
    f.berth(&[
        "create",
        "-i",
        "--name",
        "cat",
        "bb:1",
        "sh",
        "-c",
        "cat; exit 6",
    ])
    .ok();
    let o = with_stdin(&f, &["start", "-ai", "cat"], "through-start\n");
    assert_eq!((o.0, o.1.as_str()), (6, "through-start\n"), "{o:?}");
    // run -di: a later attach's stdin goes to the waiting shell; its end
    // does not close the container's stdin (not stdin-once).
    f.berth(&["run", "-di", "--name", "reader", "bb:1", "sh"])
        .ok();
    let o = with_stdin(&f, &["attach", "reader"], "echo via-attach >&2; exit 5\n");
    assert_eq!((o.0, o.2.as_str()), (5, "via-attach\n"), "{o:?}");
    f.berth(&["rm", "cat", "reader"]).ok();
    f.assert_clean();
}

/// Whether process `pid` has SIGTERM blocked.
fn blocks_sigterm(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|m| m & (1 << (libc::SIGTERM - 1)) != 0)
}

#[test]
fn attach_proxies_signals_and_refuses_what_it_cannot_attach_to() {
    let f = Fixture::new();
    let script = "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done";
    f.berth(&["run", "-d", "--name", "trap", "bb:1", "sh", "-c", script])
        .ok();
    let out = f.dir.path().join("attach.out");
    let mut child = f
        .command(&["attach", "--no-stdin", "trap"])
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    // berth blocks the signals it proxies once it has connected.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !blocks_sigterm(child.id()) {
        assert!(
            std::time::Instant::now() < deadline,
            "attach never got ready"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(exit_code(&mut child), 7);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "got-term\n");

    // A stopped container, and one that does not exist.
    let o = f.berth(&["attach", "trap"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("not running"), "{o:?}");
    let o = f.berth(&["attach", "no-such"]);
    assert!(
        o.code != 0 && o.stderr.contains("no such container"),
        "{o:?}"
    );
    let o = f.berth(&["run", "-it", "--detach-keys", "ctrl-1", "bb:1", "true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("--detach-keys"), "{o:?}");
    f.berth(&["rm", "trap"]).ok();
    f.assert_clean();
}

#[test]
fn a_plain_foreground_run_is_logged_and_attached_to() {
    let f = Fixture::new();
    let out = f.dir.path().join("fg.out");
    let err = f.dir.path().join("fg.err");
    // Prints "one" to both streams, waits for /go, then prints "two" and exits 5.
    let script = "echo one; echo one-err >&2; while [ ! -e /tmp/go ]; do sleep 0.05; done; \
                  echo two; exit 5";
    let mut run = f
        .command(&["run", "--name", "fg", "bb:1", "sh", "-c", script])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&out).unwrap().contains("one") {
        assert!(std::time::Instant::now() < deadline, "no output");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The caller's own stdout and stderr get the streams, unmixed.
    assert_eq!(std::fs::read_to_string(&err).unwrap(), "one-err\n");
    let attached_out = f.dir.path().join("attach.out");
    let mut attach = f
        .command(&["attach", "fg"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&attached_out).unwrap())
        .spawn()
        .unwrap();
    // Give the client time to connect, then let the container go on.
    std::thread::sleep(Duration::from_millis(300));
    f.berth(&["exec", "fg", "touch", "/tmp/go"]).ok();
    assert_eq!(
        exit_code(&mut attach),
        5,
        "attach exits with the container's status"
    );
    assert_eq!(exit_code(&mut run), 5);
    assert_eq!(std::fs::read_to_string(&attached_out).unwrap(), "two\n");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "one\ntwo\n");
    let o = f.berth(&["logs", "fg"]).ok();
    assert_eq!(o.stdout, "one\ntwo\n");
    assert_eq!(o.stderr, "one-err\n");
    f.berth(&["rm", "fg"]).ok();
    f.assert_clean();
}

#[test]
fn logs_details_show_the_labels_and_env_the_log_opts_name() {
    let f = Fixture::new();
    f.berth(&[
        "run",
        "--name",
        "fg",
        "-l",
        "team=a b",
        "-l",
        "other=x",
        "-e",
        "MODE=on",
        "--log-opt",
        "labels=team,missing",
        "--log-opt",
        "env=MODE",
        "bb:1",
        "echo",
        "hello",
    ])
    .ok();
    f.berth(&[
        "run",
        "-d",
        "--name",
        "bg",
        "-l",
        "team=z",
        "--log-opt",
        "labels=team",
        "bb:1",
        "echo",
        "hi",
    ])
    .ok();
    f.berth(&["wait", "bg"]).ok();
    let o = f.berth(&["logs", "--details", "fg"]).ok();
    assert_eq!(o.stdout, "MODE=on,team=a+b hello\n");
    assert_eq!(f.berth(&["logs", "fg"]).ok().stdout, "hello\n");
    let o = f.berth(&["logs", "--details", "bg"]).ok();
    assert_eq!(o.stdout, "team=z hi\n");
    // Without attributes, --details leaves the space dockerd leaves.
    f.berth(&["run", "--name", "plain", "bb:1", "echo", "x"])
        .ok();
    assert_eq!(f.berth(&["logs", "--details", "plain"]).ok().stdout, " x\n");
    let o = f.berth(&[
        "run",
        "--rm",
        "--log-opt",
        "labels-regex=.*",
        "bb:1",
        "true",
    ]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("labels-regex"), "{o:?}");
    f.berth(&["rm", "fg", "bg", "plain"]).ok();
    f.assert_clean();
}

#[test]
fn logs_rotate_at_max_size_and_the_none_driver_keeps_none() {
    let f = Fixture::new();
    let script = "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done";
    f.berth(&[
        "run",
        "-d",
        "--name",
        "rot",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=3",
        "bb:1",
        "sh",
        "-c",
        script,
    ])
    .ok();
    f.berth(&["wait", "rot"]).ok();
    let bundle = std::fs::read_dir(f.root().join("containers"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("bundle");
    for n in ["json.log", "json.log.1", "json.log.2"] {
        let size = std::fs::metadata(bundle.join(n))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 0 && size <= 2048, "{n}: {size} bytes");
    }
    assert!(!bundle.join("json.log.3").exists());
    // logs reads the kept files in order: the newest lines, consecutive.
    let o = f.berth(&["logs", "rot"]).ok();
    let lines: Vec<u32> = o
        .stdout
        .lines()
        .map(|l| l.strip_prefix("line-").unwrap().parse().unwrap())
        .collect();
    assert_eq!(lines.last(), Some(&299));
    assert!(lines.len() < 300 && lines.len() > 20, "{}", lines.len());
    assert!(lines.windows(2).all(|w| w[1] == w[0] + 1), "{lines:?}");

    f.berth(&[
        "run",
        "-d",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "bb:1",
        "echo",
        "x",
    ])
    .ok();
    f.berth(&["wait", "quiet"]).ok();
    let o = f.berth(&["logs", "quiet"]);
    assert!(o.code != 0 && o.stderr.contains("none log driver"), "{o:?}");
    let o = f.berth(&["run", "--rm", "--log-driver", "syslog", "bb:1", "true"]);
    assert!(
        o.code == 125 && o.stderr.contains("json-file, local, none"),
        "{o:?}"
    );
    f.berth(&["rm", "rot", "quiet"]).ok();
    f.assert_clean();
}
