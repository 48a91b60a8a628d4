//! `run` and `create`: the image and the options made into a container
//! (record, root, bundle), then run as [`Launch`] says. A plain `run`
//! (no `-d`, `-i` or `-t`) is the fast path: the calling process plays the
//! shim's part for the container's life: it runs the OCI runtime binary
//! (`create`, `start`), becomes the init's reaper, forwards the signals it
//! gets to the container, and when the container exits, deletes it from
//! the runtime and keeps or removes the rest. The container's output goes
//! straight to the caller's stdout and stderr, its stdin is /dev/null.
//! (The container itself, its bundle and that supervision, are
//! `container.rs`'s.) `run -d` hands the container to berth-shim ([`crate::detach`]); `run -i`
//! and `run -t` hand it to berth-shim too and attach to it
//! ([`crate::attach`]), so the detach keys leave it running.
//!
//! While a container runs, image garbage collection waits (the shared gc
//! lock is held), so `image prune` cannot take its layers away.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use image::imported::ImportedImage;
use image::ContentStore;

use crate::error::EngineError;
use crate::spec::RunOptions;
use crate::store::{Record, State, Store};
use crate::{image_config, names, spec};

pub(crate) use crate::container::{remove_files, teardown_lock, wait_teardown, Container};

/// Where the engine keeps things and which runtime it drives.
#[derive(Debug, Clone)]
pub struct Engine {
    /// berth's root (the image store's root; containers under `containers/`).
    pub root: PathBuf,
    /// The OCI runtime binary (berth-runtime by default; runc and crun work too).
    pub runtime: PathBuf,
    /// berth-shim, which supervises detached containers.
    pub shim: PathBuf,
    /// The `berth` binary, which the shim calls back to record an exit.
    pub berth: PathBuf,
}

