//! `tmpcopyup` (issue 13, item 3): a tmpfs over an image directory starts
//! with a copy of it, owners, modes, times, xattrs, hard links, symlinks
//! and special files kept, never following a link out of the root; the
//! image directory itself is left untouched. Checked from the host through
//! `/proc/<pid>/root` of a running container.

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde_json::{json, Value};
use test_support::{unique_id, Bundle, RuntimeCli};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// Fills `dir` (inside a rootfs) with one of everything the copy must keep.
fn populate(dir: &Path) {
    use std::os::unix::fs::{symlink, PermissionsExt};
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    std::fs::write(dir.join("setuid"), "#!/bin/sh\n").unwrap();
    std::os::unix::fs::chown(dir.join("setuid"), Some(1000), Some(1001)).unwrap();
    std::fs::set_permissions(dir.join("setuid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::write(dir.join("sub/deeper/data"), vec![7u8; 300_000]).unwrap();
    std::os::unix::fs::chown(dir.join("sub"), Some(12), Some(34)).unwrap();
    std::fs::set_permissions(dir.join("sub"), std::fs::Permissions::from_mode(0o710)).unwrap();
    std::fs::hard_link(dir.join("setuid"), dir.join("hardlink")).unwrap();
    // Links that would leave the root if the copy followed them.
    symlink("/etc/shadow", dir.join("abs-link")).unwrap();
    symlink("../../../../../../etc", dir.join("rel-link")).unwrap();
    std::os::unix::fs::lchown(dir.join("abs-link"), Some(5), Some(6)).unwrap();
    nix::unistd::mkfifo(
        &dir.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o620),
    )
    .unwrap();
    std::fs::set_permissions(dir.join("fifo"), std::fs::Permissions::from_mode(0o620)).unwrap();
    let name = CString::new("trusted.berth-test").unwrap();
    assert!(berth_fs::xattr::set(&dir.join("sub/deeper/data"), &name, b"kept").unwrap());
    let old = nix::sys::time::TimeSpec::new(1_000_000_000, 0);
    nix::sys::stat::utimensat(
        None,
        &dir.join("setuid"),
        &old,
        &old,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

/// Runs `sleep` detached with a tmpcopyup tmpfs at /data (options `extra`
/// added) and hands the container's pid to `check`.
fn with_container(extra: &[&str], check: impl FnOnce(i32, &Path)) {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&["sleep", "100"]);
    let id = unique_id("copyup");
    b.set_unique_cgroup(&id);
    populate(&b.rootfs().join("data"));
    let mut options = vec![json!("tmpcopyup"), json!("nosuid")];
    options.extend(extra.iter().map(|o| json!(o)));
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": options}),
    );
    b.write();
    rt.run(&[
        "run",
        "--detach",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ])
    .ok();
    let state: Value = serde_json::from_str(&rt.run(&["state", &id]).ok().stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap() as i32;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check(pid, &b.rootfs().join("data"))
    }));
    rt.run(&["delete", "--force", &id]).ok();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn tmpcopyup_copies_the_directory_into_the_tmpfs() {
    with_container(&[], |pid, image_dir| {
        let data = Path::new(&format!("/proc/{pid}/root/data")).to_path_buf();
        let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
        assert!(
            mountinfo
                .lines()
                .any(|l| l.split(' ').nth(4) == Some("/data") && l.contains(" - tmpfs ")),
            "{mountinfo}"
        );
        let meta = |p: &str| std::fs::symlink_metadata(data.join(p)).unwrap();
        let s = meta("setuid");
        assert_eq!((s.uid(), s.gid(), s.mode() & 0o7777), (1000, 1001, 0o4755));
        assert_eq!(s.mtime(), 1_000_000_000, "times are kept");
        assert_eq!(s.nlink(), 2);
        assert_eq!(meta("hardlink").ino(), s.ino(), "hard links stay links");
        let sub = meta("sub");
        assert_eq!((sub.uid(), sub.gid(), sub.mode() & 0o7777), (12, 34, 0o710));
        let d = std::fs::read(data.join("sub/deeper/data")).unwrap();
        assert_eq!(d, vec![7u8; 300_000]);
        let name = CString::new("trusted.berth-test").unwrap();
        assert_eq!(
            berth_fs::xattr::get(&data.join("sub/deeper/data"), &name).unwrap(),
            Some(b"kept".to_vec())
        );
        for (link, target) in [
            ("abs-link", "/etc/shadow"),
            ("rel-link", "../../../../../../etc"),
        ] {
            assert!(meta(link).file_type().is_symlink(), "{link}");
            assert_eq!(
                std::fs::read_link(data.join(link)).unwrap(),
                Path::new(target)
            );
        }
        assert_eq!((meta("abs-link").uid(), meta("abs-link").gid()), (5, 6));
        use std::os::unix::fs::FileTypeExt;
        assert!(meta("fifo").file_type().is_fifo());
        assert_eq!(meta("fifo").mode() & 0o7777, 0o620);
        // The root takes the covered directory's mode, and it is a copy:
        // writing in the container leaves the image alone.
        let image_mode = std::fs::metadata(image_dir).unwrap().permissions().mode();
        assert_eq!(meta("").mode() & 0o7777, image_mode & 0o7777);
        std::fs::write(data.join("new"), "x").unwrap();
        std::fs::remove_file(data.join("setuid")).unwrap();
        assert!(!image_dir.join("new").exists());
        assert!(image_dir.join("setuid").exists());
    });
}

#[test]
fn a_read_only_tmpcopyup_tmpfs_is_filled_then_read_only() {
    with_container(&["ro"], |pid, _| {
        let data = Path::new(&format!("/proc/{pid}/root/data")).to_path_buf();
        assert_eq!(
            std::fs::read(data.join("sub/deeper/data")).unwrap().len(),
            300_000
        );
        let e = std::fs::write(data.join("new"), "x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    });
}

#[test]
fn tmpcopyup_on_anything_but_tmpfs_is_refused_by_name() {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&["true"]);
    let id = unique_id("copyup");
    b.set_unique_cgroup(&id);
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/data", "type": "proc", "source": "proc", "options": ["tmpcopyup"]}),
    );
    b.write();
    let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("tmpcopyup applies to tmpfs"),
        "{}",
        o.stderr
    );
}
