//! Docker Compose v2 and the docker CLI's volume and network commands
//! against `berth serve`. The server runs in a network namespace of the
//! test's own (its bridges, veths and firewall exist only there); the
//! published port is fetched from inside it.

mod common;
use common::api_server::{eventually, Server};
use common::Fixture;

#[test]
fn compose_brings_a_project_up_and_down() {
    let f = Fixture::in_netns();
    let s = Server::start(&f);
    let project = f.dir.path().join("shop");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(
        project.join("compose.yaml"),
        r#"
services:
  web:
    image: bb:1
    command: ["sh", "-c", "echo from-web > /www/index.html; exec httpd -f -p 80 -h /www"]
    ports: ["18080:80"]
    volumes: ["data:/www"]
    networks: [back]
  client:
    image: bb:1
    command: ["sh", "-c", "until wget -qO- http://web/; do sleep 0.2; done; exec sleep 1000"]
    networks: [back]
    depends_on: [web]
    environment:
      STAMP: "${STAMP:-1}"
    volumes: ["/cache"]
volumes:
  data:
networks:
  back:
"#,
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let mut full = vec!["compose", "--project-directory", project.to_str().unwrap()];
        full.extend_from_slice(args);
        s.docker(&f, &full)
    };
    compose(&["up", "-d"]).ok();
    let o = compose(&["ps", "--format", "{{.Service}} {{.State}} {{.Ports}}"]).ok();
    let mut lines: Vec<&str> = o.stdout.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{o:?}");
    assert!(lines[0].starts_with("client running"), "{o:?}");
    assert!(
        lines[1].starts_with("web running") && lines[1].contains("18080->80/tcp"),
        "{o:?}"
    );
    // The client found the web service by its name on the project network.
    eventually("the client's log", || {
        let o = compose(&["logs", "--no-log-prefix", "client"]);
        (o.stdout == "from-web\n")
            .then_some(())
            .ok_or(format!("{o:?}"))
    });
    let o = compose(&["exec", "-T", "web", "cat", "/www/index.html"]).ok();
    assert_eq!(o.stdout, "from-web\n");
    let o = compose(&["exec", "-T", "client", "wget", "-qO-", "http://web/"]).ok();
    assert_eq!(o.stdout, "from-web\n");
    // The published port, from the host (the test's namespace).
    let o = test_support::run_through_files(&mut f.host_command(
        "curl",
        &["-s", "--max-time", "10", "http://127.0.0.1:18080/"],
    ))
    .ok();
    assert_eq!(o.stdout, "from-web\n");
    // A changed service is made again, and keeps its anonymous volume
    // (Compose finds it in the old container's Mounts).
    compose(&["exec", "-T", "client", "sh", "-c", "echo kept > /cache/f"]).ok();
    let mut again = s.docker_command(
        &f,
        &[
            "compose",
            "--project-directory",
            project.to_str().unwrap(),
            "up",
            "-d",
        ],
    );
    again.env("STAMP", "2");
    test_support::run_through_files(&mut again).ok();
    let o = compose(&[
        "exec",
        "-T",
        "client",
        "sh",
        "-c",
        "cat /cache/f; echo $STAMP",
    ])
    .ok();
    assert_eq!(o.stdout, "kept\n2\n", "{o:?}");
    // The project's objects carry Compose's labels.
    let o = s
        .docker(
            &f,
            &[
                "volume",
                "ls",
                "-q",
                "--filter",
                "label=com.docker.compose.project=shop",
            ],
        )
        .ok();
    assert_eq!(o.stdout, "shop_data\n");
    let o = s.docker(&f, &["volume", "ls", "-q"]).ok();
    assert_eq!(
        o.stdout.lines().count(),
        2,
        "the named and the anonymous: {o:?}"
    );
    compose(&["down", "-v", "-t", "1"]).ok();
    assert_eq!(s.docker(&f, &["ps", "-aq"]).ok().stdout, "");
    assert_eq!(s.docker(&f, &["volume", "ls", "-q"]).ok().stdout, "");
    let o = f.berth(&["network", "ls", "-q"]).ok();
    assert_eq!(o.stdout, "", "the project network is gone");
    drop(s);
    f.assert_clean();
}

