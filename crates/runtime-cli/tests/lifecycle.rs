//! The container lifecycle through the command line, as runc's callers use
//! it: create/start/state/kill/delete/run/list, exit codes, and the host
//! left clean afterwards. Root and the real kernel; busybox-static rootfs.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_support::{cgroup_dirs, mounts_containing, unique_id, Bundle, RuntimeCli};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// A runtime and a bundle whose program is `args`, with a unique cgroup.
fn setup(args: &[&str]) -> (RuntimeCli, Bundle, String, String) {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.config["root"]["readonly"] = json!(false);
    b.set_args(args);
    let id = unique_id("lc");
    let cg = b.set_unique_cgroup(&id);
    (rt, b, id, cg)
}

fn assert_host_clean(b: &Bundle, cg: &str) {
    let m = mounts_containing(b.path().to_str().unwrap());
    assert!(m.is_empty(), "mounts left on the host: {m:?}");
    let c = cgroup_dirs(cg);
    assert!(c.is_empty(), "cgroups left on the host: {c:?}");
}

fn wait_status(rt: &RuntimeCli, id: &str, want: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    while rt.status(id).as_deref() != Some(want) {
        assert!(
            Instant::now() < end,
            "container {id} never became {want}: {:?}",
            rt.status(id)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn run_prints_the_programs_output_and_cleans_up() {
    let (rt, b, id, cg) = setup(&["sh", "-c", "echo hello from $$"]);
    let o = rt
        .run(&["run", "--bundle", b.path().to_str().unwrap(), &id])
        .ok();
    assert_eq!(
        o.stdout.trim(),
        "hello from 1",
        "the program must be PID 1 of its namespace"
    );
    assert!(
        rt.status(&id).is_none(),
        "run without --keep deletes the container"
    );
    assert_host_clean(&b, &cg);
}

#[test]
fn exit_code_propagates() {
    let (rt, b, id, cg) = setup(&["sh", "-c", "exit 42"]);
    let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(o.code, 42, "{o:?}");
    assert_host_clean(&b, &cg);
}

#[test]
fn killed_container_exits_128_plus_signal() {
    let (rt, b, id, cg) = setup(&["sleep", "100"]);
    let child = rt
        .command()
        .args(["run", "--bundle", b.path().to_str().unwrap(), &id])
        .spawn()
        .unwrap();
    wait_status(&rt, &id, "running");
    rt.run(&["kill", &id, "KILL"]).ok();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(137));
    assert_host_clean(&b, &cg);
}

#[test]
fn create_blocks_the_program_until_start() {
    let (rt, b, id, cg) = setup(&["sh", "-c", "echo ran > /tmp/marker; sleep 100"]);
    rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &id])
        .ok();
    assert_eq!(rt.status(&id).as_deref(), Some("created"));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !b.rootfs().join("tmp/marker").exists(),
        "the program ran before start"
    );
    let state: Value = serde_json::from_str(&rt.run(&["state", &id]).ok().stdout).unwrap();
    assert_eq!(state["id"], json!(id));
    assert_eq!(state["bundle"], json!(b.path().canonicalize().unwrap()));
    assert!(state["pid"].as_i64().unwrap() > 1);
    assert_eq!(state["ociVersion"], json!("1.2.0"));

    rt.run(&["start", &id]).ok();
    wait_status(&rt, &id, "running");
    let end = Instant::now() + Duration::from_secs(5);
    while !b.rootfs().join("tmp/marker").exists() {
        assert!(Instant::now() < end, "the program did not run after start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let again = rt.run(&["start", &id]);
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("running"), "{}", again.stderr);

    let refused = rt.run(&["delete", &id]);
    assert_ne!(
        refused.code, 0,
        "delete of a running container needs --force"
    );
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    rt.run(&["kill", &id, "SIGKILL"]).ok();
    wait_status(&rt, &id, "stopped");
    let k = rt.run(&["kill", &id, "TERM"]);
    assert_ne!(k.code, 0, "kill of a stopped container is an error");
    rt.run(&["delete", &id]).ok();
    assert!(rt.status(&id).is_none());
    assert_host_clean(&b, &cg);
}

