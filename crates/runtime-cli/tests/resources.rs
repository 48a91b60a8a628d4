//! Resource control through the runtime on the real kernel: memory, pids,
//! CPU quota and cpuset, devices, pause/resume, ps and update. Files are
//! checked in the host's cgroup tree, behaviour in the container.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_support::{cgroup_dirs, unique_id, Bundle, RuntimeCli};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

struct Box {
    rt: RuntimeCli,
    b: Bundle,
    id: String,
    cg: String,
}

fn make(args: &[&str], resources: Value) -> Box {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(args);
    b.config["root"]["readonly"] = json!(false);
    let id = unique_id("res");
    let cg = b.set_unique_cgroup(&id);
    let mut res = resources;
    res["devices"] = json!([{"allow": false, "access": "rwm"}]);
    b.config["linux"]["resources"] = res;
    b.write();
    Box { rt, b, id, cg }
}

impl Box {
    fn bundle(&self) -> &str {
        self.b.path().to_str().unwrap()
    }

    /// The value of `file` in this container's cgroup (v1 `controller` hierarchy or v2).
    fn cgroup_file(&self, controller: &str, v1: &str, v2: &str) -> String {
        let v1p = format!("/sys/fs/cgroup/{controller}{}/{v1}", self.cg);
        let v2p = format!("/sys/fs/cgroup{}/{v2}", self.cg);
        std::fs::read_to_string(&v1p)
            .or_else(|_| std::fs::read_to_string(&v2p))
            .unwrap_or_else(|e| panic!("{v1p} / {v2p}: {e}"))
            .trim()
            .to_string()
    }

