//! Shared fixtures for berth's integration tests: busybox root
//! filesystems and bundles in temp dirs, unique container ids, and checks
//! that a test left nothing behind on the host (mounts, cgroups, processes).
//! Tests run as root against the real kernel; each uses its own ids, cgroup
//! paths and directories so they can run in parallel.

mod command;
pub mod engines;
pub mod hostile_registry;
pub mod interop;
pub mod oci;
pub mod pki;
pub mod registry;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

pub use command::{
    command_timeout, describe_process_tree, run_through_files, run_with_input, wait_timeout,
};

/// Where Debian's busybox-static installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// A unique id for a container (or anything else a test names on the host).
pub fn unique_id(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos & 0xffff
    )
}

/// Whether the host can run the tests that need busybox-static.
pub fn have_busybox() -> bool {
    Path::new(BUSYBOX).exists()
}

/// Builds a minimal root filesystem at `dir`: busybox with a link for every
/// applet, /etc/passwd and /etc/group, and the usual empty directories.
pub fn busybox_rootfs(dir: &Path) {
    assert!(
        have_busybox(),
        "{BUSYBOX} is missing: apt-get install busybox-static"
    );
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "root",
        "home/user",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, dir.join("bin/busybox")).unwrap();
    let out = Command::new(BUSYBOX).arg("--list-full").output().unwrap();
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let link = dir.join(applet);
        if applet == "bin/busybox" || link.exists() {
            continue;
        }
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        let _ = std::os::unix::fs::symlink("/bin/busybox", &link);
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n").unwrap();
    std::fs::write(
        dir.join("etc/group"),
        "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n",
    )
    .unwrap();
    std::fs::set_permissions(
        dir.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
}

/// A bundle in its own temp dir: `rootfs/` from busybox and a config.json
/// the test edits as JSON before writing.
pub struct Bundle {
    dir: tempfile::TempDir,
    /// The config that [`Bundle::write`] saves.
    pub config: Value,
}

impl Bundle {
    /// A bundle with a busybox rootfs and `config` (typically `berth-runtime spec` output).
    pub fn new(config: Value) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("berth-bundle-")
            .tempdir()
            .unwrap();
        busybox_rootfs(&dir.path().join("rootfs"));
        let mut b = Bundle { dir, config };
        b.write();
        b
    }

    /// The bundle directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The rootfs directory.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Writes config.json.
    pub fn write(&mut self) {
        std::fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// Sets `process.args` and writes.
    pub fn set_args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = args.iter().map(|a| Value::from(*a)).collect();
        self.config["process"]["terminal"] = Value::Bool(false);
        self.write();
        self
    }

    /// Points `linux.cgroupsPath` at a unique absolute test path and returns it.
    pub fn set_unique_cgroup(&mut self, id: &str) -> String {
        let p = format!("/berth-test-{id}");
        self.config["linux"]["cgroupsPath"] = Value::from(p.clone());
        self.write();
        p
    }
}

/// The /proc/self/mountinfo lines of mounts at or under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&d)))
        .map(String::from)
        .collect()
}

/// Every entry under `root`, sorted, as `path type mode uid:gid size mtime
/// content-digest` (size 0 and no digest for directories), to compare
/// trees or check one is unchanged.
pub fn tree_listing(root: &Path) -> Vec<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let t = m.file_type();
            let kind = if t.is_dir() {
                "dir"
            } else if t.is_symlink() {
                "link"
            } else if t.is_char_device() {
                "chr"
            } else {
                "file"
            };
            let body = if t.is_file() {
                oci::digest(&std::fs::read(&p).unwrap())
            } else {
                String::new()
            };
            out.push(format!(
                "{} {kind} {:o} {}:{} {} {} {body}",
                p.strip_prefix(base).unwrap().display(),
                m.mode(),
                m.uid(),
                m.gid(),
                if t.is_dir() { 0 } else { m.len() },
                m.mtime(),
            ));
            if t.is_dir() {
                go(base, &p, out);
            }
        }
    }
    let mut out = vec![];
    go(root, root, &mut out);
    out.sort();
    out
}

/// Mount points (from /proc/self/mountinfo) whose path contains `needle`.
pub fn mounts_containing(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.contains(needle))
        .map(str::to_string)
        .collect()
}

