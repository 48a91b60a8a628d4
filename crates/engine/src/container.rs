//! One container being run ([`Container`]): its bundle written from the
//! image and the options, the plain foreground run (the caller plays the
//! shim's part: runtime `create` and `start`, signals forwarded, output
//! through `shim::passthrough`, the exit waited for), and its teardown:
//! kept with its writable layer, or removed. Also the teardown lock that
//! serialises a container's supervisor and `rm -f`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::error::EngineError;
use crate::run::{cgroup_path, now, oom_killed, Engine};
use crate::spec::RunOptions;
use crate::store::{State, Store};
use crate::{image_config, lookup, spec, user};

/// Signals the caller forwards to the container, as `docker run`'s
/// sig-proxy does.
const FORWARDED: [nix::sys::signal::Signal; 6] = [
    nix::sys::signal::Signal::SIGINT,
    nix::sys::signal::Signal::SIGTERM,
    nix::sys::signal::Signal::SIGHUP,
    nix::sys::signal::Signal::SIGQUIT,
    nix::sys::signal::Signal::SIGUSR1,
    nix::sys::signal::Signal::SIGUSR2,
];

/// One container being run: what was made for it, so that whatever
/// happens it can be taken down ([`Container::remove`]) or stopped
/// keeping its layer.
pub(crate) struct Container<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) db: &'a Store,
    pub(crate) id: String,
    pub(crate) bundle: PathBuf,
    pub(crate) runtime_root: Option<PathBuf>,
    pub(crate) created: bool,
}

