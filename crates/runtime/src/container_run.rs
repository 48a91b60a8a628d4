//! `run`: create + start, and in the foreground wait for the init while
//! forwarding signals to it; the exit status becomes ours (128+N for a
//! signal), then the container is deleted unless `keep`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::console_client::{copy_window_size, ConsoleListener, RawTerminal};
use crate::container_create::{create, create_from, CreateOptions};
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

    // A terminal and nobody to hand it to: we hold the pty ourselves and
    // copy between it and our own stdio, as runc does.
    // Loaded once, here, and handed to create.
    let bundle = crate::spec::load(&opts.bundle)?;
    let spec_terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let console = if spec_terminal && opts.console_socket.is_none() {
        let listener = ConsoleListener::new_in(&std::env::temp_dir())?;
        opts.console_socket = Some(listener.path.clone());
        Some(listener)
    } else {
        None
    };
    let rec = create_from(store, &opts, &bundle)?;
    let master = match &console {
        Some(l) => match l.receive() {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = delete(store, &opts.id, true);
                return Err(e);
            }
        },
        None => None,
    };
    if let Err(e) = start(store, &opts.id) {
        let _ = delete(store, &opts.id, true);
        return Err(e);
    }
    let code = wait_forwarding(rec.pid, &set, master.as_ref());
    if !keep {
        delete(store, &opts.id, true)?;
    }
    Ok(code)
}

/// Waits for the init, forwarding signals (and copying pty traffic when we
/// hold the terminal); returns its exit code, 128+N for a signal.
fn wait_forwarding(init: i32, set: &SigSet, master: Option<&OwnedFd>) -> i32 {
    let Ok(sfd) = SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC) else {
        return 1;
    };
    let _raw = master.map(|m| {
        copy_window_size(m);
        RawTerminal::enter()
    });
    let mut stdin_open = master.is_some();
    let mut buf = [0u8; 8192];
    let mut exit: Option<i32> = None;
    loop {
        if let Some(code) = exit {
            // Drain what the container wrote before it exited (without
            // blocking: a process it left behind may still hold the pty).
            if let Some(m) = master {
                let _ = nix::fcntl::fcntl(
                    m.as_raw_fd(),
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                );
                while let Ok(n) = nix::unistd::read(m.as_raw_fd(), &mut buf) {
                    if n == 0 || nix::unistd::write(std::io::stdout(), &buf[..n]).is_err() {
                        break;
                    }
                }
            }
            return code;
        }
        let stdin = std::io::stdin();
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = master {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let ready = |i: usize, fds: &[PollFd]| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (sig_ready, master_ready, stdin_ready) =
            (ready(0, &fds), ready(1, &fds), ready(2, &fds));
        drop(fds);
        if master_ready {
            if let Some(m) = master {
                match nix::unistd::read(m.as_raw_fd(), &mut buf) {
                    Ok(n) if n > 0 => {
                        let _ = nix::unistd::write(std::io::stdout(), &buf[..n]);
                    }
                    _ => {}
                }
            }
        }
        if stdin_ready {
            if let Some(m) = master {
                match nix::unistd::read(0, &mut buf) {
                    Ok(n) if n > 0 => {
                        let _ = nix::unistd::write(m, &buf[..n]);
                    }
                    _ => stdin_open = false,
                }
            }
        }
        if sig_ready {
            let Ok(Some(info)) = sfd.read_signal() else {
                continue;
            };
            let sig = Signal::try_from(info.ssi_signo as i32).ok();
            match sig {
                Some(Signal::SIGCHLD) => loop {
                    match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::Exited(pid, code)) if pid.as_raw() == init => {
                            exit = Some(code)
                        }
                        Ok(WaitStatus::Signaled(pid, s, _)) if pid.as_raw() == init => {
                            exit = Some(128 + s as i32)
                        }
                        Ok(WaitStatus::StillAlive) | Err(_) => break,
                        Ok(_) => {}
                    }
                },
                Some(Signal::SIGWINCH) if master.is_some() => {
                    if let Some(m) = master {
                        copy_window_size(m);
                    }
                }
                Some(s) => {
                    let _ = nix::sys::signal::kill(Pid::from_raw(init), s);
                }
                None => {}
            }
        }
    }
}