    fn wait_status(&self, want: &str) {
        let end = Instant::now() + Duration::from_secs(10);
        while self.rt.status(&self.id).as_deref() != Some(want) {
            assert!(Instant::now() < end, "never {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Box {
    fn drop(&mut self) {
        let _ = self.rt.run(&["delete", "--force", &self.id]);
        assert!(cgroup_dirs(&self.cg).is_empty(), "cgroup left behind");
    }
}

#[test]
fn memory_hog_is_oom_killed() {
    let c = make(
        &["tail", "/dev/zero"],
        json!({"memory": {"limit": 32 << 20, "swap": 32 << 20}}),
    );
    let o = c.rt.run(&["run", "--bundle", c.bundle(), &c.id]);
    assert_eq!(o.code, 137, "{o:?}");
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let bomb = [
        "sh",
        "-c",
        "for i in $(seq 30); do sleep 1 & done; echo all-forked",
    ];
    let c = make(&bomb, json!({"pids": {"limit": 10}}));
    let o = c.rt.run(&["run", "--bundle", c.bundle(), &c.id]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("can't fork"), "{o:?}");
    assert!(!o.stdout.contains("all-forked"));
    // The same loop without the limit forks all 30.
    let free = make(&bomb, json!({}));
    let o = free
        .rt
        .run(&["run", "--bundle", free.bundle(), &free.id])
        .ok();
    assert!(o.stdout.contains("all-forked"));
}

#[test]
fn cpu_quota_keeps_a_busy_loop_near_half_a_core() {
    let c = make(
        &["sh", "-c", "while :; do :; done"],
        json!({"cpu": {"quota": 50000, "period": 100000}}),
    );
    c.rt.run(&["run", "--detach", "--bundle", c.bundle(), &c.id])
        .ok();
    let usage = || {
        c.cgroup_file("cpuacct", "cpuacct.usage", "cpu.stat")
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .last()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    std::thread::sleep(Duration::from_millis(300));
    let (u0, t0) = (usage(), Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let (u1, dt) = (usage(), t0.elapsed());
    // v1 reports nanoseconds; v2's usage_usec microseconds.
    let scale = if c
        .cgroup_file("cpuacct", "cpuacct.usage", "cpu.stat")
        .contains("usage_usec")
    {
        1e6
    } else {
        1e9
    };
    let share = (u1 - u0) as f64 / scale / dt.as_secs_f64();
    assert!(
        (0.30..=0.70).contains(&share),
        "busy loop used {share:.2} of a core under a 0.5 quota"
    );
}

#[test]
fn cpuset_pins_the_container() {
    let c = make(
        &["sh", "-c", "grep Cpus_allowed_list /proc/self/status"],
        json!({"cpu": {"cpus": "1"}}),
    );
    let o = c.rt.run(&["run", "--bundle", c.bundle(), &c.id]).ok();
    assert!(o.stdout.trim().ends_with('1'), "{}", o.stdout);
}

#[test]
fn denied_device_cannot_be_opened_even_after_mknod() {
    let c = make(&["sh", "-c", "mknod /tmp/mem c 1 1 && head -c1 /tmp/mem >/dev/null 2>&1 && echo read || echo denied; head -c1 /dev/zero | wc -c"], json!({}));
    let o = c.rt.run(&["run", "--bundle", c.bundle(), &c.id]).ok();
    assert_eq!(
        o.stdout.lines().collect::<Vec<_>>(),
        ["denied", "1"],
        "{}",
        o.stdout
    );
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let c = make(
        &[
            "sh",
            "-c",
            "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done",
        ],
        json!({}),
    );
    c.rt.run(&["run", "--detach", "--bundle", c.bundle(), &c.id])
        .ok();
    let count = || {
        std::fs::read_to_string(c.b.rootfs().join("tmp/count"))
            .unwrap_or_default()
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    std::thread::sleep(Duration::from_millis(300));
    c.rt.run(&["pause", &c.id]).ok();
    c.wait_status("paused");
    let frozen = count();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(count(), frozen, "the container ran while paused");
    assert_ne!(
        c.rt.run(&["pause", &c.id]).code,
        0,
        "pausing twice is an error"
    );
    c.rt.run(&["resume", &c.id]).ok();
    c.wait_status("running");
    std::thread::sleep(Duration::from_millis(400));
    assert!(count() > frozen, "the container did not run after resume");
}

#[test]
fn ps_lists_the_containers_processes() {
    let c = make(&["sh", "-c", "sleep 100 & sleep 101"], json!({}));
    c.rt.run(&["run", "--detach", "--bundle", c.bundle(), &c.id])
        .ok();
    std::thread::sleep(Duration::from_millis(200));
    let pids: Vec<i32> =
        serde_json::from_str(&c.rt.run(&["ps", "--format", "json", &c.id]).ok().stdout).unwrap();
    assert_eq!(pids.len(), 2, "{pids:?}");
    let table = c.rt.run(&["ps", &c.id]).ok().stdout;
    assert!(
        table.starts_with("UID") && table.contains("sleep 100") && table.contains("sleep 101"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 3, "{table}");
}

#[test]
fn update_changes_limits_of_a_running_container() {
    let c = make(
        &["sleep", "100"],
        json!({"memory": {"limit": 64 << 20}, "pids": {"limit": 50}}),
    );
    c.rt.run(&["run", "--detach", "--bundle", c.bundle(), &c.id])
        .ok();
    assert_eq!(c.cgroup_file("pids", "pids.max", "pids.max"), "50");
    c.rt.run(&[
        "update",
        "--memory",
        "128m",
        "--pids-limit",
        "20",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "100000",
        &c.id,
    ])
    .ok();
    assert_eq!(
        c.cgroup_file("memory", "memory.limit_in_bytes", "memory.max"),
        (128u64 << 20).to_string()
    );
    assert_eq!(c.cgroup_file("pids", "pids.max", "pids.max"), "20");
    assert_eq!(
        c.cgroup_file("cpu", "cpu.cfs_quota_us", "cpu.max")
            .split_whitespace()
            .next()
            .unwrap(),
        "20000"
    );
    c.rt.run(&[
        "update",
        "--cpu-shares",
        "512",
        "--cpuset-cpus",
        "0",
        "--memory-reservation",
        "32m",
        &c.id,
    ])
    .ok();
    let shares = c.cgroup_file("cpu", "cpu.shares", "cpu.weight");
    assert!(
        shares == "512" || shares == "20",
        "cpu.shares 512 (v2 weight 20): {shares}"
    );
    assert_eq!(c.cgroup_file("cpuset", "cpuset.cpus", "cpuset.cpus"), "0");
    assert_eq!(
        c.cgroup_file("memory", "memory.soft_limit_in_bytes", "memory.low"),
        (32u64 << 20).to_string()
    );
    let r = c.rt.run(&["update", "--memory", "lots", &c.id]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("lots"), "{}", r.stderr);
}

#[test]
fn events_stats_match_the_cgroup_files() {
    let c = make(
        &["sh", "-c", "sleep 100 & sleep 101"],
        json!({"memory": {"limit": 96 << 20}, "pids": {"limit": 50}}),
    );
    c.rt.run(&["run", "--detach", "--bundle", c.bundle(), &c.id])
        .ok();
    std::thread::sleep(Duration::from_millis(200));
    let o = c.rt.run(&["events", "--stats", &c.id]).ok();
    let e: Value = serde_json::from_str(o.stdout.trim()).unwrap();
    assert_eq!(e["type"], json!("stats"));
    assert_eq!(e["id"], json!(c.id));
    let d = &e["data"];
    // sh execs its last command: sleep 100 and sleep 101.
    assert_eq!(d["pids"]["current"], json!(2));
    assert_eq!(
        d["pids"]["current"].to_string(),
        c.cgroup_file("pids", "pids.current", "pids.current")
    );
    assert_eq!(d["pids"]["limit"], json!(50));
    assert_eq!(d["memory"]["usage"]["limit"], json!(96u64 << 20));
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap() > 0);
    assert!(d["blkio"]["ioServiceBytesRecursive"].is_array(), "{d}");
}

#[test]
fn events_report_an_oom_kill() {
    let c = make(
        &["tail", "/dev/zero"],
        json!({"memory": {"limit": 32 << 20, "swap": 32 << 20}}),
    );
    c.rt.run(&["create", "--bundle", c.bundle(), &c.id]).ok();
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut watcher =
        c.rt.command()
            .args(["events", "--interval", "100ms", &c.id])
            .stdout(out.reopen().unwrap())
            .spawn()
            .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    c.rt.run(&["start", &c.id]).ok();
    let end = Instant::now() + Duration::from_secs(20);
    while watcher.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < end,
            "events did not end with the container"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(out.path()).unwrap();
    assert!(
        text.lines().any(|l| serde_json::from_str::<Value>(l)
            .map(|v| v["type"] == json!("oom"))
            .unwrap_or(false)),
        "no oom event in:\n{text}"
    );
}

#[test]
fn check_before_update_refuses_a_limit_below_usage() {
    let c = make(&["sleep", "100"], json!({"memory": {"limit": 64 << 20}}));
    c.rt.run(&["run", "--detach", "--bundle", c.bundle(), &c.id])
        .ok();
    let res = c.b.path().join("res.json");
    std::fs::write(
        &res,
        serde_json::to_vec(&json!({"memory": {"limit": 4096, "checkBeforeUpdate": true}})).unwrap(),
    )
    .unwrap();
    let o = c.rt.run(&["update", "-r", res.to_str().unwrap(), &c.id]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("checkBeforeUpdate"), "{}", o.stderr);
    assert_eq!(
        c.cgroup_file("memory", "memory.limit_in_bytes", "memory.max"),
        (64u64 << 20).to_string(),
        "the limit is unchanged"
    );
}
