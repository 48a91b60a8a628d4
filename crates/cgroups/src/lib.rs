//! cgroup management for berth: detect the host's layout once (v1, hybrid
//! or unified), then create, place, freeze, kill and delete one
//! container's cgroup in every hierarchy. A manager only ever removes
//! directories it created itself, and never writes a file that no spec
//! field asked for.
//!
//! `apply` writes every `linux.resources` field (v1 files, or v2 files
//! through runc's conversions, see `resources`); what a layout cannot
//! express is refused with `CgroupError::Unsupported` naming the field.
//! The host's layout is read in `hierarchy`; stats and OOM events live in
//! `stats`, the v2 device program in
//! `device_filter`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub mod device_filter;
mod hierarchy;
pub mod resources;
pub mod stats;

pub use hierarchy::{Hierarchy, Layout, V1Mount};

/// Errors of cgroup operations, each naming the file and the operation.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Reading or writing a cgroup file or directory failed.
    #[error("cgroup {op} {path}: {err}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
    /// No cgroup filesystem is mounted.
    #[error("no cgroup filesystem is mounted (looked in /proc/self/mountinfo)")]
    NotMounted,
    /// A spec field this host or this version cannot apply.
    #[error("unsupported: linux.resources.{field}: {reason}")]
    Unsupported {
        /// The field, below `linux.resources`.
        field: String,
        /// Why.
        reason: String,
    },
    /// A cgroup path that is not acceptable.
    #[error("invalid cgroupsPath {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// Processes did not leave the cgroup in time.
    #[error("cgroup {path}: processes still present after {secs}s")]
    Busy {
        /// The cgroup directory.
        path: PathBuf,
        /// How long we waited.
        secs: u64,
    },
}

/// A result with a [`CgroupError`].
pub type Result<T> = std::result::Result<T, CgroupError>;

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op,
        path: path.to_path_buf(),
        err: source,
    }
}

/// One container's cgroup across the host's hierarchies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CgroupManager {
    /// The cgroup path, absolute from each hierarchy's root.
    path: String,
    /// Every directory this cgroup lives in (one per hierarchy).
    dirs: Vec<PathBuf>,
    /// The v1 directories by controller list (empty on a unified host).
    #[serde(default)]
    v1_dirs: Vec<(Vec<String>, PathBuf)>,
    /// The directories `create` made, deepest last.
    created: Vec<PathBuf>,
    /// Freezer: v1 freezer dir, or the v2 dir (cgroup.freeze).
    freezer: Option<(PathBuf, bool)>,
    layout: Layout,
}

/// The calling process's cgroup in the hierarchy described by `key`
/// (a controller name, or "" for cgroup2).
fn own_cgroup(key: &str) -> String {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or("/"));
        if (key.is_empty() && ctrls.is_empty())
            || (!key.is_empty() && ctrls.split(',').any(|c| c == key))
        {
            return path.to_string();
        }
    }
    "/".to_string()
}

/// A v1 cpuset cgroup starts with no cpus and no mems, and takes no
/// process until it has both: `dir` gets its parent's where it has none
/// (on v2 an empty cpuset means "the parent's"). Nothing for another
/// controller's directory.
fn inherit_cpuset(dir: &Path) -> Result<()> {
    if !dir.join("cpuset.cpus").exists() {
        return Ok(());
    }
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let own = dir.join(f);
        let current = std::fs::read_to_string(&own).map_err(io("read", &own))?;
        if !current.trim().is_empty() {
            continue;
        }
        let parent_dir = dir.parent().unwrap_or(Path::new("/"));
        let parent = parent_dir.join(f);
        let mut v = std::fs::read_to_string(&parent).map_err(io("read", &parent))?;
        if v.trim().is_empty() {
            // The parent is new too (another container is making it):
            // fill it first, from its own parent up.
            inherit_cpuset(parent_dir)?;
            v = std::fs::read_to_string(&parent).map_err(io("read", &parent))?;
        }
        std::fs::write(&own, v.trim()).map_err(io("write", &own))?;
    }
    Ok(())
}

