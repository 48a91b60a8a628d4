//! `system check`: finds what a crash left behind and repairs it, one
//! finding per thing. A crash is a `kill -9` of `berth` or berth-shim at
//! any moment; what it can leave, and the repair:
//!
//! - a container recorded as running whose process is gone: its exit is
//!   recorded (the shim's exit file if there is one, else 255) and it is
//!   taken down as its supervisor would have (kept, or removed with `--rm`);
//! - a container still running whose supervisor (its `berth run` or
//!   berth-shim) is gone, so that nothing copies its output or records
//!   its exit: it is killed, then as above;
//! - a container left half-made (its bundle incomplete) by a `run` or
//!   `create` that is gone: removed;
//! - container files, runtime state and mounts under the root that belong
//!   to no container, or to one that is not running: removed, deleted
//!   from the runtime, unmounted;
//! - the cgroup of a container of this store that is not running (a
//!   runtime delete cut short): processes in it killed, the cgroup removed;
//! - the pinned network namespace of a container that is not running (a
//!   `kill -9` during network set-up or teardown): its veth pairs deleted,
//!   the namespace unpinned and removed; its CNI interfaces deleted by
//!   their plugins (`DEL`, from the cache `ADD` left);
//! - console socket directories of processes that are gone: removed.
//!
//! It fails closed: if the container database cannot be read, nothing is
//! touched. Only what is under this root, of containers this store knows
//! or of directories it made, is ever touched; anything younger than a
//! minute is left alone (a `run` may be making it).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::EngineError;
use crate::restart::ContainerSettings;
use crate::run::{remove_files, Container, Engine};
use crate::store::{Record, State, Store};

/// One thing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What it is about (`container NAME`, a path).
    pub subject: String,
    /// What is wrong.
    pub problem: String,
    /// What was done (None on a dry run, or when the repair failed).
    pub repair: Option<String>,
    /// Why the repair failed.
    pub error: Option<String>,
}

/// Younger than this, a leftover may be a `run` at work.
const GRACE: Duration = Duration::from_secs(60);

fn young(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < GRACE)
}

