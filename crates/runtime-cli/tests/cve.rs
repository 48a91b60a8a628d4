//! Defenses against the known runtime CVEs, each shown failing for the
//! attacker from inside a container.

use serde_json::json;
use test_support::{mounts_containing, unique_id, Bundle, RuntimeCli};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn bundle(rt: &RuntimeCli, args: &[&str]) -> (Bundle, String) {
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(args);
    let id = unique_id("cve");
    b.set_unique_cgroup(&id);
    (b, id)
}

/// CVE-2019-5736: the container must not reach the host's runtime binary
/// through /proc/<pid>/exe. Before `start` the init is still the runtime
/// (forked, never re-executed); it is non-dumpable, so even container root
/// cannot open its exe.
#[test]
fn cve_2019_5736_runtime_binary_is_unreachable() {
    let rt = RuntimeCli::new(BIN);
    let (b, id) = bundle(&rt, &["sleep", "100"]);
    rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &id])
        .ok();
    let o = rt.run(&["exec", &id, "sh", "-c", "cat /proc/1/exe >/dev/null 2>&1 && echo read || echo denied; (echo x >> /proc/1/exe) 2>/dev/null && echo written || echo denied"]).ok();
    assert_eq!(
        o.stdout.lines().collect::<Vec<_>>(),
        ["denied", "denied"],
        "{}",
        o.stdout
    );
    let before = std::fs::metadata(BIN).unwrap().len();
    rt.run(&["delete", "--force", &id]).ok();
    assert_eq!(std::fs::metadata(BIN).unwrap().len(), before);
}

/// CVE-2024-21626: no host descriptor and no host working directory leak
/// into the container; a cwd through /proc/self/fd is refused.
#[test]
fn cve_2024_21626_no_host_fd_or_cwd_leaks() {
    let rt = RuntimeCli::new(BIN);
    let (b, id) = bundle(
        &rt,
        &[
            "sh",
            "-c",
            "for f in /proc/self/fd/*; do readlink $f; done; readlink /proc/self/cwd",
        ],
    );
    let o = rt
        .run(&["run", "--bundle", b.path().to_str().unwrap(), &id])
        .ok();
    for line in o.stdout.lines() {
        assert!(
            line.starts_with("pipe:")
                || line.starts_with("/dev/")
                || line.starts_with("socket:")
                || line == "/"
                || line.starts_with("/proc/")
                || line.starts_with("anon_inode:")
                || line.contains("(deleted)"),
            "host object visible in the container: {line}\n{}",
            o.stdout
        );
    }
    assert_eq!(o.stdout.lines().last(), Some("/"));

    for cwd in ["/proc/self/fd/3", "/proc/self/fd/4", "/proc/1/cwd"] {
        let (mut b, id) = bundle(&rt, &["pwd"]);
        b.config["process"]["cwd"] = json!(cwd);
        b.write();
        let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
        assert_ne!(o.code, 0, "cwd {cwd} was accepted: {o:?}");
    }
}

/// CVE-2021-30465 family: a symlink in the rootfs cannot redirect a mount
/// (or a created mount point) to the host.
#[test]
fn cve_2021_30465_symlinked_mount_target_stays_inside() {
    let rt = RuntimeCli::new(BIN);
    let host = tempfile::tempdir().unwrap();
    let (mut b, id) = bundle(
        &rt,
        &[
            "sh",
            "-c",
            "grep -c ' /escape/probe ' /proc/self/mountinfo; ls -d /escape/probe",
        ],
    );
    // Absolute and relative symlinks pointing at a host directory.
    std::os::unix::fs::symlink(host.path(), b.rootfs().join("escape")).unwrap();
    std::os::unix::fs::symlink(
        format!("../../../../../../../..{}", host.path().display()),
        b.rootfs().join("escape2"),
    )
    .unwrap();
    b.config["root"]["readonly"] = json!(false);
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/escape/probe", "type": "tmpfs", "source": "tmpfs"}));
    mounts.push(json!({"destination": "/escape2/probe2", "type": "tmpfs", "source": "tmpfs"}));
    b.write();
    let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(
        std::fs::read_dir(host.path()).unwrap().next().is_none(),
        "a mount point was created on the host: {o:?}"
    );
    assert!(
        mounts_containing(host.path().to_str().unwrap()).is_empty(),
        "a mount landed on the host"
    );
    assert_eq!(o.code, 0, "{o:?}");
}

/// Masked and read-only /proc paths hold through their aliases.
#[test]
fn masked_and_readonly_proc_paths_hold_through_aliases() {
    let rt = RuntimeCli::new(BIN);
    let (b, id) = bundle(&rt, &["sh", "-c", "wc -c < /proc/self/../timer_list; echo 1 > /proc/self/root/proc/sys/vm/drop_caches 2>/dev/null && echo written || echo refused; echo b > /proc/1/root/proc/sysrq-trigger 2>/dev/null && echo written || echo refused"]);
    let o = rt
        .run(&["run", "--bundle", b.path().to_str().unwrap(), &id])
        .ok();
    assert_eq!(
        o.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "refused", "refused"],
        "{}",
        o.stdout
    );
}
