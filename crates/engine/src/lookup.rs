//! Finding the program of a container before it starts, so that a missing
//! or non-executable one gets Docker's exit codes (127, 126) and message
//! rather than a runtime failure. Paths resolve inside the container root
//! (`RESOLVE_IN_ROOT`): the image's symlinks cannot point the check at
//! the host.

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::EngineError;

/// What is at `path` inside `rootfs`: None when nothing, else whether it
/// is an executable regular file.
fn probe(rootfs: &std::fs::File, path: &Path) -> Option<bool> {
    let fd =
        berth_fs::open_in_root(rootfs.as_raw_fd(), path, libc::O_PATH | libc::O_CLOEXEC, 0).ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some(meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Checks that `program` (argv[0]) can be executed in `rootfs`: a name
/// without a slash is looked up in the `PATH` of `env`, a relative path
/// from `cwd`.
pub fn check_program(
    rootfs: &Path,
    program: &str,
    env: &[String],
    cwd: &str,
) -> Result<(), EngineError> {
    let root = std::fs::File::open(rootfs).map_err(|e| EngineError::Io {
        op: "open container root",
        path: rootfs.to_path_buf(),
        err: e,
    })?;
    let candidates: Vec<String> = if program.contains('/') {
        vec![if program.starts_with('/') {
            program.to_string()
        } else {
            format!("{}/{program}", cwd.trim_end_matches('/'))
        }]
    } else {
        let path = env
            .iter()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| format!("{}/{program}", d.trim_end_matches('/')))
            .collect()
    };
    let mut found_unexecutable = false;
    for c in &candidates {
        match probe(&root, Path::new(c)) {
            Some(true) => return Ok(()),
            Some(false) => found_unexecutable = true,
            None => {}
        }
    }
    if found_unexecutable {
        Err(EngineError::NotExecutable(program.to_string()))
    } else {
        Err(EngineError::NotFound(program.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_in_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("bin/tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            root.join("bin/tool"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(root.join("bin/data"), "x").unwrap();
        // A link to the host's /bin/sh must not count: it resolves in the root.
        std::os::unix::fs::symlink("/bin/sh", root.join("bin/escape")).unwrap();
        let env = vec!["PATH=/bin".to_string()];
        assert!(check_program(root, "tool", &env, "/").is_ok());
        assert!(check_program(root, "/bin/tool", &[], "/").is_ok());
        assert!(check_program(root, "./bin/tool", &[], "/").is_ok());
        assert!(matches!(
            check_program(root, "data", &env, "/"),
            Err(EngineError::NotExecutable(_))
        ));
        assert!(matches!(
            check_program(root, "/etc", &env, "/"),
            Err(EngineError::NotExecutable(_))
        ));
        assert!(matches!(
            check_program(root, "escape", &env, "/"),
            Err(EngineError::NotFound(_))
        ));
        assert!(matches!(
            check_program(root, "nothing", &env, "/"),
            Err(EngineError::NotFound(_))
        ));
    }
}
