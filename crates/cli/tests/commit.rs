//! `commit`: a container's changes (added, changed, deleted files, an
//! opaque directory, a symlink) become a new image's layer; the new
//! image carries the container's command and environment, `-c` changes,
//! the message and author; its containers see exactly the changes; mount
//! points are not committed; a running container is paused meanwhile and
//! runs on after.

mod common;
use common::Fixture;

#[test]
fn a_committed_container_becomes_an_image_with_its_changes() {
    let f = Fixture::new();
    let script = "echo added > /added; echo changed > /etc/passwd; rm /bin/vi; \
                  rm -r /home; mkdir -p /home/new; echo fresh > /home/new/f; \
                  ln -s /added /link; mkfifo /fifo";
    f.berth(&[
        "run",
        "--name",
        "src",
        "-e",
        "FROM_RUN=1",
        "-w",
        "/tmp",
        "bb:1",
        "sh",
        "-c",
        script,
    ])
    .ok();
    let o = f
        .berth(&[
            "commit",
            "-m",
            "the message",
            "-a",
            "Ann <ann@example.com>",
            "-c",
            "EXPOSE 8080",
            "-c",
            "LABEL team=infra",
            "src",
            "made:1",
        ])
        .ok();
    let id = o.stdout.trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{o:?}");

    let check = "cat /added /etc/passwd /home/new/f; readlink /link; \
                 test -p /fifo && echo fifo; test -e /bin/vi || echo no-vi; \
                 ls /home; test -e /home/user || echo no-user; \
                 test -s /etc/hosts && echo hosts-is-ours; echo $FROM_RUN; pwd";
    let o = f.run(&["made:1", "sh", "-c", check]).ok();
    assert_eq!(
        o.stdout,
        "added\nchanged\nfresh\n/added\nfifo\nno-vi\nnew\nno-user\nhosts-is-ours\n1\n/tmp\n"
    );

    // The config: the container's command, the -c changes; history has the message.
    let o = f.berth(&["image", "inspect", "made:1"]).ok();
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let img = if v.is_array() { &v[0] } else { &v };
    let cfg = &img["Config"];
    assert_eq!(cfg["Cmd"][0], "sh", "{img}");
    assert_eq!(
        cfg["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}}),
        "{img}"
    );
    assert_eq!(cfg["Labels"]["team"], "infra", "{img}");
    assert!(!cfg["Env"].to_string().contains("HOSTNAME"), "{img}");
    assert_eq!(img["Author"], "Ann <ann@example.com>", "{img}");
    let o = f.berth(&["history", "made:1"]).ok();
    assert!(o.stdout.contains("the message"), "{o:?}");

    // A running container: paused for the commit, running after.
    f.berth(&[
        "run",
        "-d",
        "--name",
        "live",
        "bb:1",
        "sh",
        "-c",
        "echo live > /live; sleep 100",
    ])
    .ok();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while f.berth(&["exec", "live", "cat", "/live"]).stdout != "live\n" {
        assert!(std::time::Instant::now() < end);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    f.berth(&["commit", "live", "made:2"]).ok();
    let o = f
        .berth(&["inspect", "-f", "{{.State.Status}}", "live"])
        .ok();
    assert_eq!(o.stdout.trim(), "running");
    let o = f.run(&["made:2", "cat", "/live"]).ok();
    assert_eq!(o.stdout, "live\n");

    // No name: refused (berth keeps images by name); an unknown container.
    let o = f.berth(&["commit", "live"]);
    assert!(o.code != 0 && o.stderr.contains("REPOSITORY"), "{o:?}");
    let o = f.berth(&["commit", "nosuch", "x:1"]);
    assert!(
        o.code != 0 && o.stderr.contains("no such container"),
        "{o:?}"
    );
    let o = f.berth(&["commit", "-c", "RUN make", "src", "x:1"]);
    assert!(o.code != 0 && o.stderr.contains("RUN make"), "{o:?}");
    f.berth(&["rm", "-f", "src", "live"]).ok();
    f.berth(&["rmi", "made:1", "made:2"]).ok();
    f.assert_clean();
}
