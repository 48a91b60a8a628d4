//! Interop: Docker (Debian's dockerd 20.10, started by the test with its
//! own roots and socket, no bridge, no iptables) runs containers on
//! berth-runtime through the real docker CLI, flow by flow as with runc.
//! See docs/interop.md for what dockerd sends and what berth matches.

use std::path::Path;
use std::time::{Duration, Instant};

use test_support::engines::Dockerd;
use test_support::ensure;
use test_support::interop::{run_matrix, Flow, FlowResult};
use test_support::{run_in_pty, unique_id};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");
const IMAGE: &str = "busybox:test";

/// Runs `docker run --rm --runtime rt [flags] busybox:test sh -c script`.
fn run(d: &Dockerd, rt: &str, flags: &[&str], script: &str) -> Result<String, String> {
    let mut args = vec!["run", "--rm", "--runtime", rt];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[IMAGE, "sh", "-c", script]);
    let o = d.run(&args);
    ensure!(
        o.code == 0,
        "docker {args:?}: exit {}: {}",
        o.code,
        o.stderr.trim()
    );
    Ok(o.stdout.trim().to_string())
}

/// A cgroup file of the container, by its v2 name and its v1 path.
fn cgroup_file(v2: &str, v1: &str) -> String {
    format!("cat /sys/fs/cgroup/{v2} 2>/dev/null || cat /sys/fs/cgroup/{v1}")
}

fn exit_code_and_output(d: &Dockerd, rt: &str) -> FlowResult {
    let o = d.run(&[
        "run",
        "--rm",
        "--runtime",
        rt,
        IMAGE,
        "sh",
        "-c",
        "echo hi from $$; exit 3",
    ]);
    ensure!(o.code == 3, "exit {} (want 3): {}", o.code, o.stderr);
    ensure!(o.stdout.trim() == "hi from 1", "stdout {:?}", o.stdout);
    let o = d.run(&["run", "--rm", "--runtime", rt, IMAGE, "no-such-program"]);
    ensure!(
        o.code == 127,
        "a missing program exits {} (want 127)",
        o.code
    );
    Ok(())
}

fn interactive_terminal(d: &Dockerd, rt: &str) -> FlowResult {
    let (code, out) = run_in_pty(d.docker().args([
        "run",
        "-it",
        "--rm",
        "--runtime",
        rt,
        IMAGE,
        "sh",
        "-c",
        "tty; echo in-a-pty",
    ]));
    ensure!(code == 0, "exit {code}: {out}");
    ensure!(
        out.contains("/dev/pts/0") && out.contains("in-a-pty"),
        "{out:?}"
    );
    Ok(())
}

/// The default resources Docker sends are all zeros: the container must
/// keep the default CPU weight, not the minimum.
fn default_cpu_weight(d: &Dockerd, rt: &str) -> FlowResult {
    let w = run(d, rt, &[], &cgroup_file("cpu.weight", "cpu/cpu.shares"))?;
    ensure!(w == "100" || w == "1024", "cpu weight {w}");
    let m = run(
        d,
        rt,
        &[],
        &cgroup_file("memory.max", "memory/memory.limit_in_bytes"),
    )?;
    ensure!(
        m == "max" || m.len() > 12,
        "memory limit {m} without --memory"
    );
    Ok(())
}

fn limits(d: &Dockerd, rt: &str) -> FlowResult {
    let m = run(
        d,
        rt,
        &["--memory", "64m"],
        &cgroup_file("memory.max", "memory/memory.limit_in_bytes"),
    )?;
    ensure!(m == "67108864", "--memory 64m: {m}");
    let c = run(
        d,
        rt,
        &["--cpus", "0.5"],
        &cgroup_file("cpu.max", "cpu/cpu.cfs_quota_us"),
    )?;
    ensure!(c.starts_with("50000"), "--cpus 0.5: {c}");
    let p = run(
        d,
        rt,
        &["--pids-limit", "20"],
        &cgroup_file("pids.max", "pids/pids.max"),
    )?;
    ensure!(p == "20", "--pids-limit 20: {p}");
    Ok(())
}

fn confinement(d: &Dockerd, rt: &str) -> FlowResult {
    let caps = run(
        d,
        rt,
        &["--cap-drop", "ALL"],
        "grep CapEff /proc/self/status",
    )?;
    ensure!(caps.ends_with("0000000000000000"), "--cap-drop ALL: {caps}");
    let ro = run(
        d,
        rt,
        &["--read-only"],
        "touch /x 2>/dev/null && echo wrote || echo refused",
    )?;
    ensure!(ro == "refused", "--read-only: {ro}");
    let id = run(d, rt, &["--user", "1000:1000"], "echo $(id -u):$(id -g)")?;
    ensure!(id == "1000:1000", "--user: {id}");
    let init = run(d, rt, &["--init"], "cat /proc/1/cmdline | tr '\\0' ' '")?;
    ensure!(init.contains("docker-init"), "--init: pid 1 is {init}");
    Ok(())
}

fn inspect(d: &Dockerd, name: &str, format: &str) -> String {
    d.run(&["inspect", "-f", format, name])
        .stdout
        .trim()
        .to_string()
}