#[test]
fn created_container_can_be_deleted_and_killed() {
    let (rt, b, id, cg) = setup(&["true"]);
    rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &id])
        .ok();
    rt.run(&["delete", &id]).ok();
    assert!(rt.status(&id).is_none());
    assert_host_clean(&b, &cg);

    let id2 = unique_id("lc");
    rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &id2])
        .ok();
    rt.run(&["kill", &id2, "9"]).ok();
    wait_status(&rt, &id2, "stopped");
    rt.run(&["delete", &id2]).ok();
    assert_host_clean(&b, &cg);
}

#[test]
fn delete_force_kills_a_running_container() {
    let (rt, b, id, cg) = setup(&["sleep", "100"]);
    rt.run(&[
        "run",
        "--detach",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ])
    .ok();
    wait_status(&rt, &id, "running");
    let pid: i64 = serde_json::from_str::<Value>(&rt.run(&["state", &id]).stdout).unwrap()["pid"]
        .as_i64()
        .unwrap();
    rt.run(&["delete", "--force", &id]).ok();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap()
                .contains(") Z")
    );
    assert_host_clean(&b, &cg);
}

/// As runc: deleting with --force what does not exist succeeds quietly
/// (containerd's shim and Podman do it after every exit); without --force
/// it is an error naming the container.
#[test]
fn delete_force_of_a_missing_container_succeeds() {
    let rt = RuntimeCli::new(BIN);
    let id = unique_id("gone");
    let o = rt.run(&["delete", "--force", &id]);
    assert_eq!((o.code, o.stderr.as_str()), (0, ""), "{o:?}");
    let o = rt.run(&["delete", &id]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains(&id), "{o:?}");
    // An invalid id stays an error, forced or not.
    let o = rt.run(&["delete", "--force", "../etc"]);
    assert_ne!(o.code, 0, "{o:?}");
}

/// A container without a cgroupsPath lives in berth's own `/berth/<id>`;
/// once the last such container is deleted, `/berth` goes too, whichever
/// container created it (here: the first of two, deleted first).
#[test]
fn the_default_cgroup_parent_goes_with_its_last_container() {
    let rt = RuntimeCli::new(BIN);
    let ids = [unique_id("dflt"), unique_id("dflt")];
    let mut bundles = vec![];
    for id in &ids {
        let mut b = Bundle::new(rt.default_spec());
        b.set_args(&["sleep", "100"]);
        b.config["linux"]
            .as_object_mut()
            .unwrap()
            .remove("cgroupsPath");
        b.write();
        rt.run(&[
            "run",
            "--detach",
            "--bundle",
            b.path().to_str().unwrap(),
            id,
        ])
        .ok();
        assert!(
            !cgroup_dirs(&format!("/berth/{id}")).is_empty(),
            "{id} is in /berth"
        );
        bundles.push(b);
    }
    for id in &ids {
        rt.run(&["delete", "--force", id]).ok();
        assert!(cgroup_dirs(&format!("/berth/{id}")).is_empty());
    }
    // Other tests may have containers in /berth right now: then it stays,
    // but never empty.
    for parent in cgroup_dirs("/berth") {
        let children = std::fs::read_dir(&parent)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .count();
        assert!(children > 0, "{} left empty", parent.display());
    }
}

#[test]
fn list_shows_containers_as_table_and_json() {
    let (rt, b, id, cg) = setup(&["sleep", "100"]);
    rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &id])
        .ok();
    let table = rt.run(&["list"]).ok().stdout;
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains(&id) && table.contains("created"), "{table}");
    let v: Value =
        serde_json::from_str(&rt.run(&["list", "--format", "json"]).ok().stdout).unwrap();
    assert_eq!(v[0]["id"], json!(id));
    assert_eq!(v[0]["status"], json!("created"));
    assert_eq!(rt.run(&["list", "-q"]).ok().stdout.trim(), id);
    rt.run(&["delete", "--force", &id]).ok();
    assert_host_clean(&b, &cg);
}

