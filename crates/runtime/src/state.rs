//! Container state persisted under the runtime root (`--root`).
//!
//! Each container owns `<root>/<id>/`: `state.json` (written atomically:
//! temp file, rename; no fsync, as runc: the record describes processes
//! that a host crash ends anyway, and a crashed runtime loses nothing the
//! kernel has) and, between create and start, `exec.fifo`,
//! which the container's init blocks on. The status is never stored: it is
//! derived from the init process (alive? same start time?), the fifo and the
//! cgroup freezer, so it cannot go stale after a crash.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

/// The OCI runtime-spec version berth implements.
pub const OCI_VERSION: &str = "1.2.0";
/// Name of the fifo the init blocks on until `start`.
pub const EXEC_FIFO: &str = "exec.fifo";
const STATE_FILE: &str = "state.json";

/// The lifecycle status of a container, as the OCI state reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being created (only seen by hooks).
    Creating,
    /// Created: the init exists and waits for `start`.
    Created,
    /// The user's program runs.
    Running,
    /// Frozen by the cgroup freezer.
    Paused,
    /// The init has exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What the runtime remembers about one container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// The container id.
    pub id: String,
    /// Host pid of the container's init.
    pub pid: i32,
    /// Start time of the init (field 22 of /proc/PID/stat), to tell it from a recycled pid.
    pub pid_start_time: u64,
    /// Absolute path of the bundle.
    pub bundle: PathBuf,
    /// Absolute path of the root filesystem.
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Uid of the user who created the container.
    pub owner: u32,
    /// The container's cgroup, if one was created.
    pub cgroup: Option<cgroups::CgroupManager>,
    /// The spec the container was created from (hooks, namespaces, ...).
    pub config: Spec,
}

impl ContainerRecord {
    /// The annotations of the spec.
    pub fn annotations(&self) -> HashMap<String, String> {
        self.config.annotations().clone().unwrap_or_default()
    }
}

/// The OCI state document (`runtime-spec` "state"), as `state` prints it and hooks read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    /// Spec version.
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Lifecycle status.
    pub status: Status,
    /// Init pid (absent once stopped, as runc reports 0).
    pub pid: i32,
    /// Bundle path.
    pub bundle: PathBuf,
    /// Spec annotations.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// The per-user directory of container states (`--root`).
#[derive(Debug, Clone)]
pub struct StateStore {
    root: PathBuf,
    /// Set once the root has passed [`StateStore::check_root`]: one check
    /// per command, not one per step.
    checked: std::sync::OnceLock<()>,
}

/// An exclusive lock on one container's state directory, held for the
/// duration of a command so concurrent commands on the same id serialise.
pub struct StateLock {
    _lock: Flock<OwnedFd>,
}

/// The descriptor of the lock this process holds, or -1. A flock belongs to
/// the open file, which a fork shares: a container process that kept it
/// would hold the lock after the runtime died (a `kill -9` during create
/// then left `start` and `delete` waiting forever). Children close it first
/// thing ([`close_inherited_lock`]).
static HELD_LOCK: AtomicI32 = AtomicI32::new(-1);

/// Closes, in a freshly forked child, the lock descriptor inherited from
/// the runtime (the parent's lock stays held: its own descriptor is open).
pub(crate) fn close_inherited_lock() {
    let fd = HELD_LOCK.load(Ordering::Relaxed);
    if fd >= 0 {
        let _ = nix::unistd::close(fd);
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        HELD_LOCK.store(-1, Ordering::Relaxed);
    }
}

