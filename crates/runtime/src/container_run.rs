//! `run`: create + start, and in the foreground wait for the init while
//! forwarding signals to it; the exit status becomes ours (128+N for a
//! signal), then the container is deleted unless `keep`.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::container_create::{create, CreateOptions};
use crate::container_delete::delete;
use crate::container_start::start;
use crate::error::Result;
use crate::state::StateStore;

/// Signals a foreground `run` passes on to the container.
const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGALRM,
];

/// Runs container `opts.id`; returns its exit code (0 when detached).
pub fn run(store: &StateStore, mut opts: CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    if detach {
        create(store, &opts)?;
        if let Err(e) = start(store, &opts.id) {
            let _ = delete(store, &opts.id, true);
            return Err(e);
        }
        return Ok(0);
    }
    // Become the init's parent (the intermediate exits), and take signals
    // synchronously so none is lost between create and wait.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for s in FORWARDED {
        set.add(*s);
    }
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
        .map_err(|e| crate::RuntimeError::sys("sigprocmask", "run", e))?;
    opts.signal_mask = Some(old);
    let rec = create(store, &opts)?;
    if let Err(e) = start(store, &opts.id) {
        let _ = delete(store, &opts.id, true);
        return Err(e);
    }
    let code = loop {
        let sig = match set.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            let _ = nix::sys::signal::kill(Pid::from_raw(rec.pid), sig);
            continue;
        }
        let mut done = None;
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid.as_raw() == rec.pid => done = Some(code),
                Ok(WaitStatus::Signaled(pid, s, _)) if pid.as_raw() == rec.pid => {
                    done = Some(128 + s as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if let Some(c) = done {
            break c;
        }
    };
    if !keep {
        delete(store, &opts.id, true)?;
    }
    Ok(code)
}