#[test]
fn pid_file_holds_the_init_pid() {
    let (rt, b, id, cg) = setup(&["sleep", "100"]);
    let pidfile = b.path().join("init.pid");
    rt.run(&[
        "create",
        "--pid-file",
        pidfile.to_str().unwrap(),
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ])
    .ok();
    let pid: i64 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    let state: Value = serde_json::from_str(&rt.run(&["state", &id]).stdout).unwrap();
    assert_eq!(state["pid"].as_i64(), Some(pid));
    rt.run(&["delete", "--force", &id]).ok();
    assert_host_clean(&b, &cg);
}

/// Security issue 11, item 11: a symlink planted at the pid file's temp
/// name is not followed: its target keeps its content.
#[test]
fn pid_file_never_writes_through_a_planted_link() {
    let (rt, b, id, cg) = setup(&["sleep", "100"]);
    let victim = b.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let pidfile = b.path().join("init.pid");
    std::os::unix::fs::symlink(&victim, b.path().join(".init.pid.tmp")).unwrap();
    rt.run(&[
        "create",
        "--pid-file",
        pidfile.to_str().unwrap(),
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ])
    .ok();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let pid: i64 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    assert!(pid > 0);
    assert!(!std::fs::symlink_metadata(&pidfile)
        .unwrap()
        .file_type()
        .is_symlink());
    rt.run(&["delete", "--force", &id]).ok();
    assert_host_clean(&b, &cg);
}

#[test]
fn init_is_placed_in_the_spec_cgroup() {
    let (rt, b, id, cg) = setup(&["sleep", "100"]);
    rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &id])
        .ok();
    let state: Value = serde_json::from_str(&rt.run(&["state", &id]).stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cgroups.lines().any(|l| l.ends_with(&cg)), "{cgroups}");
    rt.run(&["delete", "--force", &id]).ok();
    assert_host_clean(&b, &cg);
}

#[test]
fn kill_all_signals_every_process_in_the_cgroup() {
    let (rt, b, id, cg) = setup(&["sh", "-c", "trap '' TERM; sleep 100 & sleep 101 & wait"]);
    rt.run(&[
        "run",
        "--detach",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ])
    .ok();
    std::thread::sleep(Duration::from_millis(200));
    let before: Vec<i32> =
        serde_json::from_str(&rt.run(&["ps", "--format", "json", &id]).ok().stdout).unwrap();
    assert_eq!(before.len(), 3, "{before:?}");
    rt.run(&["kill", "--all", &id, "KILL"]).ok();
    wait_status(&rt, &id, "stopped");
    for pid in before {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z"),
            "pid {pid} survived kill --all"
        );
    }
    rt.run(&["delete", &id]).ok();
    assert_host_clean(&b, &cg);
}

#[test]
fn delete_cleans_up_after_the_runtime_is_killed_mid_create() {
    let (rt, mut b, id, cg) = setup(&["sleep", "100"]);
    // A slow createRuntime hook holds create in the middle, cgroup made and init forked.
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "2"]}]});
    b.write();
    let mut create = rt
        .command()
        .args(["create", "--bundle", b.path().to_str().unwrap(), &id])
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while cgroup_dirs(&cg).is_empty() {
        assert!(Instant::now() < end, "create never made its cgroup");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    create.kill().unwrap();
    create.wait().unwrap();
    assert!(
        !cgroup_dirs(&cg).is_empty(),
        "the cgroup exists after the crash"
    );
    rt.run(&["delete", "--force", &id]).ok();
    assert!(rt.status(&id).is_none());
    assert!(!rt.root().join(&id).exists(), "state left behind");
    // The orphaned hook (sleep 2) is not the container's; give the init time to notice and exit.
    std::thread::sleep(Duration::from_millis(300));
    assert_host_clean(&b, &cg);
}

