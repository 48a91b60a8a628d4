//! `exec`: runs another process inside a running container. The runtime
//! forks an intermediate that it places in the container's cgroup; the
//! intermediate joins every namespace of the container's init (user first,
//! mount last) and forks the process, which enters the pid namespace that
//! way; the process takes its identity, capabilities, rlimits and
//! no_new_privs, then execs. In the foreground the runtime waits and
//! returns the exit status (128+N for a signal).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::{LinuxNamespaceType, Process};

use crate::capabilities::CapSets;
use crate::console;
use crate::error::{Result, RuntimeError};
use crate::namespaces::{self, NamespacePlan};
use crate::process_attrs;
use crate::process_setup::ProcessSetup;
use crate::state::{StateStore, Status};
use crate::sync::{self, Channel, Message};

/// Options of `exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// The process to run (from `--process` or built from flags).
    pub process: Process,
    /// Unix socket to send the pty master to, when `process.terminal`.
    pub console_socket: Option<PathBuf>,
    /// Return once the process runs, instead of waiting for it.
    pub detach: bool,
    /// Where to write the process's host pid.
    pub pid_file: Option<PathBuf>,
    /// Descriptors above stdio to pass on.
    pub preserve_fds: u32,
}

/// The container's namespaces that differ from ours, by /proc/PID/ns path, in join order.
fn join_plan(pid: i32) -> NamespacePlan {
    let mut plan = NamespacePlan::default();
    for t in namespaces::JOIN_ORDER {
        let theirs = PathBuf::from(format!("/proc/{pid}/ns/{}", namespaces::proc_name(t)));
        let ours = PathBuf::from(format!("/proc/self/ns/{}", namespaces::proc_name(t)));
        if namespaces::same_namespace(&theirs, &ours) == Some(false) {
            plan.join.push((t, theirs));
        }
    }
    plan
}

