//! The fixture the `berth` CLI tests share: a berth root with a busybox
//! image imported, and the check that a test left nothing behind.
#![allow(dead_code)]

pub mod api_server;
pub mod pty;

use std::path::{Path, PathBuf};
use std::process::Command;

use test_support::{busybox_rootfs, mounts_containing, run_through_files, Outcome};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// The pid of the process whose command line has all of `words`.
pub fn pid_of(words: &[&str]) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        words.iter().all(|w| cmd.contains(w)).then_some(pid)
    })
}

/// A berth root with a busybox image imported as `bb:1`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    /// A network namespace of the test's own that plays the host
    /// ([`Fixture::in_netns`]): every berth command runs in it.
    pub netns: Option<PathBuf>,
}

impl Fixture {
    pub fn new() -> Fixture {
        for (bin, package) in [("berth-runtime", "runtime-cli"), ("berth-shim", "shim")] {
            let path = Path::new(BERTH).with_file_name(bin);
            assert!(
                path.exists(),
                "{} missing: cargo build -p {package}",
                path.display()
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        busybox_rootfs(&rootfs);
        let f = Fixture { dir, netns: None };
        f.berth(&["import", rootfs.to_str().unwrap(), "bb:1"]).ok();
        f
    }

    /// [`Fixture::new`] whose berth runs in a network namespace of its own
    /// (pinned in the fixture's directory), so bridges and veths exist
    /// only there.
    pub fn in_netns() -> Fixture {
        let mut f = Fixture::new();
        let ns = f.dir.path().join("host-netns");
        network::netns::create(&ns).unwrap();
        f.netns = Some(ns);
        f
    }

    /// Runs `program` with `args` in the fixture's network namespace.
    pub fn host_command(&self, program: &str, args: &[&str]) -> Command {
        let ns = self.netns.as_ref().expect("a fixture made with in_netns");
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", ns.display()))
            .arg(program)
            .args(args);
        c
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("berth")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg(BERTH);
                c
            }
            None => Command::new(BERTH),
        };
        c.arg("--root").arg(self.root()).args(args);
        c
    }

    pub fn berth(&self, args: &[&str]) -> Outcome {
        run_through_files(&mut self.command(args))
    }

    pub fn run(&self, args: &[&str]) -> Outcome {
        let mut full = vec!["run", "--rm"];
        full.extend_from_slice(args);
        self.berth(&full)
    }

    /// No container directory, mount, runtime state or cgroup is left.
    pub fn assert_clean(&self) {
        let containers = self.root().join("containers");
        let left: Vec<_> = std::fs::read_dir(&containers)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "containers left: {left:?}");
        let runtime: Vec<_> = std::fs::read_dir(self.root().join("runtime"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| !p.ends_with(".seccomp-cache"))
                    .collect()
            })
            .unwrap_or_default();
        assert!(runtime.is_empty(), "runtime state left: {runtime:?}");
        let m = mounts_containing(self.root().to_str().unwrap());
        assert!(m.is_empty(), "mounts left: {m:?}");
        let netns: Vec<_> = std::fs::read_dir(self.root().join("netns"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(netns.is_empty(), "network namespaces left: {netns:?}");
    }
}

/// A test that failed half-way still takes down what it made: its
/// containers (killed, with their volumes) and volumes, so a failure does
/// not leave processes, mounts or cgroups on the host. (A test that
/// passed has checked with `assert_clean` that nothing is left.)
impl Drop for Fixture {
    fn drop(&mut self) {
        self.take_down();
        if let Some(ns) = &self.netns {
            let _ = network::netns::remove(ns);
        }
    }
}

impl Fixture {
    fn take_down(&self) {
        if !self.root().join("engine.db").exists() {
            return;
        }
        let ids = self.berth(&["ps", "-aq", "--no-trunc"]).stdout;
        for id in ids.lines().filter(|l| !l.is_empty()) {
            let _ = self.berth(&["rm", "-f", "-v", id]);
        }
        let volumes = self.berth(&["volume", "ls", "-q"]).stdout;
        for v in volumes.lines().filter(|l| !l.is_empty()) {
            let _ = self.berth(&["volume", "rm", "-f", v]);
        }
        let _ = self.berth(&["network", "prune", "-f"]);
    }
}
