//! `berth cp` and `berth export`: files between a container and the host
//! (or a tar stream on stdin/stdout, `-`), as Docker's.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

/// `docker cp` arguments.
#[derive(Args)]
pub struct CpArgs {
    /// Keep owners (uid/gid) of what is copied into a container (else root's).
    #[arg(short, long)]
    archive: bool,
    /// CONTAINER:PATH, a host path, or - (a tar stream on stdin).
    source: String,
    /// CONTAINER:PATH, a host path, or - (a tar stream on stdout).
    destination: String,
}

/// `CONTAINER:PATH` split, or None for a host path (one with a `/` before
/// any `:`, or without a `:`).
fn container_path(s: &str) -> Option<(&str, &str)> {
    let (c, p) = s.split_once(':')?;
    if c.is_empty() || c.contains('/') {
        return None;
    }
    Some((c, if p.is_empty() { "/" } else { p }))
}

fn base_name(p: &str) -> String {
    Path::new(p.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into())
}

/// `berth cp`.
pub fn cp_main(root: &Path, a: &CpArgs) -> Result<()> {
    let e = crate::containers::engine(root, None)?;
    match (container_path(&a.source), container_path(&a.destination)) {
        (Some(_), Some(_)) => {
            bail!("cp copies between a container and the host, not between two containers")
        }
        (None, None) => bail!("cp needs a CONTAINER:PATH on one side"),
        (Some((c, path)), None) => {
            if a.destination == "-" {
                return Ok(e.copy_out(c, path, std::io::stdout().lock())?);
            }
            // Into a host directory, or as the host path named.
            let dest = PathBuf::from(&a.destination);
            let (into, rename) = if dest.is_dir() {
                (dest.clone(), None)
            } else {
                let parent = dest
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                if !parent.is_dir() {
                    bail!("{}: no such directory on the host", parent.display());
                }
                (parent.to_path_buf(), Some(dest.clone()))
            };
            let staging = tempfile::Builder::new()
                .prefix(".berth-cp-")
                .tempdir_in(&into)
                .with_context(|| format!("make a staging directory in {}", into.display()))?;
            let mut tar = vec![];
            e.copy_out(c, path, &mut tar)?;
            image::unpack::apply(
                staging.path(),
                tar.as_slice(),
                u64::MAX,
                image::unpack::ApplyRules::COPY,
            )
            .map_err(|err| anyhow::anyhow!("unpack into {}: {err}", into.display()))?;
            let name = base_name(path);
            let from = staging.path().join(&name);
            let to = rename.unwrap_or_else(|| into.join(&name));
            std::fs::rename(&from, &to)
                .with_context(|| format!("move {} to {}", from.display(), to.display()))?;
            Ok(())
        }
        (None, Some((c, path))) => {
            if a.source == "-" {
                return Ok(e.copy_in(c, path, std::io::stdin().lock(), Default::default())?);
            }
            let src = PathBuf::from(&a.source);
            let meta = std::fs::symlink_metadata(&src).with_context(|| {
                format!("{}: no such file or directory on the host", src.display())
            })?;
            // Into a container directory, or as the path named.
            let (dir, name) = if e.is_dir_in(c, path)? {
                (path.to_string(), base_name(&a.source))
            } else {
                let p = Path::new(path);
                let parent = p
                    .parent()
                    .map_or("/".to_string(), |p| p.display().to_string());
                (
                    if parent.is_empty() {
                        "/".into()
                    } else {
                        parent
                    },
                    base_name(path),
                )
            };
            let mut tar = tar::Builder::new(vec![]);
            tar.mode(if a.archive {
                tar::HeaderMode::Complete
            } else {
                tar::HeaderMode::Deterministic
            });
            tar.follow_symlinks(false);
            if meta.is_dir() {
                tar.append_dir_all(&name, &src)?;
            } else {
                tar.append_path_with_name(&src, &name)?;
            }
            let data = tar.into_inner()?;
            Ok(e.copy_in(c, &dir, data.as_slice(), Default::default())?)
        }
    }
}

/// `docker export` arguments.
#[derive(Args)]
pub struct ExportArgs {
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The container.
    container: String,
}

/// `berth export`.
pub fn export_main(root: &Path, a: &ExportArgs) -> Result<()> {
    let e = crate::containers::engine(root, None)?;
    match &a.output {
        Some(p) => {
            let f = std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?;
            Ok(e.export(&a.container, std::io::BufWriter::new(f))?)
        }
        None => {
            use std::io::IsTerminal;
            if std::io::stdout().is_terminal() {
                bail!("export writes a tar archive: redirect it to a file, or give -o FILE");
            }
            Ok(e.export(&a.container, std::io::stdout().lock())?)
        }
    }
}
