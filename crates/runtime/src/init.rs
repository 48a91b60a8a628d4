//! The container's init: the process that becomes the user's program.
//! It is forked from the runtime (never re-executed, so no copy of the
//! runtime binary is ever reachable from inside), builds the root
//! filesystem, takes on the process attributes, drops privileges, waits on
//! `exec.fifo` for `start`, and execs. Any failure before `Ready` is sent to
//! the runtime over the create channel, which reports it and cleans up.

use std::ffi::CString;
use std::os::fd::RawFd;

use nix::errno::Errno;
use oci_spec::runtime::LinuxNamespaceType;

use crate::console;
use crate::error::{Result, RuntimeError};
use crate::hooks;
use crate::prepared_binds::PreparedBinds;
use crate::process_attrs;
use crate::process_setup::ProcessSetup;
use crate::rootfs;
use crate::spec::Bundle;
use crate::state::{OciState, Status, EXEC_FIFO, OCI_VERSION};
use crate::sync::{Channel, Message};

/// Everything the init needs, inherited from the runtime across fork.
pub struct InitContext<'a> {
    /// The container id.
    pub id: &'a str,
    /// The validated bundle.
    pub bundle: &'a Bundle,
    /// The init's end of the create channel.
    pub channel: &'a Channel,
    /// O_PATH descriptor of the container's state directory (for exec.fifo).
    pub state_dir: RawFd,
    /// Connected `--console-socket`, when the process has a terminal.
    pub console_socket: Option<RawFd>,
    /// `--no-pivot`.
    pub no_pivot: bool,
    /// Number of descriptors above stdio passed to the container (`--preserve-fds` and LISTEN_FDS).
    pub extra_fds: u32,
    /// Extra environment for the process (LISTEN_FDS, LISTEN_PID).
    pub extra_env: Vec<String>,
    /// The container's cgroup.
    pub cgroup: Option<&'a cgroups::CgroupManager>,
    /// Whether the runtime will run prestart/createRuntime hooks.
    pub runtime_hooks: bool,
    /// `--no-new-keyring` not given: join a fresh session keyring.
    pub new_keyring: bool,
    /// Whether the signal mask must be reset before exec.
    pub signal_mask: Option<nix::sys::signal::SigSet>,
    /// The compiled seccomp filter.
    pub seccomp: Option<&'a crate::seccomp::Program>,
    /// Connected `linux.seccomp.listenerPath`, for SCMP_ACT_NOTIFY profiles.
    pub seccomp_listener: Option<RawFd>,
}

/// Runs the init to the user's program; never returns.
pub fn run(ctx: &InitContext, prepared: Option<&PreparedBinds>) -> ! {
    let err = match setup(ctx, prepared) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    // Before Ready the runtime is listening; after it, stderr is all we have.
    // An error the runtime itself sent us needs no echo: it reports it.
    if ctx.channel.send(&Message::Error(err.to_string())).is_err()
        && !matches!(err, RuntimeError::Init(_))
    {
        eprintln!("berth-runtime init: {err}");
    }
    // SAFETY: _exit is always safe; no destructors should run in a forked child.
    unsafe { libc::_exit(1) }
}

enum Never {}