/// cgroup directories named `path` (absolute cgroup path) under any hierarchy of this host.
pub fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    let mut found = vec![];
    let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") else {
        return found;
    };
    for e in rd.flatten() {
        let p = e.path().join(rel);
        if p.is_dir() {
            found.push(p);
        }
    }
    if Path::new("/sys/fs/cgroup").join(rel).is_dir() {
        found.push(Path::new("/sys/fs/cgroup").join(rel));
    }
    found
}

/// Pids of processes whose command line contains `needle`.
pub fn processes_containing(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// A `berth-runtime` (or runc-compatible) binary with its own state root.
pub struct RuntimeCli {
    bin: PathBuf,
    root: tempfile::TempDir,
}

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Outcome {
    /// Panics with both streams unless the command succeeded.
    pub fn ok(self) -> Outcome {
        assert_eq!(
            self.code, 0,
            "command failed: stdout={:?} stderr={:?}",
            self.stdout, self.stderr
        );
        self
    }
}

impl RuntimeCli {
    /// A runtime at `bin` with a fresh temp `--root`.
    pub fn new(bin: impl Into<PathBuf>) -> RuntimeCli {
        RuntimeCli {
            bin: bin.into(),
            root: tempfile::Builder::new()
                .prefix("berth-root-")
                .tempdir()
                .unwrap(),
        }
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A command with `--root` set.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path());
        c
    }

    /// Runs `args` and collects the outcome.
    ///
    /// Output goes through files, not pipes: a container created by the
    /// command inherits its stdio and may outlive it, which would keep a
    /// pipe open.
    pub fn run(&self, args: &[&str]) -> Outcome {
        run_through_files(self.command().args(args))
    }

    /// The default spec this runtime prints (`spec`), as JSON.
    pub fn default_spec(&self) -> Value {
        let dir = tempfile::tempdir().unwrap();
        self.run(&["spec", "--bundle", dir.path().to_str().unwrap()])
            .ok();
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap()
    }

    /// The `status` field of `state ID`, or None when the container is unknown.
    pub fn status(&self, id: &str) -> Option<String> {
        let o = self.run(&["state", id]);
        if o.code != 0 {
            return None;
        }
        let v: Value = serde_json::from_str(&o.stdout).ok()?;
        v["status"].as_str().map(str::to_string)
    }
}

impl Drop for RuntimeCli {
    fn drop(&mut self) {
        // Whatever a failing test left running: remove it, so the host stays clean.
        if let Ok(rd) = std::fs::read_dir(self.root.path()) {
            for e in rd.flatten() {
                if let Some(id) = e.file_name().to_str().filter(|n| !n.starts_with('.')) {
                    // Bounded: a cleanup that hangs must not stall the suite.
                    let child = self
                        .command()
                        .args(["delete", "--force", id])
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .spawn();
                    if let Ok(mut child) = child {
                        if wait_timeout(&mut child, command_timeout()).is_none() {
                            let _ = child.kill();
                            let _ = child.wait();
                        }
                    }
                }
            }
        }
    }
}

/// A Podman with its own store in a temp dir, driving a given OCI runtime,
/// with the flags this kind of host needs (cgroupfs, vfs storage, rlimits
/// within the sandbox's limits).
///
/// Podman instances share one lock table in /dev/shm whatever their store,
/// so tests using Podman take a host-wide lock and run one at a time.
pub struct Podman {
    dir: tempfile::TempDir,
    runtime: PathBuf,
    cgroup_parent: String,
    fixed: engines::FixedDirs,
    _serial: nix::fcntl::Flock<std::fs::File>,
}