/// A detached container through its life: exec, exec -it, logs, top,
/// stats, pause/unpause, update, restart, stop (fast: it handles SIGTERM),
/// rm.
fn detached_lifecycle(d: &Dockerd, rt: &str) -> FlowResult {
    let name = unique_id("dk");
    let o = d.run(&[
        "run",
        "-d",
        "--name",
        &name,
        "--runtime",
        rt,
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 0' TERM; echo started; while :; do sleep 0.1; done",
    ]);
    ensure!(o.code == 0, "run -d: {}", o.stderr);
    let result = (|| {
        let o = d.run(&["exec", &name, "echo", "exec-ok"]);
        ensure!(o.stdout.trim() == "exec-ok", "exec: {o:?}");
        let (code, out) = run_in_pty(d.docker().args(["exec", "-it", &name, "tty"]));
        ensure!(
            code == 0 && out.contains("/dev/pts/"),
            "exec -it: {code} {out:?}"
        );
        let end = Instant::now() + Duration::from_secs(10);
        while !d.run(&["logs", &name]).stdout.contains("started") {
            ensure!(Instant::now() < end, "logs never showed the output");
            std::thread::sleep(Duration::from_millis(50));
        }
        let top = d.run(&["top", &name]);
        ensure!(
            top.code == 0 && top.stdout.contains("sleep"),
            "top: {top:?}"
        );
        let stats = d.run(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.PIDs}}",
            &name,
        ]);
        ensure!(
            stats.code == 0 && stats.stdout.trim().starts_with(&name),
            "stats: {stats:?}"
        );
        let pids: u32 = stats
            .stdout
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        ensure!(pids >= 1, "stats shows {pids} processes");
        ensure!(d.run(&["pause", &name]).code == 0, "pause");
        let st = inspect(d, &name, "{{.State.Status}}");
        ensure!(st == "paused", "after pause: {st}");
        ensure!(d.run(&["unpause", &name]).code == 0, "unpause");
        let st = inspect(d, &name, "{{.State.Status}}");
        ensure!(st == "running", "after unpause: {st}");
        let mem = cgroup_file("memory.max", "memory/memory.limit_in_bytes");
        let o = d.run(&["update", "--memory", "128m", "--memory-swap", "256m", &name]);
        ensure!(o.code == 0, "update --memory: {}", o.stderr);
        let m = d.run(&["exec", &name, "sh", "-c", &mem]).stdout;
        ensure!(m.trim() == "134217728", "after update --memory 128m: {m}");
        let o = d.run(&["update", "--cpus", "0.5", &name]);
        ensure!(o.code == 0, "update --cpus: {}", o.stderr);
        let script = format!(
            "{}; {}; {mem}",
            cgroup_file("cpu.max", "cpu/cpu.cfs_quota_us"),
            cgroup_file("cpu.weight", "cpu/cpu.shares")
        );
        let out = d.run(&["exec", &name, "sh", "-c", &script]).stdout;
        let lines: Vec<&str> = out.lines().collect();
        ensure!(
            lines.len() == 3
                && lines[0].starts_with("50000")
                && (lines[1] == "100" || lines[1] == "1024")
                && lines[2] == "134217728",
            "after update --cpus 0.5 (quota, weight, memory kept): {lines:?}"
        );
        let pid = inspect(d, &name, "{{.State.Pid}}");
        let o = d.run(&["restart", "-t", "5", &name]);
        ensure!(o.code == 0, "restart: {}", o.stderr);
        let (st, pid2) = (
            inspect(d, &name, "{{.State.Status}}"),
            inspect(d, &name, "{{.State.Pid}}"),
        );
        ensure!(
            st == "running" && pid2 != pid,
            "after restart: {st}, pid {pid} → {pid2}"
        );
        let t = Instant::now();
        ensure!(d.run(&["stop", "-t", "10", &name]).code == 0, "stop");
        ensure!(
            t.elapsed() < Duration::from_secs(5),
            "stop took {:?}: SIGTERM did not reach the container",
            t.elapsed()
        );
        let code = inspect(d, &name, "{{.State.ExitCode}}");
        ensure!(code == "0", "exit code after stop: {code}");
        Ok(())
    })();
    let rm = d.run(&["rm", "-f", &name]);
    result?;
    ensure!(rm.code == 0, "rm: {}", rm.stderr);
    Ok(())
}

fn kill_exits_137(d: &Dockerd, rt: &str) -> FlowResult {
    let name = unique_id("dk");
    let o = d.run(&[
        "run",
        "-d",
        "--name",
        &name,
        "--runtime",
        rt,
        IMAGE,
        "sleep",
        "1000",
    ]);
    ensure!(o.code == 0, "run -d: {}", o.stderr);
    let k = d.run(&["kill", &name]);
    let w = d.run(&["wait", &name]);
    d.run(&["rm", "-f", &name]);
    ensure!(k.code == 0, "kill: {}", k.stderr);
    ensure!(
        w.stdout.trim() == "137",
        "exit code after kill: {:?}",
        w.stdout
    );
    Ok(())
}

const FLOWS: &[Flow<Dockerd>] = &[
    ("run --rm: output and exit codes", exit_code_and_output),
    ("run -it through a pty", interactive_terminal),
    (
        "zero-valued resources keep the defaults",
        default_cpu_weight,
    ),
    ("--memory --cpus --pids-limit", limits),
    ("--cap-drop ALL, --read-only, --user, --init", confinement),
    (
        "run -d, exec, logs, top, stats, pause, update, restart, stop, rm",
        detached_lifecycle,
    ),
    ("kill → 137", kill_exits_137),
];

#[test]
fn docker_runs_every_flow_on_berth_as_on_runc() {
    assert!(
        Dockerd::available(),
        "dockerd is not installed: scripts/install-deps installs docker.io"
    );
    // runc is dockerd's built-in runtime, under that name.
    let d = Dockerd::start(&[("berth", Path::new(BIN))]);
    run_matrix("docker", &d, FLOWS, "berth", "runc");
    // dockerd's own log: berth must not have made it complain.
    let log = d.log();
    let complaints: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("level=error") && l.contains("berth"))
        .collect();
    assert!(
        complaints.is_empty(),
        "dockerd logged errors: {complaints:#?}"
    );
}
