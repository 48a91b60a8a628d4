//! Rootless: `spec --rootless` then `run` by an unprivileged user. The
//! container's root is the caller's uid on the host; with no delegated
//! cgroup the runtime says so in one line and goes on.

use std::os::unix::fs::MetadataExt;

use serde_json::json;
use test_support::{unique_id, Bundle};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");
const NOBODY: u32 = 65534;

fn as_nobody(args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(BIN)
        .args(args)
        .env_remove("XDG_RUNTIME_DIR");
    c
}

/// A state dir and a bundle owned by nobody, with the spec nobody's own
/// `spec --rootless` wrote (loaded into `config` for the test to edit).
fn rootless_bundle() -> (tempfile::TempDir, std::path::PathBuf, Bundle) {
    let work = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let state = work.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(NOBODY), Some(NOBODY)).unwrap();
    let mut b = Bundle::new(json!({}));
    std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(b.path())
        .status()
        .unwrap();
    // The unprivileged user writes its own spec.
    std::fs::remove_file(b.path().join("config.json")).unwrap();
    test_support::run_through_files(&mut as_nobody(&[
        "spec",
        "--rootless",
        "--bundle",
        b.path().to_str().unwrap(),
    ]))
    .ok();
    b.config =
        serde_json::from_slice(&std::fs::read(b.path().join("config.json")).unwrap()).unwrap();
    (work, state, b)
}

#[test]
fn unprivileged_user_runs_a_rootless_container() {
    let (_work, state, mut b) = rootless_bundle();
    b.config["process"]["terminal"] = json!(false);
    b.config["process"]["args"] = json!([
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; touch /tmp/owned"
    ]);
    b.config["root"]["readonly"] = json!(false);
    b.write();
    let id = unique_id("rootless");
    let o = test_support::run_through_files(&mut as_nobody(&[
        "--root",
        state.to_str().unwrap(),
        "run",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ]));
    assert_eq!(o.code, 0, "{o:?}");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "0", "root inside");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "65534", "1"]
    );
    assert_eq!(
        std::fs::metadata(b.rootfs().join("tmp/owned"))
            .unwrap()
            .uid(),
        NOBODY,
        "files belong to the caller on the host"
    );
    assert!(o.stderr.contains("no delegated cgroup"), "{}", o.stderr);
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    // Only the compiled seccomp filter stays, for the next container.
    let left: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, [".seccomp-cache"], "state left behind");
}

/// Restores a file's contents when dropped.
struct Restore(std::path::PathBuf, Option<Vec<u8>>);

impl Drop for Restore {
    fn drop(&mut self) {
        match &self.1 {
            Some(data) => std::fs::write(&self.0, data).unwrap(),
            None => {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }
}

#[test]
fn unprivileged_user_maps_subordinate_ids_through_newuidmap() {
    // Give nobody a subordinate range for this test only.
    let mut guards = vec![];
    for f in ["/etc/subuid", "/etc/subgid"] {
        let old = std::fs::read(f).ok();
        guards.push(Restore(f.into(), old.clone()));
        let mut data = old.unwrap_or_default();
        data.extend_from_slice(b"nobody:400000:65536\n");
        std::fs::write(f, data).unwrap();
    }
    let (_work, state, mut b) = rootless_bundle();
    b.config["process"]["terminal"] = json!(false);
    b.config["process"]["args"] = json!([
        "sh",
        "-c",
        "cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //'; touch /tmp/sub && chown 5:5 /tmp/sub"
    ]);
    b.config["root"]["readonly"] = json!(false);
    let maps = json!([{"containerID": 0, "hostID": NOBODY, "size": 1}, {"containerID": 1, "hostID": 400000, "size": 1000}]);
    b.config["linux"]["uidMappings"] = maps.clone();
    b.config["linux"]["gidMappings"] = maps;
    b.write();
    let id = unique_id("subid");
    let o = test_support::run_through_files(&mut as_nobody(&[
        "--root",
        state.to_str().unwrap(),
        "run",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ]));
    drop(guards);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(
        o.stdout.lines().collect::<Vec<_>>(),
        ["0 65534 1", "1 400000 1000"],
        "{}",
        o.stdout
    );
    let meta = std::fs::metadata(b.rootfs().join("tmp/sub")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (400004, 400004),
        "container uid 5 is host uid 400004"
    );
}

/// Security issue 11, item 4: a state root that another local user made
/// (the squatted `/tmp/berth-runtime-<uid>` case) is refused before anything
/// in it is read: its planted state can neither leak nor run its hooks as
/// the victim.
#[test]
fn a_state_root_owned_by_another_user_is_refused() {
    const ATTACKER: u32 = 65533;
    let work = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let squatted = work.path().join("berth-runtime-65534");
    // A real container state, then handed to the attacker as if planted,
    // with a poststop hook that marks its run.
    let rt = test_support::RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&["sleep", "100"]);
    let id = unique_id("squat");
    b.set_unique_cgroup(&id);
    let marker = work.path().join("hook-ran");
    b.config["hooks"] = json!({"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", format!("touch {}", marker.display())]}]});
    b.config["process"]["env"] = json!(["SECRET=planted-secret"]);
    b.write();
    let root_cmd = |args: &[&str]| {
        test_support::run_through_files(
            std::process::Command::new(BIN)
                .arg("--root")
                .arg(&squatted)
                .args(args),
        )
    };
    root_cmd(&["create", "--bundle", b.path().to_str().unwrap(), &id]).ok();
    let chown = |uid: u32| {
        std::process::Command::new("chown")
            .args(["-R", &format!("{uid}:{uid}")])
            .arg(&squatted)
            .status()
            .unwrap()
    };
    chown(ATTACKER);
    std::fs::set_permissions(
        &squatted,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();

    for args in [
        vec!["state", id.as_str()],
        vec!["delete", "--force", id.as_str()],
    ] {
        let mut full = vec!["--root", squatted.to_str().unwrap()];
        full.extend(&args);
        let o = test_support::run_through_files(&mut as_nobody(&full));
        assert_ne!(o.code, 0, "{args:?} in a squatted root: {o:?}");
        assert!(
            o.stderr.contains("owned by uid 65533"),
            "{args:?}: {}",
            o.stderr
        );
        assert!(!o.stdout.contains("planted-secret"), "{o:?}");
    }
    assert!(!marker.exists(), "the planted hook ran as the victim");
    assert_eq!(
        std::fs::metadata(&squatted).unwrap().uid(),
        ATTACKER,
        "the victim changed nothing"
    );
    // Clean up as root, the container's real owner.
    chown(0);
    root_cmd(&["delete", "--force", &id]).ok();
}
