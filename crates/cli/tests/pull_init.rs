//! `run --pull` (a real docker-registry on 127.0.0.1), `--platform`, `-q`,
//! and `--init` (tini as PID 1: it reaps orphans and passes `stop`'s
//! SIGTERM to a command that, as PID 1, would ignore it).

use std::time::{Duration, Instant};

mod common;
use common::Fixture;
use test_support::registry::LocalRegistry;

#[test]
fn run_pulls_a_missing_image_as_pull_says() {
    let f = Fixture::new();
    let reg = LocalRegistry::start();
    let remote = format!("{}/team/bb:1", reg.addr);
    f.berth(&["push", "bb:1", &remote]).ok();

    // never: not here, so no such image; nothing pulled.
    let o = f.berth(&["run", "--rm", "--pull", "never", &remote, "true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("no such image"), "{o:?}");
    // missing (the default): pulled, told on stderr; stdout is the container's.
    let o = f.berth(&["run", "--rm", &remote, "echo", "pulled"]).ok();
    assert_eq!(o.stdout, "pulled\n");
    assert!(
        o.stderr
            .starts_with(&format!("Unable to find image '{remote}' locally\n"))
            && o.stderr.contains("Status: Downloaded newer image"),
        "{o:?}"
    );
    f.berth(&["image", "inspect", &remote]).ok();
    // Here now: no pull at all.
    let o = f.berth(&["run", "--rm", &remote, "true"]).ok();
    assert_eq!(o.stderr, "");
    // always: asks the registry again; -q says nothing of it.
    let o = f
        .berth(&["run", "--rm", "--pull", "always", &remote, "true"])
        .ok();
    assert!(o.stderr.contains("Image is up to date"), "{o:?}");
    let o = f
        .berth(&["run", "--rm", "-q", "--pull", "always", &remote, "true"])
        .ok();
    assert_eq!(o.stderr, "");
    // create pulls too.
    f.berth(&["rmi", &remote]).ok();
    let o = f
        .berth(&["create", "-q", "--name", "made", &remote, "true"])
        .ok();
    assert_eq!(o.stdout.trim().len(), 64, "{o:?}");

    for (args, word) in [
        (vec!["--pull", "sometimes"], "--pull"),
        (vec!["--platform", "linux/arm64"], "--platform"),
        (vec!["--platform", "linux"], "--platform"),
    ] {
        let mut full = vec!["run", "--rm"];
        full.extend(&args);
        full.extend(["bb:1", "true"]);
        let o = f.berth(&full);
        assert_eq!(o.code, 125, "{args:?}: {o:?}");
        assert!(o.stderr.contains(word), "{args:?}: {o:?}");
    }
    let o = f.berth(&["run", "--rm", "--platform", "linux/amd64", "bb:1", "true"]);
    assert_eq!(o.code, 0, "{o:?}");
    f.berth(&["rm", "made"]).ok();
    f.assert_clean();
}

#[test]
fn init_is_pid_1_reaps_orphans_and_passes_signals_on() {
    let f = Fixture::new();
    let script = "tr '\\0' ' ' < /proc/1/cmdline; echo; echo shell=$$; \
                  (sleep 0.1 &); sleep 0.6; \
                  grep -l '^[0-9]* ([a-z]*) Z' /proc/[0-9]*/stat | wc -l";
    let o = f.run(&["--init", "bb:1", "sh", "-c", script]).ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(lines[0].starts_with("/sbin/docker-init -- sh -c"), "{o:?}");
    assert_ne!(lines[1], "shell=1", "{o:?}");
    assert_eq!(lines[2].trim(), "0", "a zombie was left: {o:?}");

    // `sleep` as PID 1 ignores SIGTERM (stop waits and kills: 137); under
    // the init it gets it and ends at once (143).
    f.berth(&[
        "run", "-d", "--init", "--name", "withinit", "bb:1", "sleep", "100",
    ])
    .ok();
    let start = Instant::now();
    f.berth(&["stop", "-t", "10", "withinit"]).ok();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let o = f
        .berth(&[
            "inspect",
            "-f",
            "{{.State.ExitCode}} {{.HostConfig.Init}}",
            "withinit",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), "143 true");

    let o = f
        .berth(&["run", "-d", "--name", "noinit", "bb:1", "sleep", "100"])
        .ok();
    drop(o);
    f.berth(&["stop", "-t", "1", "noinit"]).ok();
    let o = f
        .berth(&["inspect", "-f", "{{.State.ExitCode}}", "noinit"])
        .ok();
    assert_eq!(o.stdout.trim(), "137");

    // A dynamically linked init cannot run in the container: refused.
    let o = test_support::run_through_files(
        f.command(&["run", "--rm", "--init", "bb:1", "true"])
            .env("BERTH_INIT", "/bin/sh"),
    );
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("dynamically linked"), "{o:?}");
    f.berth(&["rm", "withinit", "noinit"]).ok();
    f.assert_clean();
}
