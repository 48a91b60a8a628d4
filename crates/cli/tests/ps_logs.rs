//! `ps --filter` and `--format` as scripts use them, `logs --since` and
//! `--until`, and listings piped into a reader that stops early.

mod common;
use common::Fixture;

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn ps_filters_and_formats() {
    let f = Fixture::new();
    f.berth(&["run", "--name", "ok0", "-l", "tier=web", "bb:1", "true"])
        .ok();
    let o = f.berth(&[
        "run", "--name", "bad3", "-l", "tier=db", "bb:1", "sh", "-c", "exit 3",
    ]);
    assert_eq!(o.code, 3);
    f.berth(&["create", "--name", "made", "bb:1", "true"]).ok();
    let up = f
        .berth(&[
            "run", "-d", "--name", "up1", "-l", "tier=web", "bb:1", "sleep", "100",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let names = |args: &[&str]| {
        let mut full = vec!["ps", "--format", "{{.Names}}"];
        full.extend_from_slice(args);
        let mut v: Vec<String> = f
            .berth(&full)
            .ok()
            .stdout
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&[]), ["up1"]);
    assert_eq!(names(&["-a"]), ["bad3", "made", "ok0", "up1"]);
    assert_eq!(names(&["-f", "status=exited"]), ["bad3", "ok0"]);
    assert_eq!(names(&["-f", "status=created"]), ["made"]);
    assert_eq!(names(&["-f", "exited=3"]), ["bad3"]);
    assert_eq!(names(&["-a", "-f", "label=tier=web"]), ["ok0", "up1"]);
    assert_eq!(names(&["-a", "-f", "label=tier"]), ["bad3", "ok0", "up1"]);
    assert_eq!(names(&["-a", "-f", "name=ok"]), ["ok0"]);
    assert_eq!(names(&["-a", "-f", &format!("id={}", &up[..6])]), ["up1"]);
    assert_eq!(
        names(&["-a", "-f", "ancestor=bb:1", "-f", "label=tier=db"]),
        ["bad3"]
    );
    // The same key twice is an OR.
    assert_eq!(
        names(&["-a", "-f", "name=ok0", "-f", "name=made"]),
        ["made", "ok0"]
    );
    let o = f.berth(&["ps", "-aq", "-f", "name=up1"]).ok();
    assert_eq!(o.stdout.trim(), &up[..12]);

    // table: a header, columns aligned; json: the fields.
    let o = f
        .berth(&["ps", "--format", "table {{.ID}}\\t{{.Names}}\\t{{.State}}"])
        .ok();
    assert_eq!(
        lines(&o.stdout),
        [
            "CONTAINER ID   NAMES   STATE".to_string(),
            format!("{}   up1     running", &up[..12])
        ]
    );
    let o = f
        .berth(&["ps", "--format", "{{json .}}", "--no-trunc"])
        .ok();
    let v: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap();
    assert_eq!(v["ID"], up.as_str());
    assert_eq!(v["Labels"], "tier=web");
    assert!(v["Status"].as_str().unwrap().starts_with("Up "), "{v}");
    // Go's template language: range, index, if, pipelines, Docker's functions.
    let t = "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}} {{index .Config.Labels \"tier\"}} \
             {{if .State.Running}}up{{else}}down{{end}} {{.Name | upper}} {{join .Config.Cmd \",\"}}";
    let o = f.berth(&["inspect", "-f", t, "up1"]).ok();
    assert_eq!(o.stdout.trim(), "tier=web; web up /UP1 sleep,100");
    let o = f
        .berth(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}}{{if eq .Names \"up1\"}}*{{end}}",
        ])
        .ok();
    assert!(o.stdout.lines().any(|l| l == "up1*"), "{o:?}");
    for (args, needle) in [
        (vec!["ps", "-f", "colour=red"], "colour=red"),
        (vec!["ps", "-f", "status=sleepy"], "status"),
        (vec!["ps", "-f", "noequals"], "KEY=VALUE"),
        (vec!["ps", "--format", "{{.Nope}}"], "Nope"),
    ] {
        let o = f.berth(&args);
        assert_ne!(o.code, 0, "{args:?}: {o:?}");
        assert!(o.stderr.contains(needle), "{args:?}: {}", o.stderr);
    }
    f.berth(&["rm", "-f", "ok0", "bad3", "made", "up1"]).ok();
    f.assert_clean();
}

