//! A root-run container with a user namespace of its own: its root is an
//! unprivileged host id, its bundle sits in a directory only the host's
//! root may walk (as a private store's are), and an `idmap` bind shows the
//! host's root-owned files as the container root's while what the
//! container writes there is kept on disk as root's.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use serde_json::json;
use test_support::{unique_id, Bundle, RuntimeCli};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");
const BASE: u32 = 1_300_000;

fn mapped(b: &mut Bundle) {
    let namespaces = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": BASE, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": BASE, "size": 65536}]);
}

#[test]
fn a_remapped_root_runs_from_a_private_bundle_with_an_idmapped_bind() {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    // The bundle's directory is 0700 and root's: the container's root
    // (host uid BASE) cannot walk to it.
    std::fs::set_permissions(b.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let shared = b.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("owned-by-root"), "x").unwrap();
    let plain = b.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    std::fs::write(plain.join("f"), "y").unwrap();
    // The rootfs is not idmapped here: the container's root cannot make
    // mount points in it, so they exist beforehand.
    for d in ["idmapped", "plain"] {
        std::fs::create_dir(b.rootfs().join(d)).unwrap();
    }
    mapped(&mut b);
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/idmapped", "type": "bind",
        "source": shared, "options": ["rbind", "idmap"]}));
    mounts.push(json!({"destination": "/plain", "type": "bind",
        "source": plain, "options": ["rbind"]}));
    let id = unique_id("userns");
    b.set_unique_cgroup(&id);
    b.set_args(&[
        "sh",
        "-c",
        "echo uid=$(id -u) map=$(cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //'); \
         stat -c idmapped=%u:%g /idmapped/owned-by-root; \
         stat -c plain=%u:%g /plain/f; \
         echo made > /idmapped/new && echo wrote; \
         (echo no > /plain/g) 2>/dev/null || echo refused",
    ]);
    let o = rt
        .run(&["run", "--bundle", b.path().to_str().unwrap(), &id])
        .ok();
    let out = o.stdout;
    assert!(out.contains(&format!("uid=0 map=0 {BASE} 65536")), "{out}");
    assert!(out.contains("idmapped=0:0"), "{out}");
    // Without idmap, the host's root shows as the overflow id.
    assert!(out.contains("plain=65534:65534"), "{out}");
    assert!(out.contains("wrote"), "{out}");
    assert!(out.contains("refused"), "{out}");
    let new = std::fs::metadata(shared.join("new")).unwrap();
    assert_eq!((new.uid(), new.gid()), (0, 0), "kept on disk as root's");
    assert!(!plain.join("g").exists());
}

#[test]
fn idmap_without_a_user_namespace_is_refused_by_name() {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/mnt", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"]}),
    );
    let id = unique_id("userns-no");
    b.set_unique_cgroup(&id);
    b.set_args(&["true"]);
    let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("options")
            && o.stderr
                .contains("idmap needs a container with a new user namespace"),
        "{o:?}"
    );
}
