//! The container endpoints beyond the lifecycle, through `berth serve`
//! with the docker CLI and docker-py: top, stats, pause/unpause, rename,
//! diff, update, cp both ways, export and prune.

mod common;
use std::process::Command;

use common::api_server::Server;
use common::Fixture;

/// `docker cp` into a container: a file does not replace a directory
/// (the CLI asks `noOverwriteDirNonDir`), nor a directory a file; `-a`
/// (`copyUIDGID`) gives the files to the container's user, and without
/// it they keep the owner the archive says.
#[test]
fn docker_cp_keeps_kinds_and_owners_as_dockerd() {
    use std::os::unix::fs::MetadataExt;
    let f = Fixture::new();
    let mut s = Server::start(&f);
    let d = |args: &[&str]| s.docker(&f, args);
    d(&[
        "run",
        "-d",
        "--name",
        "owned",
        "--user",
        "1234:5678",
        "bb:1",
        "sleep",
        "100",
    ])
    .ok();
    d(&["exec", "owned", "mkdir", "-p", "/tmp/dest/x", "/tmp/dest/y"]).ok();
    d(&[
        "exec",
        "owned",
        "touch",
        "/tmp/dest/y/inside",
        "/tmp/dest/z",
    ])
    .ok();
    let here = f.dir.path().join("cp-src");
    std::fs::create_dir_all(here.join("z")).unwrap();
    std::fs::write(here.join("x"), "a file\n").unwrap();
    std::fs::write(here.join("plain"), "plain\n").unwrap();
    std::os::unix::fs::chown(here.join("plain"), Some(4321), Some(4322)).unwrap();
    let p = |n: &str| here.join(n).to_str().unwrap().to_string();

    let o = d(&["cp", &p("x"), "owned:/tmp/dest/"]);
    assert_ne!(o.code, 0, "a file replaced a directory: {o:?}");
    assert!(
        o.stderr
            .contains("cannot overwrite a directory with a non-directory"),
        "{o:?}"
    );
    let o = d(&["cp", &p("z"), "owned:/tmp/dest/"]);
    assert_ne!(o.code, 0, "a directory replaced a file: {o:?}");
    assert!(
        o.stderr
            .contains("cannot overwrite a non-directory with a directory"),
        "{o:?}"
    );
    let o = d(&[
        "exec",
        "owned",
        "sh",
        "-c",
        "[ -d /tmp/dest/x ] && [ -f /tmp/dest/y/inside ] && [ -f /tmp/dest/z ] && echo kept",
    ])
    .ok();
    assert_eq!(o.stdout, "kept\n");

    let own = |path: &str| {
        d(&["exec", "owned", "stat", "-c", "%u:%g", path])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    let meta = std::fs::metadata(here.join("plain")).unwrap();
    d(&["cp", &p("plain"), "owned:/tmp/as-sent"]).ok();
    assert_eq!(
        own("/tmp/as-sent"),
        format!("{}:{}", meta.uid(), meta.gid())
    );
    d(&["cp", "-a", &p("plain"), "owned:/tmp/as-user"]).ok();
    assert_eq!(own("/tmp/as-user"), "1234:5678");
    d(&["cp", "-a", &p("z"), "owned:/tmp/tree"]).ok();
    assert_eq!(own("/tmp/tree"), "1234:5678");
    d(&["rm", "-f", "owned"]).ok();
    s.stop();
}

/// inspect shows a container's volumes and binds under `Mounts` and its
/// environment, working directory, user and hostname under `Config`, as
/// dockerd; the list shows `Mounts` as a list (empty, not null).
#[test]
fn inspect_shows_mounts_and_the_process_config() {
    let f = Fixture::new();
    let s = Server::start(&f);
    let d = |args: &[&str]| s.docker(&f, args);
    let host = f.dir.path().join("site");
    std::fs::create_dir(&host).unwrap();
    let bind = format!("{}:/site:ro", host.display());
    d(&[
        "create",
        "--name",
        "shown",
        "--network",
        "none",
        "-v",
        "data:/data",
        "-v",
        &bind,
        "-w",
        "/data",
        "-u",
        "1000",
        "-e",
        "GREETING=hi",
        "-h",
        "box",
        "--read-only",
        "--cap-add",
        "NET_ADMIN",
        "--tmpfs",
        "/run:size=1m",
        "--shm-size",
        "8m",
        "--memory",
        "32m",
        "--ulimit",
        "nofile=512:1024",
        "--device",
        "/dev/null:/dev/mynull:r",
        "bb:1",
        "true",
    ])
    .ok();
    // Lists of objects the docker CLI decodes by type (a wrong shape fails
    // the whole inspect).
    let o = d(&[
        "inspect",
        "-f",
        "{{range .HostConfig.Ulimits}}{{.Name}}={{.Soft}}:{{.Hard}}{{end}} \
         {{range .HostConfig.Devices}}{{.PathOnHost}}>{{.PathInContainer}}:{{.CgroupPermissions}}{{end}}",
        "shown",
    ])
    .ok();
    assert_eq!(
        o.stdout.trim(),
        "nofile=512:1024 /dev/null>/dev/mynull:r",
        "{o:?}"
    );
    let o = d(&["container", "inspect", "--size", "shown"]).ok();
    assert!(o.stdout.contains("\"Ulimits\""), "{o:?}");
    // HostConfig has every key a template names, set or not.
    let o = d(&[
        "inspect",
        "-f",
        "{{.HostConfig.Privileged}} {{.HostConfig.ReadonlyRootfs}} \
         {{.HostConfig.Memory}} {{.HostConfig.CapAdd}} {{.HostConfig.Tmpfs}} \
         {{.HostConfig.ShmSize}} {{.HostConfig.IpcMode}} {{.HostConfig.CpuShares}}",
        "shown",
    ])
    .ok();
    assert_eq!(
        o.stdout.trim(),
        "false true 33554432 [CAP_NET_ADMIN] map[/run:size=1m] 8388608 private 0",
        "{o:?}"
    );
    let o = d(&[
        "inspect",
        "-f",
        "{{range .HostConfig.Binds}}{{.}};{{end}}",
        "shown",
    ])
    .ok();
    let mut binds: Vec<&str> = o
        .stdout
        .trim()
        .split(';')
        .filter(|b| !b.is_empty())
        .collect();
    binds.sort();
    assert_eq!(binds, [bind.as_str(), "data:/data"], "{o:?}");
    let o = d(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}} {{.Name}} {{.Source}} {{.Destination}} {{.RW}};{{end}}",
        "shown",
    ])
    .ok();
    let mut got: Vec<&str> = o
        .stdout
        .trim()
        .split(';')
        .filter(|x| !x.is_empty())
        .collect();
    got.sort();
    let volume = format!(
        "volume data {} /data true",
        f.root().join("volumes/data/_data").display()
    );
    let bound = format!("bind  {} /site false", host.display());
    assert_eq!(got, [bound.as_str(), volume.as_str()], "{o:?}");
    let o = d(&[
        "inspect",
        "-f",
        "{{.Config.WorkingDir}} {{.Config.User}} {{.Config.Hostname}} {{range .Config.Env}}{{.}},{{end}}",
        "shown",
    ])
    .ok();
    assert!(o.stdout.starts_with("/data 1000 box "), "{o:?}");
    assert!(o.stdout.contains("GREETING=hi,"), "{o:?}");
    // No mounts: an empty list, in inspect and in the list.
    d(&[
        "create",
        "--name",
        "bare",
        "--network",
        "none",
        "bb:1",
        "true",
    ])
    .ok();
    let (_, body) = s.http("GET", "/v1.47/containers/json?all=1", b"");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    for c in list.as_array().unwrap() {
        assert!(c["Mounts"].is_array(), "{c}");
    }
    let o = d(&["inspect", "-f", "{{json .Mounts}}", "bare"]).ok();
    assert_eq!(o.stdout.trim(), "[]");
    d(&["rm", "-v", "shown", "bare"]).ok();
    d(&["volume", "rm", "data"]).ok();
}