impl CgroupManager {
    /// Resolves `cgroups_path` as runc's cgroupfs driver does: an absolute
    /// path from each hierarchy's root, or a path relative to the caller's
    /// own cgroup. Makes no change to the filesystem.
    pub fn new(hier: &Hierarchy, cgroups_path: &str) -> Result<Self> {
        if cgroups_path.split('/').any(|c| c == "..") {
            return Err(CgroupError::InvalidPath {
                path: cgroups_path.to_string(),
                reason: "must not contain ..",
            });
        }
        if cgroups_path.contains(':') {
            return Err(CgroupError::InvalidPath {
                path: cgroups_path.to_string(),
                reason: "looks like a systemd slice:prefix:name path; the systemd driver is not supported",
            });
        }
        let layout = hier.layout();
        let mut dirs = vec![];
        let mut v1_dirs = vec![];
        let mut freezer = None;
        let resolve = |key: &str| -> String {
            if cgroups_path.starts_with('/') {
                cgroups_path.to_string()
            } else {
                format!("{}/{}", own_cgroup(key).trim_end_matches('/'), cgroups_path)
            }
        };
        for m in &hier.v1 {
            let key = m.controllers.first().map(String::as_str).unwrap_or("");
            let dir = m.mountpoint.join(resolve(key).trim_start_matches('/'));
            if m.controllers.iter().any(|c| c == "freezer") {
                freezer = Some((dir.clone(), true));
            }
            v1_dirs.push((m.controllers.clone(), dir.clone()));
            dirs.push(dir);
        }
        if let Some(u) = &hier.unified {
            let dir = u.join(resolve("").trim_start_matches('/'));
            if layout == Layout::Unified {
                freezer = Some((dir.clone(), false));
            }
            dirs.push(dir);
        }
        if dirs.is_empty() {
            return Err(CgroupError::NotMounted);
        }
        Ok(CgroupManager {
            path: if cgroups_path.starts_with('/') {
                cgroups_path.to_string()
            } else {
                resolve("")
            },
            dirs,
            v1_dirs,
            created: vec![],
            freezer,
            layout,
        })
    }

    /// The resolved cgroup path.
    pub fn path(&self) -> String {
        self.path.clone()
    }

    /// The directories of this cgroup, one per hierarchy.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Creates the cgroup in every hierarchy, recording what it made.
    pub fn create(&mut self) -> Result<()> {
        // A parent removed by another container's delete between the walk
        // and the mkdir below, or between its mkdir and the read of its
        // cpuset ([`CgroupManager::remove_parent_if_empty`]): walk again.
        let mut tries = 0;
        loop {
            match self.create_once() {
                Err(CgroupError::Io { err, .. })
                    if err.kind() == std::io::ErrorKind::NotFound && tries < 10 =>
                {
                    tries += 1;
                }
                // What this create made goes with its failure (no process
                // was placed yet).
                Err(e) => {
                    self.remove_created();
                    return Err(e);
                }
                Ok(()) => return Ok(()),
            }
        }
    }

