//! Hooks run at their points of the lifecycle, in order, each with the
//! container's state JSON on stdin.

use serde_json::{json, Value};
use test_support::{unique_id, Bundle, RuntimeCli};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

#[test]
fn hooks_run_in_order_with_state_on_stdin() {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&["true"]);
    let id = unique_id("hooks");
    b.set_unique_cgroup(&id);
    let log = tempfile::tempdir().unwrap();
    let host_log = log.path().join("log");
    // Runtime-namespace hooks append "<kind> <state json>" to the host log.
    let host_hook = |kind: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("printf '{kind} ' >> {0}; cat >> {0}; echo >> {0}", host_log.display())]});
    // startContainer runs inside the container: it writes to a bind-mounted dir.
    b.config["mounts"].as_array_mut().unwrap().push(json!({"destination": "/hooklog", "type": "bind", "source": log.path(), "options": ["rbind"]}));
    b.config["hooks"] = json!({
        "prestart": [host_hook("prestart")],
        "createRuntime": [host_hook("createRuntime")],
        "createContainer": [host_hook("createContainer")],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "printf 'startContainer ' >> /hooklog/log; cat >> /hooklog/log; echo >> /hooklog/log"]}],
        "poststart": [host_hook("poststart")],
        "poststop": [host_hook("poststop")],
    });
    b.write();
    rt.run(&["run", "--bundle", b.path().to_str().unwrap(), &id])
        .ok();
    let text = std::fs::read_to_string(&host_log).unwrap();
    let kinds: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "{text}"
    );
    for line in text.lines() {
        let (kind, state) = line.split_once(' ').unwrap();
        let v: Value = serde_json::from_str(state)
            .unwrap_or_else(|e| panic!("{kind}: bad state {state:?}: {e}"));
        assert_eq!(v["id"], json!(id), "{kind}");
        assert!(
            v["pid"].as_i64().unwrap() > 0 || kind == "poststop",
            "{kind}: {v}"
        );
    }
}

#[test]
fn hook_timeout_kills_the_hook_and_fails_create() {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&["true"]);
    let id = unique_id("hooks");
    b.set_unique_cgroup(&id);
    b.config["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]});
    b.write();
    let start = std::time::Instant::now();
    let o = rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("timed out"), "{}", o.stderr);
    assert!(start.elapsed().as_secs() < 10);
    assert!(!rt.root().join(&id).exists());
}

/// Security issue 11, item 12: the timeout covers writing the state to the
/// hook's stdin. With a state past the pipe's 64 KiB, a hook that never
/// reads its stdin is still killed at its deadline and fails create.
#[test]
fn hook_timeout_holds_when_the_hook_never_reads_a_large_state() {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&["true"]);
    let id = unique_id("hooks");
    b.set_unique_cgroup(&id);
    b.config["annotations"] = json!({"big": "x".repeat(200 * 1024)});
    b.config["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "20"], "timeout": 1}]});
    b.write();
    let start = std::time::Instant::now();
    let o = rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_ne!(
        o.code, 0,
        "a hook past its deadline must fail create: {o:?}"
    );
    assert!(o.stderr.contains("timed out"), "{}", o.stderr);
    assert!(
        start.elapsed().as_secs() < 10,
        "create waited {:?} for a 1 s hook",
        start.elapsed()
    );
    assert!(!rt.root().join(&id).exists());
}
