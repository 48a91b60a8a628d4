//! Recovery after `kill -9`: of berth-shim while its container runs, of a
//! foreground `berth run` while its container runs and after it ended;
//! a half-made container and stray files; `system check` reports each
//! (`--dry-run` touches nothing) and repairs it, and leaves the host as
//! it found it. An unreadable database makes it touch nothing.

use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{pid_of, Fixture};

fn kill9(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

fn state(f: &Fixture, name: &str) -> String {
    f.berth(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        name,
    ])
    .ok()
    .stdout
    .trim()
    .to_string()
}

fn id(f: &Fixture, name: &str) -> String {
    f.berth(&["inspect", "-f", "{{.Id}}", name])
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// Starts `berth run ARGS` in the foreground and waits for "ready" in its output.
fn foreground(f: &Fixture, name: &str, script: &str) -> std::process::Child {
    let out = f.dir.path().join(format!("{name}.out"));
    let child = f
        .command(&["run", "--name", name, "bb:1", "sh", "-c", script])
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&out).unwrap().contains("ready") {
        assert!(Instant::now() < end, "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn system_check_repairs_what_kill_9_left() {
    let f = Fixture::new();
    // 1. The shim of a running container.
    f.berth(&["run", "-d", "--name", "noshim", "bb:1", "sleep", "100"])
        .ok();
    let shim = pid_of(&["berth-shim", &id(&f, "noshim")]).expect("its shim");
    kill9(shim);
    // 2. A foreground run whose container runs on.
    let mut fg = foreground(&f, "nofg", "echo ready; sleep 100");
    kill9(fg.id() as i32);
    fg.wait().unwrap();
    // 3. A foreground run whose container ended after it.
    let mut gone = foreground(&f, "gone", "echo ready; sleep 0.5");
    kill9(gone.id() as i32);
    gone.wait().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    // 4. A half-made container (its bundle incomplete, its maker gone).
    f.berth(&["create", "--name", "half", "bb:1", "true"]).ok();
    let half_bundle = f
        .root()
        .join("containers")
        .join(id(&f, "half"))
        .join("bundle");
    std::fs::remove_file(half_bundle.join("config.json")).unwrap();
    // 5. Stray files: a container directory of no container (old enough),
    // a console socket directory of a process that is gone.
    let stray = f.root().join("containers").join("ab".repeat(32));
    std::fs::create_dir_all(stray.join("bundle")).unwrap();
    let console = f.root().join("run").join("berth-console-999999999-0");
    std::fs::create_dir_all(&console).unwrap();
    Command::new("touch")
        .args(["-h", "-d", "2 minutes ago"])
        .arg(&stray)
        .status()
        .unwrap();

    // A dry run reports and touches nothing.
    let o = f.berth(&["system", "check", "--dry-run"]).ok();
    for what in [
        "container noshim",
        "container nofg",
        "running without its supervisor",
        "container gone",
        "its process and its supervisor are gone",
        "container half",
        "half-made",
        "container files of no container",
        "console socket of process 999999999",
    ] {
        assert!(o.stdout.contains(what), "{what}: {}", o.stdout);
    }
    assert!(!o.stdout.contains("repaired:"), "{}", o.stdout);
    assert_eq!(state(&f, "noshim"), "running 0");
    assert!(stray.exists() && console.exists());

    let o = f.berth(&["system", "check"]).ok();
    assert!(
        o.stdout.contains("repaired: exit 137 recorded"),
        "{}",
        o.stdout
    );
    assert_eq!(state(&f, "noshim"), "exited 137");
    assert_eq!(state(&f, "nofg"), "exited 137");
    assert_eq!(state(&f, "gone"), "exited 255");
    let o = f.berth(&["inspect", "half"]);
    assert!(o.code != 0, "{o:?}");
    assert!(!stray.exists() && !console.exists());
    // Nothing is left to find, and the rest is an ordinary rm.
    let o = f.berth(&["system", "check"]).ok();
    assert_eq!(o.stdout, "No problems found\n");
    f.berth(&["rm", "noshim", "nofg", "gone"]).ok();
    f.assert_clean();
}

#[test]
fn an_unreadable_database_makes_check_touch_nothing() {
    let f = Fixture::new();
    f.berth(&["run", "--name", "x", "bb:1", "true"]).ok();
    let stray = f.root().join("containers").join("cd".repeat(32));
    std::fs::create_dir_all(&stray).unwrap();
    Command::new("touch")
        .args(["-h", "-d", "2 minutes ago"])
        .arg(&stray)
        .status()
        .unwrap();
    // The database and its write-ahead log (which may hold its newest pages).
    let files: Vec<_> = ["engine.db", "engine.db-wal", "engine.db-shm"]
        .iter()
        .map(|n| f.root().join(n))
        .map(|p| (p.clone(), std::fs::read(&p).ok()))
        .collect();
    for (p, _) in &files {
        let _ = std::fs::remove_file(p);
    }
    std::fs::write(
        &files[0].0,
        b"this is not a database, it is garbage of the same kind",
    )
    .unwrap();
    let o = f.berth(&["system", "check"]);
    assert!(o.code != 0, "{o:?}");
    assert!(
        stray.exists(),
        "deleted although the database could not be read"
    );
    for (p, saved) in files {
        let _ = std::fs::remove_file(&p);
        if let Some(bytes) = saved {
            std::fs::write(&p, bytes).unwrap();
        }
    }
    std::fs::remove_dir(&stray).unwrap();
    f.berth(&["rm", "x"]).ok();
    f.assert_clean();
}

/// A cgroup left behind by a stopped container of this store (a runtime
/// delete cut short), with a process that escaped into it: `system check`
/// kills the process and removes the cgroup.
#[test]
fn system_check_removes_a_stopped_containers_cgroup() {
    let f = Fixture::new();
    f.berth(&["run", "--name", "cg", "bb:1", "true"]).ok();
    let id = id(&f, "cg");
    let hier = cgroups::Hierarchy::detect().unwrap();
    let mut m = cgroups::CgroupManager::new(&hier, &format!("/berth/{id}")).unwrap();
    m.create().unwrap();
    let mut stray = Command::new("sleep").arg("100").spawn().unwrap();
    m.add_process(stray.id() as i32).unwrap();
    let o = f.berth(&["system", "check", "--dry-run"]).ok();
    assert!(o.stdout.contains("still holds 1 process"), "{}", o.stdout);
    let o = f.berth(&["system", "check"]).ok();
    assert!(
        o.stdout.contains("processes killed, cgroup removed"),
        "{}",
        o.stdout
    );
    let status = test_support::wait_timeout(&mut stray, Duration::from_secs(10)).expect("killed");
    assert!(!status.success());
    assert!(m.dirs().iter().all(|d| !d.exists()), "{:?}", m.dirs());
    let o = f.berth(&["system", "check"]).ok();
    assert_eq!(o.stdout, "No problems found\n");
    f.berth(&["rm", "cg"]).ok();
    f.assert_clean();
}
