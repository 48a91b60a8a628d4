//! A new user namespace's id maps, written by the runtime for the
//! intermediate process: straight to /proc/PID/{uid,gid}_map for root
//! (or a caller that maps only itself), else through the setuid helpers
//! newuidmap and newgidmap, which check /etc/subuid and /etc/subgid.

use crate::error::{Result, RuntimeError};
use crate::spec::Bundle;

/// Writes the spec's uid and gid maps for process `pid`.
pub(crate) fn write_id_maps(pid: i32, bundle: &Bundle) -> Result<()> {
    let linux = bundle.spec.linux().clone().unwrap_or_default();
    let uids = linux.uid_mappings().clone().unwrap_or_default();
    let gids = linux.gid_mappings().clone().unwrap_or_default();
    let (euid, egid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let only_self = |maps: &[oci_spec::runtime::LinuxIdMapping], own: u32| {
        maps.len() == 1 && maps[0].host_id() == own && maps[0].size() == 1
    };
    if euid != 0 && !(only_self(&uids, euid) && only_self(&gids, egid)) {
        // An unprivileged caller maps other ids through the setuid helpers,
        // which check /etc/subuid and /etc/subgid.
        map_with_helper("newuidmap", pid, &uids, "linux.uidMappings")?;
        return map_with_helper("newgidmap", pid, &gids, "linux.gidMappings");
    }
    let fmt = |maps: &[oci_spec::runtime::LinuxIdMapping]| {
        maps.iter()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    let uid = format!("/proc/{pid}/uid_map");
    std::fs::write(&uid, fmt(&uids))
        .map_err(|e| RuntimeError::io("write linux.uidMappings to", uid, e))?;
    if euid != 0 {
        // Without CAP_SETGID, gid_map can only be written once setgroups is denied.
        let sg = format!("/proc/{pid}/setgroups");
        std::fs::write(&sg, "deny").map_err(|e| RuntimeError::io("write", sg, e))?;
    }
    let gid = format!("/proc/{pid}/gid_map");
    std::fs::write(&gid, fmt(&gids))
        .map_err(|e| RuntimeError::io("write linux.gidMappings to", gid, e))
}

fn map_with_helper(
    helper: &str,
    pid: i32,
    maps: &[oci_spec::runtime::LinuxIdMapping],
    field: &str,
) -> Result<()> {
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd.output().map_err(|e| {
        RuntimeError::Other(format!(
            "{field}: cannot run {helper} (apt-get install uidmap): {e}"
        ))
    })?;
    if !out.status.success() {
        return Err(RuntimeError::Other(format!(
            "{field}: {helper} refused the mapping: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
