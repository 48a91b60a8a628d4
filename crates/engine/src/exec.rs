//! `exec`: one more process in a running container. Its spec is the
//! container's own process (capabilities, seccomp, limits, user) with the
//! command, environment, user, working directory and terminal of the
//! command line, handed to the runtime's `exec` as a process.json. In the
//! foreground the runtime waits for it and its status is ours; with a
//! terminal, the pty master is copied to and from our stdio meanwhile.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::error::EngineError;
use crate::run::Engine;
use crate::{lookup, user};

/// `docker exec`'s options.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// The command and its arguments.
    pub cmd: Vec<String>,
    /// `-e KEY=value` / `-e KEY` (from the caller's environment).
    pub env: Vec<String>,
    /// `-u`: a user of the container's /etc/passwd, or numeric.
    pub user: Option<String>,
    /// `-w`: the working directory (default: the container's).
    pub workdir: Option<String>,
    /// `-i`: our stdin goes to the process.
    pub interactive: bool,
    /// `-t`: the process gets a terminal.
    pub tty: bool,
    /// `-d`: start it and return.
    pub detach: bool,
    /// `--privileged`: every capability for this process.
    pub privileged: bool,
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.to_path_buf();
    move |err| EngineError::Io { op, path, err }
}

/// Sets `KEY=value` in `env`, replacing an earlier value of KEY.
fn set_env(env: &mut Vec<String>, kv: &str) {
    let key = kv.split('=').next().unwrap_or("");
    env.retain(|e| e.split('=').next() != Some(key));
    env.push(kv.to_string());
}

/// The process to exec: the container's own, changed as `opts` says.
/// `rootfs` is the container's mounted root (for `-u` and the program).
pub fn exec_process(
    base: &oci_spec::runtime::Process,
    rootfs: &Path,
    opts: &ExecOptions,
    caller_env: impl Fn(&str) -> Option<String>,
) -> Result<oci_spec::runtime::Process, EngineError> {
    if opts.cmd.is_empty() {
        return Err(EngineError::InvalidOption {
            option: "exec",
            value: String::new(),
            reason: "no command given".into(),
        });
    }
    let mut p = base.clone();
    let mut env = p.env().clone().unwrap_or_default();
    if opts.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        set_env(&mut env, "TERM=xterm");
    }
    for kv in &opts.env {
        match kv.split_once('=') {
            Some(("", _)) => {
                return Err(EngineError::InvalidOption {
                    option: "--env",
                    value: kv.clone(),
                    reason: "the variable has no name".into(),
                })
            }
            Some(_) => set_env(&mut env, kv),
            None => {
                if let Some(v) = caller_env(kv) {
                    set_env(&mut env, &format!("{kv}={v}"));
                }
            }
        }
    }
    if let Some(spec) = &opts.user {
        let u = user::resolve(rootfs, spec)?;
        let mut pu = p.user().clone();
        pu.set_uid(u.uid);
        pu.set_gid(u.gid);
        pu.set_additional_gids(Some(u.additional_gids.clone()));
        p.set_user(pu);
        env.retain(|e| !e.starts_with("HOME="));
        env.push(format!("HOME={}", u.home));
    }
    if let Some(w) = &opts.workdir {
        if !w.starts_with('/') {
            return Err(EngineError::InvalidOption {
                option: "--workdir",
                value: w.clone(),
                reason: "the working directory must be an absolute path".into(),
            });
        }
        p.set_cwd(PathBuf::from(w));
    }
    let cwd = p.cwd().to_string_lossy().into_owned();
    lookup::check_program(rootfs, &opts.cmd[0], &env, &cwd)?;
    p.set_args(Some(opts.cmd.clone()));
    p.set_env(Some(env));
    p.set_terminal(Some(opts.tty));
    Ok(p)
}

