//! A container after `run`: `create` (made, not started), `start` (in the
//! foreground with `-a`, else under berth-shim), `restart`, and the
//! restart policy acting when a container exits.
//!
//! A stopped or created container keeps its bundle and writable layer;
//! its root is unmounted. Starting it mounts the root again over the
//! kept layer (from the image layers listed in `bundle/lowers.json`) and
//! runs the same bundle.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use image::imported::ImportedImage;
use image::ContentStore;

use crate::error::EngineError;
use crate::run::{Container, Engine, Launch};
use crate::spec::RunOptions;
use crate::store::{Record, Store};

impl Engine {
    /// `create`: makes the container as `run` would and leaves it
    /// created, not started. Returns its id.
    pub fn create_container(
        &self,
        store: &ContentStore,
        name: &str,
        image: &ImportedImage,
        opts: &RunOptions,
    ) -> Result<String, EngineError> {
        self.launch(store, name, image, opts, Launch::CreateOnly)
            .map(|(id, _)| id)
    }

    /// Mounts a stopped container's root again and clears what a previous
    /// run left with the runtime; the container is then `created`.
    fn reopen<'a>(&'a self, db: &'a Store, rec: &Record) -> Result<Container<'a>, EngineError> {
        let bundle = crate::rootfs::container_dir(&self.root, &rec.id)?.join("bundle");
        let lowers_file = bundle.join("lowers.json");
        let lowers: Vec<PathBuf> = std::fs::read(&lowers_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| EngineError::BadImage {
                name: rec.image.clone(),
                reason: format!(
                    "container {} was never set up completely ({} is missing): remove it",
                    rec.name,
                    lowers_file.display()
                ),
            })?;
        if let Some(gone) = lowers.iter().find(|l| !l.is_dir()) {
            return Err(EngineError::BadImage {
                name: rec.image.clone(),
                reason: format!("its layer {} is gone", gone.display()),
            });
        }
        let settings = crate::restart::ContainerSettings::parse(&rec.config);
        crate::rootfs::remount_rootfs_mapped(
            &self.root,
            &rec.id,
            &lowers,
            settings.id_mappings.as_ref(),
        )?;
        let mut container = Container {
            engine: self,
            db,
            id: rec.id.clone(),
            bundle,
            runtime_root: None,
            created: false,
        };
        // A stale runtime state (a crashed run) would make create fail.
        container.created = true;
        container.runtime_root = Some(self.runtime_root()?);
        container.delete_from_runtime()?;
        db.set_created(&rec.id)?;
        Ok(container)
    }

    /// `start -a`: starts the stopped container `key` under berth-shim
    /// with our stdio attached (stdin with `opts.stdin`, if the container
    /// keeps its stdin open); returns how the attach ended.
    pub fn start_attached(
        &self,
        key: &str,
        opts: &crate::attach::AttachOptions,
    ) -> Result<crate::attach::AttachEnd, EngineError> {
        let db = Store::open(&self.root)?;
        let (rec, bundle) = self.start_waiting(&db, key)?;
        let settings = crate::restart::ContainerSettings::parse(&rec.config);
        let opts = crate::attach::AttachOptions {
            stdin: opts.stdin && settings.open_stdin,
            ..opts.clone()
        };
        self.attach_new(&db, &rec.id, &bundle, settings.tty, &opts)
    }

    /// Starts stopped container `key` under a shim that waits for its
    /// first attach client before it starts the container; its record and
    /// bundle.
    fn start_waiting(&self, db: &Store, key: &str) -> Result<(Record, PathBuf), EngineError> {
        let rec = db.find(key)?;
        if rec.is_running() {
            return Err(EngineError::Running(rec.name.clone()));
        }
        db.update_settings(&rec.id, |s| s.manually_stopped = false)?;
        let _teardown = crate::run::teardown_lock(&self.root, &rec.id)?
            .ok_or_else(|| EngineError::NoSuchContainer(rec.name.clone()))?;
        let mut container = self.reopen(db, &rec)?;
        let _ = std::fs::remove_file(container.bundle.join(crate::detach::EXIT_FILE));
        if let Err(e) = container.spawn_shim(true) {
            let _ = container.stop_keeping_layer();
            return Err(e);
        }
        Ok((rec, container.bundle.clone()))
    }

