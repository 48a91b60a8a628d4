//! What docs/architecture.md lists as not implemented yet is refused with
//! a clear error naming the field, and the list stays true: when one of
//! these starts to work, this test fails until the doc says so.

use serde_json::{json, Value};
use test_support::{unique_id, Bundle, RuntimeCli};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// A change that asks the spec for an unsupported feature.
type Edit = Box<dyn Fn(&mut Value)>;

/// (the name docs/architecture.md uses, the field the error names, the change to the spec).
fn listed() -> Vec<(&'static str, &'static str, Edit)> {
    vec![
        (
            "AppArmor",
            "process.apparmorProfile",
            Box::new(|c: &mut Value| c["process"]["apparmorProfile"] = json!("docker-default")),
        ),
        (
            "SELinux",
            "process.selinuxLabel",
            Box::new(|c: &mut Value| {
                c["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0")
            }),
        ),
        (
            "`linux.netDevices`",
            "linux.netDevices",
            Box::new(|c: &mut Value| c["linux"]["netDevices"] = json!({"dummy0": {}})),
        ),
        (
            "`linux.memoryPolicy`",
            "linux.memoryPolicy",
            Box::new(|c: &mut Value| {
                c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"})
            }),
        ),
        (
            "`linux.intelRdt`",
            "linux.intelRdt",
            Box::new(|c: &mut Value| c["linux"]["intelRdt"] = json!({"closID": "x"})),
        ),
    ]
}

#[test]
fn each_listed_unsupported_field_is_refused_by_name() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/architecture.md"
    ))
    .unwrap();
    let rt = RuntimeCli::new(BIN);
    for (doc_name, field, change) in listed() {
        assert!(
            doc.contains(doc_name),
            "docs/architecture.md no longer lists {doc_name}: drop it here too"
        );
        let mut b = Bundle::new(rt.default_spec());
        b.set_args(&["true"]);
        let id = unique_id("unsup");
        b.set_unique_cgroup(&id);
        change(&mut b.config);
        b.write();
        let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
        assert_ne!(
            o.code, 0,
            "{doc_name} works now: say so in docs/architecture.md ({o:?})"
        );
        assert!(
            o.stderr.contains(field),
            "{doc_name}: the error should name {field}: {}",
            o.stderr
        );
        assert!(
            !rt.root().join(&id).exists(),
            "{doc_name}: state left behind"
        );
    }
}

#[test]
fn the_systemd_cgroup_driver_is_refused_without_systemd() {
    let rt = RuntimeCli::new(BIN);
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/architecture.md"
    ))
    .unwrap();
    assert!(doc.contains("the systemd cgroup driver"));
    if std::path::Path::new("/run/systemd/system").exists() {
        return;
    }
    let o = rt.run(&["--systemd-cgroup", "list"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("--systemd-cgroup"), "{}", o.stderr);
}
