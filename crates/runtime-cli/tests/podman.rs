//! Interop with a real client: Podman (with conmon) drives berth-runtime
//! exactly as it drives runc: run, detached run + exec, exit codes, and
//! terminals (`-it`, on a real pty).
//! Podman's own default seccomp profile is compiled and loaded by berth.

use test_support::{unique_id, Podman};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn podman() -> Option<Podman> {
    if !Podman::available() {
        panic!("podman is not installed: scripts/install-deps installs it");
    }
    Some(Podman::new(BIN))
}

fn run_args(p: &Podman, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "run".into(),
        "--security-opt".into(),
        "seccomp=unconfined".into(),
    ];
    v.extend(p.run_flags());
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn podman_run_rm_prints_and_exits_with_the_status() {
    let p = podman().unwrap();
    let o = p.run(&strs(&run_args(
        &p,
        &[
            "--rm",
            "localhost/busybox:test",
            "sh",
            "-c",
            "echo hi from $$; exit 3",
        ],
    )));
    assert_eq!(o.code, 3, "{o:?}");
    assert_eq!(o.stdout.trim(), "hi from 1");
}

#[test]
fn podman_exec_into_a_detached_container() {
    let p = podman().unwrap();
    let name = unique_id("pm");
    p.run(&strs(&run_args(
        &p,
        &[
            "-d",
            "--name",
            &name,
            "localhost/busybox:test",
            "sleep",
            "100",
        ],
    )))
    .ok();
    let o = p.run(&[
        "exec",
        &name,
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 4",
    ]);
    assert_eq!(o.code, 4, "{o:?}");
    assert_eq!(o.stdout.trim(), "sleep 100");
    let ps = p.run(&["ps", "--format", "{{.Names}} {{.Status}}"]).ok();
    assert!(
        ps.stdout.contains(&name) && ps.stdout.contains("Up"),
        "{}",
        ps.stdout
    );
    p.run(&["rm", "--force", "--time", "0", &name]).ok();
}

#[test]
fn podman_run_it_and_exec_it_get_a_terminal() {
    let p = podman().unwrap();
    let mut run = p.command();
    run.args(run_args(
        &p,
        &[
            "--rm",
            "-it",
            "localhost/busybox:test",
            "sh",
            "-c",
            "[ -t 0 ] && tty",
        ],
    ));
    let (code, out) = test_support::run_in_pty(&mut run);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("/dev/pts/0"), "{out}");

    let name = unique_id("pm");
    p.run(&strs(&run_args(
        &p,
        &[
            "-d",
            "--name",
            &name,
            "localhost/busybox:test",
            "sleep",
            "100",
        ],
    )))
    .ok();
    let mut exec = p.command();
    exec.args([
        "exec",
        "-it",
        &name,
        "sh",
        "-c",
        "[ -t 0 ] && echo exec-tty",
    ]);
    let (code, out) = test_support::run_in_pty(&mut exec);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("exec-tty"), "{out}");
    p.run(&["rm", "--force", "--time", "0", &name]).ok();
}
