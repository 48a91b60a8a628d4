//! Detached containers (`run -d`): the bundle made as for a foreground
//! run is handed to berth-shim, which creates and starts the container,
//! answers `ok <pid>` (or `error: …`) and then supervises it on its own
//! (see the shim crate). When the container exits, the shim calls back
//! `berth container cleanup ID`, which is [`Engine::cleanup_container`].

use std::io::BufRead;
use std::process::{Command, Stdio};

use crate::error::EngineError;
use crate::run::{now, Container, Engine};
use crate::store::{process_start, Store};

/// The bundle file names the shim and the engine share.
pub(crate) const LOG_FILE: &str = "json.log";
/// See [`LOG_FILE`].
pub(crate) const EXIT_FILE: &str = "exit-status";

impl Container<'_> {
    /// Starts berth-shim for this container and waits for its answer;
    /// returns the init's pid and the shim. With `wait_attach`, the shim
    /// answers once the container is created and starts it when the
    /// first client has attached.
    pub(crate) fn spawn_shim(
        &mut self,
        wait_attach: bool,
    ) -> Result<(i32, std::process::Child), EngineError> {
        let runtime_root = self.engine.runtime_root()?;
        // From here on a failure deletes whatever the runtime has.
        self.runtime_root = Some(runtime_root.clone());
        self.created = true;
        let settings = crate::restart::ContainerSettings::parse(&self.db.find(&self.id)?.config);
        if settings.oom_killed {
            self.db
                .update_settings(&self.id, |s| s.oom_killed = false)?;
        }
        let mut options = settings.log.shim_args();
        if settings.tty {
            let dir = self.engine.root.join("run");
            berth_fs::private_dir(&dir).map_err(|e| EngineError::Io {
                op: "create",
                path: dir.clone(),
                err: std::io::Error::other(e.to_string()),
            })?;
            options.extend(["--tty".into(), "--console-dir".into()]);
            options.push(dir.to_string_lossy().into_owned());
        }
        if settings.open_stdin {
            options.push("--stdin".into());
        }
        if settings.stdin_once {
            options.push("--stdin-once".into());
        }
        if wait_attach {
            options.push("--wait-attach".into());
        }
        if let Some(check) = &settings.healthcheck {
            options.extend(check.shim_args());
            // Every start begins with no result.
            self.db.update_settings(&self.id, |s| {
                s.health = Some(crate::health::HealthState::starting())
            })?;
        }
        // (A container on no network has nothing to set up: no query for it.)
        if !settings.networks.is_empty() {
            crate::net_setup::up(self.engine, self.db, &self.id)?;
        }
        let mut child = Command::new(&self.engine.shim)
            .args(&options)
            .arg(&self.engine.runtime)
            .arg(&runtime_root)
            .arg(&self.id)
            .arg(&self.bundle)
            .arg(self.bundle.join(LOG_FILE))
            .arg(self.bundle.join(EXIT_FILE))
            .arg("--")
            .arg(&self.engine.berth)
            .arg("--root")
            .arg(&self.engine.root)
            .arg("container")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| EngineError::Io {
                op: "run",
                path: self.engine.shim.clone(),
                err: e,
            })?;
        let mut answer = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = std::io::BufReader::new(out).read_line(&mut answer);
        }
        let answer = answer.trim();
        let expected = if wait_attach { "created " } else { "ok " };
        if let Some(pid) = answer
            .strip_prefix(expected)
            .and_then(|p| p.parse::<i32>().ok())
        {
            let start = process_start(pid).unwrap_or(0);
            let shim = crate::restart::Supervisor::of(child.id() as i64);
            self.db.update_settings(&self.id, |s| s.supervisor = shim)?;
            self.db.set_running(&self.id, pid as i64, start, now())?;
            // The shim lives on; whoever outlives us reaps it.
            return Ok((pid, child));
        }
        let _ = child.wait();
        Err(EngineError::Runtime {
            step: "start",
            message: answer
                .strip_prefix("error: ")
                .unwrap_or("berth-shim ended without an answer")
                .to_string(),
        })
    }
}

impl Engine {
    /// What berth-shim calls when its container has exited: records the
    /// exit status, deletes the container from the runtime and unmounts
    /// its root (or removes it all, with `--rm`). Also run by hand, it
    /// finishes what a crashed shim left. A container no longer in the
    /// store is nothing to do.
    pub fn cleanup_container(&self, id: &str) -> Result<(), EngineError> {
        let db = Store::open(&self.root)?;
        let rec = match db.find(id) {
            Ok(r) => r,
            Err(EngineError::NoSuchContainer(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if rec.is_running() {
            return Err(EngineError::Running(rec.name));
        }
        let bundle = crate::rootfs::container_dir(&self.root, &rec.id)?.join("bundle");
        let code = std::fs::read_to_string(bundle.join(EXIT_FILE))
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(255);
        let mut c = Container {
            engine: self,
            db: &db,
            id: rec.id.clone(),
            bundle,
            runtime_root: Some(self.runtime_root()?),
            created: true,
        };
        let finished = now();
        // Only ever set here (a start clears it): a second cleanup (`ps`
        // finishing what the shim's callback is doing) may read the
        // cgroup after the first deleted it.
        if crate::run::oom_killed(&rec.id) {
            db.update_settings(&rec.id, |s| s.oom_killed = true)?;
        }
        // Only the run this cleanup is for: if another cleanup recorded it
        // already, or the container was started again meanwhile, there is
        // nothing of this run left to take down (and the new run must not be).
        // The teardown lock is held from before the exit is recorded until
        // the run is taken down: a `stop`, which waits for the exit and
        // then for the lock, returns only once the network is down.
        let Some(lock) = crate::run::teardown_lock(&self.root, &rec.id)? else {
            return Ok(());
        };
        if !db.set_exited_run(&rec.id, rec.pid, code, finished)? {
            return Ok(());
        }
        if !c.finish_exited_locked(rec.auto_remove)? {
            return Ok(());
        }
        // A restart policy starts it again, under the lock: let it go first.
        drop(lock);
        let ran = std::time::Duration::from_secs((finished - rec.started).max(0) as u64);
        self.after_exit(&rec.id, code, ran);
        Ok(())
    }

    /// The json-file log of container `key` (written by berth-shim); its
    /// rotated files are beside it (see [`crate::logging::log_files`]).
    /// An error for a container whose log driver is `none`.
    pub fn log_path(&self, key: &str) -> Result<std::path::PathBuf, EngineError> {
        let rec = Store::open(&self.root)?.find(key)?;
        let settings = crate::restart::ContainerSettings::parse(&rec.config);
        if !settings.log.readable() {
            return Err(EngineError::LogNotReadable {
                name: rec.name,
                driver: settings.log.name().to_string(),
            });
        }
        Ok(crate::rootfs::container_dir(&self.root, &rec.id)?
            .join("bundle")
            .join(LOG_FILE))
    }
}
