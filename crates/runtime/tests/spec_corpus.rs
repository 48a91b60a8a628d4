//! Property test over hostile config.json (security issue 11, "keep them
//! closed"): the default spec with random fields replaced by random JSON
//! (wrong types, huge numbers, `..` paths, unknown names) is loaded and
//! validated, and is accepted or refused with an error, never a panic.
//! Bounded to keep CI fast.

use proptest::prelude::*;

/// The fields a hostile config changes (JSON pointers).
const FIELDS: &[&str] = &[
    "/process/args",
    "/process/cwd",
    "/process/user/uid",
    "/process/capabilities/bounding",
    "/process/rlimits",
    "/process/env",
    "/root/path",
    "/hostname",
    "/mounts",
    "/mounts/0/destination",
    "/mounts/0/options",
    "/linux/namespaces",
    "/linux/uidMappings",
    "/linux/resources",
    "/linux/resources/memory/limit",
    "/linux/seccomp",
    "/linux/sysctl",
    "/linux/maskedPaths",
    "/linux/devices",
    "/linux/cgroupsPath",
    "/hooks",
];

fn value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        prop_oneof![
            Just("../../../etc".to_string()),
            Just("/proc/sys".to_string()),
            Just("CAP_BOGUS".to_string()),
            Just("".to_string()),
            Just("/".to_string()),
            "[a-zA-Z_/.:=-]{0,16}",
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("type"),
                        Just("path"),
                        Just("destination"),
                        Just("source"),
                        Just("limit"),
                        Just("hostID"),
                        Just("size"),
                        Just("names"),
                        Just("action")
                    ],
                    inner
                ),
                0..4
            )
            .prop_map(|kv| serde_json::Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hostile_configs_are_refused_or_accepted_never_panic(
        changes in proptest::collection::vec((0..FIELDS.len(), value()), 1..4)
    ) {
        let bundle = tempfile::tempdir().unwrap();
        std::fs::create_dir(bundle.path().join("rootfs")).unwrap();
        let spec = runtime::spec_default::default_spec(false).unwrap();
        let mut json = serde_json::to_value(&spec).unwrap();
        json["root"]["path"] = serde_json::json!("rootfs");
        for (field, v) in changes {
            if let Some(slot) = json.pointer_mut(FIELDS[field]) {
                *slot = v;
            }
        }
        std::fs::write(
            bundle.path().join("config.json"),
            serde_json::to_vec(&json).unwrap(),
        )
        .unwrap();
        // Either outcome is fine; a panic fails the property. An accepted
        // spec's seccomp profile goes through the compiler too.
        if let Ok(b) = runtime::spec::load(bundle.path()) {
            if let Some(profile) = b.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
                let _ = runtime::seccomp::compile(profile);
            }
        }
    }
}
