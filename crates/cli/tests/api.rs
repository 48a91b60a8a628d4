//! `berth serve` with real clients: the machine's docker CLI (28.x) and
//! docker-py, against a server on a socket in the test's directory, over
//! the test's own store. Also raw HTTP for what clients would never send:
//! malformed and oversized bodies, unknown endpoints and versions, silent
//! and vanishing clients; and 50 clients at once. No container here has a
//! network (so nothing touches the host's devices).

mod common;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use common::api_server::{eventually, Server};
use common::Fixture;

#[test]
fn the_docker_cli_runs_and_manages_containers() {
    let f = Fixture::new();
    let mut s = Server::start(&f);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&s.sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o660,
        "the socket is the owner's and its group's only"
    );
    let o = s
        .docker(
            &f,
            &[
                "version",
                "-f",
                "{{.Server.APIVersion}} {{.Client.APIVersion}}",
            ],
        )
        .ok();
    assert_eq!(
        o.stdout.trim(),
        "1.47 1.47",
        "the client negotiates down to ours"
    );
    let o = s
        .docker(&f, &["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok();
    assert_eq!(o.stdout.trim(), "bb:1");

    let id = s
        .docker(
            &f,
            &[
                "run",
                "-d",
                "--name",
                "web",
                "--label",
                "team=a",
                "bb:1",
                "sh",
                "-c",
                "echo hello; echo oops >&2; sleep 100",
            ],
        )
        .ok()
        .stdout;
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    let o = s
        .docker(&f, &["ps", "--format", "{{.Names}} {{.Status}}"])
        .ok();
    assert!(o.stdout.starts_with("web Up "), "{}", o.stdout);
    let o = s.docker(&f, &["ps", "-q", "--filter", "label=team=a"]).ok();
    assert_eq!(o.stdout.trim(), &id[..12]);
    assert_eq!(
        s.docker(&f, &["ps", "-q", "--filter", "label=team=b"])
            .ok()
            .stdout,
        ""
    );
    eventually("logs", || {
        let o = s.docker(&f, &["logs", "web"]);
        (o.stdout == "hello\n" && o.stderr == "oops\n")
            .then_some(())
            .ok_or(format!("{o:?}"))
    });
    // logs -f follows until the container ends.
    s.docker(
        &f,
        &[
            "run",
            "-d",
            "--name",
            "counter",
            "bb:1",
            "sh",
            "-c",
            "for i in 1 2 3; do echo $i; sleep 0.2; done",
        ],
    )
    .ok();
    let o = s.docker(&f, &["logs", "-f", "counter"]).ok();
    assert_eq!(o.stdout, "1\n2\n3\n");
    s.docker(&f, &["rm", "counter"]).ok();
    let o = s
        .docker(
            &f,
            &[
                "inspect",
                "-f",
                "{{.State.Running}} {{.Config.Labels.team}} {{.HostConfig.NetworkMode}}",
                "web",
            ],
        )
        .ok();
    // No --network: berth's default, no network (nothing made on the host).
    assert_eq!(o.stdout.trim(), "true a none");
    // The same store: berth's own command line sees it too.
    let o = f.berth(&["ps", "--format", "{{.Names}}"]).ok();
    assert_eq!(o.stdout.trim(), "web");

    // A restart of the server touches no running container.
    s.stop();
    assert!(!s.sock.exists(), "the socket is removed on the way out");
    let s = Server::start(&f);
    let o = s
        .docker(&f, &["inspect", "-f", "{{.State.Running}}", "web"])
        .ok();
    assert_eq!(o.stdout.trim(), "true");

    s.docker(&f, &["stop", "-t", "1", "web"]).ok();
    let o = s.docker(&f, &["ps", "-a", "--format", "{{.Status}}"]).ok();
    assert!(o.stdout.starts_with("Exited (137)"), "{}", o.stdout);
    // -n (the API's limit): the newest, whatever their state; and the
    // status filter.
    s.docker(&f, &["create", "--name", "later", "bb:1", "true"])
        .ok();
    let o = s
        .docker(&f, &["ps", "-n", "1", "--format", "{{.Names}} {{.State}}"])
        .ok();
    assert_eq!(o.stdout.trim(), "later created");
    let o = s
        .docker(&f, &["ps", "-n", "2", "--format", "{{.Names}}"])
        .ok();
    assert_eq!(o.stdout.trim(), "later\nweb");
    let o = s
        .docker(
            &f,
            &[
                "ps",
                "-a",
                "--filter",
                "status=exited",
                "--format",
                "{{.Names}}",
            ],
        )
        .ok();
    assert_eq!(o.stdout.trim(), "web");
    s.docker(&f, &["rm", "later"]).ok();
    s.docker(&f, &["start", "web"]).ok();
    s.docker(&f, &["kill", "web"]).ok();
    let o = s.docker(&f, &["kill", "web"]);
    assert!(o.code != 0 && o.stderr.contains("is not running"), "{o:?}");
    s.docker(&f, &["rm", "web"]).ok();

    // In the foreground: attached before the start (nothing missed), the
    // exit status is the container's, --rm removes it, -i takes stdin.
    let o = s.docker(
        &f,
        &[
            "run",
            "--rm",
            "bb:1",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 4",
        ],
    );
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (4, "out\n", "err\n"),
        "{o:?}"
    );
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("printf 'typed\\n' | docker run --rm -i bb:1 sh -c 'read x; echo got $x'")
        .env("DOCKER_HOST", format!("unix://{}", s.sock.display()))
        .env("DOCKER_CONFIG", f.dir.path().join("docker-cli"));
    let o = test_support::run_through_files(&mut c);
    assert_eq!((o.code, o.stdout.as_str()), (0, "got typed\n"), "{o:?}");
    assert_eq!(s.docker(&f, &["ps", "-aq"]).ok().stdout, "");

    // docker wait gives the exit status; --rm removes the container.
    let id = s
        .docker(&f, &["run", "-d", "bb:1", "sh", "-c", "sleep 0.3; exit 3"])
        .ok()
        .stdout;
    let o = s.docker(&f, &["wait", id.trim()]).ok();
    assert_eq!(o.stdout.trim(), "3");
    s.docker(&f, &["rm", id.trim()]).ok();
    s.docker(
        &f,
        &["run", "-d", "--rm", "--name", "brief", "bb:1", "true"],
    )
    .ok();
    eventually("--rm removes it", || {
        let o = s.docker(&f, &["ps", "-aq"]).ok();
        o.stdout.is_empty().then_some(()).ok_or(o.stdout)
    });

    // Errors as dockerd words them, with the CLI's exit status.
    let o = s.docker(&f, &["rm", "nosuch"]);
    assert!(
        o.code != 0 && o.stderr.contains("No such container: nosuch"),
        "{o:?}"
    );
    let o = s.docker(
        &f,
        &["run", "-d", "--name", "x", "--memory", "1k", "bb:1", "true"],
    );
    assert!(o.code != 0 && o.stderr.contains("emory"), "{o:?}");
    let o = s
        .docker(&f, &["info", "-f", "{{.Containers}} {{.OSType}}"])
        .ok();
    assert!(o.stdout.trim().ends_with(" linux"), "{}", o.stdout);
    let left = s.docker(&f, &["ps", "-aq"]).ok().stdout;
    for id in left.split_whitespace() {
        s.docker(&f, &["rm", "-f", id]).ok();
    }
    drop(s);
    f.assert_clean();
}

