//! The v2 device program loads into this kernel and attaches to a real
//! cgroup2 directory (the host's cgroup2 mount, also on a hybrid host).

use oci_spec::runtime::LinuxDeviceCgroup;

#[test]
fn device_program_loads_and_attaches() {
    let h = cgroups::Hierarchy::detect().unwrap();
    let Some(unified) = h.unified_mount() else {
        panic!("no cgroup2 mount on this host");
    };
    let dir = unified.join(format!("berth-test-devfilter-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    let rules: Vec<LinuxDeviceCgroup> = serde_json::from_str(r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]"#).unwrap();
    let first = cgroups::device_filter::attach(&dir, &rules);
    // Attaching again replaces the first program rather than stacking a second.
    let second = cgroups::device_filter::attach(&dir, &rules);
    std::fs::remove_dir(&dir).unwrap();
    first.unwrap();
    second.unwrap();
}
