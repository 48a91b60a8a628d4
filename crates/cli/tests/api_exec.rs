//! Exec through `berth serve`: the docker CLI's `exec` (streams, exit
//! status, stdin, `-d`, `-u`/`-w`/`-e`, `-it` on a terminal of the test's
//! own) and docker-py's exec API (demultiplexed output, terminal mode,
//! streaming, the raw socket, inspect), with the errors clients see.

mod common;
use std::process::Command;

use common::api_server::Server;
use common::pty::{exit_code, UserTerminal};
use common::Fixture;

#[test]
fn the_docker_cli_execs_in_a_running_container() {
    let f = Fixture::new();
    let s = Server::start(&f);
    s.docker(&f, &["run", "-d", "--name", "box", "bb:1", "sleep", "100"])
        .ok();
    let o = s.docker(
        &f,
        &["exec", "box", "sh", "-c", "echo out; echo err >&2; exit 3"],
    );
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (3, "out\n", "err\n"),
        "{o:?}"
    );
    let o = s.docker(&f, &["exec", "box", "nosuch"]);
    assert_eq!(o.code, 127, "{o:?}");
    assert!(o.stdout.contains("\"nosuch\""), "{o:?}");
    let mut cmd = s.docker_command(&f, &["exec", "-i", "box", "sh", "-c", "cat; echo end"]);
    let input = f.dir.path().join("input");
    std::fs::write(&input, "typed\n").unwrap();
    let o =
        test_support::run_with_input(&mut cmd, std::fs::File::open(&input).unwrap().into()).ok();
    assert_eq!(o.stdout, "typed\nend\n", "{o:?}");
    s.docker(
        &f,
        &[
            "exec",
            "-d",
            "box",
            "sh",
            "-c",
            "sleep 0.3; touch /tmp/done",
        ],
    )
    .ok();
    common::api_server::eventually("the detached exec ran", || {
        let o = s.docker(&f, &["exec", "box", "ls", "/tmp"]);
        (o.stdout == "done\n").then_some(()).ok_or(format!("{o:?}"))
    });
    let o = s
        .docker(
            &f,
            &[
                "exec",
                "-u",
                "65534",
                "-w",
                "/tmp",
                "-e",
                "A=b",
                "box",
                "sh",
                "-c",
                "id -u; pwd; echo $A",
            ],
        )
        .ok();
    assert_eq!(o.stdout, "65534\n/tmp\nb\n");

    // `run -it`: attached to a terminal of the user's, its size and exit status.
    let cmd = s.docker_command(&f, &["run", "-it", "--rm", "--name", "tty", "bb:1", "sh"]);
    let (mut term, mut child) = UserTerminal::spawn(cmd, 24, 77);
    term.wait_for("# ");
    term.type_in("stty size\r");
    term.wait_for("24 77");
    term.type_in("exit 4\r");
    assert_eq!(exit_code(&mut child), 4, "{}", term.seen());
    // ctrl-p ctrl-q detaches: the CLI ends, the container runs on (its
    // stdin stays open), and a later attach finds its shell.
    let cmd = s.docker_command(&f, &["run", "-it", "--name", "away", "bb:1", "sh"]);
    let (mut term, mut child) = UserTerminal::spawn(cmd, 24, 80);
    term.wait_for("# ");
    term.type_in("\x10\x11");
    assert_eq!(exit_code(&mut child), 0, "{}", term.seen());
    let o = s
        .docker(&f, &["inspect", "-f", "{{.State.Running}}", "away"])
        .ok();
    assert_eq!(o.stdout.trim(), "true", "detached, not ended");
    let cmd = s.docker_command(&f, &["attach", "away"]);
    let (mut term, mut child) = UserTerminal::spawn(cmd, 24, 80);
    term.type_in("echo still-$((6*7))\r");
    term.wait_for("still-42");
    term.type_in("exit 3\r");
    assert_eq!(exit_code(&mut child), 3, "{}", term.seen());
    s.docker(&f, &["rm", "away"]).ok();

    // A terminal: its size is the user's, the exit status comes back.
    let cmd = s.docker_command(&f, &["exec", "-it", "box", "sh"]);
    let (mut term, mut child) = UserTerminal::spawn(cmd, 33, 101);
    term.wait_for("# ");
    term.type_in("stty size; tty\r");
    term.wait_for("33 101");
    term.wait_for("/dev/pts/");
    term.type_in("exit 7\r");
    assert_eq!(exit_code(&mut child), 7, "{}", term.seen());

    s.docker(&f, &["stop", "-t", "0", "box"]).ok();
    let o = s.docker(&f, &["exec", "box", "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("is not running"), "{o:?}");
    let o = s.docker(&f, &["exec", "nobox", "true"]);
    assert!(o.stderr.contains("No such container: nobox"), "{o:?}");
    s.docker(&f, &["rm", "box"]).ok();
    drop(s);
    f.assert_clean();
}

#[test]
fn docker_py_drives_execs() {
    let f = Fixture::new();
    let s = Server::start(&f);
    let script = r#"
import sys, docker
c = docker.DockerClient(base_url="unix://" + sys.argv[1], timeout=60)
ct = c.containers.run("bb:1", ["sleep", "100"], detach=True, name="py")
# The event stream, followed: an exec's end comes as it happens.
events = c.events(decode=True, filters={"container": "py", "event": "exec_die"})
r = ct.exec_run(["sh", "-c", "echo o; echo e >&2; exit 4"], demux=True)
assert r == (4, (b"o\n", b"e\n")), r
ev = next(events)
assert (ev["Type"], ev["Action"], ev["Actor"]["Attributes"]["exitCode"]) == ("container", "exec_die", "4"), ev
assert ev["Actor"]["ID"] == ct.id and ev["status"] == "exec_die", ev
events.close()
r = ct.exec_run("echo hi", tty=True)
assert r == (0, b"hi\r\n"), r
r = ct.exec_run(["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.1; done"], stream=True)
assert b"".join(r.output) == b"1\n2\n3\n"
# The raw socket: stdin in, its end closes the process's stdin.
e = c.api.exec_create(ct.id, ["sh", "-c", "cat; exit 9"], stdin=True)
sock = c.api.exec_start(e["Id"], socket=True)
sock._sock.sendall(b"abc\n")
sock._sock.shutdown(1)
data = b""
while True:
    d = sock._sock.recv(4096)
    if not d:
        break
    data += d
assert data == b"\x01\x00\x00\x00\x00\x00\x00\x04abc\n", data
i = c.api.exec_inspect(e["Id"])
assert (i["Running"], i["ExitCode"], i["ProcessConfig"]["entrypoint"]) == (False, 9, "sh"), i
assert i["ContainerID"] == ct.id and i["Pid"] > 0, i
# An exec starts once; unknown ones are 404.
try:
    c.api.exec_start(e["Id"])
    raise SystemExit("an exec started twice")
except docker.errors.APIError as err:
    assert err.status_code == 409, err
try:
    c.api.exec_inspect("nosuch")
    raise SystemExit("an unknown exec was found")
except docker.errors.NotFound:
    pass
r = ct.exec_run("nosuch")
assert r.exit_code == 127 and b"nosuch" in r.output, r
ct.remove(force=True)
print("OK")
"#;
    let o =
        test_support::run_through_files(Command::new("python3").arg("-c").arg(script).arg(&s.sock));
    assert_eq!(o.stdout.trim(), "OK", "{o:?}");
    // Bad bodies are refused by field.
    s.docker(&f, &["run", "-d", "--name", "raw", "bb:1", "sleep", "100"])
        .ok();
    let (code, body) = s.http("POST", "/containers/raw/exec", br#"{"Cmd": 5}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("Cmd: expected a list of strings"), "{body}");
    let (code, body) = s.http("POST", "/containers/raw/exec", br#"{"Cmd": []}"#);
    assert_eq!(code, 400, "{body}");
    let (code, body) = s.http(
        "POST",
        "/containers/raw/exec",
        br#"{"Cmd": ["true"], "WorkingDir": "rel"}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("WorkingDir"), "{body}");
    // Start without the hijack (and not detached) is refused, not hung.
    let (code, body) = s.http("POST", "/containers/raw/exec", br#"{"Cmd": ["true"]}"#);
    assert_eq!(code, 201, "{body}");
    let id: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (code, body) = s.http(
        "POST",
        &format!("/exec/{}/start", id["Id"].as_str().unwrap()),
        b"{}",
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("Upgrade"), "{body}");
    s.docker(&f, &["rm", "-f", "raw"]).ok();
    drop(s);
    f.assert_clean();
}

/// Reads from `s` until `want` has come (or panics after its timeout).
fn read_until(s: &mut std::os::unix::net::UnixStream, want: &str) -> String {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(want) {
        match s.read(&mut buf) {
            Ok(0) => panic!(
                "the stream ended before {want:?}: {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "waiting for {want:?}: {e}: {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Whether the server ends the stream (EOF) within the socket's timeout.
fn ends(s: &mut std::os::unix::net::UnixStream) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

/// As dockerd, the server watches a terminal's input for the detach keys
/// (ctrl-p ctrl-q, or `detachKeys`/`DetachKeys`): the attach or exec ends
/// for that client and the process runs on. Raw sockets, as a client
/// without the docker CLI's own escape handling sends them.
#[test]
fn the_server_detaches_on_the_detach_keys() {
    use std::io::Write;
    let f = Fixture::new();
    let s = Server::start(&f);
    let d = |args: &[&str]| s.docker(&f, args);
    d(&["run", "-dit", "--name", "term", "bb:1", "sh"]).ok();
    let running = || {
        d(&["inspect", "-f", "{{.State.Running}}", "term"])
            .ok()
            .stdout
    };

    let attach = "/v1.47/containers/term/attach?stream=1&stdin=1&stdout=1&stderr=1";
    let mut a = s.hijack("POST", attach, b"");
    a.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    a.write_all(b"echo one-$((40+2))\n").unwrap();
    read_until(&mut a, "one-42");
    // ctrl-p alone is given back when ctrl-q does not follow.
    a.write_all(b"\x10").unwrap();
    a.write_all(b"\x15echo two-$((40+2))\n").unwrap();
    read_until(&mut a, "two-42");
    a.write_all(b"\x10\x11").unwrap();
    assert!(ends(&mut a), "the attach did not end on ctrl-p ctrl-q");
    assert_eq!(running(), "true\n");

    let mut a = s.hijack("POST", &format!("{attach}&detachKeys=ctrl-a,x"), b"");
    a.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    a.write_all(b"echo three-$((40+2))\n").unwrap();
    read_until(&mut a, "three-42");
    a.write_all(b"\x01x").unwrap();
    assert!(
        ends(&mut a),
        "the attach did not end on its own detach keys"
    );
    assert_eq!(running(), "true\n");

    {
        use std::io::Read;
        let mut bad = std::os::unix::net::UnixStream::connect(&s.sock).unwrap();
        bad.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            bad,
            "POST {attach}&detachKeys=ctrl- HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut got = vec![0u8; 4096];
        let n = bad.read(&mut got).unwrap();
        let text = String::from_utf8_lossy(&got[..n]);
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
        assert!(text.contains("detachKeys"), "{text}");
    }

    // exec: its DetachKeys; the process runs on after the client goes.
    let (code, body) = s.http(
        "POST",
        "/v1.47/containers/term/exec",
        br#"{"Cmd":["sh"],"Tty":true,"AttachStdin":true,"AttachStdout":true,"DetachKeys":"ctrl-x,ctrl-y"}"#,
    );
    assert_eq!(code, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut e = s.hijack(
        "POST",
        &format!("/v1.47/exec/{id}/start"),
        br#"{"Tty":true}"#,
    );
    e.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    e.write_all(b"echo four-$((40+2))\n").unwrap();
    read_until(&mut e, "four-42");
    e.write_all(b"\x18\x19").unwrap();
    assert!(ends(&mut e), "the exec did not end on its DetachKeys");
    let (_, body) = s.http("GET", &format!("/v1.47/exec/{id}/json"), b"");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Running"], true, "{body}");
    assert_eq!(v["DetachKeys"], "ctrl-x,ctrl-y", "{body}");
    let (code, body) = s.http(
        "POST",
        "/v1.47/containers/term/exec",
        br#"{"Cmd":["sh"],"Tty":true,"DetachKeys":"ctrl-+"}"#,
    );
    assert_eq!(code, 400, "{body}");
    d(&["rm", "-f", "term"]).ok();
}
