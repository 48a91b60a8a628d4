//! Many berth processes at once on one store: 50 `run -d` in parallel all
//! succeed with distinct names and ids (no "database is locked"), two
//! foreground runs at once, then 50 `rm -f` in parallel leave nothing.

use std::collections::HashSet;

mod common;
use common::Fixture;
use test_support::run_through_files;

#[test]
fn fifty_containers_start_and_go_in_parallel() {
    let f = Fixture::new();
    let runs: Vec<_> = (0..50)
        .map(|i| {
            let name = format!("par{i}");
            let mut cmd = f.command(&["run", "-d", "--name", &name, "bb:1", "sleep", "100"]);
            std::thread::spawn(move || run_through_files(&mut cmd))
        })
        .collect();
    let mut ids = HashSet::new();
    for r in runs {
        let o = r.join().unwrap().ok();
        let id = o.stdout.trim().to_string();
        assert_eq!(id.len(), 64, "{o:?}");
        ids.insert(id);
    }
    assert_eq!(ids.len(), 50);
    let o = f.berth(&["ps", "-q", "--filter", "status=running"]).ok();
    assert_eq!(o.stdout.lines().count(), 50, "{o:?}");
    // Two foreground runs at once, beside them.
    let fg: Vec<_> = (0..2)
        .map(|i| {
            let mut cmd = f.command(&["run", "--rm", "bb:1", "echo", &format!("fg{i}")]);
            std::thread::spawn(move || run_through_files(&mut cmd))
        })
        .collect();
    for (i, r) in fg.into_iter().enumerate() {
        assert_eq!(r.join().unwrap().ok().stdout, format!("fg{i}\n"));
    }
    let rms: Vec<_> = (0..50)
        .map(|i| {
            let mut cmd = f.command(&["rm", "-f", &format!("par{i}")]);
            std::thread::spawn(move || run_through_files(&mut cmd))
        })
        .collect();
    for r in rms {
        r.join().unwrap().ok();
    }
    let o = f.berth(&["ps", "-aq"]).ok();
    assert_eq!(o.stdout, "");
    f.assert_clean();
}