impl Container<'_> {
    fn log(&self) -> PathBuf {
        self.bundle.join("runtime.log")
    }

    /// The last error the runtime logged.
    pub(crate) fn runtime_error(&self, step: &'static str) -> EngineError {
        let log = std::fs::read_to_string(self.log()).unwrap_or_default();
        let message = log
            .lines()
            .rev()
            .find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v["level"] == "error").then(|| v["msg"].as_str().unwrap_or("").to_string())
            })
            .unwrap_or_else(|| "no error in its log".into());
        EngineError::Runtime { step, message }
    }

    /// Writes the bundle: config.json, /etc/hostname and /etc/hosts, and
    /// the list of image layers (for `start`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write_bundle(
        &mut self,
        defaults: &image_config::RunDefaults,
        opts: &RunOptions,
        rootfs: &Path,
        lowers: &[PathBuf],
        argv: Vec<String>,
        cwd: String,
        volumes: Vec<oci_spec::runtime::Mount>,
        id_mappings: Option<&crate::userns::IdMappings>,
    ) -> Result<(), EngineError> {
        let user_spec = opts
            .user
            .clone()
            .or_else(|| defaults.user.clone())
            .unwrap_or_default();
        let user = user::resolve(rootfs, &user_spec)?;
        let hostname = opts
            .hostname
            .clone()
            .unwrap_or_else(|| self.id[..12].to_string());
        let env = spec::environment(defaults, opts, &hostname, &user, |k| std::env::var(k).ok())?;
        lookup::check_program(rootfs, &argv[0], &env, &cwd)?;
        if opts
            .log_opts
            .iter()
            .any(|o| o.starts_with("labels=") || o.starts_with("env="))
        {
            // The log's attributes, from the labels and the environment it has now.
            self.db.update_settings(&self.id, |s| {
                let labels = s.labels.clone();
                s.log.set_attrs(&labels, &env)
            })?;
        }
        let io = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |err| EngineError::Io { op, path, err }
        };
        std::fs::create_dir(&self.bundle).map_err(io("create", &self.bundle))?;
        let files = &self.bundle;
        // The image layers under the root, for a later `start`.
        let lowers_json = serde_json::to_vec(lowers).unwrap_or_default();
        std::fs::write(files.join("lowers.json"), lowers_json)
            .map_err(io("write", &files.join("lowers.json")))?;
        std::fs::write(files.join("hostname"), format!("{hostname}\n"))
            .map_err(io("write", &files.join("hostname")))?;
        // Its place on its network (leased when it was made), if it has one.
        let place = crate::restart::ContainerSettings::parse(&self.db.find(&self.id)?.config)
            .networks
            .iter()
            .find_map(|(name, a)| {
                Some(crate::hosts::Place {
                    ip: a.ip.parse().ok()?,
                    gateway: a.gateway.parse().ok()?,
                    dns: name != crate::networks::DEFAULT_NETWORK,
                })
            });
        std::fs::write(
            files.join("hosts"),
            crate::hosts::hosts_file(&hostname, &opts.add_hosts, place)?,
        )
        .map_err(io("write", &files.join("hosts")))?;
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        std::fs::write(
            files.join("resolv.conf"),
            crate::hosts::resolv_conf(opts, &host_resolv, place),
        )
        .map_err(io("write", &files.join("resolv.conf")))?;
        let mut spec = spec::container_spec(rootfs, files, &hostname, argv, env, cwd, &user)?;
        // The same cgroup whichever runtime runs it, so the engine finds it.
        if let Some(linux) = spec.linux_mut() {
            linux.set_cgroups_path(Some(cgroup_path(&self.id).into()));
        }
        // Group names resolved in the image (a copy of the options only then).
        let resolved;
        let opts = if opts
            .confinement
            .group_add
            .iter()
            .all(|g| g.parse::<u32>().is_ok())
        {
            opts
        } else {
            let mut o = opts.clone();
            o.confinement.group_add = user::group_ids(rootfs, &o.confinement.group_add)?;
            resolved = o;
            &resolved
        };
        spec::apply_flags(&mut spec, opts, &|name| self.engine.init_pid(name))?;
        if opts
            .namespaces
            .network
            .as_deref()
            .is_some_and(crate::networks::is_user_network)
        {
            // It joins the namespace the engine pins and sets up.
            crate::net_setup::join_pinned(&mut spec, &self.engine.root, &self.id)?;
        }
        if opts.init {
            crate::init::apply(&mut spec, &crate::init::find(&self.engine.root)?)?;
        }
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        mounts.extend(volumes);
        spec.set_mounts(Some(mounts));
        if let Some(m) = id_mappings {
            crate::userns::apply(&mut spec, m, &self.engine.root)?;
        }
        let mount_points = crate::shown::mount_points(&spec, &self.engine.root);
        let config_fields = crate::shown::config_fields(&spec, &user_spec);
        let host_config = crate::shown::host_config(opts, &spec);
        self.db.update_settings(&self.id, |s| {
            s.mounts = mount_points;
            s.shown_config = config_fields;
            s.shown_host_config = host_config;
        })?;
        let config = self.bundle.join("config.json");
        spec.save(&config)
            .map_err(|e| EngineError::Spec(format!("write {}: {e}", config.display())))
    }

    /// Runs the bundle: `create`, `start`, forwards signals, waits for the
    /// init and records each step; returns the exit status. The container
    /// writes to our stdout and stderr; its stdin is /dev/null (a run with
    /// `-i` or `-t` goes through berth-shim and [`crate::attach`]).
    pub(crate) fn supervise(&mut self) -> Result<i32, EngineError> {
        let io = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |err| EngineError::Io { op, path, err }
        };
        let runtime_root = self.engine.runtime_root()?;
        self.runtime_root = Some(runtime_root.clone());

        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let mut forwarded = nix::sys::signal::SigSet::empty();
        for s in FORWARDED {
            forwarded.add(s);
        }
        // Blocked here, taken by the forwarding thread below; the runtime
        // unblocks them for the container (it resets the mask it inherits).
        forwarded
            .thread_block()
            .map_err(|e| io("block signals", Path::new("sigprocmask"))(e.into()))?;

        // The output goes through a thread of ours: to our stdout and
        // stderr, the log, and `attach` clients.
        let settings = crate::restart::ContainerSettings::parse(&self.db.find(&self.id)?.config);
        let log = settings
            .log
            .log_config(self.bundle.join(crate::detach::LOG_FILE));
        let shim_err = |e: shim::StartError| EngineError::Io {
            op: "set up the output of",
            path: self.bundle.clone(),
            err: std::io::Error::other(e.0),
        };
        let (pending, out_w, err_w) =
            shim::passthrough::prepare(&self.bundle, log).map_err(shim_err)?;
        // (A container on no network has nothing to set up: no query for it.)
        if !settings.networks.is_empty() {
            crate::net_setup::up(self.engine, self.db, &self.id)?;
        }
        let pid_file = self.bundle.join("init.pid");
        let mut create = self.engine.runtime_cmd(&runtime_root, &self.log());
        create
            .arg("create")
            .arg("--bundle")
            .arg(&self.bundle)
            .arg("--pid-file")
            .arg(&pid_file);
        let created = create
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(err_w))
            .status()
            .map_err(io("run", &self.engine.runtime))?;
        // Our copies of the write ends go: the container holds its own.
        drop(create);
        let output = pending.start().map_err(shim_err)?;
        if !created.success() {
            output.finish(125);
            return Err(self.runtime_error("create"));
        }
        self.created = true;
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .map_err(io("read", &pid_file))?
            .trim()
            .parse()
            .map_err(|_| self.runtime_error("create"))?;
        let start_time = crate::store::process_start(pid).unwrap_or(0);
        self.db
            .set_running(&self.id, pid as i64, start_time, now())?;
        self.forward_signals(forwarded, runtime_root.clone());
        let started = self
            .engine
            .runtime_cmd(&runtime_root, &self.log())
            .arg("start")
            .arg(&self.id)
            .stdin(Stdio::null())
            .status()
            .map_err(io("run", &self.engine.runtime));
        let code = match started {
            Ok(s) if s.success() => wait_exit(pid),
            Ok(_) => Err(self.runtime_error("start")),
            Err(e) => Err(e),
        };
        output.finish(*code.as_ref().unwrap_or(&125));
        let code = code?;
        let oom = oom_killed(&self.id);
        self.db.update_settings(&self.id, |s| s.oom_killed = oom)?;
        self.db.set_exited(&self.id, code as i64, now())?;
        Ok(code)
    }

    /// Forwards the blocked signals to the container, from a thread that
    /// lives as long as the process.
    fn forward_signals(&self, set: nix::sys::signal::SigSet, runtime_root: PathBuf) {
        let engine = self.engine.clone();
        let (id, log) = (self.id.clone(), self.log());
        std::thread::spawn(move || loop {
            let Ok(sig) = set.wait() else { return };
            let _ = engine
                .runtime_cmd(&runtime_root, &log)
                .arg("kill")
                .arg(&id)
                .arg((sig as i32).to_string())
                .stdin(Stdio::null())
                .status();
        });
    }

    /// Deletes the container from the runtime (its processes, cgroup and
    /// state).
    pub(crate) fn delete_from_runtime(&mut self) -> Result<(), EngineError> {
        if let (true, Some(root)) = (self.created, &self.runtime_root) {
            let out = self
                .engine
                .runtime_cmd(root, &self.log())
                .arg("delete")
                .arg("--force")
                .arg(&self.id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if !out.is_ok_and(|s| s.success()) {
                return Err(self.runtime_error("delete"));
            }
            self.created = false;
        }
        crate::net_setup::down(&self.engine.root, &self.id)
    }

    /// Takes the container down once it has exited: removes it all with
    /// `auto_remove`, else keeps its layer. Under the container's teardown
    /// lock, and nothing to do if an `rm -f` has removed it meanwhile.
    pub(crate) fn finish(&mut self, auto_remove: bool) -> Result<(), EngineError> {
        let Some(_lock) = teardown_lock(&self.engine.root, &self.id)? else {
            return Ok(());
        };
        match self.db.find(&self.id) {
            Err(EngineError::NoSuchContainer(_)) => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        if auto_remove {
            self.remove()
        } else {
            self.stop_keeping_layer()
        }
    }

    /// [`Container::finish`] for a cleanup after the exit was recorded, by
    /// a caller that holds the teardown lock: nothing is done (false)
    /// unless the record still says exited (a `start` meanwhile made a new
    /// run).
    pub(crate) fn finish_exited_locked(&mut self, auto_remove: bool) -> Result<bool, EngineError> {
        match self.db.find(&self.id) {
            Err(EngineError::NoSuchContainer(_)) => return Ok(false),
            Err(e) => return Err(e),
            Ok(r) if r.state != State::Exited => return Ok(false),
            Ok(_) => {}
        }
        if auto_remove {
            self.remove()?;
        } else {
            self.stop_keeping_layer()?;
        }
        Ok(true)
    }

    /// What a stopped container keeps: its record, bundle and writable
    /// layer; the root is unmounted.
    pub(crate) fn stop_keeping_layer(&mut self) -> Result<(), EngineError> {
        self.delete_from_runtime()?;
        crate::rootfs::unmount_rootfs(&self.engine.root, &self.id)?;
        Ok(())
    }

    /// Deletes the container from the runtime and removes its bundle,
    /// root, record and anonymous volumes (as `--rm` does in Docker).
    pub(crate) fn remove(&mut self) -> Result<(), EngineError> {
        self.delete_from_runtime()?;
        remove_files(&self.engine.root, &self.id)?;
        let anonymous = self.db.remove(&self.id)?;
        self.engine.remove_anonymous_volumes(&anonymous);
        Ok(())
    }
}

/// The lock that serialises taking container `id` down between its
/// supervisor (`berth run`, or the shim's callback) and `rm -f`: an
/// exclusive flock on the container's directory. None when the directory
/// is gone (the other side finished).
pub(crate) fn teardown_lock(
    root: &Path,
    id: &str,
) -> Result<Option<nix::fcntl::Flock<std::fs::File>>, EngineError> {
    let dir = crate::rootfs::container_dir(root, id)?;
    let file = match std::fs::File::open(&dir) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(EngineError::Io {
                op: "open",
                path: dir,
                err: e,
            })
        }
    };
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map(Some)
        .map_err(|(_, e)| EngineError::Io {
            op: "lock",
            path: dir,
            err: e.into(),
        })
}

