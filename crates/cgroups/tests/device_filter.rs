//! The v2 device program decides what a process in its cgroup may open, on
//! a real cgroup2 directory (the host's cgroup2 mount, also on a hybrid
//! host), and attaching again replaces the program rather than stacking.

use oci_spec::runtime::LinuxDeviceCgroup;

/// Opens /dev/null and /dev/zero from a process placed in `dir` and says
/// which opens succeeded.
fn opens_from(dir: &std::path::Path) -> String {
    use std::os::unix::process::CommandExt;
    let procs = dir.join("cgroup.procs");
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args([
        "-c",
        "(: </dev/null) 2>/dev/null && echo null-ok || echo null-denied; (: </dev/zero) 2>/dev/null && echo zero-ok || echo zero-denied",
    ]);
    // SAFETY: only writes the child's own pid to a file before exec.
    unsafe {
        cmd.pre_exec(move || std::fs::write(&procs, std::process::id().to_string()));
    }
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn device_program_decides_opens_and_a_second_attach_replaces_it() {
    let h = cgroups::Hierarchy::detect().unwrap();
    let Some(unified) = h.unified_mount() else {
        panic!("no cgroup2 mount on this host");
    };
    let dir = unified.join(format!("berth-test-devfilter-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    let only_null: Vec<LinuxDeviceCgroup> = serde_json::from_str(r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]"#).unwrap();
    let null_and_zero: Vec<LinuxDeviceCgroup> = serde_json::from_str(r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":5,"access":"r"}]"#).unwrap();
    let first = cgroups::device_filter::attach(&dir, &only_null).map(|_| opens_from(&dir));
    // Were the first program still attached beside the second, it would still deny /dev/zero.
    let second = cgroups::device_filter::attach(&dir, &null_and_zero).map(|_| opens_from(&dir));
    std::fs::remove_dir(&dir).unwrap();
    assert_eq!(first.unwrap(), "null-ok zero-denied");
    assert_eq!(second.unwrap(), "null-ok zero-ok");
}