/// `prepared`: the bind trees the runtime cloned before a new user
/// namespace; with them, the root is the working directory.
fn setup(ctx: &InitContext, prepared: Option<&PreparedBinds>) -> Result<Never> {
    let spec = &ctx.bundle.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| RuntimeError::spec("process", "missing"))?;
    let ns = &ctx.bundle.namespaces;
    // No one in the container may ptrace or read /proc/<pid>/exe of a
    // process that is still the runtime (CVE-2019-5736); exec resets this.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };

    if ctx.new_keyring {
        join_session_keyring(ctx.id);
    }
    process_attrs::set_oom_score_adj(process)?;
    let host_pid = host_pid();

    rootfs::isolate_mount_tree(spec)?;
    let root = rootfs::bind_rootfs(&ctx.bundle.rootfs, spec, prepared.is_some())?;
    rootfs::mount_all(spec, &root.path, ns, ctx.cgroup, prepared)?;

    if ctx.runtime_hooks {
        ctx.channel.send(&Message::RunHooks)?;
        ctx.channel.expect(&Message::Go)?;
    }
    if let Some(h) = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.create_container().clone())
    {
        std::env::set_current_dir(&root.path)
            .map_err(|e| RuntimeError::io("chdir", &root.path, e))?;
        hooks::run_all(
            "createContainer",
            &h,
            &state(ctx, host_pid, Status::Creating),
        )?;
    }

    if ctx.no_pivot {
        rootfs::move_root(&root.path)?;
    } else {
        rootfs::pivot_root(&root.path)?;
    }

    if process.terminal().unwrap_or(false) {
        let socket = ctx.console_socket.ok_or_else(|| {
            RuntimeError::spec("process.terminal", "a terminal needs --console-socket")
        })?;
        let size = process.console_size();
        let pty = console::open_pty(
            size.map(|s| s.width() as u16).unwrap_or(0),
            size.map(|s| s.height() as u16).unwrap_or(0),
        )?;
        console::mount_console(&pty)?;
        console::send_master(socket, &pty.master)?;
        console::make_controlling(&pty.slave)?;
    } else if ns.creates(LinuxNamespaceType::Pid) {
        // Own session, as with a terminal, so job control signals from the
        // caller's terminal do not reach the container.
        let _ = nix::unistd::setsid();
    }
    if let Some(fd) = ctx.console_socket {
        let _ = nix::unistd::close(fd);
    }

    if let Some(h) = spec.hostname().as_ref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(|e| RuntimeError::sys("sethostname", h, e))?;
    }
    if let Some(d) = spec.domainname().as_ref().filter(|h| !h.is_empty()) {
        let c = CString::new(d.as_bytes())
            .map_err(|_| RuntimeError::spec("domainname", "contains NUL"))?;
        // SAFETY: valid pointer and length.
        if unsafe { libc::setdomainname(c.as_ptr(), d.len()) } != 0 {
            return Err(RuntimeError::sys("setdomainname", d, Errno::last()));
        }
    }
    let linux = spec.linux().clone().unwrap_or_default();
    // Sysctls go through /proc/sys, which the read-only paths usually cover.
    rootfs::write_sysctls(spec)?;
    rootfs::readonly_paths(linux.readonly_paths().as_deref().unwrap_or(&[]))?;
    rootfs::mask_paths(linux.masked_paths().as_deref().unwrap_or(&[]))?;
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        rootfs::readonly_root()?;
    }
    // Last of the mount steps: an unbindable tree refuses the binds above.
    if !ctx.no_pivot {
        rootfs::apply_root_propagation(spec)?;
    }

    let setup = ProcessSetup {
        process,
        personality: linux.personality().as_ref(),
        extra_env: &ctx.extra_env,
        preserved_fds: ctx.extra_fds,
        role: "init",
    };
    let prepared = setup.become_process(|| load_seccomp(ctx, host_pid))?;

    ctx.channel.send(&Message::Ready)?;
    wait_for_start(ctx.state_dir)?;
    let _ = nix::unistd::close(ctx.state_dir);

    if let Some(h) = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.start_container().clone())
    {
        hooks::run_all("startContainer", &h, &state(ctx, host_pid, Status::Created))?;
    }
    reset_signals(ctx.signal_mask.as_ref());
    prepared.exec()?;
    unreachable!("exec returns only errors")
}

fn state(ctx: &InitContext, pid: i32, status: Status) -> OciState {
    OciState {
        oci_version: OCI_VERSION.to_string(),
        id: ctx.id.to_string(),
        status,
        pid,
        bundle: ctx.bundle.dir.clone(),
        annotations: ctx.bundle.spec.annotations().clone().unwrap_or_default(),
    }
}

/// Loads the container's seccomp filter, handing the notify listener (if
/// any) to the agent at `listenerPath` with the container's state.
fn load_seccomp(ctx: &InitContext, host_pid: i32) -> Result<()> {
    let Some(program) = ctx.seccomp else {
        return Ok(());
    };
    let listener = crate::seccomp::load(program)?;
    if let (Some(fd), Some(sock)) = (listener, ctx.seccomp_listener) {
        let metadata = ctx
            .bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .and_then(|s| s.listener_metadata().clone())
            .unwrap_or_default();
        let msg = serde_json::json!({
            "ociVersion": OCI_VERSION,
            "fds": ["seccompFd"],
            "pid": host_pid,
            "metadata": metadata,
            "state": state(ctx, host_pid, Status::Creating),
        });
        crate::seccomp::send_listener(sock, &fd, msg.to_string().as_bytes())?;
    }
    Ok(())
}

/// Our pid as the host sees it (the host's /proc is still mounted here).
fn host_pid() -> i32 {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

fn join_session_keyring(id: &str) {
    let name = CString::new(format!("_ses.{id}")).unwrap_or_default();
    // KEYCTL_JOIN_SESSION_KEYRING = 1. A kernel without keyrings, or a
    // seccomp policy forbidding them, is not fatal (runc ignores it too).
    // SAFETY: keyctl reads a valid C string.
    unsafe { libc::syscall(libc::SYS_keyctl, 1, name.as_ptr()) };
}

/// Blocks until `start` opens the fifo, then tells it we are going. The
/// write end stays open (close-on-exec) so `start` sees end-of-file exactly
/// when the user's program has been executed, or the init has died.
fn wait_for_start(state_dir: RawFd) -> Result<()> {
    let fifo = nix::fcntl::openat(
        Some(state_dir),
        EXEC_FIFO,
        nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| RuntimeError::sys("open", EXEC_FIFO, e))?;
    // SAFETY: `fifo` was just opened and stays open for the write.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fifo) };
    nix::unistd::write(fd, b"0")
        .map(|_| ())
        .map_err(|e| RuntimeError::sys("write", EXEC_FIFO, e))
}

/// The container starts with the mask `run` saved, or none blocked: a
/// mask the caller of `create` had (an engine forwarding signals blocks
/// them) must not follow the program, or the signals it forwards would
/// stay pending (crun unblocks every signal likewise).
fn reset_signals(mask: Option<&nix::sys::signal::SigSet>) {
    let none = nix::sys::signal::SigSet::empty();
    let m = mask.unwrap_or(&none);
    let _ = nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(m), None);
}
