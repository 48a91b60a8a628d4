//! `events`: what the engine did, in order, with Docker's types, actions
//! and attributes; filters; `--format`; and following new events live.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::Fixture;

#[test]
fn events_are_logged_filtered_and_followed() {
    let f = Fixture::new();
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    f.berth(&["run", "--rm", "--name", "ev1", "bb:1", "sh", "-c", "exit 3"]);
    f.berth(&["run", "-d", "--name", "ev2", "bb:1", "sleep", "100"])
        .ok();
    f.berth(&["pause", "ev2"]).ok();
    f.berth(&["unpause", "ev2"]).ok();
    f.berth(&["rename", "ev2", "ev3"]).ok();
    f.berth(&["volume", "create", "evv"]).ok();
    f.berth(&["volume", "rm", "evv"]).ok();
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let o = f
        .berth(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--format",
            "{{.Type}} {{.Action}}",
        ])
        .ok();
    // (The fixture's import may fall in the same second.)
    let got: Vec<&str> = o
        .stdout
        .lines()
        .filter(|l| !l.starts_with("image "))
        .collect();
    assert_eq!(
        got,
        [
            "container create",
            "container start",
            "container die",
            "container destroy",
            "container create",
            "container start",
            "container pause",
            "container unpause",
            "container rename",
            "volume create",
            "volume destroy",
        ],
        "{o:?}"
    );
    let o = f
        .berth(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "-f",
            "container=ev1",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ])
        .ok();
    assert_eq!(o.stdout, "create ev1\nstart ev1\ndie ev1\ndestroy ev1\n");
    let o = f
        .berth(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "-f",
            "event=rename",
            "--format",
            "{{.Actor.Attributes.oldName}}>{{.Actor.Attributes.name}}",
        ])
        .ok();
    assert_eq!(o.stdout, "ev2>ev3\n");
    let o = f
        .berth(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "-f",
            "event=die",
            "--format",
            "{{json .Actor.Attributes}}",
        ])
        .ok();
    assert_eq!(
        o.stdout,
        "{\"exitCode\":\"3\",\"image\":\"bb:1\",\"name\":\"ev1\"}\n"
    );
    let o = f
        .berth(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "-f",
            "type=volume",
            "-f",
            "event=create",
        ])
        .ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].contains(" volume create evv (driver=local)"),
        "{o:?}"
    );

    // Live: a follower sees a stop it did not wait for.
    let mut follower = f
        .command(&["events", "-f", "container=ev3", "--format", "{{.Action}}"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    f.berth(&["stop", "-t", "0", "ev3"]).ok();
    let mut reader = BufReader::new(follower.stdout.take().unwrap());
    let mut seen = vec![];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.contains(&"stop".to_string()) && Instant::now() < deadline {
        let mut l = String::new();
        if reader.read_line(&mut l).unwrap() == 0 {
            break;
        }
        seen.push(l.trim().to_string());
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(
        seen.contains(&"die".to_string()) && seen.contains(&"stop".to_string()),
        "{seen:?}"
    );
    let o = f.berth(&["events", "-f", "colour=red"]);
    assert!(o.code != 0 && o.stderr.contains("colour=red"), "{o:?}");
    f.berth(&["rm", "ev3"]).ok();
    f.assert_clean();
}

#[test]
fn image_and_exec_events_are_logged() {
    let f = Fixture::new();
    f.berth(&["tag", "bb:1", "bb:again"]).ok();
    f.berth(&["rmi", "bb:again"]).ok();
    let archive = f.dir.path().join("bb.tar");
    f.berth(&["save", "-o", archive.to_str().unwrap(), "bb:1"])
        .ok();
    f.berth(&["load", "-q", "-i", archive.to_str().unwrap()])
        .ok();
    f.berth(&["run", "-d", "--name", "ex", "bb:1", "sleep", "100"])
        .ok();
    f.berth(&["exec", "ex", "sh", "-c", "exit 4"]);
    let o = f
        .berth(&[
            "events",
            "--since",
            "0",
            "--until",
            "0s",
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
        ])
        .ok();
    let lines: Vec<&str> = o
        .stdout
        .lines()
        .filter(|l| l.starts_with("image") || l.contains("exec_"))
        .collect();
    assert_eq!(
        lines,
        [
            "image import bb:1",
            "image tag bb:again",
            "image untag bb:again",
            "image save bb:1",
            "image load bb:1",
            "container exec_create: sh -c exit 4 ex",
            "container exec_start: sh -c exit 4 ex",
            "container exec_die ex",
        ],
        "{}",
        o.stdout
    );
    let o = f
        .berth(&[
            "events",
            "--since",
            "0",
            "--until",
            "0s",
            "-f",
            "type=image",
            "-f",
            "event=tag",
            "--format",
            "{{.Action}}",
        ])
        .ok();
    assert_eq!(o.stdout, "tag\n");
    f.berth(&["rm", "-f", "ex"]).ok();
    f.assert_clean();
}