impl StateStore {
    /// A store rooted at `root` (created on first use, mode 0700).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateStore {
            root: root.into(),
            checked: std::sync::OnceLock::new(),
        }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where compiled seccomp filters are kept (`.seccomp-cache`; ids cannot start with a dot).
    pub fn seccomp_cache(&self) -> PathBuf {
        self.root.join(".seccomp-cache")
    }

    /// The directory of container `id`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Reserves `id`: creates its directory, failing if it exists. The
    /// returned lock is held until dropped.
    pub fn reserve(&self, id: &str) -> Result<StateLock> {
        validate_id(id)?;
        // The state holds each container's whole spec (environment
        // included) and the hooks that delete runs: the caller's alone.
        berth_fs::private_dir(&self.root)?;
        let _ = self.checked.set(());
        let dir = self.dir(id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::Exists(id.to_string()))
            }
            Err(e) => return Err(RuntimeError::io("create state dir", &dir, e)),
        }
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o711));
        self.lock(id)
    }

    /// Checks an existing root before anything in it is believed: it must
    /// be a directory the caller owns (not a symlink), else another user
    /// could have planted a state whose hooks would run as the caller.
    /// A missing root is fine (it holds nothing).
    fn check_root(&self) -> Result<()> {
        if self.checked.get().is_some() {
            return Ok(());
        }
        if berth_fs::check_private_dir(&self.root)?.is_some() {
            let _ = self.checked.set(());
        }
        Ok(())
    }

    /// Takes the lock of an existing container's directory.
    pub fn lock(&self, id: &str) -> Result<StateLock> {
        validate_id(id)?;
        self.check_root()?;
        let dir = self.dir(id);
        let fd = nix::fcntl::open(
            &dir,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| match e {
            nix::errno::Errno::ENOENT => RuntimeError::NotFound(id.to_string()),
            e => RuntimeError::sys("open state dir", dir.display(), e),
        })?;
        // SAFETY: `open` just returned this descriptor and nothing else owns it.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let lock = Flock::lock(fd, FlockArg::LockExclusive)
            .map_err(|(_, e)| RuntimeError::sys("flock", dir.display(), e))?;
        HELD_LOCK.store(std::os::fd::AsRawFd::as_raw_fd(&*lock), Ordering::Relaxed);
        Ok(StateLock { _lock: lock })
    }

    /// Writes the record atomically.
    pub fn save(&self, rec: &ContainerRecord) -> Result<()> {
        let dir = self.dir(&rec.id);
        let tmp = dir.join(".state.json.tmp");
        let path = dir.join(STATE_FILE);
        let data = serde_json::to_vec(rec)
            .map_err(|e| RuntimeError::Other(format!("encode state: {e}")))?;
        let mut f = {
            use std::os::unix::fs::OpenOptionsExt;
            // The container directory stays searchable for the fifo; the record is owner-only.
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| RuntimeError::io("create", &tmp, e))?
        };
        f.write_all(&data)
            .map_err(|e| RuntimeError::io("write", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| RuntimeError::io("rename", &path, e))
    }

    /// Reads the record of `id`.
    pub fn load(&self, id: &str) -> Result<ContainerRecord> {
        validate_id(id)?;
        self.check_root()?;
        let path = self.dir(id).join(STATE_FILE);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotFound(id.to_string()))
            }
            Err(e) => return Err(RuntimeError::io("read", &path, e)),
        };
        serde_json::from_slice(&data).map_err(|e| RuntimeError::Config {
            path,
            reason: format!("corrupt state: {e}"),
        })
    }

    /// Removes the container's directory.
    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::io("remove state dir", &dir, e)),
        }
    }

    /// Ids of every container in the store, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        self.check_root()?;
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(RuntimeError::io("list", &self.root, e)),
        };
        let mut ids: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(STATE_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The derived status of a container.
    pub fn status(&self, rec: &ContainerRecord) -> Status {
        if !process_matches(rec.pid, rec.pid_start_time) {
            return Status::Stopped;
        }
        if self.dir(&rec.id).join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        if let Some(cg) = &rec.cgroup {
            if cg.is_frozen().unwrap_or(false) {
                return Status::Paused;
            }
        }
        Status::Running
    }

    /// The OCI state document of a container.
    pub fn oci_state(&self, rec: &ContainerRecord) -> OciState {
        let status = self.status(rec);
        OciState {
            oci_version: OCI_VERSION.to_string(),
            id: rec.id.clone(),
            status,
            pid: if status == Status::Stopped {
                0
            } else {
                rec.pid
            },
            bundle: rec.bundle.clone(),
            annotations: rec.annotations(),
        }
    }
}

/// Refuses ids that could name a path outside the store or be confused with a flag.
pub fn validate_id(id: &str) -> Result<()> {
    berth_fs::check_container_id(id).map_err(|reason| RuntimeError::InvalidId {
        id: id.to_string(),
        reason,
    })
}

/// Start time of `pid` (field 22 of /proc/PID/stat) and whether it is a zombie.
pub fn process_start_time(pid: i32) -> Option<(u64, bool)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let zombie = matches!(fields.first(), Some(&"Z") | Some(&"X"));
    // `rest` starts at field 3 (state), so field 22 is index 19.
    let start = fields.get(19)?.parse().ok()?;
    Some((start, zombie))
}

/// Whether `pid` is still the process that was recorded (alive, not a zombie, same start time).
pub fn process_matches(pid: i32, start_time: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    matches!(process_start_time(pid), Some((t, false)) if t == start_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_escape_are_refused() {
        for id in ["", "..", "a/b", "../x", "-x y", "a\0b"] {
            assert!(validate_id(id).is_err(), "{id:?} was accepted");
        }
        validate_id("abc-123_x.y+z").unwrap();
    }

    #[test]
    fn state_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("root"));
        let _lock = store.reserve("perm-test").unwrap();
        let rec = ContainerRecord {
            id: "perm-test".into(),
            pid: 0,
            pid_start_time: 0,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: String::new(),
            owner: 0,
            cgroup: None,
            config: Spec::default(),
        };
        store.save(&rec).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.root()), 0o700);
        assert_eq!(mode(&store.dir("perm-test").join(STATE_FILE)), 0o600);
    }

    #[test]
    fn own_process_start_time_is_read() {
        let (t, zombie) = process_start_time(std::process::id() as i32).unwrap();
        assert!(t > 0);
        assert!(!zombie);
        assert!(process_matches(std::process::id() as i32, t));
        assert!(!process_matches(std::process::id() as i32, t + 1));
    }
}
