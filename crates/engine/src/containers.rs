//! Containers in the store: listing, stopping, signalling, waiting for,
//! removing (`rm`, `rm -f`) and pruning the stopped ones. Removal deletes the container from the
//! runtime, then its bundle and writable layer, then its record, so a
//! failure half-way leaves a record that a second `rm` finishes.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::error::EngineError;
use crate::run::{remove_files, Engine};
use crate::store::{Record, State, Store};

impl Engine {
    /// Every container, newest first.
    pub fn containers(&self) -> Result<Vec<Record>, EngineError> {
        self.containers_in(&Store::open(&self.root)?)
    }

    /// [`Engine::containers`] through an open store (a server keeps one).
    pub fn containers_in(&self, db: &Store) -> Result<Vec<Record>, EngineError> {
        let list = db.list()?;
        if list.iter().any(|r| self.needs_cleanup(r)) {
            for r in list.iter().filter(|r| self.needs_cleanup(r)) {
                let _ = self.cleanup_container(&r.id);
            }
            return db.list();
        }
        Ok(list)
    }

    /// The container `key` (id, id prefix or name) names.
    pub fn container(&self, key: &str) -> Result<Record, EngineError> {
        self.container_in(&Store::open(&self.root)?, key)
    }

    /// [`Engine::container`] through an open store (a server keeps one).
    pub fn container_in(&self, db: &Store, key: &str) -> Result<Record, EngineError> {
        let r = db.find(key)?;
        if self.needs_cleanup(&r) {
            let _ = self.cleanup_container(&r.id);
            return db.find(&r.id);
        }
        Ok(r)
    }

    /// A detached container whose shim recorded an exit that the store
    /// does not have yet (the shim's callback failed or is running).
    fn needs_cleanup(&self, r: &Record) -> bool {
        r.state == State::Running
            && !r.is_running()
            && crate::rootfs::container_dir(&self.root, &r.id)
                .is_ok_and(|d| d.join("bundle").join(crate::detach::EXIT_FILE).exists())
    }