#[test]
fn logs_since_and_until() {
    let f = Fixture::new();
    f.berth(&[
        "run",
        "-d",
        "--name",
        "lg",
        "bb:1",
        "sh",
        "-c",
        "echo first; sleep 1.5; echo second",
    ])
    .ok();
    let o = f.berth(&["wait", "lg"]).ok();
    assert_eq!(o.stdout.trim(), "0");
    let o = f.berth(&["logs", "-t", "lg"]).ok();
    let l = lines(&o.stdout);
    assert_eq!(l.len(), 2, "{o:?}");
    let first_time = l[0].split(' ').next().unwrap().to_string();
    let second_time = l[1].split(' ').next().unwrap().to_string();
    // --since the second line's time: only it; --until it: only the first.
    let o = f.berth(&["logs", "--since", &second_time, "lg"]).ok();
    assert_eq!(o.stdout, "second\n");
    let o = f.berth(&["logs", "--until", &second_time, "lg"]).ok();
    assert_eq!(o.stdout, "first\n");
    let o = f
        .berth(&[
            "logs",
            "--since",
            &first_time,
            "--until",
            &second_time,
            "lg",
        ])
        .ok();
    assert_eq!(o.stdout, "first\n");
    // Relative and Unix forms.
    assert_eq!(
        f.berth(&["logs", "--since", "1h", "lg"]).ok().stdout,
        "first\nsecond\n"
    );
    assert_eq!(f.berth(&["logs", "--until", "1h", "lg"]).ok().stdout, "");
    assert_eq!(
        f.berth(&["logs", "--since", "0", "--tail", "1", "lg"])
            .ok()
            .stdout,
        "second\n"
    );
    let o = f.berth(&["logs", "--since", "yesterday", "lg"]);
    assert!(o.code != 0 && o.stderr.contains("--since"), "{o:?}");
    f.berth(&["rm", "lg"]).ok();
    f.assert_clean();
}

#[test]
fn ps_filters_by_order_and_volume() {
    let f = Fixture::new();
    f.berth(&["run", "--name", "first", "bb:1", "true"]).ok();
    f.berth(&["run", "--name", "second", "-v", "psvol:/v", "bb:1", "true"])
        .ok();
    f.berth(&["run", "--name", "third", "bb:1", "true"]).ok();
    let names = |filter: &str| {
        f.berth(&["ps", "-a", "--filter", filter, "--format", "{{.Names}}"])
            .ok()
            .stdout
    };
    assert_eq!(names("before=third"), "second\nfirst\n");
    assert_eq!(names("since=first"), "third\nsecond\n");
    assert_eq!(names("volume=psvol"), "second\n");
    assert_eq!(names("volume=none-such"), "");
    let o = f.berth(&["ps", "--filter", "before=nosuch"]);
    assert!(o.code != 0 && o.stderr.contains("nosuch"), "{o:?}");
    f.berth(&["rm", "first", "second", "third"]).ok();
    f.berth(&["volume", "rm", "psvol"]).ok();
    f.assert_clean();
}

/// `berth ps | head -1`: a command that only prints dies of SIGPIPE
/// quietly when its reader has gone, as other Unix tools do (it used to
/// panic, "failed printing to stdout"); `run` keeps SIGPIPE ignored and
/// still removes its `--rm` container and gives the container's status.
#[test]
fn listings_end_quietly_when_their_reader_goes() {
    use std::os::unix::process::ExitStatusExt;
    let f = Fixture::new();
    f.berth(&["create", "--name", "listed", "bb:1", "true"])
        .ok();
    let closed = || {
        let (r, w) = nix::unistd::pipe().unwrap();
        drop(r);
        std::process::Stdio::from(w)
    };
    for args in [
        &["ps", "-a"][..],
        &["images"],
        &["inspect", "listed"],
        &["volume", "ls"],
    ] {
        let out = f
            .command(args)
            .stdout(closed())
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {out:?}"
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = f
        .command(&["run", "--rm", "bb:1", "sh", "-c", "echo a; exit 3"])
        .stdout(closed())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    f.berth(&["rm", "listed"]).ok();
    assert_eq!(f.berth(&["ps", "-aq"]).ok().stdout, "");
}
