//! Interop: containerd (Debian's 1.6, started by the test with its own
//! root, state and sockets, CRI disabled) runs tasks on berth-runtime
//! through `ctr` and containerd's runc v2 shim, whose `BinaryName` option
//! (ctr's `--runc-binary`) names berth-runtime, with the shim named
//! explicitly (`--runtime io.containerd.runc.v2`) and by default. Flow by
//! flow as with runc. See docs/interop.md.

use std::time::{Duration, Instant};

use test_support::engines::Containerd;
use test_support::interop::{run_matrix, Flow, FlowResult};
use test_support::{cgroup_dirs, ensure, run_in_pty, unique_id};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");
const IMAGE: &str = "docker.io/library/busybox:test";

/// The `ctr run` flags that put the runtime binary `rt` under the runc v2
/// shim, through the shim's `BinaryName` option (which ctr's
/// `--runc-binary` sets), with the runtime's state in a root of the
/// fixture's own; `explicit:` in front also names the shim with
/// `--runtime` instead of relying on ctr's default.
fn runtime_flags(c: &Containerd, rt: &str) -> Vec<String> {
    let mut flags: Vec<String> = vec![];
    let bin = match rt.strip_prefix("explicit:") {
        Some(bin) => {
            flags.extend(["--runtime".into(), "io.containerd.runc.v2".into()]);
            bin
        }
        None => rt,
    };
    flags.extend([
        "--fifo-dir".into(),
        c.fifo_dir().display().to_string(),
        "--runc-binary".into(),
        bin.into(),
        "--runc-root".into(),
        c.runtime_root().display().to_string(),
    ]);
    flags
}

/// The runtime binary a flow's `rt` names.
fn binary(rt: &str) -> &str {
    rt.strip_prefix("explicit:").unwrap_or(rt)
}

