//! Bad input: each mistake gets a one-line error naming the field, path or
//! id, a non-zero exit, and leaves nothing behind (no state directory,
//! cgroup, mount or process).

use serde_json::json;
use test_support::{cgroup_dirs, mounts_containing, unique_id, Bundle, RuntimeCli};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// Creates a container from a bundle edited by `edit`; expects failure
/// whose message contains `needle`, and a clean host afterwards.
fn refused(needle: &str, edit: impl FnOnce(&mut Bundle)) {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&["true"]);
    let id = unique_id("bad");
    let cg = b.set_unique_cgroup(&id);
    edit(&mut b);
    let o = rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_ne!(o.code, 0, "create should fail: {o:?}");
    assert!(
        o.stderr.contains(needle),
        "error should mention {needle:?}: {}",
        o.stderr
    );
    assert_eq!(
        o.stderr.trim().lines().count(),
        1,
        "one-line error expected: {}",
        o.stderr
    );
    assert!(!rt.root().join(&id).exists(), "state directory left behind");
    assert!(cgroup_dirs(&cg).is_empty(), "cgroup left behind");
    assert!(
        mounts_containing(b.path().to_str().unwrap()).is_empty(),
        "mounts left behind"
    );
    assert!(
        test_support::processes_containing(&id).is_empty(),
        "process left behind"
    );
}

#[test]
fn missing_config_json() {
    refused("config.json", |b| {
        std::fs::remove_file(b.path().join("config.json")).unwrap()
    });
}

#[test]
fn invalid_json() {
    refused("config.json", |b| {
        std::fs::write(b.path().join("config.json"), "{ not json").unwrap()
    });
}

#[test]
fn unknown_namespace_type() {
    refused("unknown variant `bogus`", |b| {
        b.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "bogus"}));
        b.write();
    });
}

/// Issue 13, item 5: runc mounts on the host when a config has no mount
/// namespace; berth refuses and says why and what to add.
#[test]
fn no_mount_namespace_is_refused_with_the_reason() {
    refused("host's mount table", |b| {
        b.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "mount");
        b.write();
    });
}

#[test]
fn duplicate_namespace() {
    refused("linux.namespaces[6].type", |b| {
        b.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "pid"}));
        b.write();
    });
}

#[test]
fn missing_rootfs() {
    refused("root.path", |b| {
        std::fs::remove_dir_all(b.rootfs()).unwrap()
    });
}

#[test]
fn missing_program() {
    refused("no-such-program", |b| {
        b.set_args(&["no-such-program"]);
    });
}

#[test]
fn host_sysctl_is_refused() {
    refused("linux.sysctl[\"kernel.panic\"]", |b| {
        b.config["linux"]["sysctl"] = json!({"kernel.panic": "1"});
        b.write();
    });
}

#[test]
fn relative_mount_destination() {
    refused("mounts[7].destination", |b| {
        b.config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "relative/path", "type": "tmpfs", "source": "tmpfs"}));
        b.write();
    });
}

#[test]
fn missing_bind_source() {
    refused("/nonexistent/berth/source", |b| {
        b.config["mounts"].as_array_mut().unwrap().push(json!({"destination": "/x", "type": "bind", "source": "/nonexistent/berth/source", "options": ["bind"]}));
        b.write();
    });
}

#[test]
fn mount_over_proc_is_refused() {
    refused("mounts[7].destination", |b| {
        b.config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/proc/sys", "type": "tmpfs", "source": "tmpfs"}));
        b.write();
    });
}

#[test]
fn failing_hook_aborts_create() {
    refused("createRuntime hook /bin/false", |b| {
        b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
        b.write();
    });
}

#[test]
fn duplicate_id_is_refused_and_first_container_survives() {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&["sleep", "100"]);
    let id = unique_id("dup");
    b.set_unique_cgroup(&id);
    rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &id])
        .ok();
    let o = rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("already exists") && o.stderr.contains(&id),
        "{}",
        o.stderr
    );
    assert_eq!(rt.status(&id).as_deref(), Some("created"));
    rt.run(&["delete", "--force", &id]).ok();
}

#[test]
fn unknown_id_is_named() {
    let rt = RuntimeCli::new(BIN);
    for cmd in [
        vec!["state", "nope-xyz"],
        vec!["start", "nope-xyz"],
        vec!["kill", "nope-xyz"],
        vec!["delete", "nope-xyz"],
    ] {
        let o = rt.run(&cmd);
        assert_ne!(o.code, 0);
        assert!(
            o.stderr.contains("\"nope-xyz\" does not exist"),
            "{cmd:?}: {}",
            o.stderr
        );
    }
}

#[test]
fn malformed_id_is_refused() {
    let rt = RuntimeCli::new(BIN);
    let o = rt.run(&["state", "../escape"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("invalid container id"), "{}", o.stderr);
    // Security issue 11, item 14: an id too long for a directory name is
    // refused up front with the rule, not by mkdir.
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&["true"]);
    let long = "a".repeat(300);
    let o = rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &long]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("invalid container id") && o.stderr.contains("longer than 255 bytes"),
        "{}",
        o.stderr
    );
}

#[test]
fn unknown_signal_is_refused() {
    let rt = RuntimeCli::new(BIN);
    let o = rt.run(&["kill", "whatever", "SIGNOPE"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("SIGNOPE"), "{}", o.stderr);
}

#[test]
fn unknown_capability_is_refused() {
    refused("CAP_BOGUS", |b| {
        b.config["process"]["capabilities"]["bounding"] = json!(["CAP_BOGUS"]);
        b.write();
    });
}

/// Security issue 11, item 13: a size that overflows is refused, not wrapped.
#[test]
fn update_refuses_a_size_that_overflows() {
    let rt = RuntimeCli::new(BIN);
    for (size, needle) in [
        ("17179869185g", "too large"),
        ("9223372036854775807k", "too large"),
        ("-5m", "not a size"),
    ] {
        let flag = format!("--memory={size}");
        let o = rt.run(&["update", &flag, "no-such-container"]);
        assert_ne!(o.code, 0, "{size}: {o:?}");
        assert!(o.stderr.contains(needle), "{size}: {}", o.stderr);
        assert!(o.stderr.contains(size), "{size}: {}", o.stderr);
    }
}

/// Security issue 11, item 14: the host's / as the container root is
/// refused up front, as runc does.
#[test]
fn host_root_as_rootfs_is_refused() {
    refused("root.path", |b| {
        b.config["root"]["path"] = json!("/");
        b.write();
    });
}

/// Security issue 11, item 14: a 100,000-character hostname is refused with
/// its field named (it once hid the real error behind an undecodable
/// message from the init).
#[test]
fn overlong_hostname_is_refused() {
    refused("hostname", |b| {
        b.config["hostname"] = json!("h".repeat(100_000));
        b.write();
    });
}