/// Security issue 11, item 10: a cgroup that already holds processes is
/// refused at create, so deleting the container can never kill bystanders.
#[test]
fn a_cgroup_that_holds_processes_is_refused() {
    let (rt, b, first, cg) = setup(&["sleep", "100"]);
    rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &first])
        .ok();
    let state: Value = serde_json::from_str(&rt.run(&["state", &first]).ok().stdout).unwrap();
    let bystander = state["pid"].as_i64().unwrap();
    let second = unique_id("lc");
    let o = rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &second]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("linux.cgroupsPath"), "{}", o.stderr);
    assert!(o.stderr.contains("already holds"), "{}", o.stderr);
    assert!(!rt.root().join(&second).exists(), "state left behind");
    assert!(
        rt.status(&second).is_none(),
        "the refused container does not exist"
    );
    // Force-deleting it (as an engine does after a failed create) is a
    // no-op that succeeds, as runc's, and touches no process.
    rt.run(&["delete", "--force", &second]).ok();
    assert!(
        std::path::Path::new(&format!("/proc/{bystander}")).exists(),
        "the bystander was killed"
    );
    assert_eq!(rt.status(&first).as_deref(), Some("created"));
    rt.run(&["delete", "--force", &first]).ok();
    assert_host_clean(&b, &cg);
}

/// Security issue 11, item 6: the runtime killed (SIGKILL) at any point of
/// `create` leaves a container that `delete --force` removes completely
/// (state, cgroup, mounts, processes) and never hangs on.
#[test]
fn delete_force_cleans_up_after_create_is_killed_at_any_point() {
    use std::os::unix::process::CommandExt;
    for i in 0..24u64 {
        let (rt, b, id, cg) = setup(&["sleep", "100"]);
        let mut child = rt
            .command()
            .args(["create", "--bundle", b.path().to_str().unwrap(), &id])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(300 + i * 600));
        let _ = child.kill();
        let _ = child.wait();
        let o = rt.run(&["delete", "--force", &id]);
        assert!(
            o.code == 0 || o.stderr.contains("does not exist"),
            "delete after a kill at {} µs: {o:?}",
            300 + i * 600
        );
        assert!(
            !rt.root().join(&id).exists(),
            "state left after a kill at {} µs",
            300 + i * 600
        );
        // What the runtime had forked notices its death and exits.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !test_support::processes_containing(&id).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "processes left after a kill at {} µs: {:?}",
                300 + i * 600,
                test_support::processes_containing(&id)
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_host_clean(&b, &cg);
    }
}

/// A v1 cpuset parent that another container has just made has no cpus
/// or mems yet (it takes no process until it has both): the new
/// container's cgroup fills the chain from the first ancestor that has
/// them, instead of failing with ENOSPC (or leaving create hung).
#[test]
fn a_parent_cpuset_made_by_someone_else_is_filled_in() {
    let cpuset = std::path::Path::new("/sys/fs/cgroup/cpuset");
    if !cpuset.join("cpuset.cpus").exists() {
        return; // Not a v1 host: an empty v2 cpuset means "the parent's".
    }
    let (rt, mut b, id, _) = setup(&["true"]);
    let parent = format!("/{}", unique_id("berth-test-cpuset"));
    // Made as a racing container's create makes it: the directory only.
    std::fs::create_dir(cpuset.join(parent.trim_start_matches('/'))).unwrap();
    let cg = format!("{parent}/leaf");
    b.config["linux"]["cgroupsPath"] = json!(cg);
    b.write();
    let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    for d in cgroup_dirs(&parent) {
        test_support::remove_cgroup_tree(&d);
    }
    assert_eq!(o.code, 0, "{o:?}");
    assert!(cgroup_dirs(&parent).is_empty());
}
