//! Starting an exec: the runtime's `exec` with the process.json of
//! [`crate::exec`], its stdio inherited (the command line) or piped (the
//! API server, which copies them to its client), and, with a terminal,
//! the pty master received on a console socket. What is left is an
//! [`ExecChild`] to copy from and wait for.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Stdio};

use crate::error::EngineError;
use crate::exec::{runtime_failure, ExecOptions, RemoveOnDrop};
use crate::run::Engine;

/// Where an exec's stdio goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecStdio {
    /// Ours: the process reads and writes the caller's own stdio.
    Inherit,
    /// Pipes the caller copies (stdin only with `interactive`); none with a
    /// terminal, whose master is the one channel.
    Piped,
    /// Nothing: no input, output discarded (a terminal's master is still
    /// received; the caller drains it).
    Null,
}

/// A started exec.
pub struct ExecChild {
    child: Child,
    /// The process's stdin ([`ExecStdio::Piped`], `interactive`, no terminal).
    pub stdin: Option<ChildStdin>,
    /// Its stdout ([`ExecStdio::Piped`], no terminal).
    pub stdout: Option<ChildStdout>,
    /// Its stderr ([`ExecStdio::Piped`], no terminal).
    pub stderr: Option<ChildStderr>,
    /// The pty master (`tty`).
    pub terminal: Option<OwnedFd>,
    pid_file: PathBuf,
    log: PathBuf,
    detach: bool,
    root: PathBuf,
    id: String,
    name: String,
    _files: RemoveOnDrop,
}

fn io(op: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.to_path_buf();
    move |err| EngineError::Io { op, path, err }
}

impl Engine {
    /// Starts `opts.cmd` in the running container `key`, its stdio as
    /// `stdio` says.
    pub fn exec_spawn(
        &self,
        key: &str,
        opts: &ExecOptions,
        stdio: ExecStdio,
    ) -> Result<ExecChild, EngineError> {
        let rec = self.container(key)?;
        if !rec.is_running() {
            return Err(EngineError::NotRunning(rec.name.clone()));
        }
        let (process_file, log, files) = self.write_exec_process(&rec, opts)?;
        let pid_file = process_file.with_extension("pid");
        let files = files.and(pid_file.clone());
        let console = if opts.tty {
            let dir = self.root.join("run");
            berth_fs::private_dir(&dir).map_err(|e| EngineError::Io {
                op: "create",
                path: dir.clone(),
                err: std::io::Error::other(e.to_string()),
            })?;
            Some(
                runtime::console_client::ConsoleListener::new_in(&dir).map_err(|e| {
                    EngineError::Runtime {
                        step: "console socket",
                        message: e.to_string(),
                    }
                })?,
            )
        } else {
            None
        };
        let mut cmd = self.runtime_cmd(&self.runtime_root()?, &log);
        cmd.arg("exec")
            .arg("--process")
            .arg(&process_file)
            .arg("--pid-file")
            .arg(&pid_file);
        if let Some(c) = &console {
            cmd.arg("--console-socket").arg(&c.path);
        }
        if opts.detach {
            cmd.arg("--detach");
        }
        cmd.arg(&rec.id);
        cmd.stdin(match (opts.interactive && !opts.tty, stdio) {
            (true, ExecStdio::Piped) => Stdio::piped(),
            (true, ExecStdio::Inherit) => Stdio::inherit(),
            _ => Stdio::null(),
        });
        let out = match (stdio, opts.tty) {
            (ExecStdio::Inherit, _) => Stdio::inherit,
            (ExecStdio::Piped, false) => Stdio::piped,
            _ => Stdio::null,
        };
        cmd.stdout(out()).stderr(out());
        let shown = opts.cmd.join(" ");
        let event = |action: String| {
            crate::events::record(
                &self.root,
                "container",
                &action,
                &rec.id,
                &[("name", &rec.name)],
            )
        };
        event(format!("exec_create: {shown}"));
        let mut child = cmd.spawn().map_err(io("run", &self.runtime))?;
        event(format!("exec_start: {shown}"));
        let terminal = match &console {
            Some(c) => {
                let got = c.receive_unless(|| child.try_wait().ok().flatten().is_some());
                match got {
                    Ok(Some(master)) => Some(master),
                    other => {
                        let _ = child.kill();
                        let _ = child.wait();
                        let message = match other {
                            Err(e) => e.to_string(),
                            _ => "the runtime ended before it sent the terminal".into(),
                        };
                        return Err(runtime_failure(&log, "exec").unwrap_or(
                            EngineError::Runtime {
                                step: "receive the terminal",
                                message,
                            },
                        ));
                    }
                }
            }
            None => None,
        };
        Ok(ExecChild {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            child,
            terminal,
            pid_file,
            log,
            detach: opts.detach,
            root: self.root.clone(),
            id: rec.id,
            name: rec.name,
            _files: files,
        })
    }
}

impl ExecChild {
    /// The process's pid on the host, once the runtime has written it.
    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|p| p.trim().parse().ok())
    }

    /// The pid, waiting up to `limit` for the runtime to write it; None if
    /// the runtime ended (or took longer) without.
    pub fn pid_within(&mut self, limit: std::time::Duration) -> Option<i32> {
        let end = std::time::Instant::now() + limit;
        loop {
            if let Some(pid) = self.pid() {
                return Some(pid);
            }
            if std::time::Instant::now() >= end || !matches!(self.child.try_wait(), Ok(None)) {
                return self.pid();
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Waits for the exec to end (for the runtime to return, with
    /// `detach`); its exit status as Docker reports it (128+N for signal N).
    pub fn wait(mut self) -> Result<i32, EngineError> {
        let status = self
            .child
            .wait()
            .map_err(io("wait for", std::path::Path::new("runtime")))?;
        // The runtime's exit status is the process's, unless the runtime
        // itself failed (then its log says why).
        if let Some(e) = runtime_failure(&self.log, "exec") {
            return Err(e);
        }
        let code = status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
        });
        if !self.detach {
            crate::events::record(
                &self.root,
                "container",
                "exec_die",
                &self.id,
                &[("name", &self.name), ("exitCode", &code.to_string())],
            );
        }
        Ok(code)
    }
}
