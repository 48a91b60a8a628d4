//! berth-shim: the supervisor of one detached container. It outlives the
//! `berth` command that started it, and it is small and synchronous.
//!
//! 1. It starts a session of its own and becomes a child subreaper, so the
//!    container's init (forked by the runtime) is its child.
//! 2. It listens on the container's attach socket (`BUNDLE/attach.sock`,
//!    see [`protocol`]).
//! 3. It runs `<runtime> create` with the container's stdio: pipes for
//!    stdout and stderr (and stdin with `--stdin`), or with `--tty` a
//!    terminal whose master comes through a console socket. Then `start`.
//! 4. It tells the engine `ok <pid>` (or `error: <why>`) on its own stdout,
//!    then points its stdio at /dev/null: the engine stops listening. With
//!    `--wait-attach` it answers `created <pid>` after `create` instead, and
//!    starts the container once the first client has attached, so that
//!    client sees all of the output (`start -a`).
//! 5. Until the init exits ([`supervise`]) it copies the container's
//!    output into the log ([`log`]) and to attached clients, and their
//!    input to the container.
//!    With a health check, it runs the engine's `healthcheck` callback
//!    on the check's schedule (one probe at a time).
//! 6. It writes the exit status to the exit file (temp file, rename) and
//!    execs the engine's `cleanup` callback (`berth container cleanup ID`),
//!    which records the status and takes the container down.

mod child_exits;
pub mod log;
pub mod passthrough;
pub mod protocol;
pub mod supervise;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

pub use supervise::{supervise, ContainerIo};

/// What one shim supervises.
#[derive(Debug, Clone)]
pub struct Config {
    /// The OCI runtime binary.
    pub runtime: PathBuf,
    /// Its `--root`.
    pub runtime_root: PathBuf,
    /// The container id.
    pub id: String,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The container's log.
    pub log: log::LogConfig,
    /// Where the exit status goes.
    pub exit_file: PathBuf,
    /// The engine's callback: with `cleanup ID` appended, exec'd when the
    /// container has exited; with `healthcheck ID`, run for each health probe.
    pub callback: Vec<String>,
    /// When to run health probes, if the container has a check.
    pub health: Option<HealthSchedule>,
    /// The container has a terminal.
    pub tty: bool,
    /// Its stdin stays open for attached clients (`-i`).
    pub stdin: bool,
    /// Its stdin closes when a client's input ends (`run -a stdin -i`).
    pub stdin_once: bool,
    /// Start only once a client has attached.
    pub wait_attach: bool,
    /// A directory (short path) for the console socket, with `tty`.
    pub console_dir: PathBuf,
}

/// When the shim asks the engine for a health probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSchedule {
    /// Between the end of one probe and the start of the next.
    pub interval: Duration,
    /// From the start, the time in which `start_interval` applies.
    pub start_period: Duration,
    /// The interval during the start period.
    pub start_interval: Duration,
}

impl HealthSchedule {
    /// The wait before the next probe, `since_start` after the start.
    pub fn next_after(&self, since_start: Duration) -> Duration {
        if since_start < self.start_period {
            self.start_interval
        } else {
            self.interval
        }
    }
}

/// The engine's callback for `verb` on this container.
pub fn callback(c: &Config, verb: &str) -> Command {
    let mut cmd = Command::new(&c.callback[0]);
    cmd.args(&c.callback[1..]).arg(verb).arg(&c.id);
    cmd
}

/// Why the container could not be started.
#[derive(Debug)]
pub struct StartError(pub String);

/// How long `--wait-attach` waits for its client.
pub const ATTACH_WAIT: Duration = Duration::from_secs(30);

fn runtime(c: &Config) -> Command {
    let mut cmd = Command::new(&c.runtime);
    cmd.arg("--root")
        .arg(&c.runtime_root)
        .arg("--log")
        .arg(c.bundle.join("runtime.log"))
        .arg("--log-format")
        .arg("json");
    cmd
}

/// The last error the runtime logged.
fn runtime_error(c: &Config, step: &str) -> StartError {
    let log = std::fs::read_to_string(c.bundle.join("runtime.log")).unwrap_or_default();
    let msg = log
        .lines()
        .rev()
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["level"] == "error").then(|| v["msg"].as_str().unwrap_or("").to_string())
        })
        .unwrap_or_else(|| "no error in its log".into());
    StartError(format!("OCI runtime {step} failed: {msg}"))
}

