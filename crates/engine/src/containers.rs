//! Containers in the store: listing, removing (`rm`, `rm -f`) and
//! pruning the stopped ones. Removal deletes the container from the
//! runtime, then its bundle and writable layer, then its record, so a
//! failure half-way leaves a record that a second `rm` finishes.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::error::EngineError;
use crate::run::{remove_files, Engine};
use crate::store::{Record, Store};

impl Engine {
    /// Every container, newest first.
    pub fn containers(&self) -> Result<Vec<Record>, EngineError> {
        Store::open(&self.root)?.list()
    }

    /// The container `key` (id, id prefix or name) names.
    pub fn container(&self, key: &str) -> Result<Record, EngineError> {
        Store::open(&self.root)?.find(key)
    }

    /// Runs `<runtime> --root <engine's> ARGS` quietly; whether it succeeded.
    fn runtime_quiet(&self, args: &[&str]) -> bool {
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
    /// killed first, as `docker rm -f` does). Returns the record removed.
    pub fn remove_container(&self, key: &str, force: bool) -> Result<Record, EngineError> {
        let db = Store::open(&self.root)?;
        let rec = db.find(key)?;
        if rec.is_running() {
            if !force {
                return Err(EngineError::Running(rec.name.clone()));
            }
            self.runtime_quiet(&["kill", &rec.id, "KILL"]);
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
        }
        // Whatever the runtime still holds (nothing, when the container's
        // own `berth run` cleaned up): --force of a missing one succeeds.
        if !self.runtime_quiet(&["delete", "--force", &rec.id]) {
            return Err(EngineError::Runtime {
                step: "delete",
                message: format!("could not delete container {} from the runtime", rec.id),
            });
        }
        remove_files(&self.root, &rec.id)?;
        db.remove(&rec.id)?;
        Ok(rec)
    }

    /// Removes every container that is not running; returns their ids.
    pub fn prune_containers(&self) -> Result<Vec<String>, EngineError> {
        let mut removed = vec![];
        for rec in self.containers()? {
            if !rec.is_running() {
                removed.push(self.remove_container(&rec.id, false)?.id);
            }
        }
        Ok(removed)
    }
}
