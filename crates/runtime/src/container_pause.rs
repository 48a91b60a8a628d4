//! `pause` and `resume`: freeze and thaw every process of a container
//! through its cgroup (v1 freezer, v2 cgroup.freeze).

use crate::error::{Result, RuntimeError};
use crate::state::{StateStore, Status};

fn cgroup_of(
    store: &StateStore,
    id: &str,
    want: Status,
    operation: &'static str,
) -> Result<cgroups::CgroupManager> {
    let rec = store.load(id)?;
    let status = store.status(&rec);
    if status != want {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status: status.to_string(),
            operation,
        });
    }
    rec.cgroup.ok_or_else(|| RuntimeError::NoCgroup {
        id: id.to_string(),
        operation,
    })
}

/// Freezes container `id`.
pub fn pause(store: &StateStore, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    cgroup_of(
        store,
        id,
        Status::Running,
        "pause (only a running container can be paused)",
    )?
    .freeze()?;
    Ok(())
}

/// Thaws container `id`.
pub fn resume(store: &StateStore, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    cgroup_of(
        store,
        id,
        Status::Paused,
        "resume (only a paused container can be resumed)",
    )?
    .thaw()?;
    Ok(())
}

/// Host pids of every process in container `id`.
pub fn pids(store: &StateStore, id: &str) -> Result<Vec<i32>> {
    let rec = store.load(id)?;
    match &rec.cgroup {
        Some(cg) => Ok(cg.pids()?),
        None => Ok(if store.status(&rec) == Status::Stopped {
            vec![]
        } else {
            vec![rec.pid]
        }),
    }
}

/// Applies new resource limits to a created, running or paused container.
/// Only the fields set in `res` are written; the others keep their values.
pub fn update(store: &StateStore, id: &str, res: &oci_spec::runtime::LinuxResources) -> Result<()> {
    let _lock = store.lock(id)?;
    let rec = store.load(id)?;
    let status = store.status(&rec);
    if status == Status::Stopped {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status: status.to_string(),
            operation: "update",
        });
    }
    let cg = rec.cgroup.clone().ok_or_else(|| RuntimeError::NoCgroup {
        id: id.to_string(),
        operation: "update",
    })?;
    cg.apply(res)?;
    Ok(())
}
