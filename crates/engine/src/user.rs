//! `--user` / `USER` resolution against the container's own `/etc/passwd`
//! and `/etc/group`, as Docker resolves it: `name`, `uid`, `name:group`,
//! `uid:gid` (and mixed). A numeric id need not exist in the files; a name
//! must. The user's supplementary groups come from `/etc/group`. The files
//! are read from the container root with `RESOLVE_IN_ROOT`, so an image's
//! symlinks cannot make the engine read the host's files, and reads are
//! bounded.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::EngineError;

/// The ids a process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (from /etc/group), without the primary one.
    pub additional_gids: Vec<u32>,
    /// Home directory (from /etc/passwd), for `HOME`.
    pub home: String,
}

/// At most this much of /etc/passwd or /etc/group is read.
const MAX_FILE: u64 = 4 << 20;

/// Reads `path` inside `rootfs` (not leaving it), or "" when it is missing.
fn read_in_root(rootfs: &Path, path: &str) -> Result<String, EngineError> {
    let root = std::fs::File::open(rootfs).map_err(|e| EngineError::Io {
        op: "open container root",
        path: rootfs.to_path_buf(),
        err: e,
    })?;
    let fd = match berth_fs::open_in_root(
        root.as_raw_fd(),
        Path::new(path),
        libc::O_RDONLY | libc::O_CLOEXEC,
        0,
    ) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(String::new()),
        Err(e) => {
            return Err(EngineError::Io {
                op: "open",
                path: rootfs.join(path.trim_start_matches('/')),
                err: e.into(),
            })
        }
    };
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(MAX_FILE)
        .read_to_string(&mut s)
        .map_err(|e| EngineError::Io {
            op: "read",
            path: rootfs.join(path.trim_start_matches('/')),
            err: e,
        })?;
    Ok(s)
}

/// `--group-add` values as gids: numbers as they are, names looked up in
/// the image's /etc/group (read inside the root).
pub fn group_ids(rootfs: &Path, groups: &[String]) -> Result<Vec<String>, EngineError> {
    if groups.iter().all(|g| g.parse::<u32>().is_ok()) {
        return Ok(groups.to_vec());
    }
    let file = read_in_root(rootfs, "/etc/group")?;
    groups
        .iter()
        .map(|g| {
            if g.parse::<u32>().is_ok() {
                return Ok(g.clone());
            }
            file.lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .map(|f| f[2].to_string())
                .ok_or_else(|| EngineError::InvalidOption {
                    option: "--group-add",
                    value: g.clone(),
                    reason: "no group of that name in the image's /etc/group".into(),
                })
        })
        .collect()
}

/// Resolves `spec` (empty: root) in the container root `rootfs`.
pub fn resolve(rootfs: &Path, spec: &str) -> Result<ResolvedUser, EngineError> {
    let passwd = read_in_root(rootfs, "/etc/passwd")?;
    let group = read_in_root(rootfs, "/etc/group")?;
    resolve_in(&passwd, &group, spec)
}

/// [`resolve`] on the files' contents.
pub fn resolve_in(passwd: &str, group: &str, spec: &str) -> Result<ResolvedUser, EngineError> {
    let bad = |reason: String| EngineError::User {
        user: spec.to_string(),
        reason,
    };
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    // passwd: name:x:uid:gid:gecos:home:shell
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let by_name = entries.iter().find(|f| f[0] == user_part);
    let (uid, mut gid, name, home) = match (user_part.parse::<u32>(), by_name) {
        (_, Some(f)) => (
            f[2].parse::<u32>()
                .map_err(|_| bad(format!("/etc/passwd has uid {:?}", f[2])))?,
            f[3].parse::<u32>()
                .map_err(|_| bad(format!("/etc/passwd has gid {:?}", f[3])))?,
            Some(f[0].to_string()),
            f[5].to_string(),
        ),
        (Ok(uid), None) => {
            // A uid need not be in /etc/passwd; when it is, its entry counts.
            match entries.iter().find(|f| f[2] == user_part) {
                Some(f) => (
                    uid,
                    f[3].parse().unwrap_or(0),
                    Some(f[0].to_string()),
                    f[5].to_string(),
                ),
                None => (uid, 0, None, "/".to_string()),
            }
        }
        (Err(_), None) => {
            return Err(bad(format!(
                "no user named {user_part:?} in the image's /etc/passwd"
            )))
        }
    };
    // group: name:x:gid:member,member
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| bad(format!("no group named {g:?} in the image's /etc/group")))?,
        };
    }
    let mut additional_gids = vec![];
    if let (Some(name), None) = (&name, group_part) {
        for f in &groups {
            if f[3].split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if g != gid && !additional_gids.contains(&g) {
                        additional_gids.push(g);
                    }
                }
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nuser:x:1000:\nwheel:x:10:user,other\naudio:x:29:user\n";

    fn r(spec: &str) -> ResolvedUser {
        resolve_in(PASSWD, GROUP, spec).unwrap()
    }

    #[test]
    fn names_and_ids_resolve_as_docker_does() {
        assert_eq!((r("").uid, r("").gid, r("").home.as_str()), (0, 0, "/root"));
        let u = r("user");
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/home/user"));
        assert_eq!(u.additional_gids, vec![10, 29]);
        assert_eq!((r("1000").uid, r("1000").gid), (1000, 1000));
        // A uid that no entry has runs with gid 0 and / as home.
        let n = r("4242");
        assert_eq!((n.uid, n.gid, n.home.as_str()), (4242, 0, "/"));
        assert_eq!((r("user:wheel").uid, r("user:wheel").gid), (1000, 10));
        // An explicit group replaces the supplementary list, as Docker does.
        assert!(r("user:wheel").additional_gids.is_empty());
        assert_eq!((r("5:7").uid, r("5:7").gid), (5, 7));
    }

    #[test]
    fn unknown_names_are_errors_naming_them() {
        let e = resolve_in(PASSWD, GROUP, "nobody").unwrap_err().to_string();
        assert!(e.contains("nobody") && e.contains("/etc/passwd"), "{e}");
        let e = resolve_in(PASSWD, GROUP, "user:nogroup")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nogroup") && e.contains("/etc/group"), "{e}");
    }
}
