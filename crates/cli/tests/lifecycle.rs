//! `create`, `start` (detached), `restart` and restart policies: a created
//! container is listed and started later under berth-shim; `restart`
//! gives it a new init; `--restart on-failure:N` and `always` start an
//! exited container again (with Docker's back-off) until the limit, or
//! until a user stops it. An idle shim sleeps.

use std::time::{Duration, Instant};

mod common;
use common::Fixture;

fn inspect(f: &Fixture, c: &str, template: &str) -> String {
    f.berth(&["inspect", "-f", template, c])
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// Waits (at most 30 s) until `inspect -f template` prints `want`.
fn wait_for(f: &Fixture, c: &str, template: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = inspect(f, c, template);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{c}: {template} is {got:?}, not {want:?}, after 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn create_start_restart() {
    let f = Fixture::new();
    let o = f
        .berth(&["create", "--name", "lc1", "bb:1", "sleep", "100"])
        .ok();
    let id = o.stdout.trim().to_string();
    assert_eq!(id.len(), 64, "{o:?}");
    assert_eq!(
        inspect(&f, "lc1", "{{.State.Status}} {{.State.Pid}}"),
        "created 0"
    );
    let o = f.berth(&["ps", "-a"]).ok();
    assert!(o.stdout.contains("Created"), "{}", o.stdout);
    // Its root is not mounted while it waits.
    assert!(test_support::mounts_containing(&id).is_empty());

    let o = f.berth(&["start", "lc1"]).ok();
    assert_eq!(o.stdout, "lc1\n");
    assert_eq!(inspect(&f, "lc1", "{{.State.Status}}"), "running");
    let pid1 = inspect(&f, "lc1", "{{.State.Pid}}");
    // Starting a running container changes nothing.
    f.berth(&["start", "lc1"]).ok();
    assert_eq!(inspect(&f, "lc1", "{{.State.Pid}}"), pid1);

    let o = f.berth(&["restart", "-t", "1", "lc1"]).ok();
    assert_eq!(o.stdout, "lc1\n");
    assert_eq!(inspect(&f, "lc1", "{{.State.Status}}"), "running");
    let pid2 = inspect(&f, "lc1", "{{.State.Pid}}");
    assert_ne!(pid1, pid2, "restart kept the old init");
    assert!(!std::path::Path::new(&format!("/proc/{pid1}")).exists());

    f.berth(&["stop", "-t", "0", "lc1"]).ok();
    assert_eq!(inspect(&f, "lc1", "{{.State.Status}}"), "exited");
    // restart of a stopped container starts it.
    f.berth(&["restart", "lc1"]).ok();
    assert_eq!(inspect(&f, "lc1", "{{.State.Status}}"), "running");
    f.berth(&["rm", "-f", "lc1"]).ok();
    let o = f.berth(&["start", "lc1"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("no such container: lc1"), "{o:?}");
    f.assert_clean();
}

#[test]
fn restart_policies_act_when_a_container_exits() {
    let f = Fixture::new();
    // on-failure:2: two restarts after the first failure, then it stays.
    f.berth(&[
        "run",
        "-d",
        "--name",
        "of",
        "--restart",
        "on-failure:2",
        "bb:1",
        "sh",
        "-c",
        "echo ran; exit 3",
    ])
    .ok();
    wait_for(
        &f,
        "of",
        "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}",
        "2 exited 3",
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        inspect(&f, "of", "{{.RestartCount}} {{.State.Status}}"),
        "2 exited"
    );
    assert_eq!(
        inspect(
            &f,
            "of",
            "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "on-failure 2"
    );
    let o = f.berth(&["logs", "of"]).ok();
    assert_eq!(o.stdout, "ran\nran\nran\n");
    // on-failure leaves a clean exit alone.
    f.berth(&[
        "run",
        "-d",
        "--name",
        "ok",
        "--restart",
        "on-failure",
        "bb:1",
        "true",
    ])
    .ok();
    wait_for(&f, "ok", "{{.State.Status}}", "exited");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(inspect(&f, "ok", "{{.RestartCount}}"), "0");

    // always: restarted after each exit, until stopped by a user.
    f.berth(&[
        "run",
        "-d",
        "--name",
        "al",
        "--restart",
        "always",
        "bb:1",
        "sh",
        "-c",
        "sleep 0.2",
    ])
    .ok();
    // At least two restarts (it may be past two when looked at).
    let deadline = Instant::now() + Duration::from_secs(30);
    while inspect(&f, "al", "{{.RestartCount}}")
        .parse::<u32>()
        .unwrap_or(0)
        < 2
    {
        assert!(Instant::now() < deadline, "no second restart within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    f.berth(&["stop", "-t", "1", "al"]).ok();
    std::thread::sleep(Duration::from_millis(300));
    let count = inspect(&f, "al", "{{.RestartCount}}");
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(inspect(&f, "al", "{{.State.Status}}"), "exited");
    assert_eq!(
        inspect(&f, "al", "{{.RestartCount}}"),
        count,
        "restarted after stop"
    );

    // A foreground run with a policy: its exit status, then the policy.
    let o = f.berth(&[
        "run",
        "--name",
        "fg",
        "--restart",
        "on-failure:1",
        "bb:1",
        "sh",
        "-c",
        "exit 5",
    ]);
    assert_eq!(o.code, 5, "{o:?}");
    wait_for(&f, "fg", "{{.RestartCount}} {{.State.Status}}", "1 exited");

    // --restart with --rm, and a bad policy.
    for (args, needle) in [
        (
            vec!["run", "--rm", "--restart", "always", "bb:1", "true"],
            "--restart and --rm",
        ),
        (
            vec!["run", "--restart", "sometimes", "bb:1", "true"],
            "--restart",
        ),
    ] {
        let o = f.berth(&args);
        assert_eq!(o.code, 125, "{args:?}: {o:?}");
        assert!(o.stderr.contains(needle), "{args:?}: {}", o.stderr);
    }
    f.berth(&["rm", "-f", "of", "ok", "al", "fg"]).ok();
    f.assert_clean();
}

/// What a boot does (berth has no daemon: contrib/systemd runs this):
/// `start --all --filter restart-policy=…` starts `always` containers and
/// `unless-stopped` ones that were not stopped by hand, and no other.
#[test]
fn start_all_by_restart_policy_is_the_boot_time_restart() {
    let f = Fixture::new();
    for (name, policy) in [
        ("al", "always"),
        ("us", "unless-stopped"),
        ("crashed", "unless-stopped"),
    ] {
        f.berth(&[
            "run",
            "-d",
            "--name",
            name,
            "--restart",
            policy,
            "bb:1",
            "sleep",
            "100",
        ])
        .ok();
    }
    f.berth(&["create", "--name", "plain", "bb:1", "sleep", "100"])
        .ok();
    f.berth(&["stop", "-t", "0", "al", "us"]).ok();
    // "crashed" goes as a power cut would take it: its shim, then its process.
    let id = f
        .berth(&["inspect", "-f", "{{.Id}}", "crashed"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let pid: i32 = f
        .berth(&["inspect", "-f", "{{.State.Pid}}", "crashed"])
        .ok()
        .stdout
        .trim()
        .parse()
        .unwrap();
    let shim = common::pid_of(&["berth-shim", &id]).expect("its shim");
    for p in [shim, pid] {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    f.berth(&["system", "check"]).ok();
    let o = f
        .berth(&[
            "start",
            "--all",
            "--filter",
            "restart-policy=always",
            "--filter",
            "restart-policy=unless-stopped",
        ])
        .ok();
    let mut started: Vec<&str> = o.stdout.lines().collect();
    started.sort();
    assert_eq!(started, ["al", "crashed"], "{o:?}");
    let o = f.berth(&["ps", "--format", "{{.Names}}"]).ok();
    let mut running: Vec<&str> = o.stdout.lines().collect();
    running.sort();
    assert_eq!(running, ["al", "crashed"]);
    let o = f.berth(&["start", "--all", "--filter", "colour=red"]);
    assert_eq!(o.code, 125, "{o:?}");
    f.berth(&["rm", "-f", "al", "us", "crashed", "plain"]).ok();
    f.assert_clean();
}

/// A start right after an attached run ends is not undone by that run's
/// cleanup (the shim's callback may still be at work when `start -a`
/// returns): the new run is the one that stays, and exits with its code.
#[test]
fn a_start_right_after_an_attached_run_is_not_torn_down_by_its_cleanup() {
    let f = Fixture::new();
    f.berth(&[
        "create",
        "--name",
        "again",
        "bb:1",
        "sh",
        "-c",
        "sleep 0.2; exit 4",
    ])
    .ok();
    for round in 0..5 {
        let o = f.berth(&["start", "-a", "again"]);
        assert_eq!(o.code, 4, "round {round}: {o:?}");
        f.berth(&["start", "again"]).ok();
        let o = f.berth(&["wait", "again"]).ok();
        assert_eq!(
            o.stdout.trim(),
            "4",
            "round {round}: the new run was killed"
        );
    }
    f.berth(&["rm", "again"]).ok();
    f.assert_clean();
}

/// A detached container's shim sleeps while nothing happens (it used to
/// wake ten times a second to reap), and its container's exit still wakes
/// it at once.
#[test]
fn an_idle_shim_sleeps_and_still_sees_the_exit() {
    let f = Fixture::new();
    let id = f
        .berth(&["run", "-d", "bb:1", "sleep", "100"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let shim = common::pid_of(&["berth-shim", &id]).expect("its shim");
    let wakeups = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{shim}/status")).unwrap();
        status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum()
    };
    std::thread::sleep(Duration::from_millis(300));
    let before = wakeups();
    std::thread::sleep(Duration::from_secs(1));
    let woke = wakeups() - before;
    assert!(woke <= 2, "the idle shim woke {woke} times in a second");
    let asked = Instant::now();
    f.berth(&["kill", &id]).ok();
    wait_for(
        &f,
        &id,
        "{{.State.Status}} {{.State.ExitCode}}",
        "exited 137",
    );
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "the exit took {:?} to be seen",
        asked.elapsed()
    );
    f.berth(&["rm", &id]).ok();
}
