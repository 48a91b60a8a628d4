//! `berth run` in the foreground, and the container store behind `ps`,
//! `rm` and `container prune`: a busybox image imported by berth runs with
//! Docker's exit codes, options and signal forwarding; a container is kept
//! (stopped, listed) unless `--rm`, and once removed nothing is left
//! behind (container directory, mounts, runtime state; the runtime's own
//! tests cover its cgroup).

use std::path::Path;
use std::time::{Duration, Instant};

use test_support::mounts_containing;

mod common;
use common::Fixture;

#[test]
fn run_prints_and_exits_as_docker_does() {
    let f = Fixture::new();
    let o = f.run(&[
        "bb:1",
        "sh",
        "-c",
        "echo hi from $$; echo to-stderr >&2; exit 7",
    ]);
    assert_eq!(o.code, 7, "{o:?}");
    assert_eq!(o.stdout.trim(), "hi from 1");
    assert_eq!(o.stderr.trim(), "to-stderr");
    // Docker's codes when the program cannot run: 127 not found, 126 not
    // executable, 125 berth's own failure; each with a message naming it.
    let o = f.run(&["bb:1", "no-such-program"]);
    assert_eq!(o.code, 127, "{o:?}");
    assert!(o.stderr.contains("no-such-program"), "{}", o.stderr);
    let o = f.run(&["bb:1", "/etc"]);
    assert_eq!(o.code, 126, "{o:?}");
    // (--pull never: a test reaches no registry but its own.)
    let o = f.run(&["--pull", "never", "no-such-image:1"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(
        o.stderr.contains("no such image: no-such-image:1"),
        "{}",
        o.stderr
    );
    let o = f.run(&["-u", "nobody-here", "bb:1", "true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("nobody-here"), "{}", o.stderr);
    f.assert_clean();
}

#[test]
fn options_reach_the_container() {
    let f = Fixture::new();
    let env_file = f.dir.path().join("env");
    std::fs::write(&env_file, "# comment\nFROM_FILE=file\n\nB=file\n").unwrap();
    let o = f
        .berth(&[
            "run",
            "--rm",
            "-e",
            "B=flag",
            "--env-file",
            env_file.to_str().unwrap(),
            "-w",
            "/srv/work",
            "-u",
            "user",
            "--hostname",
            "box1",
            "bb:1",
            "sh",
            "-c",
            "echo $FROM_FILE $B $PWD $(id -u):$(id -g) $HOME $(hostname) $(cat /etc/hostname) $HOSTNAME",
        ])
        .ok();
    assert_eq!(
        o.stdout.trim(),
        "file flag /srv/work 1000:1000 /home/user box1 box1 box1"
    );
    // --entrypoint replaces the program, and a command after the image
    // keeps its own flags.
    let o = f
        .berth(&[
            "run",
            "--rm",
            "--entrypoint",
            "echo",
            "bb:1",
            "-n",
            "x",
            "y",
        ])
        .ok();
    assert_eq!(o.stdout, "x y");
    // No network of its own: only loopback, as --network none.
    let o = f.run(&["bb:1", "sh", "-c", "ls /sys/class/net"]).ok();
    assert_eq!(o.stdout.split_whitespace().collect::<Vec<_>>(), ["lo"]);
    f.assert_clean();
}

#[test]
fn signals_reach_the_container_and_it_is_removed() {
    let f = Fixture::new();
    let out = f.dir.path().join("out");
    let mut child = f
        .command(&[
            "run",
            "--rm",
            "bb:1",
            "sh",
            "-c",
            "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&out).unwrap().contains("ready") {
        assert!(Instant::now() < end, "the container never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = test_support::wait_timeout(&mut child, Duration::from_secs(30))
        .expect("berth run did not end after SIGTERM");
    assert_eq!(status.code(), Some(3));
    assert!(std::fs::read_to_string(&out).unwrap().contains("got TERM"));
    f.assert_clean();
}

/// Its processes start with no signal ignored or blocked, whatever the
/// runtime (which ignores SIGPIPE) and its caller had: berth here is
/// started with SIGPIPE, SIGINT and SIGQUIT ignored and SIGUSR1 blocked.
/// Also for an exec.
#[test]
fn processes_start_with_default_signals() {
    let f = Fixture::new();
    let shown = "grep -E '^Sig(Ign|Blk)' /proc/self/status; yes | head -c 1 >/dev/null";
    let mut cmd = f.command(&["run", "--rm", "bb:1", "sh", "-c", shown]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            for sig in [libc::SIGPIPE, libc::SIGINT, libc::SIGQUIT] {
                libc::signal(sig, libc::SIG_IGN);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let o = test_support::run_through_files(&mut cmd).ok();
    assert_eq!(
        o.stdout, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
        "{o:?}"
    );
    // SIGPIPE killed `yes`, quietly.
    assert_eq!(o.stderr, "", "{o:?}");
    let id = f.berth(&["run", "-d", "bb:1", "sleep", "30"]).ok().stdout;
    let o = f.berth(&["exec", id.trim(), "sh", "-c", shown]).ok();
    assert!(o.stdout.contains("SigIgn:\t0000000000000000"), "{o:?}");
    assert_eq!(o.stderr, "", "{o:?}");
    f.berth(&["rm", "-f", id.trim()]).ok();
    f.assert_clean();
}

#[test]
fn what_is_not_there_yet_says_so() {
    let f = Fixture::new();
    // (Refused before any device is made: this test runs in the host's namespace.)
    let args = ["run", "--rm", "-p", "[::1]:8080:80", "bb:1", "true"];
    let o = f.berth(&args);
    assert_ne!(o.code, 0, "{args:?}: {o:?}");
    assert!(o.stderr.contains("not there yet"), "{args:?}: {}", o.stderr);
    f.assert_clean();
}

/// Docker's resource, mount and confinement flags, each checked from
/// inside the container (the kernel's view, not the spec's).
#[test]
fn resource_mount_and_confinement_flags_take_effect() {
    let f = Fixture::new();
    let cgroup = |v2: &str, v1: &str| {
        format!("cat /sys/fs/cgroup/{v2} 2>/dev/null || cat /sys/fs/cgroup/{v1}")
    };
    let script = format!(
        "{}; {}; {}; ulimit -n; ulimit -Hn",
        cgroup("memory.max", "memory/memory.limit_in_bytes"),
        cgroup("cpu.max", "cpu/cpu.cfs_quota_us"),
        cgroup("pids.max", "pids/pids.max"),
    );
    let o = f
        .run(&[
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "20",
            "--ulimit",
            "nofile=100:200",
            "bb:1",
            "sh",
            "-c",
            &script,
        ])
        .ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(lines[0], "67108864");
    assert!(lines[1].starts_with("50000"), "{lines:?}");
    assert_eq!(&lines[2..], ["20", "100", "200"]);

    let host = f.dir.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("f"), "from the host").unwrap();
    let volume = format!("{}:/h:ro", host.display());
    let o = f
        .run(&[
            "--cap-drop", "ALL", "--cap-add", "CHOWN", "--read-only", "--tmpfs", "/data:size=1m",
            "-v", &volume, "--security-opt", "no-new-privileges", "--group-add", "4242",
            "--group-add", "nogroup",
            "bb:1", "sh", "-c",
            "grep -E 'CapEff|NoNewPrivs' /proc/self/status | tr -s '\\t' ' '; \
             touch /x 2>/dev/null || echo root-ro; echo > /data/y && echo tmpfs-rw; cat /h/f; echo; \
             touch /h/g 2>/dev/null || echo volume-ro; id -G",
        ])
        .ok();
    assert_eq!(
        o.stdout.lines().collect::<Vec<_>>(),
        [
            "CapEff: 0000000000000001",
            "NoNewPrivs: 1",
            "root-ro",
            "tmpfs-rw",
            "from the host",
            "volume-ro",
            "0 4242 65534"
        ]
    );
    let o = f.run(&["--group-add", "no-such-group", "bb:1", "true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("no-such-group"), "{o:?}");
    // exec --privileged: every capability for that process only.
    f.berth(&[
        "run",
        "-d",
        "--name",
        "capped",
        "--cap-drop",
        "ALL",
        "bb:1",
        "sleep",
        "100",
    ])
    .ok();
    let caps = |args: &[&str]| {
        let mut full = vec!["exec"];
        full.extend_from_slice(args);
        full.extend(["capped", "grep", "CapEff", "/proc/self/status"]);
        f.berth(&full)
            .ok()
            .stdout
            .split_whitespace()
            .last()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(caps(&[]), "0000000000000000");
    let all = caps(&["--privileged"]);
    assert!(
        u64::from_str_radix(&all, 16).unwrap().count_ones() >= 38,
        "{all}"
    );
    f.berth(&["rm", "-f", "capped"]).ok();
    assert!(!host.join("g").exists());
    for (args, needle) in [
        (vec!["--memory", "lots"], "--memory"),
        (vec!["--cap-add", "NOT_A_CAP"], "--cap-add"),
        (vec!["-v", "/no/such/host/dir:/d"], "--volume"),
        (vec!["-v", "bad/name:/d"], "volume name"),
        (
            vec!["--security-opt", "seccomp=/some/profile.json"],
            "/some/profile.json",
        ),
    ] {
        let mut full = args.clone();
        full.extend(["bb:1", "true"]);
        let o = f.run(&full);
        assert_eq!(o.code, 125, "{args:?}: {o:?}");
        assert!(o.stderr.contains(needle), "{args:?}: {}", o.stderr);
    }
    f.assert_clean();
}

/// Without --rm a container is kept: listed by `ps -a` with its exit
/// status, found by name, id or id prefix, removed by `rm` (a running one
/// only with -f) or `container prune`; names are unique.
#[test]
fn containers_are_kept_listed_and_removed() {
    let f = Fixture::new();
    let o = f.berth(&[
        "run",
        "--name",
        "first",
        "bb:1",
        "sh",
        "-c",
        "echo one; exit 3",
    ]);
    assert_eq!((o.code, o.stdout.trim()), (3, "one"), "{o:?}");
    f.berth(&["run", "bb:1", "true"]).ok();
    let o = f.berth(&["run", "--name", "first", "bb:1", "true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(
        o.stderr.contains("\"first\" is already in use"),
        "{}",
        o.stderr
    );
    let ps = f.berth(&["ps", "-a"]).ok().stdout;
    let lines: Vec<&str> = ps.lines().collect();
    assert_eq!(lines.len(), 3, "{ps}");
    assert!(
        lines[0].starts_with("CONTAINER ID   IMAGE   COMMAND"),
        "{ps}"
    );
    let first = lines
        .iter()
        .find(|l| l.ends_with("first"))
        .expect("first listed");
    assert!(first.contains("Exited (3)"), "{first}");
    assert!(first.contains("\"sh -c echo one; exi…\""), "{first}");
    // Nothing runs: plain `ps` has only its header.
    assert_eq!(f.berth(&["ps"]).ok().stdout.lines().count(), 1);
    let ids = f.berth(&["ps", "-aq"]).ok().stdout;
    assert_eq!(ids.lines().count(), 2);
    assert!(ids.lines().all(|l| l.len() == 12));
    // A running container: rm refuses, rm -f kills and removes it.
    let out = f.dir.path().join("sleeper.out");
    let mut sleeper = f
        .command(&[
            "run",
            "--name",
            "sleeper",
            "bb:1",
            "sh",
            "-c",
            "echo up; sleep 60",
        ])
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&out).unwrap().contains("up") {
        assert!(Instant::now() < end, "the sleeper never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let up = f.berth(&["ps"]).ok().stdout;
    assert!(
        up.lines()
            .any(|l| l.ends_with("sleeper") && l.contains("Up ")),
        "{up}"
    );
    let o = f.berth(&["rm", "sleeper"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("is running"), "{}", o.stderr);
    assert_eq!(
        f.berth(&["rm", "-f", "sleeper"]).ok().stdout.trim(),
        "sleeper"
    );
    let status = test_support::wait_timeout(&mut sleeper, Duration::from_secs(30))
        .expect("berth run did not end after rm -f");
    assert_eq!(status.code(), Some(137));
    // By id prefix, then prune for the rest.
    let first_id = f.berth(&["ps", "-aq", "--no-trunc"]).ok().stdout;
    let first_id = first_id.lines().last().unwrap();
    f.berth(&["rm", &first_id[..8]]).ok();
    let o = f.berth(&["container", "prune", "-f"]).ok();
    assert!(o.stdout.starts_with("Deleted Containers:"), "{o:?}");
    assert_eq!(f.berth(&["ps", "-aq"]).ok().stdout, "");
    let o = f.berth(&["rm", "nothing-here"]);
    assert!(
        o.stderr.contains("no such container: nothing-here"),
        "{o:?}"
    );
    f.assert_clean();
}

/// A kept container starts again over its own writable layer (`start -a`);
/// a running one is inspected, stopped (its SIGTERM handler runs), killed
/// and waited for, with Docker's exit codes.
#[test]
fn containers_start_stop_kill_wait_and_inspect() {
    let f = Fixture::new();
    let script = "echo run $(cat /counter 2>/dev/null); echo x >> /counter; exit 4";
    let o = f.berth(&["run", "--name", "again", "bb:1", "sh", "-c", script]);
    assert_eq!((o.code, o.stdout.trim()), (4, "run"), "{o:?}");
    let o = f.berth(&["start", "-a", "again"]);
    assert_eq!(
        (o.code, o.stdout.trim()),
        (4, "run x"),
        "the layer was kept: {o:?}"
    );
    // Without -a: under berth-shim, its output in its log.
    let o = f.berth(&["start", "again"]).ok();
    assert_eq!(o.stdout, "again\n");
    let o = f.berth(&["wait", "again"]).ok();
    assert_eq!(o.stdout.trim(), "4");
    // Every run is in the log: the foreground one, `start -a` and `start`.
    let o = f.berth(&["logs", "again"]).ok();
    assert_eq!(o.stdout, "run\nrun x\nrun x x\n");
    let o = f
        .berth(&[
            "inspect",
            "-f",
            "{{.Name}} {{.State.Status}} {{.State.ExitCode}} {{json .Path}}",
            "again",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), "/again exited 4 \"sh\"");

    let spawn = |name: &str, script: &str| {
        let out = f.dir.path().join(format!("{name}.out"));
        let child = f
            .command(&["run", "--name", name, "bb:1", "sh", "-c", script])
            .stdout(std::fs::File::create(&out).unwrap())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&out).unwrap().contains("up") {
            assert!(Instant::now() < end, "{name} never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    };
    let mut polite = spawn(
        "polite",
        "trap 'exit 9' TERM; echo up; while :; do sleep 0.1; done",
    );
    let o = f
        .berth(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.State.Pid}}",
            "polite",
        ])
        .ok();
    let pid: i32 = o
        .stdout
        .trim()
        .strip_prefix("true ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let t = Instant::now();
    assert_eq!(f.berth(&["stop", "polite"]).ok().stdout.trim(), "polite");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stop waited for SIGKILL"
    );
    assert_eq!(f.berth(&["wait", "polite"]).ok().stdout.trim(), "9");
    let status = test_support::wait_timeout(&mut polite, Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(9));

    let mut stubborn = spawn("stubborn", "echo up; exec sleep 100");
    // PID 1 ignores a signal it has no handler for: TERM does nothing,
    // KILL (kill's default) ends it.
    f.berth(&["kill", "-s", "TERM", "stubborn"]).ok();
    assert!(f.berth(&["ps", "-q"]).ok().stdout.lines().count() == 1);
    f.berth(&["kill", "stubborn"]).ok();
    assert_eq!(f.berth(&["wait", "stubborn"]).ok().stdout.trim(), "137");
    let status = test_support::wait_timeout(&mut stubborn, Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(137));
    let o = f.berth(&["kill", "stubborn"]);
    assert!(o.stderr.contains("is not running"), "{o:?}");
    f.berth(&["rm", "again", "polite", "stubborn"]).ok();
    f.assert_clean();
}

/// `run -d` hands the container to berth-shim: the id is printed at once,
/// the output goes to a json-file log (`logs`, `--tail`, `-f`, stdout and
/// stderr apart), and the exit is recorded by the shim's callback: `wait`,
/// `ps -a`, `stop` (its SIGTERM handler runs), `rm -f`, and `--rm`.
#[test]
fn detached_containers_log_and_exit_under_the_shim() {
    let f = Fixture::new();
    let o = f
        .berth(&[
            "run",
            "-d",
            "--name",
            "bg",
            "bb:1",
            "sh",
            "-c",
            "echo out-1; echo err-1 >&2; echo out-2; sleep 0.3; exit 5",
        ])
        .ok();
    let id = o.stdout.trim().to_string();
    assert_eq!(id.len(), 64, "{o:?}");
    assert_eq!(f.berth(&["wait", "bg"]).ok().stdout.trim(), "5");
    let logs = f.berth(&["logs", "bg"]).ok();
    assert_eq!(logs.stdout, "out-1\nout-2\n");
    assert_eq!(logs.stderr, "err-1\n");
    // --tail counts the lines of both streams together, as Docker's.
    let tail = f.berth(&["logs", "--tail", "1", "bg"]).ok();
    assert_eq!(
        format!("{}{}", tail.stdout, tail.stderr).lines().count(),
        1,
        "{tail:?}"
    );
    let ps = f.berth(&["ps", "-a"]).ok().stdout;
    assert!(
        ps.lines()
            .any(|l| l.ends_with("bg") && l.contains("Exited (5)")),
        "{ps}"
    );
    // The shim has gone, and the root is unmounted until rm.
    assert!(test_support::processes_containing(&id).is_empty());
    assert!(mounts_containing(&id).is_empty());
    f.berth(&["rm", "bg"]).ok();

    // stop: SIGTERM reaches the handler, the exit is 0; logs -f ends with it.
    f.berth(&[
        "run",
        "-d",
        "--name",
        "polite",
        "bb:1",
        "sh",
        "-c",
        "trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.1; done",
    ])
    .ok();
    let end = Instant::now() + Duration::from_secs(30);
    while !f.berth(&["logs", "polite"]).ok().stdout.contains("up") {
        assert!(Instant::now() < end, "polite never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut follow = f.command(&["logs", "-f", "polite"]);
    let out = f.dir.path().join("follow.out");
    let mut follower = follow
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    f.berth(&["stop", "polite"]).ok();
    assert_eq!(
        f.berth(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "polite"
        ])
        .ok()
        .stdout
        .trim(),
        "exited 0"
    );
    let status = test_support::wait_timeout(&mut follower, Duration::from_secs(30))
        .expect("logs -f did not end with the container");
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "up\nbye\n");
    f.berth(&["rm", "polite"]).ok();

    // rm -f of a running one; --rm removes itself.
    let id = f.berth(&["run", "-d", "bb:1", "sleep", "100"]).ok().stdout;
    f.berth(&["rm", "-f", id.trim()]).ok();
    f.berth(&["run", "-d", "--rm", "bb:1", "true"]).ok();
    let end = Instant::now() + Duration::from_secs(30);
    while !f.berth(&["ps", "-aq"]).ok().stdout.is_empty() {
        assert!(Instant::now() < end, "--rm did not remove the container");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A program that is not there: 127, the container stays Created.
    let o = f.berth(&["run", "-d", "--name", "missing", "bb:1", "nope"]);
    assert_eq!(o.code, 127, "{o:?}");
    let ps = f.berth(&["ps", "-a"]).ok().stdout;
    assert!(
        ps.lines()
            .any(|l| l.ends_with("missing") && l.contains("Created")),
        "{ps}"
    );
    f.berth(&["rm", "missing"]).ok();
    f.assert_clean();
}

/// The last name of an image that containers use cannot be removed: a
/// stopped container's user needs -f, a running one's cannot be forced;
/// another name for the same image can go.
#[test]
fn an_image_in_use_keeps_its_last_name() {
    let f = Fixture::new();
    f.berth(&["tag", "bb:1", "bb:other"]).ok();
    f.berth(&["run", "--name", "user1", "bb:1", "true"]).ok();
    f.berth(&["rmi", "bb:other"]).ok();
    let o = f.berth(&["rmi", "bb:1"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("used by container user1"), "{}", o.stderr);
    let id = f.berth(&["run", "-d", "bb:1", "sleep", "100"]).ok().stdout;
    let o = f.berth(&["rmi", "-f", "bb:1"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("used by running container"),
        "{}",
        o.stderr
    );
    f.berth(&["rm", "-f", id.trim()]).ok();
    f.berth(&["rmi", "-f", "bb:1"]).ok();
    // Its stopped user cannot start without the image's layers once pruned.
    f.berth(&["image", "prune"]).ok();
    let o = f.berth(&["start", "-a", "user1"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("is gone"), "{}", o.stderr);
    f.berth(&["rm", "user1"]).ok();
    f.assert_clean();
}
