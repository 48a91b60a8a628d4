//! Which namespaces a container gets, and entering them. A spec entry
//! without `path` asks for a new namespace (unshare); with `path`, to join an
//! existing one (setns). Joins happen first, user namespace first of all, so
//! that namespaces created afterwards belong to the right user namespace.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use crate::error::{Result, RuntimeError};

/// The namespace plan of a container.
#[derive(Debug, Clone)]
pub struct NamespacePlan {
    /// Namespaces to create.
    pub new: CloneFlags,
    /// Namespaces to join, in the order they must be joined.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
}

impl Default for NamespacePlan {
    fn default() -> Self {
        NamespacePlan {
            new: CloneFlags::empty(),
            join: vec![],
        }
    }
}

/// The clone flag of a namespace type.
pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The spec name of a namespace type.
pub fn spec_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// The name of a namespace type under /proc/PID/ns.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Whether two namespace files name the same namespace (None if either is unreadable).
pub fn same_namespace(a: &Path, b: &Path) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (std::fs::metadata(a).ok()?, std::fs::metadata(b).ok()?);
    Some((a.dev(), a.ino()) == (b.dev(), b.ino()))
}

/// The order in which namespaces are joined: user first (it grants the
/// capabilities for the rest), mount last (it changes path resolution).
pub const JOIN_ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Mount,
];

impl NamespacePlan {
    /// Builds and validates the plan from `linux.namespaces`.
    pub fn from_spec(namespaces: &[LinuxNamespace]) -> Result<Self> {
        let mut plan = NamespacePlan::default();
        let mut seen = CloneFlags::empty();
        for (i, ns) in namespaces.iter().enumerate() {
            let f = flag(ns.typ());
            if seen.contains(f) {
                return Err(RuntimeError::spec(
                    format!("linux.namespaces[{i}].type"),
                    format!("namespace {:?} is listed twice", spec_name(ns.typ())),
                ));
            }
            seen |= f;
            match ns.path() {
                Some(p) if !p.as_os_str().is_empty() => {
                    if !p.exists() {
                        return Err(RuntimeError::spec(
                            format!("linux.namespaces[{i}].path"),
                            format!("{} does not exist", p.display()),
                        ));
                    }
                    plan.join.push((ns.typ(), p.clone()));
                }
                _ => plan.new |= f,
            }
        }
        plan.join
            .sort_by_key(|(t, _)| JOIN_ORDER.iter().position(|o| o == t));
        Ok(plan)
    }

    /// Whether the container has namespace `t` of its own or joined.
    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(flag(t)) || self.join.iter().any(|(j, _)| *j == t)
    }

    /// Whether the container's namespace `t` is not the runtime's own:
    /// newly created, or joined by a path naming a different namespace.
    pub fn is_private(&self, t: LinuxNamespaceType) -> bool {
        if self.creates(t) {
            return true;
        }
        let Some((_, path)) = self.join.iter().find(|(j, _)| *j == t) else {
            return false;
        };
        same_namespace(path, Path::new(&format!("/proc/self/ns/{}", proc_name(t)))) == Some(false)
    }

    /// Whether namespace `t` is newly created.
    pub fn creates(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(flag(t))
    }

    /// Opens every namespace to join (before any join changes what paths mean).
    pub fn open_joins(&self) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
        self.join
            .iter()
            .map(|(t, p)| {
                let fd = nix::fcntl::open(
                    p,
                    nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .map_err(|e| RuntimeError::sys("open namespace", p.display(), e))?;
                // SAFETY: `open` returned this descriptor; we own it.
                Ok((*t, unsafe {
                    <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
                }))
            })
            .collect()
    }
}

/// Joins the opened namespaces in order.
pub fn join(fds: &[(LinuxNamespaceType, OwnedFd)], plan: &NamespacePlan) -> Result<()> {
    for ((t, fd), (_, path)) in fds.iter().zip(plan.join.iter()) {
        // SAFETY: `fd` is an open namespace descriptor.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd.as_raw_fd()) };
        nix::sched::setns(fd, flag(*t)).map_err(|e| {
            RuntimeError::sys(
                "setns",
                format!("{} namespace {}", spec_name(*t), path.display()),
                e,
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(t: LinuxNamespaceType, path: Option<&str>) -> LinuxNamespace {
        let mut n = LinuxNamespace::default();
        n.set_typ(t);
        n.set_path(path.map(PathBuf::from));
        n
    }

    #[test]
    fn duplicates_are_refused_by_index() {
        let e = NamespacePlan::from_spec(&[
            ns(LinuxNamespaceType::Pid, None),
            ns(LinuxNamespaceType::Pid, None),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("linux.namespaces[1].type"), "{e}");
    }

    #[test]
    fn user_is_joined_first_and_mount_last() {
        let p = NamespacePlan::from_spec(&[
            ns(LinuxNamespaceType::Mount, Some("/proc/self/ns/mnt")),
            ns(LinuxNamespaceType::Network, Some("/proc/self/ns/net")),
            ns(LinuxNamespaceType::User, Some("/proc/self/ns/user")),
            ns(LinuxNamespaceType::Pid, None),
        ])
        .unwrap();
        let order: Vec<_> = p.join.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            order,
            [
                LinuxNamespaceType::User,
                LinuxNamespaceType::Network,
                LinuxNamespaceType::Mount
            ]
        );
        assert!(p.creates(LinuxNamespaceType::Pid));
        assert!(p.has(LinuxNamespaceType::Mount) && !p.creates(LinuxNamespaceType::Mount));
    }

    #[test]
    fn missing_path_is_named() {
        let e =
            NamespacePlan::from_spec(&[ns(LinuxNamespaceType::Network, Some("/nonexistent/ns"))])
                .unwrap_err();
        assert!(e.to_string().contains("linux.namespaces[0].path"), "{e}");
    }
}