/// Runs `opts.process` in container `id`; returns its exit code (0 when detached).
///
/// It forks: the caller must be single-threaded, and an error says so
/// otherwise ([`RuntimeError::NotSingleThreaded`]).
pub fn exec(store: &StateStore, id: &str, opts: &ExecOptions) -> Result<i32> {
    crate::fork_guard::ensure_single_threaded("exec")?;
    let rec = store.load(id)?;
    let status = store.status(&rec);
    if matches!(status, Status::Stopped | Status::Paused) {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status: status.to_string(),
            operation: "exec (the container must be created or running)",
        });
    }
    let p = &opts.process;
    match p.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => return Err(RuntimeError::spec("process.args", "must name a program")),
    }
    // Checked here, where an error reaches the caller directly; the process
    // set-up applies them.
    p.capabilities()
        .as_ref()
        .map(CapSets::from_spec)
        .transpose()?;
    let personality = rec
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.personality().clone());
    let terminal = p.terminal().unwrap_or(false);
    let console = match (&opts.console_socket, terminal) {
        (Some(s), true) => Some(
            UnixStream::connect(s).map_err(|e| RuntimeError::io("connect console socket", s, e))?,
        ),
        (None, true) => {
            return Err(RuntimeError::spec(
                "process.terminal",
                "true, but no --console-socket was given",
            ))
        }
        _ => None,
    };
    // An exec'd process gets the container's seccomp filter, as in runc.
    let seccomp = rec
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().clone());
    let seccomp = seccomp
        .as_ref()
        .map(|p| crate::seccomp::compile_cached(p, &store.seccomp_cache()))
        .transpose()?
        .filter(|p| !p.notify);
    let plan = join_plan(rec.pid);
    let ns_fds = plan.open_joins()?;

    // Foreground: the process is reparented to us when the intermediate exits.
    let mut old_mask = SigSet::empty();
    let mut forwarded = SigSet::empty();
    if !opts.detach {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        for s in [
            Signal::SIGCHLD,
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
            Signal::SIGWINCH,
        ] {
            forwarded.add(s);
        }
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded), Some(&mut old_mask))
            .map_err(|e| RuntimeError::sys("sigprocmask", "exec", e))?;
    }

    let (parent, child) = sync::pair()?;
    let setup = ExecSetup {
        process: p,
        plan: &plan,
        ns_fds: &ns_fds,
        channel: &child,
        console: console.as_ref().map(|c| c.as_raw_fd()),
        preserve_fds: opts.preserve_fds,
        mask: old_mask,
        seccomp: seccomp.as_ref(),
        personality: personality.as_ref(),
    };
    // SAFETY: exec checked that this process is single-threaded (fork_guard).
    let intermediate =
        match unsafe { fork() }.map_err(|e| RuntimeError::sys("fork", "exec intermediate", e))? {
            ForkResult::Child => {
                crate::state::close_inherited_lock();
                drop(parent);
                exec_intermediate(&setup)
            }
            ForkResult::Parent { child } => child,
        };
    drop(child);
    drop(console);
    drop(ns_fds);
    let result = (|| -> Result<i32> {
        if let Some(cg) = &rec.cgroup {
            cg.add_process(intermediate.as_raw())?;
        }
        parent.send(&Message::Go)?;
        // The intermediate reports the pid and the process reports Ready:
        // two writers, so the two messages can arrive in either order.
        let (mut pid, mut ready) = (None, false);
        while pid.is_none() || !ready {
            match parent.recv()? {
                Some(Message::InitPid(p)) => pid = Some(p),
                Some(Message::Ready) => ready = true,
                Some(Message::Error(e)) => return Err(RuntimeError::Init(e)),
                other => return Err(RuntimeError::Init(format!("exec: unexpected {other:?}"))),
            }
        }
        let pid = pid.unwrap_or_default();
        Ok(pid)
    })();
    let _ = waitpid(intermediate, None);
    let pid = result?;
    if let Some(f) = &opts.pid_file {
        crate::container_create::write_pid_file(f, pid)?;
    }
    if opts.detach {
        return Ok(0);
    }
    loop {
        let Ok(sig) = forwarded.wait() else { continue };
        if sig != Signal::SIGCHLD {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return Ok(code),
                Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == pid => return Ok(128 + s as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

struct ExecSetup<'a> {
    process: &'a Process,
    plan: &'a NamespacePlan,
    ns_fds: &'a [(LinuxNamespaceType, OwnedFd)],
    channel: &'a Channel,
    console: Option<i32>,
    preserve_fds: u32,
    mask: SigSet,
    seccomp: Option<&'a crate::seccomp::Program>,
    personality: Option<&'a oci_spec::runtime::LinuxPersonality>,
}

fn exec_intermediate(s: &ExecSetup) -> ! {
    let r = (|| -> Result<Pid> {
        s.channel.expect(&Message::Go)?;
        namespaces::join(s.ns_fds, s.plan)?;
        // SAFETY: a fork of the single-threaded runtime (fork_guard); the child becomes the exec'd process.
        match unsafe { fork() }.map_err(|e| RuntimeError::sys("fork", "exec process", e))? {
            ForkResult::Child => exec_process(s),
            ForkResult::Parent { child } => Ok(child),
        }
    })();
    let code = match r {
        Ok(pid) => s.channel.send(&Message::InitPid(pid.as_raw())).is_err() as i32,
        Err(e) => {
            let _ = s.channel.send(&Message::Error(e.to_string()));
            1
        }
    };
    // SAFETY: _exit in a forked child.
    unsafe { libc::_exit(code) }
}

fn exec_process(s: &ExecSetup) -> ! {
    let err = match exec_steps(s) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    if s.channel.send(&Message::Error(err.to_string())).is_err() {
        eprintln!("berth-runtime exec: {err}");
    }
    // SAFETY: _exit in a forked child.
    unsafe { libc::_exit(127) }
}

enum Never {}

fn exec_steps(s: &ExecSetup) -> Result<Never> {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let p = s.process;
    if p.terminal().unwrap_or(false) {
        let socket = s
            .console
            .ok_or_else(|| RuntimeError::spec("process.terminal", "needs --console-socket"))?;
        let size = p.console_size();
        let pty = console::open_pty(
            size.map(|s| s.width() as u16).unwrap_or(0),
            size.map(|s| s.height() as u16).unwrap_or(0),
        )?;
        console::send_master(socket, &pty.master)?;
        console::make_controlling(&pty.slave)?;
    } else {
        let _ = nix::unistd::setsid();
    }
    if let Some(fd) = s.console {
        let _ = nix::unistd::close(fd);
    }
    // Before the shared set-up: oom_score_adj is written through /proc,
    // as the init does before its mounts.
    process_attrs::set_oom_score_adj(p)?;
    let setup = ProcessSetup {
        process: p,
        personality: s.personality,
        extra_env: &[],
        preserved_fds: s.preserve_fds,
        role: "exec",
    };
    let prepared = setup.become_process(|| match s.seccomp {
        Some(f) => crate::seccomp::load(f).map(drop),
        None => Ok(()),
    })?;
    s.channel.send(&Message::Ready)?;
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&s.mask), None);
    prepared.exec()?;
    unreachable!("exec returns only errors")
}