#[test]
fn the_docker_cli_works_on_containers_in_place() {
    let f = Fixture::new();
    let s = Server::start(&f);
    let d = |args: &[&str]| s.docker(&f, args);
    d(&["run", "-d", "--name", "box", "bb:1", "sleep", "100"]).ok();

    let o = d(&["top", "box"]).ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(lines[0].split_whitespace().any(|t| t == "PID"), "{o:?}");
    assert!(lines[1].ends_with("sleep 100"), "{o:?}");
    let o = d(&["top", "box", "-o", "pid,comm"]).ok();
    assert_eq!(o.stdout.lines().count(), 2, "{o:?}");

    let o = d(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}} {{.MemUsage}}",
        "box",
    ])
    .ok();
    assert!(o.stdout.starts_with("box 1 "), "{o:?}");

    d(&["pause", "box"]).ok();
    let o = d(&["inspect", "-f", "{{.State.Status}}", "box"]).ok();
    assert_eq!(o.stdout.trim(), "paused");
    d(&["unpause", "box"]).ok();
    let o = d(&["inspect", "-f", "{{.State.Status}}", "box"]).ok();
    assert_eq!(o.stdout.trim(), "running");

    d(&["rename", "box", "crate"]).ok();
    assert_eq!(d(&["ps", "--format", "{{.Names}}"]).ok().stdout, "crate\n");
    d(&["run", "-d", "--name", "other", "bb:1", "sleep", "100"]).ok();
    let o = d(&["rename", "other", "crate"]);
    assert_ne!(o.code, 0, "a name in use is refused");

    d(&["exec", "crate", "sh", "-c", "echo x > /tmp/new; rm /bin/vi"]).ok();
    let o = d(&["diff", "crate"]).ok();
    for want in ["A /tmp/new", "D /bin/vi", "C /tmp"] {
        assert!(o.stdout.lines().any(|l| l == want), "{want}: {o:?}");
    }

    d(&[
        "update",
        "--memory",
        "64m",
        "--restart",
        "on-failure:3",
        "crate",
    ])
    .ok();
    let o = d(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}}",
        "crate",
    ])
    .ok();
    assert_eq!(o.stdout.trim(), "67108864 on-failure");

    // cp: into a directory, onto a new name, out as a tree, out to stdout.
    let here = f.dir.path().join("here");
    std::fs::create_dir(&here).unwrap();
    std::fs::write(here.join("f.txt"), "hello\n").unwrap();
    let src = here.join("f.txt");
    let src = src.to_str().unwrap();
    d(&["cp", src, "crate:/tmp/"]).ok();
    d(&["cp", src, "crate:/tmp/renamed.txt"]).ok();
    let o = d(&["exec", "crate", "cat", "/tmp/f.txt", "/tmp/renamed.txt"]).ok();
    assert_eq!(o.stdout, "hello\nhello\n");
    let out = f.dir.path().join("out");
    d(&["cp", "crate:/tmp", out.to_str().unwrap()]).ok();
    let mut got: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    assert_eq!(got, ["f.txt", "new", "renamed.txt"]);
    let o = d(&["cp", "crate:/nosuch", out.to_str().unwrap()]);
    assert!(
        o.stderr.contains("Could not find the file /nosuch"),
        "{o:?}"
    );

    // export: the whole root as a tar stream.
    let tar = f.dir.path().join("root.tar");
    d(&["export", "-o", tar.to_str().unwrap(), "crate"]).ok();
    let listing = test_support::run_through_files(Command::new("tar").arg("tf").arg(&tar)).ok();
    assert!(
        listing.stdout.lines().any(|l| l == "tmp/new"),
        "{listing:?}"
    );

    // prune: the stopped ones only.
    d(&["stop", "-t", "0", "other"]).ok();
    let o = d(&["container", "prune", "-f"]).ok();
    assert!(o.stdout.contains("Deleted Containers:"), "{o:?}");
    assert_eq!(d(&["ps", "-aq"]).ok().stdout.lines().count(), 1);
    d(&["rm", "-f", "crate"]).ok();
    drop(s);
    f.assert_clean();
}