/// Waits for child `pid` (a runtime command), reaping others meanwhile.
fn wait_for(pid: i32) -> Option<i32> {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Some(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Some(128 + sig as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return None,
        }
    }
}

/// Listens on the bundle's attach socket. The bundle is reached through
/// a descriptor (`/proc/self/fd/N/…`), so a long path does not matter.
pub fn listen(c: &Config) -> Result<UnixListener, StartError> {
    listen_at(&c.bundle)
}

/// [`listen`] on the attach socket of `bundle`.
pub fn listen_at(bundle: &std::path::Path) -> Result<UnixListener, StartError> {
    let dir = nix::fcntl::open(
        bundle,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| StartError(format!("open {}: {e}", bundle.display())))?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    let dir = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dir) };
    let path = format!("/proc/self/fd/{}/{}", dir.as_raw_fd(), protocol::SOCKET);
    // A socket left by the run before.
    let _ = std::fs::remove_file(&path);
    UnixListener::bind(&path).map_err(|e| {
        StartError(format!(
            "listen on {}: {e}",
            bundle.join(protocol::SOCKET).display()
        ))
    })
}

/// The container after `create`: its init's pid and its stdio.
pub struct Created {
    /// The init's pid.
    pub pid: i32,
    /// The shim's ends of its stdio.
    pub io: ContainerIo,
}

/// `<runtime> create` with the container's stdio set up as `c` says.
pub fn create(c: &Config) -> Result<Created, StartError> {
    let io = |what: &str, e: &dyn std::fmt::Display| StartError(format!("{what}: {e}"));
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io("pipe", &e));
    let pid_file = c.bundle.join("init.pid");
    let mut cmd = runtime(c);
    cmd.arg("create")
        .arg("--bundle")
        .arg(&c.bundle)
        .arg("--pid-file")
        .arg(&pid_file);
    let mut outputs = Vec::new();
    let mut input = None;
    let console = if c.tty {
        let listener = runtime::console_client::ConsoleListener::new_in(&c.console_dir)
            .map_err(|e| io("console socket", &e))?;
        cmd.arg("--console-socket").arg(&listener.path);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Some(listener)
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        if c.stdin {
            let (in_r, in_w) = pipe()?;
            cmd.stdin(Stdio::from(in_r));
            input = Some(in_w);
        } else {
            cmd.stdin(Stdio::null());
        }
        cmd.stdout(Stdio::from(out_w)).stderr(Stdio::from(err_w));
        outputs.push((out_r, protocol::STDOUT));
        outputs.push((err_r, protocol::STDERR));
        None
    };
    let child = cmd
        .arg(&c.id)
        .spawn()
        .map_err(|e| io(&format!("run {}", c.runtime.display()), &e))?;
    // The child's ends went with it (the container's init keeps them).
    drop(cmd);
    if wait_for(child.id() as i32) != Some(0) {
        return Err(runtime_error(c, "create"));
    }
    let mut master = None;
    if let Some(listener) = console {
        let m = listener
            .receive()
            .map_err(|e| io("receive the terminal", &e))?;
        if c.stdin {
            input = Some(m.try_clone().map_err(|e| io("dup", &e))?);
        }
        outputs.push((m.try_clone().map_err(|e| io("dup", &e))?, protocol::STDOUT));
        master = Some(m);
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| runtime_error(c, "create"))?;
    Ok(Created {
        pid,
        io: ContainerIo {
            outputs,
            input,
            master,
        },
    })
}

/// `<runtime> start`.
pub fn start(c: &Config) -> Result<(), StartError> {
    let child = runtime(c)
        .arg("start")
        .arg(&c.id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| StartError(format!("run {}: {e}", c.runtime.display())))?;
    if wait_for(child.id() as i32) != Some(0) {
        return Err(runtime_error(c, "start"));
    }
    Ok(())
}

/// Waits up to [`ATTACH_WAIT`] for the first client.
pub fn first_client(listener: &UnixListener) -> Option<UnixStream> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let ms = ATTACH_WAIT.as_millis() as i32;
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    match poll(
        &mut fds,
        PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
    ) {
        Ok(n) if n > 0 => listener.accept().ok().map(|(s, _)| s),
        _ => None,
    }
}

/// Writes the exit status atomically.
pub fn write_exit(c: &Config, code: i32) {
    let tmp = c.exit_file.with_extension("tmp");
    if std::fs::write(&tmp, format!("{code}\n")).is_ok() {
        let _ = std::fs::rename(&tmp, &c.exit_file);
    }
}