impl Engine {
    /// Runs `opts.cmd` in the running container `key`. Returns its exit
    /// status (0 with `detach`, once it runs).
    pub fn exec(&self, key: &str, opts: &ExecOptions) -> Result<i32, EngineError> {
        if opts.detach && (opts.interactive || opts.tty) {
            return Err(EngineError::NotImplemented(
                "exec -d with -i or -t (nothing would hold the terminal or stdin)",
            ));
        }
        let mut child = self.exec_spawn(key, opts, crate::exec_spawn::ExecStdio::Inherit)?;
        let relay = match child.terminal.take() {
            Some(master) => {
                let raw = opts
                    .interactive
                    .then(runtime::console_client::RawTerminal::enter);
                runtime::console_client::copy_window_size(&master);
                Some((crate::tty::Relay::start(master, opts.interactive)?, raw))
            }
            None => None,
        };
        let code = child.wait();
        if let Some((relay, raw)) = relay {
            relay.finish();
            drop(raw);
        }
        code
    }

    /// Writes the process.json of an exec in running container `rec` (0600,
    /// in its bundle) and names its runtime log; both go when the guard does.
    pub(crate) fn write_exec_process(
        &self,
        rec: &crate::store::Record,
        opts: &ExecOptions,
    ) -> Result<(PathBuf, PathBuf, RemoveOnDrop), EngineError> {
        let bundle = crate::rootfs::container_dir(&self.root, &rec.id)?.join("bundle");
        let loaded = runtime::spec::load(&bundle).map_err(|e| EngineError::Spec(e.to_string()))?;
        let base = loaded.spec.process().clone().unwrap_or_default();
        let rootfs = loaded
            .spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .unwrap_or_default();
        let rootfs = if rootfs.is_absolute() {
            rootfs
        } else {
            bundle.join(rootfs)
        };
        let mut process = exec_process(&base, &rootfs, opts, |k| std::env::var(k).ok())?;
        if opts.privileged {
            // As Docker's: every capability for this process.
            let all = crate::confine::all_capabilities();
            let mut caps = process.capabilities().clone().unwrap_or_default();
            caps.set_bounding(Some(all.clone()));
            caps.set_effective(Some(all.clone()));
            caps.set_permitted(Some(all));
            process.set_capabilities(Some(caps));
        }

        let tag = crate::run::new_id()?;
        let process_file = bundle.join(format!("exec-{}.json", &tag[..12]));
        let log = bundle.join(format!("exec-{}.log", &tag[..12]));
        let _files = RemoveOnDrop(vec![process_file.clone(), log.clone()]);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&process_file)
            .map_err(io("create", &process_file))?;
        let json = serde_json::to_vec(&process).map_err(|e| EngineError::Spec(e.to_string()))?;
        f.write_all(&json).map_err(io("write", &process_file))?;
        drop(f);

        Ok((process_file, log, _files))
    }

    /// Runs `argv` in running container `rec` as one more of its processes
    /// (a health probe), its stdout and stderr captured together. None
    /// when it ran past `timeout`: then it is killed.
    pub(crate) fn exec_captured(
        &self,
        rec: &crate::store::Record,
        argv: Vec<String>,
        timeout: std::time::Duration,
    ) -> Result<Option<(i32, String)>, EngineError> {
        let opts = ExecOptions {
            cmd: argv,
            ..Default::default()
        };
        let (process_file, log, files) = self.write_exec_process(rec, &opts)?;
        let pid_file = process_file.with_extension("pid");
        let output = process_file.with_extension("out");
        let _more = RemoveOnDrop(vec![pid_file.clone(), output.clone()]);
        let out = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&output)
            .map_err(io("create", &output))?;
        let mut child = self
            .runtime_cmd(&self.runtime_root()?, &log)
            .arg("exec")
            .arg("--process")
            .arg(&process_file)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(&rec.id)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().map_err(io("dup", &output))?))
            .stderr(Stdio::from(out.try_clone().map_err(io("dup", &output))?))
            .spawn()
            .map_err(io("run", &self.runtime))?;
        let deadline = std::time::Instant::now() + timeout;
        let status = loop {
            if let Some(s) = child.try_wait().map_err(io("wait for", &self.runtime))? {
                break Some(s);
            }
            if std::time::Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let Some(status) = status else {
            // The probe itself, inside the container, then the runtime.
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        };
        if let Some(e) = runtime_failure(&log, "exec") {
            return Err(e);
        }
        drop(files);
        let mut text = Vec::new();
        let mut f = out;
        std::io::Seek::rewind(&mut f).map_err(io("read", &output))?;
        std::io::Read::take(&mut f, 64 << 10)
            .read_to_end(&mut text)
            .map_err(io("read", &output))?;
        let code = status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
        });
        Ok(Some((code, String::from_utf8_lossy(&text).into_owned())))
    }
}