fn ctr_run(
    c: &Containerd,
    rt: &str,
    flags: &[&str],
    id: &str,
    cmd: &[&str],
) -> test_support::Outcome {
    let mut args: Vec<String> = vec!["run".into()];
    args.extend(runtime_flags(c, rt));
    args.extend(flags.iter().map(|s| s.to_string()));
    args.push(IMAGE.into());
    args.push(id.into());
    args.extend(cmd.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    c.run(&args)
}

fn run_rm(c: &Containerd, rt: &str) -> FlowResult {
    let id = unique_id("ctd");
    let o = ctr_run(
        c,
        rt,
        &["--rm"],
        &id,
        &["sh", "-c", "echo hi from $$; exit 3"],
    );
    ensure!(o.code == 3, "exit {} (want 3): {}", o.code, o.stderr);
    ensure!(o.stdout.trim() == "hi from 1", "stdout {:?}", o.stdout);
    Ok(())
}

fn terminal(c: &Containerd, rt: &str) -> FlowResult {
    let id = unique_id("ctd");
    let mut cmd = c.ctr();
    cmd.arg("run").args(runtime_flags(c, rt)).args([
        "--rm",
        "-t",
        IMAGE,
        &id,
        "sh",
        "-c",
        "[ -t 0 ] && tty",
    ]);
    let (code, out) = run_in_pty(&mut cmd);
    ensure!(
        code == 0 && out.contains("/dev/pts/0"),
        "exit {code}: {out:?}"
    );
    Ok(())
}

/// The task's cgroup file, read on the host (ctr's default spec mounts no
/// cgroupfs in the container).
fn host_cgroup_file(c: &Containerd, id: &str, v2: &str, v1: &str) -> String {
    let path = format!("{}/{id}", c.cgroup_parent());
    for dir in cgroup_dirs(&path) {
        for f in [dir.join(v2), dir.join(v1)] {
            if let Ok(s) = std::fs::read_to_string(&f) {
                return s.trim().to_string();
            }
        }
    }
    format!("no cgroup file {v2} or {v1} under {path}")
}

fn detached_task(c: &Containerd, rt: &str) -> FlowResult {
    let id = unique_id("ctd");
    let o = ctr_run(
        c,
        rt,
        &["-d", "--memory-limit", "67108864"],
        &id,
        &["sleep", "1000"],
    );
    ensure!(o.code == 0, "run -d: {}", o.stderr);
    let result = (|| {
        // The shim ran the runtime asked for: it reads its own state.
        let root = c.runtime_root().join(c.namespace());
        let o = test_support::run_through_files(
            std::process::Command::new(binary(rt))
                .arg("--root")
                .arg(&root)
                .args(["state", &id]),
        );
        ensure!(
            o.code == 0 && o.stdout.contains("running"),
            "{} state {id} in {}: {o:?}",
            binary(rt),
            root.display()
        );
        let m = host_cgroup_file(c, &id, "memory.max", "memory.limit_in_bytes");
        ensure!(m == "67108864", "--memory-limit: {m}");
        let fifo = c.fifo_dir().display().to_string();
        let o = c.run(&[
            "task",
            "exec",
            "--fifo-dir",
            &fifo,
            "--exec-id",
            "e1",
            &id,
            "sh",
            "-c",
            "echo exec-ok; exit 5",
        ]);
        ensure!(
            o.code == 5 && o.stdout.trim() == "exec-ok",
            "task exec: {o:?}"
        );
        let o = c.run(&["task", "ps", &id]);
        ensure!(
            o.code == 0 && o.stdout.lines().count() >= 2,
            "task ps: {o:?}"
        );
        let o = c.run(&["task", "metrics", &id]);
        ensure!(
            o.code == 0 && o.stdout.contains("memory.usage_in_bytes"),
            "task metrics: {o:?}"
        );
        let status = |c: &Containerd| {
            c.run(&["task", "ls"])
                .stdout
                .lines()
                .find(|l| l.starts_with(&format!("{id} ")))
                .map(|l| l.split_whitespace().last().unwrap_or("").to_string())
                .unwrap_or_default()
        };
        ensure!(c.run(&["task", "pause", &id]).code == 0, "pause");
        ensure!(status(c) == "PAUSED", "after pause: {}", status(c));
        ensure!(c.run(&["task", "resume", &id]).code == 0, "resume");
        ensure!(status(c) == "RUNNING", "after resume: {}", status(c));
        ensure!(
            c.run(&["task", "kill", "-s", "SIGKILL", &id]).code == 0,
            "kill"
        );
        let end = Instant::now() + Duration::from_secs(10);
        while status(c) != "STOPPED" {
            ensure!(Instant::now() < end, "after kill: {}", status(c));
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    })();
    let _ = c.run(&["task", "rm", "-f", &id]);
    let rm = c.run(&["containers", "rm", &id]);
    result?;
    ensure!(rm.code == 0, "containers rm: {}", rm.stderr);
    Ok(())
}

const FLOWS: &[Flow<Containerd>] = &[
    ("run --rm: output and exit code", run_rm),
    ("run -t through a pty", terminal),
    (
        "run -d, --memory-limit, task exec/ps/metrics/pause/resume/kill",
        detached_task,
    ),
];

#[test]
fn containerd_runs_every_flow_on_berth_as_on_runc() {
    assert!(
        Containerd::available(),
        "containerd is not installed: scripts/install-deps installs it"
    );
    let c = Containerd::start();
    run_matrix("ctr --runc-binary", &c, FLOWS, BIN, "/usr/sbin/runc");
    let (berth, runc) = (format!("explicit:{BIN}"), "explicit:/usr/sbin/runc");
    run_matrix(
        "ctr --runtime io.containerd.runc.v2",
        &c,
        FLOWS,
        &berth,
        runc,
    );
    // The shim force-deletes after every task: berth must answer as runc
    // does, or containerd logs a warning for each.
    let log = c.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("does not exist") || l.contains("failed to delete"))
        .collect();
    assert!(warnings.is_empty(), "containerd complained: {warnings:#?}");
}
