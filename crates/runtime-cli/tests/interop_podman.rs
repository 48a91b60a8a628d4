//! Interop: Podman (with conmon, its own store and run directories under a
//! temp dir) runs containers on berth-runtime with `--runtime`, flow by
//! flow as with runc, with Podman's own default seccomp profile (which
//! berth compiles and loads). See docs/interop.md.

use std::time::{Duration, Instant};

use test_support::ensure;
use test_support::interop::{run_matrix, Flow, FlowResult};
use test_support::{run_in_pty, unique_id, Podman};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");
const IMAGE: &str = "localhost/busybox:test";

/// `podman run` with the runtime `rt`, this host's flags, then `args`.
fn run_args(p: &Podman, args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec!["run".into()];
    v.extend(p.run_flags());
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

fn podman(p: &Podman, rt: &str, args: &[&str]) -> test_support::Outcome {
    let v = run_args(p, args);
    let v: Vec<&str> = v.iter().map(String::as_str).collect();
    p.run_using(rt, &v)
}

/// `podman run --rm [flags] IMAGE sh -c script`: its stdout.
fn run(p: &Podman, rt: &str, flags: &[&str], script: &str) -> Result<String, String> {
    let mut args = vec!["--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[IMAGE, "sh", "-c", script]);
    let o = podman(p, rt, &args);
    ensure!(
        o.code == 0,
        "podman run {args:?}: exit {}: {}",
        o.code,
        o.stderr.trim()
    );
    Ok(o.stdout.trim().to_string())
}

fn cgroup_file(v2: &str, v1: &str) -> String {
    format!("cat /sys/fs/cgroup/{v2} 2>/dev/null || cat /sys/fs/cgroup/{v1}")
}

fn exit_code_and_output(p: &Podman, rt: &str) -> FlowResult {
    let o = podman(
        p,
        rt,
        &["--rm", IMAGE, "sh", "-c", "echo hi from $$; exit 3"],
    );
    ensure!(o.code == 3, "exit {} (want 3): {}", o.code, o.stderr);
    ensure!(o.stdout.trim() == "hi from 1", "stdout {:?}", o.stdout);
    let o = podman(p, rt, &["--rm", IMAGE, "no-such-program"]);
    ensure!(
        o.code == 127,
        "a missing program exits {} (want 127)",
        o.code
    );
    Ok(())
}

fn interactive_terminal(p: &Podman, rt: &str) -> FlowResult {
    let mut cmd = p.command_using(rt);
    cmd.args(run_args(
        p,
        &["--rm", "-it", IMAGE, "sh", "-c", "[ -t 0 ] && tty"],
    ));
    let (code, out) = run_in_pty(&mut cmd);
    ensure!(
        code == 0 && out.contains("/dev/pts/0"),
        "exit {code}: {out:?}"
    );
    Ok(())
}

fn limits(p: &Podman, rt: &str) -> FlowResult {
    let m = run(
        p,
        rt,
        &["--memory", "64m"],
        &cgroup_file("memory.max", "memory/memory.limit_in_bytes"),
    )?;
    ensure!(m == "67108864", "--memory 64m: {m}");
    let c = run(
        p,
        rt,
        &["--cpus", "0.5"],
        &cgroup_file("cpu.max", "cpu/cpu.cfs_quota_us"),
    )?;
    ensure!(c.starts_with("50000"), "--cpus 0.5: {c}");
    let n = run(
        p,
        rt,
        &["--pids-limit", "20"],
        &cgroup_file("pids.max", "pids/pids.max"),
    )?;
    ensure!(n == "20", "--pids-limit 20: {n}");
    Ok(())
}

fn confinement(p: &Podman, rt: &str) -> FlowResult {
    let caps = run(
        p,
        rt,
        &["--cap-drop", "ALL"],
        "grep CapEff /proc/self/status",
    )?;
    ensure!(caps.ends_with("0000000000000000"), "--cap-drop ALL: {caps}");
    let id = run(p, rt, &["--user", "1000:1000"], "echo $(id -u):$(id -g)")?;
    ensure!(id == "1000:1000", "--user: {id}");
    let init = run(p, rt, &["--init"], "cat /proc/1/cmdline | tr '\\0' ' '")?;
    ensure!(init.contains("podman-init"), "--init: pid 1 is {init}");
    Ok(())
}

/// `--read-only` adds tmpfs mounts with `tmpcopyup` at /tmp, /run and
/// /var/tmp; `--tmpfs` adds one anywhere.
fn read_only_and_tmpfs(p: &Podman, rt: &str) -> FlowResult {
    let out = run(
        p,
        rt,
        &["--read-only"],
        "touch /x 2>/dev/null && echo wrote-root; touch /tmp/x /run/x /var/tmp/x && echo tmp-ok",
    )?;
    ensure!(out == "tmp-ok", "--read-only: {out}");
    let out = run(
        p,
        rt,
        &["--tmpfs", "/data:size=1m", "--tmpfs", "/etc"],
        "echo x > /data/f && grep -c root /etc/passwd && df -k /data | tail -1",
    )?;
    let lines: Vec<&str> = out.lines().collect();
    ensure!(
        lines.len() == 2 && lines[0] == "1" && lines[1].contains(" 1024 "),
        "--tmpfs (copied up /etc, a 1 MiB /data): {lines:?}"
    );
    Ok(())
}

fn inspect(p: &Podman, rt: &str, name: &str, format: &str) -> String {
    p.run_using(rt, &["inspect", "-f", format, name])
        .stdout
        .trim()
        .to_string()
}

fn detached_lifecycle(p: &Podman, rt: &str) -> FlowResult {
    let name = unique_id("pm");
    let o = podman(
        p,
        rt,
        &[
            "-d",
            "--name",
            &name,
            IMAGE,
            "sh",
            "-c",
            "trap 'exit 0' TERM; echo started; while :; do sleep 0.1; done",
        ],
    );
    ensure!(o.code == 0, "run -d: {}", o.stderr);
    let result = (|| {
        let o = p.run_using(rt, &["exec", &name, "sh", "-c", "echo exec-ok; exit 4"]);
        ensure!(o.code == 4 && o.stdout.trim() == "exec-ok", "exec: {o:?}");
        let mut cmd = p.command_using(rt);
        cmd.args(["exec", "-it", &name, "tty"]);
        let (code, out) = run_in_pty(&mut cmd);
        ensure!(
            code == 0 && out.contains("/dev/pts/"),
            "exec -it: {code} {out:?}"
        );
        let end = Instant::now() + Duration::from_secs(10);
        while !p.run_using(rt, &["logs", &name]).stdout.contains("started") {
            ensure!(Instant::now() < end, "logs never showed the output");
            std::thread::sleep(Duration::from_millis(50));
        }
        let top = p.run_using(rt, &["top", &name]);
        ensure!(
            top.code == 0 && top.stdout.contains("sleep"),
            "top: {top:?}"
        );
        let stats = p.run_using(
            rt,
            &[
                "stats",
                "--no-stream",
                "--format",
                "{{.Name}} {{.PIDs}}",
                &name,
            ],
        );
        ensure!(
            stats.code == 0 && stats.stdout.trim().starts_with(&name),
            "stats: {stats:?}"
        );
        ensure!(p.run_using(rt, &["pause", &name]).code == 0, "pause");
        let st = inspect(p, rt, &name, "{{.State.Status}}");
        ensure!(st == "paused", "after pause: {st}");
        ensure!(p.run_using(rt, &["unpause", &name]).code == 0, "unpause");
        let st = inspect(p, rt, &name, "{{.State.Status}}");
        ensure!(st == "running", "after unpause: {st}");
        let o = p.run_using(rt, &["update", "--memory", "128m", &name]);
        ensure!(o.code == 0, "update --memory: {}", o.stderr);
        let mem = cgroup_file("memory.max", "memory/memory.limit_in_bytes");
        let m = p.run_using(rt, &["exec", &name, "sh", "-c", &mem]).stdout;
        ensure!(m.trim() == "134217728", "after update --memory 128m: {m}");
        let pid = inspect(p, rt, &name, "{{.State.Pid}}");
        let o = p.run_using(rt, &["restart", "-t", "5", &name]);
        ensure!(o.code == 0, "restart: {}", o.stderr);
        let pid2 = inspect(p, rt, &name, "{{.State.Pid}}");
        ensure!(pid2 != pid, "restart kept pid {pid}");
        let t = Instant::now();
        ensure!(
            p.run_using(rt, &["stop", "-t", "10", &name]).code == 0,
            "stop"
        );
        ensure!(
            t.elapsed() < Duration::from_secs(5),
            "stop took {:?}: SIGTERM did not reach the container",
            t.elapsed()
        );
        let code = inspect(p, rt, &name, "{{.State.ExitCode}}");
        ensure!(code == "0", "exit code after stop: {code}");
        Ok(())
    })();
    let rm = p.run_using(rt, &["rm", "--force", "--time", "0", &name]);
    result?;
    ensure!(rm.code == 0, "rm: {}", rm.stderr);
    Ok(())
}

const FLOWS: &[Flow<Podman>] = &[
    ("run --rm: output and exit codes", exit_code_and_output),
    ("run -it through a pty", interactive_terminal),
    ("--memory --cpus --pids-limit", limits),
    ("--cap-drop ALL, --user, --init", confinement),
    ("--read-only and --tmpfs (tmpcopyup)", read_only_and_tmpfs),
    (
        "run -d, exec, logs, top, stats, pause, update, restart, stop, rm",
        detached_lifecycle,
    ),
];

#[test]
fn podman_runs_every_flow_on_berth_as_on_runc() {
    assert!(
        Podman::available(),
        "podman is not installed: scripts/install-deps installs it"
    );
    let p = Podman::new(BIN);
    run_matrix("podman", &p, FLOWS, BIN, "/usr/sbin/runc");
}