#[test]
fn the_docker_cli_manages_volumes_and_networks() {
    let f = Fixture::in_netns();
    let s = Server::start(&f);
    let d = |args: &[&str]| s.docker(&f, args);
    let start = unix_now();
    // Volumes.
    assert_eq!(
        d(&["volume", "create", "--label", "k=v", "v1"]).ok().stdout,
        "v1\n"
    );
    d(&["volume", "create", "v2"]).ok();
    let o = d(&["volume", "ls", "-q", "--filter", "label=k=v"]).ok();
    assert_eq!(o.stdout, "v1\n");
    let o = d(&[
        "volume",
        "inspect",
        "-f",
        "{{.Driver}} {{.Labels.k}} {{.Mountpoint}}",
        "v1",
    ])
    .ok();
    assert!(o.stdout.starts_with("local v "), "{o:?}");
    assert!(o.stdout.trim_end().ends_with("/volumes/v1/_data"), "{o:?}");
    d(&["network", "create", "n0"]).ok();
    d(&[
        "run",
        "-d",
        "--name",
        "user",
        "--network",
        "n0",
        "-v",
        "v1:/data",
        "bb:1",
        "sleep",
        "100",
    ])
    .ok();
    let o = d(&["volume", "rm", "v1"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("in use"), "{o:?}");
    let o = d(&["volume", "ls", "-q", "--filter", "dangling=true"]).ok();
    assert_eq!(o.stdout, "v2\n");
    let o = d(&["volume", "prune", "-af"]).ok();
    assert!(o.stdout.contains("v2"), "{o:?}");
    assert!(!o.stdout.contains("v1"), "{o:?}");
    let o = d(&["volume", "inspect", "nosuch"]);
    assert!(o.stderr.contains("no such volume"), "{o:?}");

    // Networks.
    let id = d(&[
        "network",
        "create",
        "--subnet",
        "10.231.0.0/24",
        "--label",
        "t=1",
        "n1",
    ])
    .ok()
    .stdout;
    assert_eq!(id.trim().len(), 64, "{id}");
    let o = d(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]).ok();
    let mut names: Vec<&str> = o.stdout.lines().collect();
    names.sort();
    assert_eq!(names, ["host host", "n0 bridge", "n1 bridge", "none null"]);
    let o = d(&["network", "ls", "-q", "--filter", "label=t=1"]).ok();
    assert_eq!(o.stdout.trim(), &id.trim()[..12]);
    d(&[
        "network",
        "connect",
        "--ip",
        "10.231.0.9",
        "--alias",
        "db",
        "n1",
        "user",
    ])
    .ok();
    let o = d(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.n1.IPAddress}}",
        "user",
    ])
    .ok();
    assert_eq!(o.stdout.trim(), "10.231.0.9");
    let o = d(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}} {{len .Containers}}",
        "n1",
    ])
    .ok();
    assert_eq!(o.stdout.trim(), "10.231.0.0/24 1");
    let o = d(&["network", "rm", "n1"]);
    assert_ne!(o.code, 0, "a network in use is kept");
    d(&["network", "disconnect", "n1", "user"]).ok();
    let o = d(&["network", "create", "--subnet", "10.231.0.0/25", "n2"]);
    assert_ne!(o.code, 0, "an overlapping subnet is refused");
    let o = d(&["network", "create", "n1"]);
    assert!(o.stderr.contains("n1"), "{o:?}");
    let o = d(&["network", "prune", "-f"]).ok();
    assert!(o.stdout.contains("n1"), "{o:?}");
    let o = d(&["network", "inspect", "n1"]);
    assert_ne!(o.code, 0);
    d(&["rm", "-f", "user"]).ok();
    d(&["network", "rm", "n0"]).ok();
    d(&["volume", "rm", "v1"]).ok();
    // What happened, from the event log: filtered by type, in order.
    let window = ["--since", &start, "--until", &unix_now()].map(String::from);
    let events = |typ: &str, who: &str| {
        let format = format!("{{{{.Action}}}} {who}");
        let mut args = vec!["events", "--filter", typ, "--format", &format];
        args.extend(window.iter().map(String::as_str));
        d(&args).ok().stdout
    };
    assert_eq!(
        events("type=network", "{{.Actor.Attributes.name}}"),
        "create n0\ncreate n1\nconnect n1\ndisconnect n1\ndestroy n1\ndestroy n0\n"
    );
    let o = events("type=volume", "{{.Actor.ID}}");
    assert!(
        o.starts_with("create v1\ncreate v2\n") && o.ends_with("destroy v1\n"),
        "{o}"
    );
    drop(s);
    f.assert_clean();
}

/// Now, in Unix seconds with nanoseconds, as the docker CLI's `--since` takes it.
fn unix_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// Where the API changed, a client gets its version's behaviour: volume
/// prune takes named volumes too before 1.42, image lists lose
/// VirtualSize from 1.44. And docker-py's volume API.
#[test]
fn older_clients_get_their_versions_behaviour() {
    let f = Fixture::new();
    let s = Server::start(&f);
    let d = |args: &[&str]| s.docker(&f, args);
    d(&["volume", "create", "named"]).ok();
    let (code, body) = s.http("POST", "/v1.47/volumes/prune", b"");
    assert_eq!(code, 200, "{body}");
    assert!(
        !body.contains("named"),
        "1.42 and later keep named volumes: {body}"
    );
    let (code, body) = s.http("POST", "/v1.41/volumes/prune", b"");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"named\""),
        "before 1.42 every unused volume goes: {body}"
    );
    let (_, old) = s.http("GET", "/v1.43/images/json", b"");
    let (_, new) = s.http("GET", "/v1.47/images/json", b"");
    assert!(
        old.contains("VirtualSize") && !new.contains("VirtualSize"),
        "{old} / {new}"
    );

    let script = r#"
import sys, docker
c = docker.DockerClient(base_url="unix://" + sys.argv[1], timeout=60)
v = c.volumes.create("pyvol", labels={"k": "v"})
assert v.attrs["Labels"] == {"k": "v"} and v.attrs["Driver"] == "local", v.attrs
assert [x.name for x in c.volumes.list(filters={"label": "k=v"})] == ["pyvol"]
out = c.containers.run("bb:1", ["sh", "-c", "echo data > /v/f; cat /v/f"], volumes={"pyvol": {"bind": "/v", "mode": "rw"}}, remove=True)
assert out == b"data\n", out
assert c.volumes.get("pyvol").name == "pyvol"
v.remove()
try:
    c.volumes.get("pyvol")
    raise SystemExit("a removed volume is found")
except docker.errors.NotFound:
    pass
print("OK")
"#;
    let o = test_support::run_through_files(
        std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&s.sock),
    );
    assert_eq!(o.stdout.trim(), "OK", "{o:?}");
    drop(s);
    f.assert_clean();
}