#[test]
fn docker_py_drives_containers_and_their_streams() {
    let f = Fixture::new();
    let s = Server::start(&f);
    let script = r#"
import sys, docker
c = docker.DockerClient(base_url="unix://" + sys.argv[1], timeout=60)
assert c.ping()
assert c.version()["ApiVersion"] == "1.47"
ct = c.containers.create("bb:1", ["sh", "-c", "echo out; echo err >&2; exit 3"], name="py", labels={"k": "v"})
assert ct.status == "created", ct.status
ct.start()
assert ct.wait() == {"StatusCode": 3, "Error": None}
assert ct.logs(stdout=True, stderr=False) == b"out\n"
assert ct.logs(stdout=False, stderr=True) == b"err\n"
demux = c.api.logs(ct.id, stdout=True, stderr=True, stream=False)
assert demux == b"out\nerr\n" or demux == b"err\nout\n", demux
assert [x.name for x in c.containers.list(all=True, filters={"label": "k=v"})] == ["py"]
assert c.containers.list(filters={"status": "running"}) == []
ct.reload()
assert ct.attrs["State"]["ExitCode"] == 3
ct.remove()
try:
    c.containers.get("py")
    raise SystemExit("a removed container is found")
except docker.errors.NotFound:
    pass
# Followed logs stream until the container stops.
run = c.containers.run("bb:1", ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done"], detach=True)
lines = b"".join(run.logs(stream=True, follow=True))
assert lines == b"line1\nline2\nline3\n", lines
assert run.wait()["StatusCode"] == 0
run.remove()
# Conflicts and bad names.
busy = c.containers.run("bb:1", ["sleep", "100"], detach=True, name="busy")
try:
    busy.remove()
    raise SystemExit("a running container was removed without force")
except docker.errors.APIError as e:
    assert e.status_code == 409, e
busy.remove(force=True)
try:
    c.containers.create("nosuch:image", ["true"])
    raise SystemExit("a missing image was created from")
except docker.errors.ImageNotFound:
    pass
assert [i.tags for i in c.images.list()] == [["bb:1"]]
assert c.images.get("bb:1").attrs["RootFS"]["Type"] == "layers"
print("OK")
"#;
    let o =
        test_support::run_through_files(Command::new("python3").arg("-c").arg(script).arg(&s.sock));
    assert_eq!(o.stdout.trim(), "OK", "{o:?}");
    drop(s);
    f.assert_clean();
}

#[test]
fn bad_requests_get_clear_errors_and_the_server_serves_on() {
    let f = Fixture::new();
    let s = Server::start(&f);
    for (method, path, body, status, says) in [
        (
            "POST",
            "/containers/create",
            &b"{not json"[..],
            400,
            "invalid JSON",
        ),
        (
            "POST",
            "/containers/create",
            b"[]",
            400,
            "must be an object",
        ),
        (
            "POST",
            "/containers/create",
            b"{\"Cmd\": [\"true\"]}",
            400,
            "Image is missing",
        ),
        (
            "POST",
            "/containers/create",
            b"{\"Image\": \"bb:1\", \"Tty\": \"yes\"}",
            400,
            "Tty: expected a boolean",
        ),
        (
            "POST",
            "/containers/create",
            b"{\"Image\": \"nosuch\"}",
            404,
            "No such image: nosuch:latest",
        ),
        ("GET", "/v1.47/nonsense", b"", 404, "page not found"),
        ("GET", "/v1.99/info", b"", 400, "too new"),
        (
            "GET",
            "/containers/nosuch/json",
            b"",
            404,
            "No such container: nosuch",
        ),
        (
            "POST",
            "/containers/nosuch/wait?condition=sometime",
            b"",
            400,
            "invalid condition",
        ),
        (
            "GET",
            "/containers/json?filters=%7B%22color%22%3A%5B%22red%22%5D%7D",
            b"",
            400,
            "invalid filter 'color'",
        ),
        ("GET", "/containers/json?limit=many", b"", 400, "limit"),
        ("POST", "/build", b"", 501, "not there yet"),
    ] {
        let (code, text) = s.http(method, path, body);
        assert_eq!(code, status, "{method} {path}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert!(
            v["message"].as_str().unwrap_or("").contains(says),
            "{method} {path}: {text}"
        );
    }
    // A body past the bound is refused, not read into memory.
    let huge = vec![b' '; 9 << 20];
    let (code, _) = s.http("POST", "/containers/create", &huge);
    assert_eq!(code, 413);
    // A silent client and a client that leaves in the middle of a wait do
    // not hold up the others.
    let _silent = UnixStream::connect(&s.sock).unwrap();
    let id = s
        .docker(&f, &["create", "bb:1", "sleep", "100"])
        .ok()
        .stdout;
    {
        let mut w = UnixStream::connect(&s.sock).unwrap();
        write!(
            w,
            "POST /containers/{}/wait HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\n\r\n",
            id.trim()
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, text) = s.http("GET", "/_ping", b"");
    assert_eq!((code, text.as_str()), (200, "OK"));
    // Nothing was made by the refused requests.
    let (_, list) = s.http("GET", "/containers/json?all=1", b"");
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{list}");
    s.docker(&f, &["rm", "-f", id.trim()]).ok();
    drop(s);
    f.assert_clean();
}

#[test]
fn fifty_clients_create_and_remove_at_once() {
    let f = Fixture::new();
    let s = Server::start(&f);
    let sock = s.sock.clone();
    let srv = &s;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let _ = &sock;
                scope.spawn(move || {
                    let (code, text) = srv.http(
                        "POST",
                        &format!("/containers/create?name=c{i}"),
                        br#"{"Image": "bb:1", "Cmd": ["true"]}"#,
                    );
                    assert_eq!(code, 201, "{text}");
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                    let id = v["Id"].as_str().unwrap().to_string();
                    let (code, text) = srv.http("DELETE", &format!("/containers/{id}"), b"");
                    assert_eq!(code, 204, "{text}");
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    let (_, list) = s.http("GET", "/containers/json?all=1", b"");
    assert_eq!(list.trim(), "[]");
    drop(s);
    f.assert_clean();
}