/// A new container id: 64 hex digits, as Docker's.
pub fn new_id() -> Result<String, EngineError> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| EngineError::Io {
            op: "read",
            path: "/dev/urandom".into(),
            err: e,
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Engine {
    /// The runtime's state root: private to the engine.
    pub(crate) fn runtime_root(&self) -> Result<PathBuf, EngineError> {
        let dir = self.root.join("runtime");
        berth_fs::private_dir(&dir).map_err(|e| EngineError::Io {
            op: "create",
            path: dir.clone(),
            err: std::io::Error::other(e.to_string()),
        })?;
        Ok(dir)
    }

    pub(crate) fn runtime_cmd(&self, runtime_root: &Path, log: &Path) -> Command {
        let mut c = Command::new(&self.runtime);
        c.arg("--root")
            .arg(runtime_root)
            .arg("--log")
            .arg(log)
            .arg("--log-format")
            .arg("json");
        c
    }

    /// Runs `image` (named `name`) with `opts`: in the foreground until it
    /// exits (then kept, or removed with `auto_remove`), or handed to
    /// berth-shim with `detach`. Returns the container's id and exit status
    /// as `docker run` reports it (128+N for signal N; 0 when detached).
    ///
    /// Sets the calling process as a child subreaper and blocks the
    /// forwarded signals in the calling thread: call it from the main
    /// thread of a process that has nothing else to reap.
    pub fn run_foreground(
        &self,
        store: &ContentStore,
        name: &str,
        image: &ImportedImage,
        opts: &RunOptions,
    ) -> Result<(String, i32), EngineError> {
        let mode = if opts.detach {
            Launch::Detach
        } else if opts.interactive || opts.tty {
            // Through berth-shim and its attach socket: the detach keys
            // leave the container running, and `attach` reaches it.
            Launch::Attached
        } else {
            // (Attached instead when it has a health check: see `launch`.)
            Launch::Foreground
        };
        self.launch(store, name, image, opts, mode)
    }

    /// Makes container `name` from `image` and `opts`, then runs it as
    /// `mode` says. Returns its id and exit status (0 unless foreground).
    pub(crate) fn launch(
        &self,
        store: &ContentStore,
        name: &str,
        image: &ImportedImage,
        opts: &RunOptions,
        mode: Launch,
    ) -> Result<(String, i32), EngineError> {
        let _no_gc = image::gc::hold_shared(&self.root)?;
        let opts = &*self.with_volumes_from(opts)?;
        let blob = std::fs::read(store.path(&image.config)).map_err(|e| EngineError::Io {
            op: "read image config",
            path: store.path(&image.config),
            err: e,
        })?;
        let defaults = image_config::parse(&blob).map_err(|e| EngineError::BadImage {
            name: name.to_string(),
            reason: format!("config {} is not an image config: {e}", image.config),
        })?;
        let healthcheck = crate::health::merge(defaults.healthcheck.as_ref(), &opts.health)?;
        // The shim runs the health checks: a container with one is never
        // supervised by the caller itself.
        let mode = match mode {
            Launch::Foreground if healthcheck.is_some() => Launch::Attached,
            other => other,
        };
        let argv = spec::argv(&defaults, opts)?;
        let cwd = spec::workdir(&defaults, opts)?;
        spec::check_flags(opts)?;
        // Publishing ports without --network: the default network.
        let bridged;
        let opts = if opts.namespaces.network.is_none()
            && (!opts.publish.is_empty() || opts.publish_all)
        {
            let mut o = opts.clone();
            o.namespaces.network = Some(crate::networks::DEFAULT_NETWORK.into());
            bridged = o;
            &bridged
        } else {
            opts
        };
        let (port_bindings, exposed) =
            crate::ports::for_run(defaults.exposed_ports.as_ref(), opts)?;
        let wanted = opts.name.as_deref().map(names::check).transpose()?;
        let db = Store::open(&self.root)?;
        let id = new_id()?;
        // A user namespace's ids are chosen and recorded under one lock, so
        // two runs never take the same block.
        let userns = opts.namespaces.userns_request()?;
        let alloc_lock = userns
            .is_private()
            .then(|| crate::userns::allocation_lock(&self.root))
            .transpose()?;
        let id_mappings = match &alloc_lock {
            Some(_) => userns.allocate(
                &crate::userns::taken(&db)?,
                (
                    nix::unistd::geteuid().as_raw(),
                    nix::unistd::getegid().as_raw(),
                ),
                (
                    std::env::var("SUDO_UID").ok().as_deref(),
                    std::env::var("SUDO_GID").ok().as_deref(),
                ),
            )?,
            None => None,
        };
        let keep_id_opts;
        let opts = match userns.default_user(id_mappings.as_ref()) {
            Some(u) if opts.user.is_none() => {
                let mut o = opts.clone();
                o.user = Some(u);
                keep_id_opts = o;
                &keep_id_opts
            }
            _ => opts,
        };
        let mut record = Record {
            id: id.clone(),
            name: String::new(),
            image: name.to_string(),
            image_id: image.config.to_string(),
            command: argv.clone(),
            created: now(),
            state: State::Created,
            pid: 0,
            pid_start: 0,
            exit_code: 0,
            started: 0,
            finished: 0,
            auto_remove: opts.auto_remove,
            config: crate::restart::ContainerSettings {
                restart_policy: crate::restart::RestartPolicy::parse(
                    opts.restart.as_deref().unwrap_or("no"),
                )?,
                stop_signal: opts
                    .stop_signal
                    .clone()
                    .or_else(|| defaults.stop_signal.clone()),
                stop_timeout: opts.stop_timeout,
                labels: crate::volumes::key_values("--label", &opts.labels)?,
                tty: opts.tty,
                open_stdin: opts.interactive,
                stdin_once: opts.interactive && !opts.detach,
                init: opts.init,
                supervisor: crate::restart::Supervisor::of(std::process::id() as i64),
                log: crate::logging::LogSettings::parse(
                    opts.log_driver.as_deref(),
                    &opts.log_opts,
                )?,
                healthcheck,
                id_mappings: id_mappings.clone(),
                network_mode: opts
                    .namespaces
                    .network
                    .clone()
                    .unwrap_or_else(|| "none".into()),
                port_bindings,
                exposed,
                resources: crate::limits::host_config_of(&opts.limits)?,
                ..Default::default()
            }
            .to_json(),
        };
        // A generated name that is taken gets a number added.
        for attempt in 0.. {
            record.name = wanted
                .clone()
                .unwrap_or_else(|| names::generate(&id, attempt));
            match db.insert(&record) {
                Err(EngineError::NameInUse(_)) if wanted.is_none() && attempt < 100 => continue,
                other => other?,
            }
            break;
        }
        drop(alloc_lock);
        // An address on its network, kept while the container exists.
        if let Some(net) = opts
            .namespaces
            .network
            .as_deref()
            .filter(|n| crate::networks::is_user_network(n))
        {
            let leased = (|| {
                let mac = opts
                    .mac_address
                    .as_deref()
                    .map(|m| {
                        network::ipam::parse_mac(m)
                            .map(|_| m.to_ascii_lowercase())
                            .map_err(|why| EngineError::InvalidOption {
                                option: "--mac-address",
                                value: m.to_string(),
                                reason: why.into(),
                            })
                    })
                    .transpose()?;
                let mut atts = self.lease_network(
                    &db,
                    &id,
                    net,
                    opts.ip.as_deref(),
                    opts.ip6.as_deref(),
                    &opts.network_aliases,
                )?;
                if let Some(a) = atts.values_mut().next() {
                    a.mac = mac.unwrap_or_default();
                }
                for more in &opts.more_networks {
                    if !crate::networks::is_user_network(more) {
                        return Err(EngineError::InvalidOption {
                            option: "--network",
                            value: more.clone(),
                            reason: "only the first --network may be none, host or container:NAME"
                                .into(),
                        });
                    }
                    atts.extend(self.lease_network(&db, &id, more, None, None, &[])?);
                }
                db.update_settings(&id, |s| s.networks = atts)
            })();
            if let Err(e) = leased {
                let _ = db.remove(&id);
                return Err(e);
            }
        } else if let Some(m) = &opts.mac_address {
            let _ = db.remove(&id);
            return Err(EngineError::InvalidOption {
                option: "--mac-address",
                value: m.clone(),
                reason: "a MAC address needs a network (--network NAME or bridge)".into(),
            });
        } else if !opts.more_networks.is_empty() {
            let _ = db.remove(&id);
            return Err(EngineError::InvalidOption {
                option: "--network",
                value: opts.more_networks.join(","),
                reason: "more networks need a first one that is a network (not none, host or container:NAME)".into(),
            });
        } else if !opts.network_aliases.is_empty() {
            let _ = db.remove(&id);
            return Err(EngineError::InvalidOption {
                option: "--network-alias",
                value: opts.network_aliases.join(","),
                reason: "an alias needs a user-defined network (--network NAME)".into(),
            });
        } else if let Some(ip) = &opts.ip {
            let _ = db.remove(&id);
            return Err(EngineError::InvalidOption {
                option: "--ip",
                value: ip.clone(),
                reason: "an address needs a user-defined network (--network NAME)".into(),
            });
        }
        if let Some(f) = &opts.cidfile {
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(f)
                .and_then(|mut file| std::io::Write::write_all(&mut file, id.as_bytes()));
            if let Err(e) = written {
                let _ = db.remove(&id);
                return Err(EngineError::Io {
                    op: "write the --cidfile",
                    path: f.clone(),
                    err: e,
                });
            }
        }
        let prepared = image::snapshot::prepare(store, &self.root, image)
            .map_err(EngineError::from)
            .and_then(|l| {
                // A root thrown away with its container is never synced.
                let rootfs = if opts.auto_remove && mode != Launch::CreateOnly {
                    crate::rootfs::prepare_rootfs_volatile(&self.root, &id, &l)?
                } else {
                    crate::rootfs::prepare_rootfs(&self.root, &id, &l)?
                };
                Ok((rootfs, l))
            });
        let (rootfs, lowers) = match prepared {
            Ok(r) => r,
            Err(e) => {
                let _ = db.remove(&id);
                return Err(e);
            }
        };
        let mut container = Container {
            engine: self,
            db: &db,
            id: id.clone(),
            bundle: crate::rootfs::container_dir(&self.root, &id)?.join("bundle"),
            runtime_root: None,
            created: false,
        };
        let (wanted, taken) = crate::mounts::volume_mounts(&opts.mounts)?;
        let image_volumes: Vec<String> = defaults
            .volumes
            .as_ref()
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default();
        let mut shim = None;
        let result = self
            .attach_volumes(&db, &id, &rootfs, &wanted, &image_volumes, &taken)
            .and_then(|volumes| {
                container.write_bundle(
                    &defaults,
                    opts,
                    &rootfs,
                    &lowers,
                    argv,
                    cwd,
                    volumes,
                    id_mappings.as_ref(),
                )
            })
            .and_then(|()| match (&id_mappings, mode) {
                // Set up without the mapping (the image's ids as they are,
                // for the volumes' first content); run with it.
                (Some(m), Launch::Detach | Launch::Attached | Launch::Foreground) => {
                    crate::rootfs::unmount_rootfs(&self.root, &id)?;
                    crate::rootfs::remount_rootfs_mapped(&self.root, &id, &lowers, Some(m))?;
                    Ok(())
                }
                _ => Ok(()),
            })
            .and_then(|()| match mode {
                // Made, not started: its root is unmounted until `start`.
                Launch::CreateOnly => container.stop_keeping_layer().map(|()| 0),
                Launch::Detach => container.spawn_shim(false).map(|_| 0),
                Launch::Attached => container.spawn_shim(true).map(|(_, child)| {
                    shim = Some(child);
                    0
                }),
                Launch::Foreground => container.supervise(),
            });
        if mode != Launch::Foreground && result.is_ok() {
            // The shim has the container now, or nothing runs it yet.
            if shim.is_some() {
                let attach = crate::attach::AttachOptions {
                    stdin: opts.interactive,
                    detach_keys: opts.detach_keys.clone(),
                    sig_proxy: true,
                };
                let code = match self.attach_new(&db, &id, &container.bundle, opts.tty, &attach)? {
                    crate::attach::AttachEnd::Exited(code) => code,
                    crate::attach::AttachEnd::Detached => 0,
                };
                return Ok((id, code));
            }
            return Ok((id, 0));
        }
        let cleanup = container.finish(opts.auto_remove);
        let code = result?;
        cleanup?;
        // A policy that restarts it hands it to a shim.
        self.after_exit(&id, code as i64, std::time::Duration::ZERO);
        Ok((id, code))
    }
}

/// How [`Engine::launch`] runs the container it makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Launch {
    /// Supervised by the caller until it exits (`run`).
    Foreground,
    /// Handed to berth-shim (`run -d`).
    Detach,
    /// Handed to berth-shim, which starts it once we have attached (`run
    /// -i`, `run -t`).
    Attached,
    /// Made and left stopped (`create`).
    CreateOnly,
}

/// Now, in Unix seconds with fractions.
pub(crate) fn now_f() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Container `id`'s cgroup path (under each hierarchy's root).
pub(crate) fn cgroup_path(id: &str) -> String {
    format!("/berth/{id}")
}

/// Whether the kernel's OOM killer killed a process in container `id`'s
/// cgroup (read before the runtime deletes it).
pub(crate) fn oom_killed(id: &str) -> bool {
    cgroups::Hierarchy::detect()
        .ok()
        .and_then(|h| cgroups::CgroupManager::new(&h, &cgroup_path(id)).ok())
        .and_then(|m| m.stats().ok())
        .is_some_and(|s| s.memory.oom_kills > 0)
}

/// The time now, in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