/// The runtime's own error in `log`, if it logged one.
pub(crate) fn runtime_failure(log: &Path, step: &'static str) -> Option<EngineError> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v["level"] == "error").then(|| EngineError::Runtime {
            step,
            message: v["msg"].as_str().unwrap_or("").to_string(),
        })
    })
}

/// Files removed when the exec is over, whatever happened.
pub(crate) struct RemoveOnDrop(Vec<PathBuf>);

impl RemoveOnDrop {
    /// Also removes `path`.
    pub(crate) fn and(mut self, path: PathBuf) -> Self {
        self.0.push(path);
        self
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with_busybox() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("bin")).unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::create_dir_all(r.join("home/app")).unwrap();
        std::fs::write(r.join("bin/sh"), "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(r.join("bin/sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            r.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            r.join("etc/group"),
            "root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
        )
        .unwrap();
        dir
    }

    fn base() -> oci_spec::runtime::Process {
        let mut p = oci_spec::runtime::Process::default();
        p.set_env(Some(vec![
            "PATH=/bin".into(),
            "A=image".into(),
            "HOME=/root".into(),
        ]));
        p.set_cwd("/".into());
        p
    }

    #[test]
    fn the_command_line_changes_the_containers_process() {
        let root = root_with_busybox();
        let opts = ExecOptions {
            cmd: vec!["sh".into(), "-c".into(), "true".into()],
            env: vec!["A=exec".into(), "FROM_CALLER".into(), "UNSET".into()],
            user: Some("app".into()),
            workdir: Some("/home/app".into()),
            tty: true,
            ..Default::default()
        };
        let caller = |k: &str| (k == "FROM_CALLER").then(|| "here".to_string());
        let p = exec_process(&base(), root.path(), &opts, caller).unwrap();
        let env = p.env().clone().unwrap();
        assert!(env.contains(&"A=exec".to_string()), "{env:?}");
        assert!(env.contains(&"FROM_CALLER=here".to_string()), "{env:?}");
        assert!(env.contains(&"TERM=xterm".to_string()), "{env:?}");
        assert!(env.contains(&"HOME=/home/app".to_string()), "{env:?}");
        assert!(!env.iter().any(|e| e.starts_with("UNSET")), "{env:?}");
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
        assert_eq!(p.user().additional_gids().clone().unwrap(), vec![2000]);
        assert_eq!(p.cwd(), Path::new("/home/app"));
        assert_eq!(p.terminal(), Some(true));
        assert_eq!(p.args().clone().unwrap(), opts.cmd);
    }

    #[test]
    fn bad_exec_options_are_refused_by_name() {
        let root = root_with_busybox();
        let run = |o: ExecOptions| exec_process(&base(), root.path(), &o, |_| None).unwrap_err();
        let cmd = vec!["sh".to_string()];
        assert!(matches!(
            run(ExecOptions::default()),
            EngineError::InvalidOption { option: "exec", .. }
        ));
        let e = run(ExecOptions {
            cmd: vec!["nothere".into()],
            ..Default::default()
        });
        assert!(matches!(e, EngineError::NotFound(_)), "{e}");
        assert_eq!(e.exit_code(), 127);
        let e = run(ExecOptions {
            cmd: cmd.clone(),
            workdir: Some("rel".into()),
            ..Default::default()
        });
        assert!(
            matches!(
                e,
                EngineError::InvalidOption {
                    option: "--workdir",
                    ..
                }
            ),
            "{e}"
        );
        let e = run(ExecOptions {
            cmd: cmd.clone(),
            user: Some("nobody".into()),
            ..Default::default()
        });
        assert!(matches!(e, EngineError::User { .. }), "{e}");
        let e = run(ExecOptions {
            cmd,
            env: vec!["=x".into()],
            ..Default::default()
        });
        assert!(
            matches!(
                e,
                EngineError::InvalidOption {
                    option: "--env",
                    ..
                }
            ),
            "{e}"
        );
    }
}
