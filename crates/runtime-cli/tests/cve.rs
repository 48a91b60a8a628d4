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

/// A copy of the runtime binary in its own temp dir, so an exploit that
/// works can only damage the copy.
fn runtime_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("berth-runtime");
    std::fs::copy(BIN, &bin).unwrap();
    (dir, bin)
}

fn sha256(path: &std::path::Path) -> String {
    let o = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

/// `#!/proc/self/exe`: a script that names its exec'ing process's own
/// executable as interpreter, plus the loader and libraries the runtime
/// binary needs (every Debian image has them), so that the host binary
/// would really run inside the container.
fn plant_shebang_exploit(b: &Bundle) {
    use std::os::unix::fs::PermissionsExt;
    // Without ldd (the v2 lane's guest) the script alone is planted: the
    // assertions on what ran still hold.
    let ldd = std::process::Command::new("ldd")
        .arg(BIN)
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    for lib in String::from_utf8_lossy(&ldd)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let dest = b.rootfs().join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(lib, &dest).unwrap();
    }
    let evil = b.rootfs().join("bin/evil");
    std::fs::write(&evil, "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// CVE-2019-5736, the exploit itself: a container program whose interpreter
/// is `/proc/self/exe` must not run the host runtime binary, as the
/// container's entrypoint (create/start) nor through `exec`; a second
/// container process that opens every `/proc/<pid>/exe` it sees and writes
/// to it once that process is gone must never reach the host binary, whose
/// hash never changes.
#[test]
fn cve_2019_5736_shebang_reentry_never_runs_the_host_binary() {
    let (_keep, bin) = runtime_copy();
    let hash = sha256(&bin);
    let rt = RuntimeCli::new(&bin);

    // The entrypoint path.
    let (mut b, id) = bundle(&rt, &["/bin/evil", "state", "x"]);
    plant_shebang_exploit(&b);
    b.write();
    let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(
        o.stderr
            .contains("berth-exec: this program only starts a container's process"),
        "the entrypoint ran something else: {o:?}"
    );
    assert_eq!(o.code, 126, "{o:?}");

    // The exec path, with a watcher in the container.
    let watcher = r#"
        end=$(( $(date +%s) + 120 ))
        while [ ! -e /tmp/stop ] && [ $(date +%s) -lt $end ]; do
          for e in /proc/[0-9]*/exe; do
            p=${e%/exe}
            case $p in /proc/1|/proc/$$) continue;; esac
            command exec 3<$e 2>/dev/null || continue
            if [ /proc/self/fd/3 -ef /bin/busybox ]; then exec 3<&-; continue; fi
            echo "opened $(readlink $e)" >> /tmp/report
            while [ -e $p/exe ]; do :; done
            if (echo PWNED >> /proc/self/fd/3) 2>/dev/null; then echo "WROTE $(readlink /proc/self/fd/3)" >> /tmp/report; fi
            exec 3<&-
          done
        done
        echo finished >> /tmp/report
    "#;
    let (mut b, id) = bundle(&rt, &["sh", "-c", watcher]);
    b.config["root"]["readonly"] = json!(false);
    plant_shebang_exploit(&b);
    b.write();
    rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &id])
        .ok();
    rt.run(&["start", &id]).ok();
    for _ in 0..15 {
        let o = rt.run(&["exec", &id, "/bin/evil", "state", "x"]);
        assert!(
            o.stderr
                .contains("berth-exec: this program only starts a container's process"),
            "exec ran something else: {o:?}"
        );
        assert_eq!(o.code, 126, "{o:?}");
    }
    std::fs::write(b.rootfs().join("tmp/stop"), "").unwrap();
    let report = b.rootfs().join("tmp/report");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&report)
        .unwrap_or_default()
        .contains("finished")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let report = std::fs::read_to_string(&report).unwrap();
    assert!(
        !report.contains("WROTE"),
        "a container process wrote an executable: {report}"
    );
    assert!(
        !report.contains(bin.to_str().unwrap()),
        "a container process opened the host runtime binary: {report}"
    );
    rt.run(&["delete", "--force", &id]).ok();
    assert_eq!(sha256(&bin), hash, "the runtime binary changed");
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

/// Security issue 11, item 8 (the CVE-2019-16884 / CVE-2025-52881 class):
/// with `/evil -> /proc` in the image, a mount at `/evil/sys` is a mount
/// over procfs and is refused, and a bind at `/evil/sys/net` cannot turn a
/// sysctl into a write to a host file.
#[test]
fn mounts_and_sysctls_cannot_reach_procfs_through_an_image_symlink() {
    let rt = RuntimeCli::new(BIN);
    // A tmpfs over /proc/sys, spelled through the link.
    let (mut b, id) = bundle(&rt, &["true"]);
    std::os::unix::fs::symlink("/proc", b.rootfs().join("evil")).unwrap();
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/evil/sys", "type": "tmpfs", "source": "tmpfs"}));
    let index = mounts.len() - 1;
    b.write();
    let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains(&format!("mounts[{index}].destination")) && o.stderr.contains("procfs"),
        "{}",
        o.stderr
    );
    assert!(mounts_containing(b.path().to_str().unwrap()).is_empty());

    // A bind of a host directory at /evil/sys/net, and a sysctl that would land in it.
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(host.path().join("ipv4")).unwrap();
    let forward = host.path().join("ipv4/ip_forward");
    std::fs::write(&forward, "host file\n").unwrap();
    let (mut b, id) = bundle(&rt, &["true"]);
    std::os::unix::fs::symlink("/proc", b.rootfs().join("evil")).unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/evil/sys/net", "type": "bind",
        "source": host.path(), "options": ["rbind", "rw"]
    }));
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    b.write();
    let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("procfs"), "{}", o.stderr);
    assert_eq!(std::fs::read_to_string(&forward).unwrap(), "host file\n");
    assert!(mounts_containing(b.path().to_str().unwrap()).is_empty());
}