    fn create_once(&mut self) -> Result<()> {
        for dir in self.dirs.clone() {
            let mut missing = vec![];
            let mut p = dir.as_path();
            while !p.exists() {
                missing.push(p.to_path_buf());
                match p.parent() {
                    Some(parent) => p = parent,
                    None => break,
                }
            }
            for d in missing.into_iter().rev() {
                match std::fs::create_dir(&d) {
                    Ok(()) => {
                        self.created.push(d.clone());
                        if self.layout != Layout::Unified {
                            inherit_cpuset(&d)?;
                        }
                    }
                    // Made by another container at this moment: its cpuset
                    // may still be empty; inherit_cpuset of the leaf fills it.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        if self.layout != Layout::Unified {
                            inherit_cpuset(&d)?;
                        }
                    }
                    Err(e) => return Err(io("mkdir", &d)(e)),
                }
                // v2: a directory we made above the leaf passes every controller
                // it has down to its children, or the leaf could not be limited.
                if self.layout == Layout::Unified && d != dir && self.created.contains(&d) {
                    let avail =
                        std::fs::read_to_string(d.join("cgroup.controllers")).unwrap_or_default();
                    let enable: Vec<String> =
                        avail.split_whitespace().map(|c| format!("+{c}")).collect();
                    if !enable.is_empty() {
                        let f = d.join("cgroup.subtree_control");
                        std::fs::write(&f, enable.join(" ")).map_err(io("write", &f))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves process `pid` into the cgroup everywhere.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        for d in &self.dirs {
            let f = d.join("cgroup.procs");
            std::fs::write(&f, pid.to_string()).map_err(io("write", &f))?;
        }
        Ok(())
    }

    /// Applies `linux.resources`: writes exactly the files of the fields
    /// that are set (see [`resources`]); a field this layout cannot honour
    /// is refused by name.
    pub fn apply(&self, res: &oci_spec::runtime::LinuxResources) -> Result<()> {
        // memory.checkBeforeUpdate: refuse a limit below what is already in use
        // (the kernel would otherwise reclaim or OOM-kill to get under it).
        if let Some(m) = res
            .memory()
            .as_ref()
            .filter(|m| m.check_before_update() == Some(true))
        {
            if let Some(limit) = m.limit().filter(|l| *l > 0) {
                let usage = self.stats()?.memory.usage.usage;
                if usage > limit as u64 {
                    return Err(CgroupError::Unsupported {
                        field: "memory.limit".into(),
                        reason: format!(
                            "{limit} is below the current usage {usage} (checkBeforeUpdate)"
                        ),
                    });
                }
            }
        }
        let writes = if self.layout == Layout::Unified {
            resources::v2_writes(res)?
        } else {
            resources::v1_writes(res)?
        };
        let mut i = 0;
        while i < writes.len() {
            let (controller, file, value) = &writes[i];
            // An unlimited swap on a host without swap accounting is already true.
            if (file == "memory.memsw.limit_in_bytes" || file == "memory.swap.max")
                && (value == "-1" || value == "max")
                && self
                    .controller_dir(controller)
                    .is_some_and(|d| !d.join(file).exists())
            {
                i += 1;
                continue;
            }
            // v1 refuses a memory limit above memory+swap and vice versa:
            // when raising both, the swap limit has to go first.
            if file == "memory.limit_in_bytes" {
                if let Some(j) = writes
                    .iter()
                    .position(|(_, f, _)| f == "memory.memsw.limit_in_bytes")
                {
                    if self.write_controller(controller, file, value).is_err() {
                        self.write_controller("memory", &writes[j].1, &writes[j].2)?;
                        self.write_controller(controller, file, value)?;
                    }
                    i += 1;
                    continue;
                }
            }
            self.write_controller(controller, file, value)?;
            i += 1;
        }
        if let Some(rules) = res.devices().as_deref().filter(|d| !d.is_empty()) {
            self.apply_devices(rules)?;
        }
        Ok(())
    }

    /// The directory of this cgroup for a v1 controller, or the v2 directory.
    fn controller_dir(&self, controller: &str) -> Option<&PathBuf> {
        if self.layout == Layout::Unified {
            return self.dirs.first();
        }
        self.v1_dirs
            .iter()
            .find(|(c, _)| c.iter().any(|c| c == controller))
            .map(|(_, d)| d)
    }

    fn write_controller(&self, controller: &str, file: &str, value: &str) -> Result<()> {
        let dir = self
            .controller_dir(controller)
            .ok_or_else(|| CgroupError::Unsupported {
                field: controller.to_string(),
                reason: format!("the {controller} controller is not mounted on this host"),
            })?;
        let f = dir.join(file);
        std::fs::write(&f, value).map_err(io("write", &f))
    }

    /// Device rules, in order: on the v1 devices controller, or as an eBPF
    /// program on v2 (see [`device_filter`]).
    fn apply_devices(&self, rules: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Result<()> {
        if self.layout == Layout::Unified {
            return device_filter::attach(&self.dirs[0], rules);
        }
        for r in rules {
            let typ = r
                .typ()
                .map(|t| t.as_str().to_string())
                .unwrap_or_else(|| "a".into());
            let num = |n: Option<i64>| {
                n.filter(|n| *n >= 0)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "*".into())
            };
            let access = r.access().clone().unwrap_or_else(|| "rwm".into());
            let rule = if typ == "a" {
                "a".to_string()
            } else {
                format!("{typ} {}:{} {access}", num(r.major()), num(r.minor()))
            };
            let file = if r.allow() {
                "devices.allow"
            } else {
                "devices.deny"
            };
            self.write_controller("devices", file, &rule)?;
        }
        Ok(())
    }

    /// Pids in the cgroup (from the first hierarchy that lists them).
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut all = vec![];
        for d in &self.dirs {
            let f = d.join("cgroup.procs");
            match std::fs::read_to_string(&f) {
                Ok(t) => {
                    for p in t.lines().filter_map(|l| l.trim().parse().ok()) {
                        if !all.contains(&p) {
                            all.push(p);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("read", &f)(e)),
            }
        }
        Ok(all)
    }

    /// Sends `signal` to every process in the cgroup.
    pub fn kill_all(&self, signal: i32) -> Result<()> {
        for pid in self.pids()? {
            // SAFETY: kill with integer arguments.
            unsafe { libc::kill(pid, signal) };
        }
        Ok(())
    }

    fn set_frozen(&self, frozen: bool) -> Result<()> {
        let Some((dir, v1)) = &self.freezer else {
            return Err(CgroupError::Unsupported {
                field: "freezer".into(),
                reason: "no freezer controller on this host".into(),
            });
        };
        let (file, value) = if *v1 {
            ("freezer.state", if frozen { "FROZEN" } else { "THAWED" })
        } else {
            ("cgroup.freeze", if frozen { "1" } else { "0" })
        };
        let f = dir.join(file);
        std::fs::write(&f, value).map_err(io("write", &f))
    }

    /// Freezes every process in the cgroup.
    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    /// Thaws the cgroup.
    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }

    /// Whether the cgroup is frozen.
    pub fn is_frozen(&self) -> Result<bool> {
        let Some((dir, v1)) = &self.freezer else {
            return Ok(false);
        };
        let f = dir.join(if *v1 {
            "freezer.state"
        } else {
            "cgroup.freeze"
        });
        match std::fs::read_to_string(&f) {
            Ok(s) => Ok(matches!(s.trim(), "FROZEN" | "FREEZING" | "1")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io("read", &f)(e)),
        }
    }

    /// Removes the directories [`CgroupManager::create`] made, deepest first,
    /// killing nothing: for giving up before any process was placed. A
    /// directory that is not empty is left alone.
    pub fn remove_created(&self) {
        let mut dirs: Vec<&PathBuf> = self.created.iter().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = std::fs::remove_dir(d);
        }
    }

    /// Kills what is left, waits for the cgroup to empty, and removes every
    /// directory this manager created. Missing directories are fine.
    pub fn destroy(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = self.pids()?;
            if pids.is_empty() {
                break;
            }
            if self.is_frozen().unwrap_or(false) {
                let _ = self.thaw();
            }
            self.kill_all(libc::SIGKILL)?;
            if Instant::now() > deadline {
                return Err(CgroupError::Busy {
                    path: self.dirs[0].clone(),
                    secs: 10,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Deepest first; a parent shared with another container stays (ENOTEMPTY/EBUSY).
        let mut dirs: Vec<&PathBuf> = self.created.iter().collect();
        if self.created.is_empty() {
            // A record from an older runtime: remove the leaves only.
            dirs = self.dirs.iter().collect();
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let mut tries = 0;
            loop {
                match std::fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => break,
                    // The kernel may still be tearing down an exited task.
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY)
                            && tries < 200
                            && self.dirs.contains(d) =>
                    {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && !self.dirs.contains(d) => {
                        break
                    }
                    Err(e) => return Err(io("rmdir", d)(e)),
                }
            }
        }
        Ok(())
    }

    /// Removes the leaf's parent directory in every hierarchy if it is
    /// empty (the kernel refuses otherwise: no child cgroup, no process).
    /// For a parent that berth owns whoever created it, such as the
    /// default `/berth`; another container's create that races with the
    /// removal walks again.
    pub fn remove_parent_if_empty(&self) {
        for d in &self.dirs {
            if let Some(parent) = d.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }

    /// The host layout this manager was made for.
    pub fn layout(&self) -> Layout {
        self.layout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "35 25 0:30 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n\
36 35 0:31 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
37 35 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
38 35 0:33 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
39 35 0:34 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

    #[test]
    fn hybrid_layout_is_detected() {
        let h = Hierarchy::parse(HYBRID);
        assert_eq!(h.layout(), Layout::Hybrid);
        assert_eq!(h.v1.len(), 3);
        assert_eq!(h.v1[2].controllers, vec!["name=systemd"]);
        assert_eq!(
            h.unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        assert!(h
            .describe()
            .starts_with("hybrid: v1 controllers cpu,memory,name=systemd"));
    }

    #[test]
    fn unified_layout_is_detected() {
        let h =
            Hierarchy::parse("30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        assert_eq!(h.layout(), Layout::Unified);
    }

    #[test]
    fn absolute_path_lands_in_every_hierarchy() {
        let m = CgroupManager::new(&Hierarchy::parse(HYBRID), "/berth/x").unwrap();
        assert_eq!(m.dirs().len(), 4);
        assert!(m.dirs().iter().all(|d| d.ends_with("berth/x")));
        assert!(CgroupManager::new(&Hierarchy::parse(HYBRID), "/a/../b").is_err());
    }
}
