//! `create`: bundle → a container whose init waits for `start`.
//!
//! Who does what, in order (three processes, because the kernel only puts
//! *children* into a new pid or time namespace):
//!
//! 1. **runtime** (this process): validates the spec, reserves the state
//!    directory, makes `exec.fifo`, creates the cgroup and records it (so a
//!    crash from here on leaves something `delete` can clean), forks the
//!    intermediate and places it in the cgroup, then says Go.
//! 2. **intermediate**: joins the namespaces given by path (user first),
//!    unshares the new ones in one call; for a new user namespace asks the
//!    runtime to write its id maps and becomes root in it; writes time
//!    offsets; forks the init; reports the init's host pid; exits.
//! 3. **init** (`init.rs`): builds the rootfs; asks the runtime to run the
//!    prestart/createRuntime hooks; runs createContainer hooks; pivots;
//!    applies process attributes; reports Ready; blocks on `exec.fifo`.
//!
//! The runtime saves the state and the pid file and returns. Any failure
//! kills what was started and removes the cgroup and state directory.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::LinuxNamespaceType;

pub use crate::container_cgroup::default_cgroup_path;
use crate::container_cgroup::{create_cgroup, destroy_cgroup, refuse_shared_cgroup};
use crate::error::{CleanupError, Result, RuntimeError};
use crate::hooks;
use crate::id_maps::write_id_maps;
use crate::init::{self, InitContext};
use crate::namespaces;
use crate::prepared_binds::PreparedBinds;
use crate::spec::{self, Bundle};
use crate::state::{
    process_start_time, ContainerRecord, OciState, StateStore, Status, EXEC_FIFO, OCI_VERSION,
};
use crate::sync::{self, Channel, Message};

/// Options of `create` (and the create half of `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Where to write the init's pid.
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to.
    pub console_socket: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Do not create a session keyring.
    pub no_new_keyring: bool,
    /// Descriptors above stdio to pass to the container.
    pub preserve_fds: u32,
    /// Signal mask the init restores before exec (set by `run`, which blocks signals).
    pub signal_mask: Option<nix::sys::signal::SigSet>,
}

/// Creates the container and returns its record.
pub fn create(store: &StateStore, opts: &CreateOptions) -> Result<ContainerRecord> {
    create_from(store, opts, &spec::load(&opts.bundle)?)
}

/// Creates the container from a bundle the caller has already loaded.
///
/// It forks: the caller must be single-threaded, and an error says so
/// otherwise ([`RuntimeError::NotSingleThreaded`]).
pub fn create_from(
    store: &StateStore,
    opts: &CreateOptions,
    bundle: &Bundle,
) -> Result<ContainerRecord> {
    crate::fork_guard::ensure_single_threaded("create")?;
    let lock = store.reserve(&opts.id)?;
    let mut cleanup = Cleanup {
        store,
        id: &opts.id,
        init: None,
        cgroup: None,
        armed: true,
    };
    let rec = create_locked(store, opts, bundle, &mut cleanup);
    match rec {
        Ok(r) => {
            cleanup.armed = false;
            drop(lock);
            Ok(r)
        }
        Err(e) => {
            let cleanup_err = cleanup.run();
            drop(lock);
            Err(if cleanup_err.is_empty() {
                e
            } else {
                RuntimeError::WithCleanup {
                    error: Box::new(e),
                    cleanup: cleanup_err,
                }
            })
        }
    }
}

/// Undoes a failed create.
struct Cleanup<'a> {
    store: &'a StateStore,
    id: &'a str,
    init: Option<i32>,
    cgroup: Option<cgroups::CgroupManager>,
    armed: bool,
}

impl Cleanup<'_> {
    /// Undoes what was made; returns what could not be undone.
    fn run(&mut self) -> Vec<CleanupError> {
        if !self.armed {
            return vec![];
        }
        self.armed = false;
        let mut errs = vec![];
        if let Some(pid) = self.init {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = destroy_cgroup(cg) {
                errs.push(CleanupError::Cgroup(e));
            }
        }
        if let Err(e) = self.store.remove(self.id) {
            errs.push(CleanupError::State(Box::new(e)));
        }
        errs
    }
}

