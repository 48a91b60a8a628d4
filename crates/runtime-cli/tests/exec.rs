//! `exec` into a running container: same namespaces and cgroup as the
//! init, the requested identity, the exit status propagated.

use serde_json::{json, Value};
use test_support::{unique_id, Bundle, RuntimeCli};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn running(id: &str) -> (RuntimeCli, Bundle) {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&["sleep", "100"]);
    b.set_unique_cgroup(id);
    rt.run(&[
        "run",
        "--detach",
        "--bundle",
        b.path().to_str().unwrap(),
        id,
    ])
    .ok();
    (rt, b)
}

#[test]
fn exec_joins_the_pid_namespace_and_cgroup() {
    let id = unique_id("exec");
    let (rt, _b) = running(&id);
    let o = rt.run(&["exec", &id, "sh", "-c", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; grep -vc ':/$' /proc/self/cgroup; hostname"]).ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_ne!(lines[0], "1", "exec must not be PID 1");
    assert!(
        lines[0].parse::<u32>().unwrap() < 10,
        "pid {} is not from the container's namespace",
        lines[0]
    );
    assert_eq!(
        lines[1].trim(),
        "sleep 100",
        "PID 1 is the container's init"
    );
    assert_eq!(
        lines[2], "0",
        "same cgroup (and cgroup namespace) as the init"
    );
    assert_eq!(lines[3], "berth");
    rt.run(&["delete", "--force", &id]).ok();
}

#[test]
fn exec_exit_status_propagates() {
    let id = unique_id("exec");
    let (rt, _b) = running(&id);
    let o = rt.run(&["exec", &id, "sh", "-c", "exit 5"]);
    assert_eq!(o.code, 5, "{o:?}");
    rt.run(&["delete", "--force", &id]).ok();
}

#[test]
fn exec_applies_user_env_and_cwd() {
    let id = unique_id("exec");
    let (rt, _b) = running(&id);
    let o = rt
        .run(&[
            "exec",
            "--user",
            "1000:1000",
            "--env",
            "FOO=bar",
            "--cwd",
            "/tmp",
            &id,
            "sh",
            "-c",
            "id -u; echo $FOO; pwd; grep CapEff /proc/self/status",
        ])
        .ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(&lines[..3], ["1000", "bar", "/tmp"]);
    assert!(lines[3].ends_with("0000000000000000"), "{}", lines[3]);
    rt.run(&["delete", "--force", &id]).ok();
}

#[test]
fn exec_with_process_json() {
    let id = unique_id("exec");
    let (rt, b) = running(&id);
    let process = json!({"args": ["sh", "-c", "echo from-json $X"], "cwd": "/", "env": ["PATH=/bin", "X=1"], "user": {"uid": 0, "gid": 0}});
    let path = b.path().join("process.json");
    std::fs::write(&path, serde_json::to_vec(&process).unwrap()).unwrap();
    let o = rt
        .run(&["exec", "--process", path.to_str().unwrap(), &id])
        .ok();
    assert_eq!(o.stdout.trim(), "from-json 1");
    rt.run(&["delete", "--force", &id]).ok();
}

#[test]
fn exec_into_stopped_container_is_refused() {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&["true"]);
    let id = unique_id("exec");
    b.set_unique_cgroup(&id);
    rt.run(&["run", "--keep", "--bundle", b.path().to_str().unwrap(), &id])
        .ok();
    let state: Value = serde_json::from_str(&rt.run(&["state", &id]).stdout).unwrap();
    assert_eq!(state["status"], json!("stopped"));
    let o = rt.run(&["exec", &id, "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("stopped"), "{}", o.stderr);
    rt.run(&["delete", &id]).ok();
}

#[test]
fn exec_into_paused_container_is_refused() {
    let id = unique_id("exec");
    let (rt, _b) = running(&id);
    rt.run(&["pause", &id]).ok();
    let o = rt.run(&["exec", &id, "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("paused"), "{}", o.stderr);
    rt.run(&["resume", &id]).ok();
    rt.run(&["delete", "--force", &id]).ok();
}

#[test]
fn exec_flags_for_capabilities_groups_and_no_new_privs() {
    let id = unique_id("exec");
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&["sleep", "100"]);
    b.set_unique_cgroup(&id);
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.write();
    rt.run(&[
        "run",
        "--detach",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ])
    .ok();
    let o = rt
        .run(&[
            "exec",
            "--cap",
            "CAP_SYS_ADMIN",
            "--no-new-privs",
            "--additional-gids",
            "10",
            "--additional-gids",
            "20",
            &id,
            "sh",
            "-c",
            "grep -E '^(CapEff|NoNewPrivs|Groups)' /proc/self/status",
        ])
        .ok();
    let field = |name: &str| {
        o.stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let eff = u64::from_str_radix(&field("CapEff"), 16).unwrap();
    assert_ne!(eff & (1 << 21), 0, "CAP_SYS_ADMIN added: {}", o.stdout);
    assert_eq!(field("NoNewPrivs"), "1");
    assert_eq!(field("Groups"), "10 20");
    let plain = rt
        .run(&[
            "exec",
            &id,
            "sh",
            "-c",
            "grep -E '^NoNewPrivs' /proc/self/status",
        ])
        .ok();
    assert!(plain.stdout.trim().ends_with('0'), "{}", plain.stdout);
    rt.run(&["delete", "--force", &id]).ok();
}

/// The init and an exec'd process go through the same set-up: the same
/// probe, run as the container's program and through `exec --process` with
/// the same process, sees the same personality, user, groups, umask,
/// rlimits, cwd, HOME default, capabilities, no_new_privs, seccomp mode and
/// CPU affinity (exec once skipped personality, the final CPU affinity and
/// the HOME default).
#[test]
fn init_and_exec_set_up_the_process_alike() {
    let probe = "uname -m; id -u; id -G; umask; ulimit -n; pwd; echo HOME=$HOME; \
        grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp|Cpus_allowed_list):' /proc/self/status";
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    let id = unique_id("alike");
    b.set_unique_cgroup(&id);
    b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    b.config["process"]["user"] =
        json!({"uid": 1000, "gid": 1000, "additionalGids": [65534], "umask": 23});
    b.config["process"]["cwd"] = json!("/tmp");
    b.config["process"]["env"] = json!(["PATH=/bin:/usr/bin"]);
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 512}]);
    b.config["process"]["execCPUAffinity"] = json!({"final": "0"});
    b.config["process"]["noNewPrivileges"] = json!(true);
    b.config["process"]["terminal"] = json!(false);
    b.config["process"]["args"] = json!(["sh", "-c", probe]);
    b.write();
    let from_init = rt
        .run(&["run", "--bundle", b.path().to_str().unwrap(), &id])
        .ok()
        .stdout;

    let id2 = unique_id("alike");
    b.config["process"]["args"] = json!(["sleep", "100"]);
    b.write();
    rt.run(&[
        "run",
        "--detach",
        "--bundle",
        b.path().to_str().unwrap(),
        &id2,
    ])
    .ok();
    let mut process = b.config["process"].clone();
    process["args"] = json!(["sh", "-c", probe]);
    let pfile = b.path().join("process.json");
    std::fs::write(&pfile, serde_json::to_vec(&process).unwrap()).unwrap();
    let from_exec = rt
        .run(&["exec", "--process", pfile.to_str().unwrap(), &id2])
        .ok()
        .stdout;
    rt.run(&["delete", "--force", &id2]).ok();

    assert_eq!(from_init, from_exec, "init and exec differ");
    let lines: Vec<&str> = from_init.lines().collect();
    assert_eq!(lines[0], "i686", "personality: {from_init}");
    assert_eq!(lines[1], "1000", "{from_init}");
    assert_eq!(lines[3], "0027", "umask: {from_init}");
    assert_eq!(lines[4], "512", "rlimit: {from_init}");
    assert_eq!(lines[5], "/tmp", "{from_init}");
    assert_eq!(lines[6], "HOME=/home/user", "{from_init}");
    assert!(from_init.contains("NoNewPrivs:\t1"), "{from_init}");
    assert!(from_init.contains("Seccomp:\t2"), "{from_init}");
    assert!(from_init.contains("Cpus_allowed_list:\t0\n"), "{from_init}");
}