impl Podman {
    /// Whether podman is installed.
    pub fn available() -> bool {
        Command::new("podman")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// A podman using `runtime` as its OCI runtime, with a busybox image
    /// imported as `localhost/busybox:test`.
    pub fn new(runtime: impl Into<PathBuf>) -> Podman {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open("/tmp/berth-podman-tests.lock")
            .unwrap();
        let serial = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .unwrap();
        let dir = tempfile::Builder::new()
            .prefix("berth-podman-")
            .tempdir()
            .unwrap();
        let p = Podman {
            dir,
            runtime: runtime.into(),
            cgroup_parent: format!("/{}", unique_id("berth-test-podman")),
            // runc's default root, where podman has runc keep its state.
            fixed: engines::FixedDirs::note(&["/run/runc"]),
            _serial: serial,
        };
        let rootfs = p.dir.path().join("rootfs");
        busybox_rootfs(&rootfs);
        let tar = p.dir.path().join("busybox.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        p.run(&["import", tar.to_str().unwrap(), "localhost/busybox:test"])
            .ok();
        p
    }

    /// A podman command with the store, runtime and host flags set.
    pub fn command(&self) -> Command {
        self.command_using(&self.runtime)
    }

    /// [`Podman::command`] with another OCI runtime (a container keeps
    /// the runtime it was created with).
    pub fn command_using(&self, runtime: impl AsRef<Path>) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.dir.path().join("store"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .args([
                "--cgroup-manager",
                "cgroupfs",
                "--storage-driver",
                "vfs",
                "--events-backend",
                "none",
            ])
            .arg("--runtime")
            .arg(runtime.as_ref());
        c
    }

    /// Runs podman with `args` and another OCI runtime.
    pub fn run_using(&self, runtime: impl AsRef<Path>, args: &[&str]) -> Outcome {
        run_through_files(self.command_using(runtime).args(args))
    }

    /// Runs podman with `args`; output through files (see [`RuntimeCli::run`]).
    pub fn run(&self, args: &[&str]) -> Outcome {
        run_through_files(self.command().args(args))
    }

    /// Flags every `podman run` needs on this host. No network: podman's
    /// default network would leave a bridge and firewall rules on the
    /// host. A cgroup parent of this fixture's own, which it removes when
    /// dropped (podman puts conmon there too, and leaves it).
    pub fn run_flags(&self) -> Vec<String> {
        [
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--cgroup-parent",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([self.cgroup_parent.clone()])
        .collect()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .command()
            .args(["rm", "--all", "--force", "--time", "0"])
            .output();
        let _ = self.command().args(["system", "reset", "--force"]).output();
        for dir in cgroup_dirs(&self.cgroup_parent) {
            remove_cgroup_tree(&dir);
        }
        self.fixed.remove_empty();
    }
}

/// Removes a cgroup directory and its (empty) children, deepest first.
pub fn remove_cgroup_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Runs `cmd` with a new pseudo-terminal as its stdin, stdout and stderr
/// (as a person at a terminal would), and returns its exit code and
/// everything it wrote to the terminal.
pub fn run_in_pty(cmd: &mut Command) -> (i32, String) {
    run_in_pty_with_input(cmd, b"")
}

/// [`run_in_pty`], typing `input` at the terminal once the command started.
pub fn run_in_pty_with_input(cmd: &mut Command, input: &[u8]) -> (i32, String) {
    use std::io::Read;
    use std::os::fd::AsFd;
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut child = cmd
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap())
        .spawn()
        .unwrap();
    drop(slave);
    let mut master = std::fs::File::from(pty.master);
    if !input.is_empty() {
        use std::io::Write;
        master.write_all(input).unwrap();
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let mut fds = [nix::poll::PollFd::new(
            master.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)).unwrap_or(0);
        if ready > 0 {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        } else if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "command on a pty did not finish: {:?}",
            String::from_utf8_lossy(&out)
        );
    }
    let code = child.wait().unwrap().code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&out).into_owned())
}

/// Accepts one connection on `listener` and receives a message carrying a
/// descriptor (SCM_RIGHTS), as a console-socket or seccomp-agent peer does.
/// Returns the descriptor and the message bytes.
pub fn receive_fd(listener: &std::os::unix::net::UnixListener) -> (std::os::fd::OwnedFd, Vec<u8>) {
    use std::os::fd::{AsRawFd, FromRawFd};
    let (conn, _) = listener.accept().unwrap();
    let mut buf = vec![0u8; 8192];
    let (fd, n) = {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = nix::sys::socket::recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            nix::sys::socket::MsgFlags::empty(),
        )
        .unwrap();
        let fd = msg
            .cmsgs()
            .unwrap()
            .find_map(|c| match c {
                // SAFETY: the kernel just installed this descriptor for us.
                nix::sys::socket::ControlMessageOwned::ScmRights(fds) => {
                    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[0]) })
                }
                _ => None,
            })
            .expect("no descriptor received");
        (fd, msg.bytes)
    };
    buf.truncate(n);
    (fd, buf)
}
