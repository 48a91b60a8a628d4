//! `exec`: the process to run, from `--process` or from the container's own
//! process with the command line's changes.

use anyhow::{Context, Result};
use runtime::StateStore;

use crate::args::ExecArgs;

/// Builds the process of `exec`: from --process, or from the container's
/// own process with the command line's changes, as runc does.
pub fn exec(store: &StateStore, a: &ExecArgs) -> Result<i32> {
    if a.process_label.is_some() {
        anyhow::bail!("--process-label: SELinux is not enabled on this kernel");
    }
    if a.apparmor.is_some() {
        anyhow::bail!("--apparmor: AppArmor is not enabled on this kernel");
    }
    let process: oci_spec::runtime::Process = if let Some(path) = &a.process {
        let data = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        serde_json::from_slice(&data)
            .with_context(|| format!("{}: invalid process", path.display()))?
    } else {
        if a.command.is_empty() {
            anyhow::bail!("exec needs a command (or --process)");
        }
        let rec = store.load(&a.id)?;
        let mut p = rec.config.process().clone().unwrap_or_default();
        p.set_args(Some(a.command.clone()));
        p.set_terminal(Some(a.tty));
        let mut env = p.env().clone().unwrap_or_default();
        for kv in &a.env {
            let key = kv.split('=').next().unwrap_or("");
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        p.set_env(Some(env));
        if let Some(cwd) = &a.cwd {
            p.set_cwd(cwd.clone());
        }
        if let Some(u) = &a.user {
            let (uid, gid) = match u.split_once(':') {
                Some((u, g)) => (u.parse::<u32>()?, g.parse::<u32>()?),
                None => (
                    u.parse::<u32>()
                        .with_context(|| format!("--user {u:?}: expected UID[:GID]"))?,
                    0,
                ),
            };
            p.user_mut().set_uid(uid);
            p.user_mut().set_gid(gid);
        }
        if !a.additional_gids.is_empty() {
            p.user_mut()
                .set_additional_gids(Some(a.additional_gids.clone()));
        }
        if !a.cap.is_empty() {
            let mut caps = p.capabilities().clone().unwrap_or_default();
            for c in &a.cap {
                let cap: oci_spec::runtime::Capability =
                    serde_json::from_value(serde_json::Value::from(c.as_str()))
                        .with_context(|| format!("--cap {c:?}: unknown capability"))?;
                let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                    let mut s = s.clone().unwrap_or_default();
                    s.insert(cap);
                    Some(s)
                };
                caps.set_bounding(add(caps.bounding()));
                caps.set_effective(add(caps.effective()));
                caps.set_permitted(add(caps.permitted()));
            }
            p.set_capabilities(Some(caps));
        }
        if a.no_new_privs {
            p.set_no_new_privileges(Some(true));
        }
        p
    };
    let opts = runtime::ExecOptions {
        process,
        console_socket: a.console_socket.clone(),
        detach: a.detach,
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
    };
    Ok(runtime::exec(store, &a.id, &opts)?)
}
