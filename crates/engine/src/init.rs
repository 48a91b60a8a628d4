//! `--init`: a small init as the container's PID 1, which reaps orphaned
//! processes and passes signals to the command, as Docker's `--init`
//! does with the same program: tini, statically linked (Debian's `tini`
//! package, `/usr/bin/tini-static`, which Docker's package links as
//! `/usr/bin/docker-init`). It is bind-mounted read-only at
//! `/sbin/docker-init` and runs the command as `docker-init -- CMD…`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{MountBuilder, Spec};

use crate::error::EngineError;

/// Where the init appears in the container (Docker's path).
pub const CONTAINER_PATH: &str = "/sbin/docker-init";

/// Where berth looks for the init, first found wins (after `$BERTH_INIT`).
const CANDIDATES: [&str; 2] = ["/usr/bin/docker-init", "/usr/bin/tini-static"];

/// The init binary: `$BERTH_INIT`, else the first of [`CANDIDATES`]; it
/// must be statically linked (the container has no loader of ours).
pub fn find() -> Result<PathBuf, EngineError> {
    let wanted: Vec<PathBuf> = match std::env::var_os("BERTH_INIT") {
        Some(p) => vec![PathBuf::from(p)],
        None => CANDIDATES.iter().map(PathBuf::from).collect(),
    };
    let Some(found) = wanted.iter().find(|p| p.is_file()) else {
        return Err(EngineError::InvalidOption {
            option: "--init",
            value: String::new(),
            reason: format!(
                "no init binary at {} (install Debian's tini package, or set BERTH_INIT)",
                wanted
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        });
    };
    let path = std::fs::canonicalize(found).map_err(|e| EngineError::Io {
        op: "resolve",
        path: found.clone(),
        err: e,
    })?;
    if has_interpreter(&path)? {
        return Err(EngineError::InvalidOption {
            option: "--init",
            value: path.display().to_string(),
            reason: "this init is dynamically linked: it cannot run inside a container".into(),
        });
    }
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
    fn a_static_init_is_found_and_a_dynamic_one_refused() {
        // This test runs where scripts/install-deps installed tini.
        let init = find().unwrap();
        assert!(!has_interpreter(&init).unwrap());
        assert!(has_interpreter(Path::new("/bin/sh")).unwrap());
    }
}
