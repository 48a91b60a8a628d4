//! `stats --no-stream` against what the containers really do (a busy loop
//! against an idle sleep, a memory limit), its `--format`, and `port`.

mod common;
use common::Fixture;

#[test]
fn stats_measure_and_port_says_what_is_published() {
    let f = Fixture::new();
    f.berth(&[
        "run",
        "-d",
        "--name",
        "busy",
        "bb:1",
        "sh",
        "-c",
        "while :; do :; done",
    ])
    .ok();
    f.berth(&[
        "run", "-d", "--name", "idle", "--memory", "64m", "bb:1", "sleep", "100",
    ])
    .ok();
    let o = f
        .berth(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}",
            "busy",
            "idle",
        ])
        .ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{o:?}");
    let cpu = |l: &str| -> f64 {
        l.split(' ')
            .nth(1)
            .unwrap()
            .trim_end_matches('%')
            .parse()
            .unwrap()
    };
    assert!(
        lines[0].starts_with("busy ") && cpu(lines[0]) > 20.0,
        "{o:?}"
    );
    assert!(
        lines[1].starts_with("idle ") && cpu(lines[1]) < 20.0,
        "{o:?}"
    );
    assert!(lines[1].ends_with(" / 64MiB 1"), "{o:?}");
    // The default table: Docker's header and one row per running container.
    let o = f.berth(&["stats", "--no-stream"]).ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(
        lines[0].starts_with("CONTAINER ID   NAME") && lines[0].ends_with("BLOCK I/O   PIDS"),
        "{o:?}"
    );
    assert_eq!(lines.len(), 3, "{o:?}");
    let o = f.berth(&["stats", "--no-stream", "nosuch"]);
    assert!(
        o.code != 0 && o.stderr.contains("no such container"),
        "{o:?}"
    );

    // port: nothing is published (networking is issue 15).
    assert_eq!(f.berth(&["port", "busy"]).ok().stdout, "");
    let o = f.berth(&["port", "busy", "80"]);
    assert!(
        o.code != 0
            && o.stderr
                .contains("no public port '80/tcp' published for busy"),
        "{o:?}"
    );
    f.berth(&["rm", "-f", "busy", "idle"]).ok();
    f.assert_clean();
}
