//! A container that outgrows a real memory limit is killed by the
//! kernel's OOM killer: `run` exits 137 and `inspect` says OOMKilled, in
//! the foreground and under berth-shim; a container that stays within its
//! limit is not marked.

mod common;
use common::Fixture;

/// Holds 64 MB in a shell variable (the limit is 16 MB).
const GROW: &str = "x=$(head -c 67108864 /dev/zero | tr '\\0' x); echo survived";

#[test]
fn an_oom_kill_exits_137_and_is_recorded() {
    let f = Fixture::new();
    let o = f.berth(&[
        "run",
        "--name",
        "fg",
        "-m",
        "16m",
        "--memory-swap",
        "16m",
        "bb:1",
        "sh",
        "-c",
        GROW,
    ]);
    assert_eq!(o.code, 137, "{o:?}");
    assert!(!o.stdout.contains("survived"), "{o:?}");
    let o = f
        .berth(&[
            "inspect",
            "-f",
            "{{.State.OOMKilled}} {{.State.ExitCode}}",
            "fg",
        ])
        .ok();
    assert_eq!(o.stdout.trim(), "true 137");

    f.berth(&[
        "run",
        "-d",
        "--name",
        "bg",
        "-m",
        "16m",
        "--memory-swap",
        "16m",
        "bb:1",
        "sh",
        "-c",
        GROW,
    ])
    .ok();
    let o = f.berth(&["wait", "bg"]).ok();
    assert_eq!(o.stdout.trim(), "137");
    let o = f
        .berth(&["inspect", "-f", "{{.State.OOMKilled}}", "bg"])
        .ok();
    assert_eq!(o.stdout.trim(), "true");

    let o = f
        .berth(&["run", "--name", "fits", "-m", "16m", "bb:1", "true"])
        .ok();
    drop(o);
    let o = f
        .berth(&["inspect", "-f", "{{.State.OOMKilled}}", "fits"])
        .ok();
    assert_eq!(o.stdout.trim(), "false");
    f.berth(&["rm", "fg", "bg", "fits"]).ok();
    f.assert_clean();
}