fn create_locked(
    store: &StateStore,
    opts: &CreateOptions,
    bundle: &Bundle,
    cleanup: &mut Cleanup,
) -> Result<ContainerRecord> {
    let spec = &bundle.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| RuntimeError::spec("process", "missing"))?;
    let dir = store.dir(&opts.id);

    let fifo = dir.join(EXEC_FIFO);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .map_err(|e| RuntimeError::sys("mkfifo", fifo.display(), e))?;
    // The user's uid in the container may not be root: let it open the fifo.
    std::fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o622))
        .map_err(|e| RuntimeError::io("chmod", &fifo, e))?;

    let terminal = process.terminal().unwrap_or(false);
    let console: Option<UnixStream> = match (&opts.console_socket, terminal) {
        (Some(p), true) => Some(
            UnixStream::connect(p).map_err(|e| RuntimeError::io("connect console socket", p, e))?,
        ),
        (None, true) => {
            return Err(RuntimeError::spec(
                "process.terminal",
                "true, but no --console-socket was given",
            ))
        }
        _ => None,
    };

    // The cgroup exists and is recorded before any process is started.
    let linux = spec.linux().clone().unwrap_or_default();
    let hier = cgroups::Hierarchy::detect()?;
    let cg_path = linux
        .cgroups_path()
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| default_cgroup_path(&opts.id));
    // The cgroup is recorded before it is made, so a create killed at any
    // point leaves a state that `delete` can clean up; one that already
    // holds processes is refused before it is recorded, so `delete` never
    // kills what was there.
    let planned = cgroups::CgroupManager::new(&hier, &cg_path)?;
    refuse_shared_cgroup(&planned, &cg_path)?;
    let mut rec = ContainerRecord {
        id: opts.id.clone(),
        pid: 0,
        pid_start_time: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: now_rfc3339(),
        owner: nix::unistd::geteuid().as_raw(),
        cgroup: Some(planned.clone()),
        config: spec.clone(),
    };
    store.save(&rec)?;
    let cgroup = create_cgroup(planned, &cg_path, &linux)?;
    cleanup.cgroup = cgroup.clone();
    rec.cgroup = cgroup.clone();
    if let (Some(res), Some(cgroup)) = (linux.resources(), &cgroup) {
        let mut res = res.clone();
        if let Some(rules) = res.devices().clone().filter(|d| !d.is_empty()) {
            let mut all = rules;
            all.extend(crate::devices::default_cgroup_rules());
            res.set_devices(Some(all));
        }
        cgroup.apply(&res)?;
    }

    let state_dir = nix::fcntl::open(
        &dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| RuntimeError::sys("open", dir.display(), e))?;
    // SAFETY: fresh descriptor from open.
    let state_dir = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(state_dir) };

    let listen_fds: u32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut extra_env = vec![];
    if listen_fds > 0 {
        extra_env.push(format!("LISTEN_FDS={listen_fds}"));
        extra_env.push("LISTEN_PID=1".to_string());
    }
    let hooks = spec.hooks().clone().unwrap_or_default();
    let runtime_hooks = hooks.prestart().as_ref().is_some_and(|h| !h.is_empty())
        || hooks
            .create_runtime()
            .as_ref()
            .is_some_and(|h| !h.is_empty());

    let seccomp = linux
        .seccomp()
        .as_ref()
        .map(|p| crate::seccomp::compile_cached(p, &store.seccomp_cache()))
        .transpose()?;
    let seccomp_listener = match (
        linux
            .seccomp()
            .as_ref()
            .and_then(|s| s.listener_path().clone()),
        seccomp.as_ref().is_some_and(|p| p.notify),
    ) {
        (Some(path), true) => Some(
            UnixStream::connect(&path)
                .map_err(|e| RuntimeError::io("connect linux.seccomp.listenerPath", &path, e))?,
        ),
        (None, true) => {
            return Err(RuntimeError::spec(
                "linux.seccomp.listenerPath",
                "SCMP_ACT_NOTIFY needs a listener path",
            ))
        }
        _ => None,
    };
    let (parent_end, child_end) = sync::pair()?;
    let ctx = InitContext {
        id: &opts.id,
        bundle,
        channel: &child_end,
        state_dir: state_dir.as_raw_fd(),
        console_socket: console.as_ref().map(|c| c.as_raw_fd()),
        no_pivot: opts.no_pivot,
        extra_fds: opts.preserve_fds + listen_fds,
        extra_env,
        cgroup: cgroup.as_ref(),
        runtime_hooks,
        new_keyring: !opts.no_new_keyring,
        signal_mask: opts.signal_mask,
        seccomp: seccomp.as_ref(),
        seccomp_listener: seccomp_listener.as_ref().map(|s| s.as_raw_fd()),
    };

    // SAFETY: create_from checked that this process is single-threaded
    // (fork_guard), so the child may allocate and run arbitrary code.
    let intermediate =
        match unsafe { fork() }.map_err(|e| RuntimeError::sys("fork", "intermediate", e))? {
            ForkResult::Child => {
                crate::state::close_inherited_lock();
                drop(parent_end);
                intermediate_main(&ctx);
            }
            ForkResult::Parent { child } => child,
        };
    drop(child_end);
    drop(console);
    drop(seccomp_listener);
    drop(state_dir);

    let result = drive(
        &parent_end,
        intermediate,
        bundle,
        &opts.id,
        cgroup.as_ref(),
        &hooks,
    );
    // The intermediate exits on its own once it has reported. If driving
    // it failed before that, it may still wait for a message: end it, and
    // close our end, before reaping it (else both wait forever).
    if result.is_err() {
        let _ = nix::sys::signal::kill(intermediate, nix::sys::signal::Signal::SIGKILL);
    }
    drop(parent_end);
    let _ = waitpid(intermediate, None);
    let init_pid = match result {
        Ok(pid) => pid,
        Err((pid, e)) => {
            cleanup.init = pid;
            return Err(e);
        }
    };
    cleanup.init = Some(init_pid);
    let (start_time, _) = process_start_time(init_pid)
        .ok_or_else(|| RuntimeError::Init("exited during create".into()))?;
    rec.pid = init_pid;
    rec.pid_start_time = start_time;
    store.save(&rec)?;
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, init_pid)?;
    }
    Ok(rec)
}

