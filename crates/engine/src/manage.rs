//! Changing a container in place: `pause` and `unpause` (the runtime's
//! freezer), `rename`, `update` (resources and restart policy, kept in the
//! bundle for the next start and applied by the runtime to a running
//! container), and `top` (the container's processes, as ps(1) shows them).

use std::process::Stdio;

use crate::error::EngineError;
use crate::limits::Limits;
use crate::run::Engine;
use crate::store::{Record, Store};

/// What `update` changes (unset fields stay as they are).
#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    /// Resource flags, as `run` takes them.
    pub limits: Limits,
    /// `--restart`.
    pub restart: Option<String>,
}

impl Engine {
    /// Runs `<runtime> --root <engine's> ARGS`; its stdout, or the
    /// runtime's error.
    fn runtime_output(&self, step: &'static str, args: &[&str]) -> Result<String, EngineError> {
        let out = std::process::Command::new(&self.runtime)
            .arg("--root")
            .arg(self.root.join("runtime"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| EngineError::Io {
                op: "run",
                path: self.runtime.clone(),
                err: e,
            })?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(EngineError::Runtime {
                step,
                message: err.trim().trim_start_matches("berth-runtime: ").to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The host pid of running container `key`'s init.
    pub(crate) fn init_pid(&self, key: &str) -> Result<i32, EngineError> {
        Ok(self.running(key)?.pid as i32)
    }

    fn running(&self, key: &str) -> Result<Record, EngineError> {
        let rec = self.container(key)?;
        if !rec.is_running() {
            return Err(EngineError::NotRunning(rec.name.clone()));
        }
        Ok(rec)
    }

    /// `pause`: freezes every process of running container `key`.
    pub fn pause_container(&self, key: &str) -> Result<Record, EngineError> {
        let rec = self.running(key)?;
        let db = Store::open(&self.root)?;
        if crate::restart::ContainerSettings::parse(&rec.config).paused {
            return Err(EngineError::InvalidOption {
                option: "pause",
                value: rec.name.clone(),
                reason: "the container is already paused".into(),
            });
        }
        self.runtime_output("pause", &["pause", &rec.id])?;
        db.update_settings(&rec.id, |s| s.paused = true)?;
        crate::events::record(
            &self.root,
            "container",
            "pause",
            &rec.id,
            &[("name", &rec.name)],
        );
        Ok(rec)
    }

    /// `unpause`: thaws paused container `key`.
    pub fn unpause_container(&self, key: &str) -> Result<Record, EngineError> {
        let rec = self.running(key)?;
        let db = Store::open(&self.root)?;
        if !crate::restart::ContainerSettings::parse(&rec.config).paused {
            return Err(EngineError::InvalidOption {
                option: "unpause",
                value: rec.name.clone(),
                reason: "the container is not paused".into(),
            });
        }
        self.runtime_output("resume", &["resume", &rec.id])?;
        db.update_settings(&rec.id, |s| s.paused = false)?;
        crate::events::record(
            &self.root,
            "container",
            "unpause",
            &rec.id,
            &[("name", &rec.name)],
        );
        Ok(rec)
    }

    /// Thaws a paused container that is being stopped or killed (a frozen
    /// process takes its signal only once thawed).
    pub(crate) fn thaw_if_paused(&self, rec: &Record) {
        if crate::restart::ContainerSettings::parse(&rec.config).paused {
            let _ = self.runtime_output("resume", &["resume", &rec.id]);
            if let Ok(db) = Store::open(&self.root) {
                let _ = db.update_settings(&rec.id, |s| s.paused = false);
            }
        }
    }

    /// `rename`: gives container `key` the name `new` (unique, as a name
    /// given to `run`).
    pub fn rename_container(&self, key: &str, new: &str) -> Result<Record, EngineError> {
        let new = crate::names::check(new)?;
        let db = Store::open(&self.root)?;
        let rec = db.find(key)?;
        db.rename(&rec.id, &new)?;
        crate::events::record(
            &self.root,
            "container",
            "rename",
            &rec.id,
            &[("name", &new), ("oldName", &rec.name)],
        );
        db.find(&rec.id)
    }

    /// `top`: the container's processes as `ps ARGS` (default `-ef`)
    /// prints them, only those of the container.
    pub fn top(&self, key: &str, ps_args: &[String]) -> Result<String, EngineError> {
        let rec = self.running(key)?;
        let mut args = vec!["ps", "--format", "table", rec.id.as_str()];
        args.extend(ps_args.iter().map(String::as_str));
        self.runtime_output("ps", &args)
    }

    /// `update`: changes container `key`'s resources (in its bundle, for
    /// every later start, and through the runtime now when it runs) and
    /// its restart policy.
    pub fn update_container(&self, key: &str, u: &UpdateOptions) -> Result<Record, EngineError> {
        let db = Store::open(&self.root)?;
        let rec = db.find(key)?;
        let policy = u
            .restart
            .as_deref()
            .map(crate::restart::RestartPolicy::parse)
            .transpose()?;
        if policy.is_some_and(|p| p != crate::restart::RestartPolicy::No) && rec.auto_remove {
            return Err(EngineError::InvalidOption {
                option: "--restart",
                value: u.restart.clone().unwrap_or_default(),
                reason: "conflicting options: --restart and --rm".into(),
            });
        }
        let bundle = crate::rootfs::container_dir(&self.root, &rec.id)?.join("bundle");
        let config = bundle.join("config.json");
        let mut spec = oci_spec::runtime::Spec::load(&config)
            .map_err(|e| EngineError::Spec(format!("{}: {e}", config.display())))?;
        crate::limits::apply(&mut spec, &u.limits)?;
        let resources = spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().clone())
            .unwrap_or_default();
        if rec.is_running() {
            let file = bundle.join("update.json");
            let json =
                serde_json::to_vec(&resources).map_err(|e| EngineError::Spec(e.to_string()))?;
            std::fs::write(&file, json).map_err(|e| EngineError::Io {
                op: "write",
                path: file.clone(),
                err: e,
            })?;
            let result = self.runtime_output(
                "update",
                &["update", "-r", &file.to_string_lossy(), &rec.id],
            );
            let _ = std::fs::remove_file(&file);
            result?;
        }
        spec.save(&config)
            .map_err(|e| EngineError::Spec(format!("write {}: {e}", config.display())))?;
        let shown = crate::limits::host_config(&spec);
        db.update_settings(&rec.id, |s| {
            if let Some(p) = policy {
                s.restart_policy = p;
            }
            s.resources = shown;
        })?;
        db.find(&rec.id)
    }
}
