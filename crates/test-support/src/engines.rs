//! Real container engines for interop tests, each started by the test with
//! its own root, run and socket directories under a temp dir (never the
//! machine's defaults), and stopped with everything it started when the
//! fixture drops: Debian's `dockerd` (driven by the docker CLI) and
//! `containerd` (driven by `ctr`). Podman is in the crate root
//! ([`crate::Podman`]); it has no daemon.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cgroup_dirs, mounts_under, remove_cgroup_tree, run_through_files, unique_id, Outcome};

/// A docker-archive (`docker save` format) of a busybox image tagged
/// `tag`, which `docker load`, `podman load` and `ctr images import` take.
pub fn busybox_archive(dir: &Path, tag: &str) -> PathBuf {
    let rootfs = dir.join("busybox-rootfs");
    crate::busybox_rootfs(&rootfs);
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", &rootfs).unwrap();
    let layer = b.into_inner().unwrap();
    std::fs::remove_dir_all(&rootfs).unwrap();
    let path = dir.join("busybox.tar");
    std::fs::write(&path, crate::oci::docker_archive(tag, &[layer])).unwrap();
    path
}

/// Waits until `ready` holds, at most `limit`; panics naming `what` and
/// the daemon's log otherwise.
fn wait_for(
    what: &str,
    child: &mut Child,
    limit: Duration,
    log: &Path,
    mut ready: impl FnMut() -> bool,
) {
    let end = Instant::now() + limit;
    while !ready() {
        let exited = child.try_wait().ok().flatten();
        if Instant::now() > end || exited.is_some() {
            let how = match exited {
                Some(st) => format!("exited ({st})"),
                None => format!("did not come up within {limit:?}"),
            };
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "{what} {how}; the last lines of its log:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops a daemon: SIGTERM, then SIGKILL after `grace`.
fn stop(child: &mut Child, grace: Duration) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    if crate::wait_timeout(child, grace).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Host directories an engine makes at fixed places whatever its flags
/// (dockerd's /run/docker/plugins, the shim's /run/containerd/s, runc's
/// default root): the ones missing when a fixture starts are removed when
/// it drops, if they are empty again.
pub struct FixedDirs(Vec<&'static str>);

impl FixedDirs {
    /// Notes which of `dirs` (parents before children) do not exist yet.
    pub fn note(dirs: &[&'static str]) -> FixedDirs {
        FixedDirs(
            dirs.iter()
                .copied()
                .filter(|d| !Path::new(d).exists())
                .collect(),
        )
    }

    /// Removes the noted directories once they are empty, children
    /// first, waiting a little for exiting shims to remove their sockets.
    pub fn remove_empty(&self) {
        let end = Instant::now() + Duration::from_secs(3);
        for d in self.0.iter().rev() {
            while let Err(e) = std::fs::remove_dir(d) {
                if e.raw_os_error() != Some(libc::ENOTEMPTY) || Instant::now() > end {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Unmounts whatever a daemon left mounted under `dir` (deepest first).
fn unmount_all_under(dir: &Path) {
    let mut mounts: Vec<String> = mounts_under(dir)
        .iter()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The docker CLI for the dockerd whose temp dir is `dir`.
fn docker_command(dir: &Path) -> Command {
    let mut c = Command::new("docker");
    c.env(
        "DOCKER_HOST",
        format!("unix://{}", dir.join("docker.sock").display()),
    )
    .env("DOCKER_CONFIG", dir.join("cli"))
    .env("DOCKER_API_VERSION", "1.41");
    c
}

/// A `dockerd` of the test's own, with the runtimes it was given added
/// under their names, listening on a socket in its temp dir.
pub struct Dockerd {
    dir: tempfile::TempDir,
    child: Child,
    cgroup_parent: String,
    fixed: FixedDirs,
}

impl Dockerd {
    /// Whether Debian's docker.io (dockerd and a docker CLI) is installed.
    pub fn available() -> bool {
        Path::new("/usr/sbin/dockerd").exists()
            && Command::new("docker")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
    }

    /// Starts dockerd with `runtimes` (name, binary) added, and loads a
    /// busybox image as `busybox:test`. No bridge, no iptables: the host's
    /// network is never touched. Containers go below a cgroup parent of
    /// this fixture's own, removed when it drops.
    pub fn start(runtimes: &[(&str, &Path)]) -> Dockerd {
        let dir = tempfile::Builder::new()
            .prefix("berth-dockerd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        // The trust key would otherwise go to /etc/docker/key.json.
        std::fs::write(
            d.join("daemon.json"),
            serde_json::json!({"deprecated-key-path": d.join("key.json")}).to_string(),
        )
        .unwrap();
        let cgroup_parent = format!("/{}", unique_id("berth-test-docker"));
        // dockerd's own containerd starts shims too.
        let fixed = FixedDirs::note(&[
            "/run/docker",
            "/run/docker/plugins",
            "/run/containerd",
            "/run/containerd/s",
        ]);
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let mut cmd = Command::new("/usr/sbin/dockerd");
        cmd.arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--storage-driver=vfs",
                "--cgroup-parent",
                &cgroup_parent,
            ]);
        for (name, bin) in runtimes {
            cmd.arg("--add-runtime")
                .arg(format!("{name}={}", bin.display()));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start dockerd");
        wait_for(
            "dockerd",
            &mut child,
            Duration::from_secs(60),
            &d.join("dockerd.log"),
            || {
                docker_command(d)
                    .args(["version", "--format", "{{.Server.Version}}"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            },
        );
        let dockerd = Dockerd {
            dir,
            child,
            cgroup_parent,
            fixed,
        };
        let archive = busybox_archive(dockerd.dir.path(), "busybox:test");
        dockerd.run(&["load", "-i", archive.to_str().unwrap()]).ok();
        dockerd
    }

    /// A docker CLI command talking to this daemon (the CLI's own config
    /// in the temp dir; the API version pinned to what dockerd 20.10 speaks).
    pub fn docker(&self) -> Command {
        docker_command(self.dir.path())
    }

    /// Runs the docker CLI with `args` (bounded in time, see [`run_through_files`]).
    pub fn run(&self, args: &[&str]) -> Outcome {
        run_through_files(self.docker().args(args))
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Ok(o) = self.docker().args(["ps", "-aq"]).output() {
            let ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if !ids.is_empty() {
                let _ = self
                    .docker()
                    .args(["rm", "-f"])
                    .args(&ids)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        // dockerd stops the containerd it started.
        stop(&mut self.child, Duration::from_secs(30));
        unmount_all_under(self.dir.path());
        for dir in cgroup_dirs(&self.cgroup_parent) {
            remove_cgroup_tree(&dir);
        }
        self.fixed.remove_empty();
    }
}

/// `ctr` for the containerd whose temp dir is `dir`, in `namespace`.
fn ctr_command(dir: &Path, namespace: &str) -> Command {
    let mut c = Command::new("/usr/bin/ctr");
    c.arg("--address")
        .arg(dir.join("containerd.sock"))
        .arg("--namespace")
        .arg(namespace);
    c
}

/// A `containerd` of the test's own (CRI disabled: no listener but its
/// unix sockets), driven through `ctr` in a namespace of the fixture's own.
pub struct Containerd {
    dir: tempfile::TempDir,
    child: Child,
    namespace: String,
    fixed: FixedDirs,
}

impl Containerd {
    /// Whether Debian's containerd (with ctr and the runc v2 shim) is installed.
    pub fn available() -> bool {
        [
            "/usr/bin/containerd",
            "/usr/bin/ctr",
            "/usr/bin/containerd-shim-runc-v2",
        ]
        .iter()
        .all(|p| Path::new(p).exists())
    }

    /// Starts containerd and imports a busybox image as
    /// `docker.io/library/busybox:test`.
    pub fn start() -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("berth-ctd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let config = format!(
            "version = 2\n\
             root = \"{root}\"\n\
             state = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n\
             [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [debug]\n  address = \"\"\n\
             [metrics]\n  address = \"\"\n",
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let mut child = Command::new("/usr/bin/containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start containerd");
        let namespace = unique_id("berth-test-ctd");
        let fixed = FixedDirs::note(&["/run/containerd", "/run/containerd/s"]);
        wait_for(
            "containerd",
            &mut child,
            Duration::from_secs(60),
            &d.join("containerd.log"),
            || {
                ctr_command(d, &namespace)
                    .arg("version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            },
        );
        let c = Containerd {
            dir,
            child,
            namespace,
            fixed,
        };
        let archive = busybox_archive(c.dir.path(), "docker.io/library/busybox:test");
        c.run(&["images", "import", archive.to_str().unwrap()]).ok();
        c
    }

    /// A `ctr` command for this daemon and the fixture's namespace.
    pub fn ctr(&self) -> Command {
        ctr_command(self.dir.path(), &self.namespace)
    }

    /// Runs ctr with `args` (bounded in time).
    pub fn run(&self, args: &[&str]) -> Outcome {
        run_through_files(self.ctr().args(args))
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// The fixture's temp dir (for option files a test writes).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The containerd namespace of this fixture.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A `--runc-root` (the shim's `Root`) of the fixture's own; the shim
    /// adds the namespace below it.
    pub fn runtime_root(&self) -> PathBuf {
        self.dir.path().join("runtime-root")
    }

    /// A `--fifo-dir` of the fixture's own for ctr's I/O FIFOs.
    pub fn fifo_dir(&self) -> PathBuf {
        self.dir.path().join("fifo")
    }

    /// The cgroup parent of this fixture's containers (ctr puts a
    /// container at `/<namespace>/<id>`).
    pub fn cgroup_parent(&self) -> String {
        format!("/{}", self.namespace)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let tasks = self.ctr().args(["tasks", "ls", "-q"]).output();
        if let Ok(o) = tasks {
            for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = self
                    .ctr()
                    .args(["tasks", "kill", "-s", "SIGKILL", id])
                    .output();
                let _ = self.ctr().args(["tasks", "rm", "-f", id]).output();
            }
        }
        if let Ok(o) = self.ctr().args(["containers", "ls", "-q"]).output() {
            for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = self.ctr().args(["containers", "rm", id]).output();
            }
        }
        stop(&mut self.child, Duration::from_secs(20));
        // Shims outlive a stopped containerd by design: stop the ones
        // started for this fixture's sockets.
        let sock = self.dir.path().display().to_string();
        for pid in crate::processes_containing(&sock) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        unmount_all_under(self.dir.path());
        for dir in cgroup_dirs(&self.cgroup_parent()) {
            remove_cgroup_tree(&dir);
        }
        // The v2 shim keeps its sockets in /run/containerd/s whatever the
        // daemon's state dir.
        self.fixed.remove_empty();
    }
}
