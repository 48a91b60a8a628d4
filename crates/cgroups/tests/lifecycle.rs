//! The manager's lifecycle against the real kernel: create, place a
//! process, list it, freeze and thaw it, destroy, and nothing left.

use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};

use cgroups::{CgroupManager, Hierarchy};

static N: AtomicUsize = AtomicUsize::new(0);

/// A manager on a unique absolute path, destroyed even when a test fails.
struct Guard(CgroupManager, Vec<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.destroy();
        for c in &mut self.1 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn manager() -> Guard {
    let hier = Hierarchy::detect().expect("detect");
    let path = format!(
        "/berth-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let mut m = CgroupManager::new(&hier, &path).expect("new");
    m.create().expect("create");
    Guard(m, Vec::new())
}

#[test]
fn placed_process_shows_in_proc_cgroup_and_destroy_removes_everything() {
    let mut g = manager();
    let child = Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep");
    let pid = child.id() as i32;
    g.1.push(child);
    g.0.add_process(pid).expect("add_process");

    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        own.lines().all(|l| l.ends_with(&g.0.path())),
        "{own} should name {} in every hierarchy",
        g.0.path()
    );
    assert_eq!(g.0.pids().unwrap(), vec![pid]);

    let dirs = g.0.dirs().to_vec();
    assert!(!dirs.is_empty() && dirs.iter().all(|d| d.is_dir()));
    g.0.destroy().expect("destroy");
    assert!(dirs.iter().all(|d| !d.exists()), "left behind: {dirs:?}");
    // The process was killed by destroy.
    let status = g.1[0].wait().unwrap();
    assert!(!status.success());
    // Idempotent.
    g.0.destroy().expect("second destroy");
}

#[test]
fn freeze_stops_and_thaw_resumes() {
    let mut g = manager();
    let child = Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep");
    let pid = child.id() as i32;
    g.1.push(child);
    g.0.add_process(pid).unwrap();
    g.0.freeze().unwrap();
    assert!(g.0.is_frozen().unwrap());
    g.0.thaw().unwrap();
    assert!(!g.0.is_frozen().unwrap());
}

#[test]
fn dotdot_paths_are_refused() {
    let hier = Hierarchy::detect().unwrap();
    let err = CgroupManager::new(&hier, "/a/../b").unwrap_err();
    assert!(err.to_string().contains(".."), "{err}");
}