#[test]
fn docker_py_reads_stats_top_and_archives() {
    let f = Fixture::new();
    let s = Server::start(&f);
    let script = r#"
import io, sys, tarfile, docker
c = docker.DockerClient(base_url="unix://" + sys.argv[1], timeout=60)
ct = c.containers.run("bb:1", ["sh", "-c", "while :; do :; done"], detach=True, name="busy")
st = ct.stats(stream=False)
assert st["name"] == "/busy" and st["pids_stats"]["current"] == 1, st
busy = st["cpu_stats"]["cpu_usage"]["total_usage"] - st["precpu_stats"]["cpu_usage"]["total_usage"]
system = st["cpu_stats"]["system_cpu_usage"] - st["precpu_stats"]["system_cpu_usage"]
share = busy / system * st["cpu_stats"]["online_cpus"]
# A busy loop: some of a CPU (the suite runs beside it), at most one.
assert 0.02 < share < 1.2, (busy, system, share)
stream = ct.stats(decode=True)
first, second = next(stream), next(stream)
assert second["precpu_stats"]["cpu_usage"]["total_usage"] == first["cpu_stats"]["cpu_usage"]["total_usage"]
stream.close()
top = ct.top()
assert "PID" in top["Titles"] and top["Processes"][0][-1].startswith("sh -c"), top
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = b"payload\n"
    info = tarfile.TarInfo("dir/file.txt")
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))
assert ct.put_archive("/tmp", buf.getvalue())
bits, stat = ct.get_archive("/tmp/dir/file.txt")
assert stat["name"] == "file.txt" and stat["size"] == 8, stat
t = tarfile.open(fileobj=io.BytesIO(b"".join(bits)))
assert t.extractfile("file.txt").read() == b"payload\n"
_, stat = ct.get_archive("/tmp/dir")
assert stat["mode"] & (1 << 31), stat
try:
    ct.put_archive("/tmp/dir/file.txt", buf.getvalue())
    raise SystemExit("a tar was unpacked onto a file")
except docker.errors.APIError as e:
    assert e.status_code == 400, e
ct.remove(force=True)
print("OK")
"#;
    let o =
        test_support::run_through_files(Command::new("python3").arg("-c").arg(script).arg(&s.sock));
    assert_eq!(o.stdout.trim(), "OK", "{o:?}");
    drop(s);
    f.assert_clean();
}
