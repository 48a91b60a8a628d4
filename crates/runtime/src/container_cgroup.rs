//! A new container's cgroup: its default path under berth's own parent,
//! its creation (refusing one that already holds processes), and its
//! removal with the default parent once that is empty.

use crate::error::{Result, RuntimeError};

/// The default cgroup of a container whose spec names none.
pub fn default_cgroup_path(id: &str) -> String {
    format!("{DEFAULT_CGROUP_PARENT}{id}")
}

/// The parent of every default cgroup: berth's own, whichever container
/// made it.
const DEFAULT_CGROUP_PARENT: &str = "/berth/";

/// Destroys a container's cgroup (see [`cgroups::CgroupManager::destroy`]),
/// then berth's default parent if that is now empty. A parent the caller
/// chose (`/docker`, a kubepods slice) is the caller's: it goes only when
/// this very container created it and nothing else is in it.
pub(crate) fn destroy_cgroup(cg: &cgroups::CgroupManager) -> cgroups::Result<()> {
    cg.destroy()?;
    let path = cg.path();
    if path
        .strip_prefix(DEFAULT_CGROUP_PARENT)
        .is_some_and(|leaf| !leaf.is_empty() && !leaf.contains('/'))
    {
        cg.remove_parent_if_empty();
    }
    Ok(())
}

/// A cgroup that already holds processes is someone else's: a container
/// in it would be limited, frozen and killed together with them (runc 1.2
/// refuses it too).
pub(crate) fn refuse_shared_cgroup(cgroup: &cgroups::CgroupManager, path: &str) -> Result<()> {
    let pids = cgroup.pids()?;
    if let Some(first) = pids.first() {
        return Err(RuntimeError::spec(
            "linux.cgroupsPath",
            format!(
                "cgroup {path} already holds {} process(es) (pid {first}); a container needs a cgroup of its own",
                pids.len()
            ),
        ));
    }
    Ok(())
}

/// Creates the container's cgroup (`path`). An unprivileged caller
/// without a delegated cgroup runs without one, after a one-line notice,
/// unless the spec asks for limits (which would then silently not apply).
pub(crate) fn create_cgroup(
    mut cgroup: cgroups::CgroupManager,
    path: &str,
    linux: &oci_spec::runtime::Linux,
) -> Result<Option<cgroups::CgroupManager>> {
    match cgroup.create() {
        Ok(()) => {
            // Checked again: a process may have been put there meanwhile.
            if let Err(e) = refuse_shared_cgroup(&cgroup, path) {
                cgroup.remove_created();
                return Err(e);
            }
            Ok(Some(cgroup))
        }
        Err(cgroups::CgroupError::Io { err, .. })
            if !nix::unistd::geteuid().is_root()
                && err.kind() == std::io::ErrorKind::PermissionDenied
                && !asks_for_limits(linux) =>
        {
            eprintln!(
                "berth-runtime: notice: uid {} has no delegated cgroup: running without one",
                nix::unistd::geteuid()
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether `linux.resources` sets anything but the device list.
fn asks_for_limits(linux: &oci_spec::runtime::Linux) -> bool {
    linux.resources().as_ref().is_some_and(|r| {
        r.memory().is_some()
            || r.cpu().is_some()
            || r.pids().is_some()
            || r.block_io().is_some()
            || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
            || r.unified().as_ref().is_some_and(|u| !u.is_empty())
    })
}