    /// Runs `<runtime> --root <engine's> ARGS` quietly; whether it succeeded.
    pub(crate) fn runtime_quiet(&self, args: &[&str]) -> bool {
        let root = self.root.join("runtime");
        std::process::Command::new(&self.runtime)
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Removes container `key`; a running one only with `force` (it is
    /// killed first, as `docker rm -f` does), and its anonymous volumes
    /// with `volumes` (`rm -v`). Returns the record removed.
    pub fn remove_container(
        &self,
        key: &str,
        force: bool,
        volumes: bool,
    ) -> Result<Record, EngineError> {
        let db = Store::open(&self.root)?;
        let rec = db.find(key)?;
        if rec.is_running() {
            if !force {
                return Err(EngineError::Running(rec.name.clone()));
            }
            // Its restart policy must not start it again meanwhile.
            db.update_settings(&rec.id, |s| s.manually_stopped = true)?;
            self.runtime_quiet(&["kill", &rec.id, "KILL"]);
            self.thaw_if_paused(&rec);
            let end = Instant::now() + Duration::from_secs(10);
            while db.find(&rec.id).is_ok_and(|r| r.is_running()) {
                if Instant::now() > end {
                    return Err(EngineError::Runtime {
                        step: "kill",
                        message: format!("container {} still runs 10 s after SIGKILL", rec.name),
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // Its supervisor is still writing into the bundle (the last of
            // the log, the exit status) until it records the exit.
            self.wait_recorded(&db, &rec.id);
        }
        // Its supervisor may be taking it down right now: one at a time.
        let Some(_lock) = crate::run::teardown_lock(&self.root, &rec.id)? else {
            let anonymous = db.remove(&rec.id)?;
            if volumes {
                self.remove_anonymous_volumes(&anonymous);
            }
            return Ok(rec);
        };
        // Whatever the runtime still holds (nothing, when the container's
        // own `berth run` cleaned up): --force of a missing one succeeds.
        if !self.runtime_quiet(&["delete", "--force", &rec.id]) {
            return Err(EngineError::Runtime {
                step: "delete",
                message: format!("could not delete container {} from the runtime", rec.id),
            });
        }
        remove_files(&self.root, &rec.id)?;
        let anonymous = db.remove(&rec.id)?;
        if volumes {
            self.remove_anonymous_volumes(&anonymous);
        }
        Ok(rec)
    }

    /// Waits, at most 30 s, until the exit of container `id` (whose
    /// process has ended) is recorded, or its supervisor is gone without
    /// recording it (then the caller takes the container down itself).
    fn wait_recorded(&self, db: &Store, id: &str) {
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            let Ok(r) = db.find(id) else { return };
            let settings = crate::restart::ContainerSettings::parse(&r.config);
            if r.state != State::Running || !settings.supervisor.is_some_and(|s| s.alive()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until container `id` no longer runs, at most `limit`; whether it stopped.
    fn wait_stopped(&self, db: &Store, id: &str, limit: Duration) -> bool {
        let end = Instant::now().checked_add(limit);
        loop {
            match db.find(id) {
                Ok(r) if r.is_running() => {}
                _ => return true,
            }
            if end.is_some_and(|end| Instant::now() > end) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` (a name such as `TERM`/`SIGTERM`, or a number) to a
    /// running container's init.
    pub fn kill_container(&self, key: &str, signal: &str) -> Result<Record, EngineError> {
        let sig = parse_signal(signal)?;
        let rec = self.container(key)?;
        if !rec.is_running() {
            return Err(EngineError::NotRunning(rec.name.clone()));
        }
        // A container killed (SIGKILL, SIGTERM) by a user is not restarted
        // by its policy; another signal (a SIGHUP to reload) changes nothing.
        if sig == libc::SIGKILL || sig == libc::SIGTERM {
            Store::open(&self.root)?.update_settings(&rec.id, |s| s.manually_stopped = true)?;
        }
        if !self.runtime_quiet(&["kill", &rec.id, &sig.to_string()]) {
            return Err(EngineError::Runtime {
                step: "kill",
                message: format!("could not signal container {}", rec.name),
            });
        }
        if sig == libc::SIGKILL || sig == libc::SIGTERM {
            self.thaw_if_paused(&rec);
        }
        crate::events::record(
            &self.root,
            "container",
            "kill",
            &rec.id,
            &[("name", &rec.name), ("signal", &sig.to_string())],
        );
        Ok(rec)
    }

    /// Stops container `key` as `docker stop` does: `signal` (default
    /// SIGTERM), then SIGKILL after `timeout`. A stopped container is left as it is.
    pub fn stop_container(
        &self,
        key: &str,
        timeout: Option<Duration>,
        signal: Option<&str>,
    ) -> Result<Record, EngineError> {
        let db = Store::open(&self.root)?;
        let rec = db.find(key)?;
        // What the command line says, else the container's own (its
        // --stop-signal/--stop-timeout or the image's STOPSIGNAL), else
        // SIGTERM and 10 s.
        let own = crate::restart::ContainerSettings::parse(&rec.config);
        let sig = parse_signal(signal.or(own.stop_signal.as_deref()).unwrap_or("TERM"))?;
        let timeout = timeout
            .unwrap_or_else(|| Duration::from_secs(own.stop_timeout.unwrap_or(10).max(0) as u64));
        // Its restart policy leaves it stopped (also one that is between
        // two restarts).
        db.update_settings(&rec.id, |s| s.manually_stopped = true)?;
        if !rec.is_running() {
            return Ok(rec);
        }
        self.runtime_quiet(&["kill", &rec.id, &sig.to_string()]);
        // A paused container takes the signal once thawed, as in Docker.
        self.thaw_if_paused(&rec);
        if !self.wait_stopped(&db, &rec.id, timeout) {
            self.runtime_quiet(&["kill", &rec.id, "9"]);
            if !self.wait_stopped(&db, &rec.id, Duration::from_secs(10)) {
                return Err(EngineError::Runtime {
                    step: "kill",
                    message: format!("container {} still runs 10 s after SIGKILL", rec.name),
                });
            }
        }
        // After its exit is recorded ("die"), as Docker orders them.
        let settled = match self.settled(&rec.id) {
            // Removed meanwhile (--rm): stopped all the same.
            Err(EngineError::NoSuchContainer(_)) => Ok(rec.clone()),
            other => other,
        };
        // Its supervisor records the exit and takes the run down (network
        // included) under the teardown lock: stopped means that is done.
        crate::run::wait_teardown(&self.root, &rec.id, Duration::from_secs(90))?;
        let name = [("name", rec.name.as_str())];
        crate::events::record(&self.root, "container", "stop", &rec.id, &name);
        settled
    }

    /// Blocks until container `key` is not running; returns its exit status
    /// (255 when its `berth run` ended without recording one).
    pub fn wait_container(&self, key: &str) -> Result<i64, EngineError> {
        let db = Store::open(&self.root)?;
        let rec = db.find(key)?;
        self.wait_stopped(&db, &rec.id, Duration::MAX);
        let r = self.settled(&rec.id)?;
        Ok(match r.state {
            State::Exited => r.exit_code,
            State::Created => 0,
            State::Running => 255,
        })
    }

    /// The record of a container whose process has ended, once its
    /// supervisor (`berth run` or berth-shim) has recorded the exit: that
    /// follows the end of the process by a moment. After 5 s a record
    /// still saying running is returned as it is.
    fn settled(&self, id: &str) -> Result<Record, EngineError> {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let r = self.container(id)?;
            if r.state != State::Running || Instant::now() > end {
                return Ok(r);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Removes every container that is not running; returns their ids.
    pub fn prune_containers(&self) -> Result<Vec<String>, EngineError> {
        let mut removed = vec![];
        for rec in self.containers()? {
            if !rec.is_running() {
                removed.push(self.remove_container(&rec.id, false, false)?.id);
            }
        }
        Ok(removed)
    }
}

/// A signal as Docker takes it (`KILL`, `SIGKILL`, `9`): its number.
pub fn parse_signal(s: &str) -> Result<i32, EngineError> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| EngineError::InvalidOption {
            option: "--signal",
            value: s.to_string(),
            reason: "not a signal name or number".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_as_docker_takes_them() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("sigterm").unwrap(), 15);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }
}