impl Engine {
    /// Looks for leftovers and, unless `dry_run`, repairs each.
    pub fn system_check(&self, dry_run: bool) -> Result<Vec<Finding>, EngineError> {
        // Fail closed: without the list of containers, touch nothing.
        let db = Store::open(&self.root)?;
        let rows = db.list()?;
        let mut found = vec![];
        let mut note =
            |subject: String,
             problem: String,
             fix: &mut dyn FnMut() -> Result<String, EngineError>| {
                let (repair, error) = if dry_run {
                    (None, None)
                } else {
                    match fix() {
                        Ok(done) => (Some(done), None),
                        Err(e) => (None, Some(e.to_string())),
                    }
                };
                found.push(Finding {
                    subject,
                    problem,
                    repair,
                    error,
                });
            };

        for r in &rows {
            let settings = ContainerSettings::parse(&r.config);
            let supervised = settings.supervisor.is_some_and(|s| s.alive());
            let subject = format!("container {} ({})", r.name, &r.id[..12]);
            match r.state {
                State::Running if !r.is_running() && !supervised => {
                    note(
                        subject,
                        "recorded as running, but its process and its supervisor are gone".into(),
                        &mut || self.record_lost_exit(&db, r, None),
                    );
                }
                State::Running
                    if r.is_running() && !supervised && settings.supervisor.is_some() =>
                {
                    note(
                        subject,
                        format!(
                            "running without its supervisor (pid {} is gone): nothing copies its output or records its exit",
                            settings.supervisor.map_or(0, |s| s.pid)
                        ),
                        &mut || self.record_lost_exit(&db, r, Some(libc::SIGKILL)),
                    );
                }
                State::Created if !supervised && !self.is_complete(r) => {
                    note(
                        subject,
                        "half-made: its bundle is incomplete and the berth making it is gone"
                            .into(),
                        &mut || {
                            let mut c = self.handle(&db, r)?;
                            c.remove()?;
                            Ok("removed".into())
                        },
                    );
                }
                _ => {}
            }
        }

        // What is under the root but belongs to no container, or to one
        // that is not running (after the repairs above).
        let rows = db.list()?;
        let known = |id: &str| rows.iter().find(|r| r.id == id);
        let runs = |id: &str| {
            known(id).is_some_and(|r| {
                r.is_running()
                    || ContainerSettings::parse(&r.config)
                        .supervisor
                        .is_some_and(|s| s.alive())
            })
        };
        for dir in entries(&self.root.join("containers")) {
            let id = file_name(&dir);
            if known(&id).is_none() && !young(&dir) {
                note(
                    format!("directory {}", dir.display()),
                    "container files of no container".into(),
                    &mut || {
                        remove_files(&self.root, &id)?;
                        Ok("removed".into())
                    },
                );
            }
        }
        for state in entries(&self.root.join("runtime")) {
            let id = file_name(&state);
            if id.starts_with('.') || runs(&id) || young(&state) {
                continue;
            }
            note(
                format!("runtime state {}", state.display()),
                "runtime state of a container that is not running".into(),
                &mut || {
                    if self.runtime_quiet(&["delete", "--force", &id]) {
                        Ok("deleted from the runtime (its cgroup and processes with it)".into())
                    } else {
                        Err(EngineError::Runtime {
                            step: "delete",
                            message: format!("could not delete {id}"),
                        })
                    }
                },
            );
        }
        // Cgroups of this store's containers that are not running (left
        // when a runtime's delete was cut short): removed, and processes
        // still in one (escaped from a crashed supervisor) killed first.
        let hier = cgroups::Hierarchy::detect().ok();
        for r in rows.iter().filter(|r| !runs(&r.id)) {
            let Some(m) = hier
                .as_ref()
                .and_then(|h| cgroups::CgroupManager::new(h, &crate::run::cgroup_path(&r.id)).ok())
            else {
                continue;
            };
            if !m.dirs().iter().any(|d| d.is_dir()) {
                continue;
            }
            let procs = m.pids().map(|p| p.len()).unwrap_or(0);
            let problem = if procs > 0 {
                format!(
                    "its cgroup {} still holds {procs} process(es), though it is not running",
                    m.path()
                )
            } else {
                format!("its cgroup {} is left, though it is not running", m.path())
            };
            note(
                format!("container {} ({})", r.name, &r.id[..12]),
                problem,
                &mut || {
                    m.destroy().map_err(|e| EngineError::Runtime {
                        step: "remove the cgroup",
                        message: e.to_string(),
                    })?;
                    Ok(if procs > 0 {
                        "processes killed, cgroup removed".into()
                    } else {
                        "cgroup removed".into()
                    })
                },
            );
        }
        let prefix = format!("{}/", self.root.join("containers").display());
        for mount in mounts_under(&prefix) {
            let id = mount
                .strip_prefix(&prefix)
                .and_then(|rest| rest.split('/').next())
                .unwrap_or("")
                .to_string();
            if runs(&id) {
                continue;
            }
            note(
                format!("mount {mount}"),
                "a mount of a container that is not running".into(),
                &mut || {
                    nix::mount::umount2(Path::new(&mount), nix::mount::MntFlags::MNT_DETACH)
                        .map_err(|e| EngineError::Io {
                            op: "unmount",
                            path: PathBuf::from(&mount),
                            err: e.into(),
                        })?;
                    Ok("unmounted".into())
                },
            );
        }
        // Network namespaces (and their veths) of containers that do not run.
        for pinned in entries(&self.root.join("netns")) {
            let id = file_name(&pinned);
            if runs(&id) {
                continue;
            }
            note(
                format!("network namespace {}", pinned.display()),
                "the network of a container that is not running".into(),
                &mut || {
                    crate::net_setup::down(&self.root, &id)?;
                    Ok("its veth pairs deleted, the namespace unpinned and removed".into())
                },
            );
        }
        // CNI interfaces of containers that do not run (a crash during
        // ADD or before DEL): their plugins' DEL, from the cache. Those of
        // running containers: their plugins' CHECK.
        for id in crate::cni::cached_containers(&self.root) {
            if runs(&id) {
                for (net, why) in crate::cni::check_running(&self.root, &id) {
                    note(
                        format!("CNI network {net} of {}", &id[..12.min(id.len())]),
                        format!("its plugins' CHECK failed: {why}"),
                        &mut || {
                            Ok(
                                "left as it is: restart the container to set its network up again"
                                    .into(),
                            )
                        },
                    );
                }
                continue;
            }
            note(
                format!("CNI interfaces of {id}"),
                "the CNI interfaces of a container that is not running".into(),
                &mut || {
                    crate::net_setup::down(&self.root, &id)?;
                    Ok("deleted by their plugins (DEL)".into())
                },
            );
        }
        // Published ports of containers that do not run: their mark is
        // followed by `down`; a chain in the firewall of a container this
        // store has, that does not run, and that has no mark is taken off
        // too. Chains of ids the store does not know are left: they may
        // belong to another root.
        for marker in entries(&self.root.join("published")) {
            let id = file_name(&marker);
            if runs(&id) {
                continue;
            }
            note(
                format!("published ports of {id}"),
                "the ports of a container that is not running".into(),
                &mut || {
                    crate::net_setup::down(&self.root, &id)?;
                    Ok("taken off the firewall".into())
                },
            );
        }
        if rows
            .iter()
            .any(|r| !ContainerSettings::parse(&r.config).port_bindings.is_empty())
        {
            let keys = match network::firewall::published_keys() {
                Ok(k) => k,
                Err(network::NetworkError::NoNft) => vec![],
                Err(err) => {
                    return Err(EngineError::Network {
                        id: "system check".into(),
                        err,
                    })
                }
            };
            for key in keys {
                let stale = rows.iter().any(|r| r.id.starts_with(&key) && !runs(&r.id))
                    && !rows.iter().any(|r| r.id.starts_with(&key) && runs(&r.id));
                if !stale {
                    continue;
                }
                note(
                    format!("firewall chain c-{key}"),
                    "the published ports of a container that is not running".into(),
                    &mut || {
                        network::firewall::unpublish(&key).map_err(|err| EngineError::Network {
                            id: key.clone(),
                            err,
                        })?;
                        Ok("taken off the firewall".into())
                    },
                );
            }
        }
        for dir in entries(&self.root.join("run")) {
            let name = file_name(&dir);
            let pid = name
                .strip_prefix("berth-console-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<i32>().ok());
            let Some(pid) = pid else { continue };
            if crate::store::process_start(pid).is_some() {
                continue;
            }
            note(
                format!("directory {}", dir.display()),
                format!("console socket of process {pid}, which is gone"),
                &mut || {
                    std::fs::remove_dir_all(&dir).map_err(|e| EngineError::Io {
                        op: "remove",
                        path: dir.clone(),
                        err: e,
                    })?;
                    Ok("removed".into())
                },
            );
        }
        Ok(found)
    }

    /// Whether the container's bundle was written completely.
    fn is_complete(&self, r: &Record) -> bool {
        crate::rootfs::container_dir(&self.root, &r.id).is_ok_and(|d| {
            d.join("bundle").join("config.json").is_file()
                && d.join("bundle").join("lowers.json").is_file()
        })
    }

    fn handle<'a>(&'a self, db: &'a Store, r: &Record) -> Result<Container<'a>, EngineError> {
        Ok(Container {
            engine: self,
            db,
            id: r.id.clone(),
            bundle: crate::rootfs::container_dir(&self.root, &r.id)?.join("bundle"),
            runtime_root: Some(self.runtime_root()?),
            created: true,
        })
    }

    /// Records the exit of a container whose supervisor is gone (killing
    /// it first with `kill`), and takes it down as the supervisor would.
    fn record_lost_exit(
        &self,
        db: &Store,
        r: &Record,
        kill: Option<i32>,
    ) -> Result<String, EngineError> {
        let _lock = crate::run::teardown_lock(&self.root, &r.id)?;
        let mut code = 255;
        if let Some(sig) = kill {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(r.pid as i32),
                nix::sys::signal::Signal::try_from(sig).ok(),
            );
            let end = std::time::Instant::now() + Duration::from_secs(10);
            while r.is_running() && std::time::Instant::now() < end {
                std::thread::sleep(Duration::from_millis(10));
            }
            code = 128 + sig as i64;
        }
        if let Some(c) = crate::rootfs::container_dir(&self.root, &r.id)
            .ok()
            .and_then(|d| {
                std::fs::read_to_string(d.join("bundle").join(crate::detach::EXIT_FILE)).ok()
            })
            .and_then(|s| s.trim().parse().ok())
        {
            code = c;
        }
        db.set_exited(&r.id, code, crate::run::now())?;
        let mut c = self.handle(db, r)?;
        if r.auto_remove {
            c.remove()?;
            Ok(format!("exit {code} recorded; removed (--rm)"))
        } else {
            c.stop_keeping_layer()?;
            Ok(format!(
                "exit {code} recorded; deleted from the runtime, root unmounted"
            ))
        }
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Mount points (from /proc/self/mountinfo) that start with `prefix`,
/// deepest first (so they can be unmounted in that order).
fn mounts_under(prefix: &str) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| p.starts_with(prefix))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.len()));
    v.dedup();
    v
}