    /// For the API's attach before start (`docker run`): starts stopped
    /// container `key` and returns its attach socket, connected as the
    /// first client (so nothing of its output is missed), and whether it
    /// has a terminal. The caller relays the socket's frames
    /// (`shim::protocol`).
    pub fn start_for_attach(&self, key: &str) -> Result<(UnixStream, bool), EngineError> {
        let db = Store::open(&self.root)?;
        let (rec, bundle) = self.start_waiting(&db, key)?;
        let settings = crate::restart::ContainerSettings::parse(&rec.config);
        Ok((crate::attach::connect(&bundle, &rec.name)?, settings.tty))
    }

    /// For the API's attach: the attach socket of running container
    /// `key`, connected, and whether it has a terminal.
    pub fn attach_socket(&self, key: &str) -> Result<(UnixStream, bool), EngineError> {
        let rec = self.container(key)?;
        if !rec.is_running() {
            return Err(EngineError::NotRunning(rec.name));
        }
        let settings = crate::restart::ContainerSettings::parse(&rec.config);
        let bundle = crate::rootfs::container_dir(&self.root, &rec.id)?.join("bundle");
        Ok((crate::attach::connect(&bundle, &rec.name)?, settings.tty))
    }

    /// `start`: starts container `key` under berth-shim and returns; a
    /// running one is left as it is. Returns its record.
    pub fn start_container(&self, key: &str) -> Result<Record, EngineError> {
        let db = Store::open(&self.root)?;
        let rec = self.container(key)?;
        db.update_settings(&rec.id, |s| s.manually_stopped = false)?;
        self.start_detached(&db, &rec)?;
        db.find(&rec.id)
    }

    fn start_detached(&self, db: &Store, rec: &Record) -> Result<(), EngineError> {
        if rec.is_running() {
            return Ok(());
        }
        let _teardown = crate::run::teardown_lock(&self.root, &rec.id)?
            .ok_or_else(|| EngineError::NoSuchContainer(rec.name.clone()))?;
        let mut container = self.reopen(db, rec)?;
        // The exit file of the run before would read as this run's.
        let _ = std::fs::remove_file(container.bundle.join(crate::detach::EXIT_FILE));
        match container.spawn_shim(false) {
            Ok(_) => Ok(()),
            Err(e) => {
                let _ = container.stop_keeping_layer();
                Err(e)
            }
        }
    }

    /// `restart`: stops container `key` (SIGTERM, then SIGKILL after
    /// `timeout`) if it runs, and starts it under berth-shim.
    pub fn restart_container(
        &self,
        key: &str,
        timeout: Option<Duration>,
    ) -> Result<Record, EngineError> {
        let rec = self.stop_container(key, timeout, None)?;
        self.start_container(&rec.id)
    }

    /// Applies container `id`'s restart policy after it exited with `code`
    /// having run for `ran`: waits the back-off, then starts it under
    /// berth-shim unless a user stopped, started or removed it meanwhile.
    /// Failures are logged: nobody waits for this answer.
    pub(crate) fn after_exit(&self, id: &str, code: i64, ran: Duration) {
        let Ok(db) = Store::open(&self.root) else {
            return;
        };
        let Ok(rec) = db.find(id) else { return };
        let settings = crate::restart::ContainerSettings::parse(&rec.config);
        if !settings.should_restart(code) {
            return;
        }
        std::thread::sleep(settings.delay(ran));
        let Ok(rec) = db.find(id) else { return };
        let settings = crate::restart::ContainerSettings::parse(&rec.config);
        if rec.is_running() || !settings.should_restart(code) {
            return;
        }
        if let Err(e) = db.update_settings(id, |s| s.restart_count += 1) {
            tracing::warn!("container {id}: restart: {e}");
            return;
        }
        if let Err(e) = self.start_detached(&db, &rec) {
            tracing::warn!("container {id}: restart: {e}");
        }
    }
}