/// Waits, at most `limit`, until no one holds container `id`'s teardown
/// lock: a run whose exit is recorded has been taken down (its network
/// included), so a `stop` that returns leaves its ports free.
pub(crate) fn wait_teardown(
    root: &Path,
    id: &str,
    limit: std::time::Duration,
) -> Result<(), EngineError> {
    let dir = crate::rootfs::container_dir(root, id)?;
    let end = std::time::Instant::now() + limit;
    loop {
        let file = match std::fs::File::open(&dir) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => {
                return Err(EngineError::Io {
                    op: "open",
                    path: dir,
                    err,
                })
            }
        };
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(_) => return Ok(()),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) if std::time::Instant::now() < end => {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(EngineError::Runtime {
                    step: "stop",
                    message: format!(
                    "container {id} exited, but its supervisor has not taken it down within {} s",
                    limit.as_secs()
                ),
                })
            }
            Err((_, e)) => {
                return Err(EngineError::Io {
                    op: "lock",
                    path: dir,
                    err: e.into(),
                })
            }
        }
    }
}

/// Removes a container's bundle and its root (writable layer included).
pub(crate) fn remove_files(root: &Path, id: &str) -> Result<(), EngineError> {
    crate::net_setup::down(root, id)?;
    let bundle = crate::rootfs::container_dir(root, id)?.join("bundle");
    match std::fs::remove_dir_all(&bundle) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(EngineError::Io {
                op: "remove",
                path: bundle,
                err: e,
            })
        }
    }
    crate::rootfs::teardown_rootfs(root, id)?;
    Ok(())
}

/// Waits for the container's init (our child, as subreaper) and returns
/// its status as Docker reports it. Reaps other orphans on the way.
fn wait_exit(pid: i32) -> Result<i32, EngineError> {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return Ok(code),
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => return Ok(128 + sig as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                return Err(EngineError::Io {
                    op: "wait for",
                    path: format!("container init {pid}").into(),
                    err: e.into(),
                })
            }
        }
    }
}