/// The runtime's side of the create channel. Returns the init's pid; on
/// error, also whatever init pid was learnt so the caller can kill it.
fn drive(
    ch: &Channel,
    intermediate: Pid,
    bundle: &Bundle,
    id: &str,
    cgroup: Option<&cgroups::CgroupManager>,
    hooks: &oci_spec::runtime::Hooks,
) -> std::result::Result<i32, (Option<i32>, RuntimeError)> {
    let mut init: Option<i32> = None;
    let fail = |init: Option<i32>, e: RuntimeError| (init, e);
    if let Some(cgroup) = cgroup {
        cgroup
            .add_process(intermediate.as_raw())
            .map_err(|e| fail(None, e.into()))?;
    }
    ch.send(&Message::Go).map_err(|e| fail(None, e))?;
    let mut hooks_pending = false;
    let mut ready = false;
    loop {
        let msg = ch.recv().map_err(|e| fail(init, e))?;
        match msg {
            Some(Message::MapIds) => {
                write_id_maps(intermediate.as_raw(), bundle).map_err(|e| fail(init, e))?;
                ch.send(&Message::Go).map_err(|e| fail(init, e))?;
            }
            Some(Message::InitPid(pid)) => {
                init = Some(pid);
                if ready {
                    return Ok(pid);
                }
                if hooks_pending {
                    run_runtime_hooks(ch, bundle, id, pid, hooks).map_err(|e| fail(init, e))?;
                    hooks_pending = false;
                }
            }
            Some(Message::RunHooks) => match init {
                Some(pid) => {
                    run_runtime_hooks(ch, bundle, id, pid, hooks).map_err(|e| fail(init, e))?
                }
                None => hooks_pending = true,
            },
            Some(Message::Ready) => match init {
                Some(pid) => return Ok(pid),
                // The intermediate's report can come second: two writers.
                None => ready = true,
            },
            Some(Message::Error(e)) => return Err(fail(init, RuntimeError::Init(e))),
            Some(Message::Go) => {
                return Err(fail(
                    init,
                    RuntimeError::Other("unexpected Go from the container".into()),
                ))
            }
            None => {
                return Err(fail(
                    init,
                    RuntimeError::Init("exited before it was ready".into()),
                ))
            }
        }
    }
}

