//! Health checks: berth-shim runs the probe on its schedule, the state
//! goes starting → unhealthy → healthy → unhealthy as the probe's answer
//! changes, failures in the start period do not count, a probe past its
//! timeout fails, and `ps`, `inspect` and `events` show it all.

use std::time::{Duration, Instant};

mod common;
use common::Fixture;

fn health(f: &Fixture, name: &str) -> serde_json::Value {
    let o = f
        .berth(&["inspect", "-f", "{{json .State.Health}}", name])
        .ok();
    serde_json::from_str(o.stdout.trim()).unwrap()
}

/// Waits until the health's status is `want`; returns the health.
fn wait_status(f: &Fixture, name: &str, want: &str) -> serde_json::Value {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let h = health(f, name);
        if h["Status"] == want {
            return h;
        }
        assert!(Instant::now() < end, "never {want}: {h}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_probe_decides_healthy_and_unhealthy_and_ps_shows_it() {
    let f = Fixture::new();
    f.berth(&[
        "run",
        "-d",
        "--name",
        "web",
        "--health-cmd",
        "cat /tmp/ok",
        "--health-interval",
        "100ms",
        "--health-retries",
        "2",
        "bb:1",
        "sleep",
        "100",
    ])
    .ok();
    let h = wait_status(&f, "web", "unhealthy");
    assert!(h["FailingStreak"].as_i64().unwrap() >= 2, "{h}");
    assert_ne!(h["Log"][0]["ExitCode"], 0, "{h}");
    let o = f.berth(&["ps", "--format", "{{.Status}}"]).ok();
    assert!(o.stdout.contains("(unhealthy)"), "{o:?}");

    f.berth(&["exec", "web", "sh", "-c", "echo fine > /tmp/ok"])
        .ok();
    let h = wait_status(&f, "web", "healthy");
    assert_eq!(h["FailingStreak"], 0, "{h}");
    let last = h["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["ExitCode"].as_i64(), last["Output"].as_str()),
        (Some(0), Some("fine\n"))
    );
    assert!(h["Log"].as_array().unwrap().len() <= 5, "{h}");
    let o = f
        .berth(&[
            "ps",
            "--filter",
            "health=healthy",
            "--format",
            "{{.Names}} {{.Status}}",
        ])
        .ok();
    assert!(
        o.stdout.starts_with("web Up ") && o.stdout.contains("(healthy)"),
        "{o:?}"
    );
    let o = f.berth(&["ps", "-q", "--filter", "health=unhealthy"]).ok();
    assert_eq!(o.stdout, "");

    f.berth(&["exec", "web", "rm", "/tmp/ok"]).ok();
    wait_status(&f, "web", "unhealthy");
    let o = f
        .berth(&[
            "events",
            "--since",
            "0",
            "--until",
            "0s",
            "--filter",
            "container=web",
            "--format",
            "{{.Action}}",
        ])
        .ok();
    let actions: Vec<&str> = o
        .stdout
        .lines()
        .filter(|l| l.starts_with("health_status"))
        .collect();
    assert_eq!(
        actions,
        [
            "health_status: unhealthy",
            "health_status: healthy",
            "health_status: unhealthy"
        ],
        "{o:?}"
    );
    let o = f
        .berth(&["inspect", "-f", "{{json .Config.Healthcheck}}", "web"])
        .ok();
    let c: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap();
    assert_eq!(c["Test"], serde_json::json!(["CMD-SHELL", "cat /tmp/ok"]));
    assert_eq!(
        (c["Interval"].as_i64(), c["Retries"].as_i64()),
        (Some(100_000_000), Some(2))
    );
    f.berth(&["rm", "-f", "web"]).ok();
    f.assert_clean();
}

#[test]
fn start_period_failures_do_not_count_and_a_slow_probe_times_out() {
    let f = Fixture::new();
    f.berth(&[
        "run",
        "-d",
        "--name",
        "slowstart",
        "--health-cmd",
        "false",
        "--health-interval",
        "1s",
        "--health-start-period",
        "30s",
        "--health-start-interval",
        "100ms",
        "--health-retries",
        "1",
        "bb:1",
        "sleep",
        "100",
    ])
    .ok();
    let end = Instant::now() + Duration::from_secs(20);
    let h = loop {
        let h = health(&f, "slowstart");
        if h["Log"].as_array().map_or(0, |l| l.len()) >= 3 {
            break h;
        }
        assert!(Instant::now() < end, "fewer than 3 probes: {h}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        (h["Status"].as_str(), h["FailingStreak"].as_i64()),
        (Some("starting"), Some(0)),
        "{h}"
    );
    let o = f.berth(&["ps", "--format", "{{.Status}}"]).ok();
    assert!(o.stdout.contains("(health: starting)"), "{o:?}");

    f.berth(&[
        "run",
        "-d",
        "--name",
        "slowprobe",
        "--health-cmd",
        "sleep 5",
        "--health-timeout",
        "300ms",
        "--health-interval",
        "100ms",
        "--health-retries",
        "1",
        "bb:1",
        "sleep",
        "100",
    ])
    .ok();
    let h = wait_status(&f, "slowprobe", "unhealthy");
    assert_eq!(h["Log"][0]["ExitCode"], -1, "{h}");
    assert_eq!(
        h["Log"][0]["Output"], "Health check exceeded timeout (300ms)",
        "{h}"
    );
    // The timed-out probe was killed, not left running in the container.
    std::thread::sleep(Duration::from_millis(300));
    let o = f.berth(&["top", "slowprobe"]).ok();
    assert!(o.stdout.matches("sleep 5").count() <= 1, "{o:?}");
    f.berth(&["rm", "-f", "slowstart", "slowprobe"]).ok();
    f.assert_clean();
}

#[test]
fn health_flags_are_checked() {
    let f = Fixture::new();
    for (args, word) in [
        (
            vec!["--no-healthcheck", "--health-cmd", "true"],
            "--no-healthcheck",
        ),
        (
            vec!["--health-cmd", "true", "--health-interval", "10"],
            "--health-interval",
        ),
        (
            vec!["--health-cmd", "true", "--health-timeout", "10us"],
            "--health-timeout",
        ),
        (
            vec!["--health-cmd", "true", "--health-retries", "-1"],
            "--health-retries",
        ),
    ] {
        let mut full = vec!["run", "--rm"];
        full.extend(&args);
        full.extend(["bb:1", "true"]);
        let o = f.berth(&full);
        assert_eq!(o.code, 125, "{args:?}: {o:?}");
        assert!(o.stderr.contains(word), "{args:?}: {o:?}");
    }
    // Without -d, a container with a check runs under berth-shim too.
    let o = f.berth(&[
        "run",
        "--name",
        "fg",
        "--health-cmd",
        "true",
        "--health-interval",
        "100ms",
        "bb:1",
        "sh",
        "-c",
        "sleep 1; echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (3, "out\n", "err\n"),
        "{o:?}"
    );
    let h = health(&f, "fg");
    assert_eq!(h["Status"], "healthy", "{h}");
    f.berth(&["rm", "fg"]).ok();
    f.assert_clean();
}
