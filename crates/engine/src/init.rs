//! `--init`: berth-init (crates/init), a tiny static init, as the
//! container's PID 1: it reaps orphaned processes, passes signals to the
//! command and exits with its status. The engine carries the binary
//! (built static by build.rs) and writes it once to `<root>/bin/`; it is
//! bind-mounted read-only, nosuid, nodev at `/sbin/docker-init` (Docker's
//! path for its init) and runs the command as `docker-init -- CMD…`.
//! `$BERTH_INIT` names another static init instead (tini-static works).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{MountBuilder, Spec};

use crate::error::EngineError;

/// Where the init appears in the container (Docker's path).
pub const CONTAINER_PATH: &str = "/sbin/docker-init";

/// berth-init, statically linked.
static BERTH_INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-init"));

/// The init binary: `$BERTH_INIT` if set, else berth-init written to
/// `<root>/bin/berth-init` (again if its content differs). It must be
/// statically linked (the container has no loader of ours).
pub fn find(root: &Path) -> Result<PathBuf, EngineError> {
    let path = match std::env::var_os("BERTH_INIT") {
        Some(p) => std::fs::canonicalize(&p).map_err(|e| EngineError::Io {
            op: "find the init (BERTH_INIT)",
            path: PathBuf::from(p),
            err: e,
        })?,
        None => install(root)?,
    };
    if has_interpreter(&path)? {
        return Err(EngineError::InvalidOption {
            option: "--init",
            value: path.display().to_string(),
            reason: "this init is dynamically linked: it cannot run inside a container".into(),
        });
    }
    Ok(path)
}

/// Writes berth-init under the root (0555; temp file, then rename) unless
/// the same bytes are there.
fn install(root: &Path) -> Result<PathBuf, EngineError> {
    let dir = root.join("bin");
    let path = dir.join("berth-init");
    if std::fs::read(&path).is_ok_and(|b| b == BERTH_INIT) {
        return Ok(path);
    }
    let io = |op: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |err| EngineError::Io { op, path: p, err }
    };
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let tmp = dir.join(format!("berth-init.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o555)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    f.write_all(BERTH_INIT).map_err(io("write", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io("rename", &tmp))?;
    Ok(path)
}

/// Whether the ELF file at `path` names a program interpreter (is
/// dynamically linked). Reads only its headers.
fn has_interpreter(path: &Path) -> Result<bool, EngineError> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |e| EngineError::Io {
        op: "read",
        path: path.to_path_buf(),
        err: e,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = [0u8; 64];
    f.read_exact(&mut h).map_err(io)?;
    if &h[..4] != b"\x7fELF" || h[4] != 2 || h[5] != 1 {
        return Err(EngineError::InvalidOption {
            option: "--init",
            value: path.display().to_string(),
            reason: "not a 64-bit little-endian ELF executable".into(),
        });
    }
    let phoff = u64::from_le_bytes(h[32..40].try_into().unwrap_or_default());
    let phentsize = u16::from_le_bytes([h[54], h[55]]) as u64;
    let phnum = u16::from_le_bytes([h[56], h[57]]).min(256) as u64;
    for i in 0..phnum {
        f.seek(SeekFrom::Start(phoff + i * phentsize)).map_err(io)?;
        let mut t = [0u8; 4];
        f.read_exact(&mut t).map_err(io)?;
        // PT_INTERP
        if u32::from_le_bytes(t) == 3 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Makes `init` the container's PID 1, running the process's command.
pub fn apply(spec: &mut Spec, init: &Path) -> Result<(), EngineError> {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(
        MountBuilder::default()
            .destination(CONTAINER_PATH)
            .typ("bind")
            .source(init)
            .options(vec![
                "bind".to_string(),
                "ro".to_string(),
                "nosuid".to_string(),
                "nodev".to_string(),
            ])
            .build()
            .map_err(|e| EngineError::Spec(e.to_string()))?,
    );
    spec.set_mounts(Some(mounts));
    if let Some(p) = spec.process_mut() {
        let mut args = vec![CONTAINER_PATH.to_string(), "--".to_string()];
        args.extend(p.args().clone().unwrap_or_default());
        p.set_args(Some(args));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn berth_init_is_static_and_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = install(dir.path()).unwrap();
        assert!(!has_interpreter(&path).unwrap());
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        assert_eq!(install(dir.path()).unwrap(), path);
        let again = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        assert_eq!(inode, again, "rewritten although unchanged");
        assert!(has_interpreter(Path::new("/bin/sh")).unwrap());
    }
}