fn run_runtime_hooks(
    ch: &Channel,
    bundle: &Bundle,
    id: &str,
    pid: i32,
    hooks: &oci_spec::runtime::Hooks,
) -> Result<()> {
    let state = OciState {
        oci_version: OCI_VERSION.to_string(),
        id: id.to_string(),
        status: Status::Creating,
        pid,
        bundle: bundle.dir.clone(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
    };
    let r = hooks::run_all(
        "prestart",
        hooks.prestart().as_deref().unwrap_or(&[]),
        &state,
    )
    .and_then(|_| {
        hooks::run_all(
            "createRuntime",
            hooks.create_runtime().as_deref().unwrap_or(&[]),
            &state,
        )
    });
    match r {
        Ok(()) => ch.send(&Message::Go),
        Err(e) => {
            let _ = ch.send(&Message::Error(e.to_string()));
            Err(e)
        }
    }
}

/// The intermediate process: namespaces, then fork the init. Never returns.
fn intermediate_main(ctx: &InitContext) -> ! {
    let r = (|| -> Result<Pid> {
        ctx.channel.expect(&Message::Go)?;
        let plan = &ctx.bundle.namespaces;
        // A new user namespace's root may not be able to walk to the
        // bundle (a private store): the bind sources are cloned and the
        // root entered now, as the host's root; unshare carries the
        // working directory into the new mount namespace.
        // (A caller that is not root owns its bundle, and could not clone
        // mounts before it has a user namespace of its own.)
        let prepared = if plan.creates(LinuxNamespaceType::User)
            && plan.creates(LinuxNamespaceType::Mount)
            && nix::unistd::geteuid().is_root()
        {
            let mounts = ctx.bundle.spec.mounts().clone().unwrap_or_default();
            let linux = ctx.bundle.spec.linux().clone().unwrap_or_default();
            let binds = PreparedBinds::open(&mounts, &linux)?;
            std::env::set_current_dir(&ctx.bundle.rootfs)
                .map_err(|e| RuntimeError::io("chdir", &ctx.bundle.rootfs, e))?;
            Some(binds)
        } else {
            None
        };
        let fds = plan.open_joins()?;
        namespaces::join(&fds, plan)?;
        drop(fds);
        if !plan.new.is_empty() {
            nix::sched::unshare(plan.new)
                .map_err(|e| RuntimeError::sys("unshare", format!("{:?}", plan.new), e))?;
        }
        if plan.creates(LinuxNamespaceType::User) {
            ctx.channel.send(&Message::MapIds)?;
            ctx.channel.expect(&Message::Go)?;
        }
        if plan.has(LinuxNamespaceType::User) {
            // Become root of the user namespace (the runtime may be mapped to nobody).
            nix::unistd::setresgid(0.into(), 0.into(), 0.into()).map_err(|e| {
                RuntimeError::sys("setresgid", "0 in the user namespace (is root mapped?)", e)
            })?;
            nix::unistd::setresuid(0.into(), 0.into(), 0.into()).map_err(|e| {
                RuntimeError::sys("setresuid", "0 in the user namespace (is root mapped?)", e)
            })?;
        }
        if let Some(offsets) = ctx
            .bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.time_offsets().clone())
        {
            let text: String = offsets
                .iter()
                .map(|(clock, o)| {
                    format!(
                        "{clock} {} {}\n",
                        o.secs().unwrap_or(0),
                        o.nanosecs().unwrap_or(0)
                    )
                })
                .collect();
            std::fs::write("/proc/self/timens_offsets", text).map_err(|e| {
                RuntimeError::io("write linux.timeOffsets to", "/proc/self/timens_offsets", e)
            })?;
        }
        if let Some(list) = ctx
            .bundle
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.exec_cpu_affinity().as_ref())
            .and_then(|a| a.initial().clone())
        {
            crate::process_attrs::set_affinity(&list, "process.execCPUAffinity.initial")?;
        }
        // SAFETY: a fork of the single-threaded runtime (fork_guard) is single-threaded too.
        match unsafe { fork() }.map_err(|e| RuntimeError::sys("fork", "init", e))? {
            ForkResult::Child => init::run(ctx, prepared.as_ref()),
            ForkResult::Parent { child } => Ok(child),
        }
    })();
    match r {
        Ok(pid) => {
            let _ = ctx.channel.send(&Message::InitPid(pid.as_raw()));
            // SAFETY: _exit in a forked child.
            unsafe { libc::_exit(0) }
        }
        Err(e) => {
            let _ = ctx.channel.send(&Message::Error(e.to_string()));
            // SAFETY: _exit in a forked child.
            unsafe { libc::_exit(1) }
        }
    }
}

/// Writes the pid file atomically, as runc does.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("pid")
    ));
    // The temp file is always new and never a symlink someone planted at
    // its name: O_EXCL|O_NOFOLLOW; a leftover is unlinked (the name, never
    // what a link points to) and the create tried once more.
    let create = || {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o644)
            .open(&tmp)
    };
    let mut file = match create() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(&tmp).map_err(|e| RuntimeError::io("remove stale", &tmp, e))?;
            create()
        }
        other => other,
    }
    .map_err(|e| RuntimeError::io("create pid file", &tmp, e))?;
    std::io::Write::write_all(&mut file, pid.to_string().as_bytes())
        .map_err(|e| RuntimeError::io("write pid file", &tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| RuntimeError::io("rename pid file", path, e))
}

/// The current time as RFC 3339 in UTC, with the fraction of a second as
/// runc (Go's RFC3339Nano) prints it.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_rfc3339_is_now_in_utc() {
        use time::format_description::well_known::Rfc3339;
        let before = time::OffsetDateTime::now_utc();
        let s = super::now_rfc3339();
        let after = time::OffsetDateTime::now_utc();
        let t = time::OffsetDateTime::parse(&s, &Rfc3339).unwrap();
        assert!(s.ends_with('Z'), "{s}");
        assert!(before <= t && t <= after, "{before} <= {s} <= {after}");
    }
}
