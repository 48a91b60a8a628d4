//! `--volumes-from CONTAINER[:ro|:rw]`: the new container mounts what
//! another container mounts from outside its root (its volumes, named or
//! anonymous, and its bind mounts of host paths) at the same places, in
//! the same mode unless `:ro`/`:rw` says otherwise. Read from the other
//! container's bundle, so it works for a stopped container too; what
//! berth itself mounts (/etc/hosts, the init, …) and tmpfs mounts are not
//! carried over, as in Docker. A destination the new container mounts
//! itself (`-v`, `--mount`) wins.

use std::borrow::Cow;
use std::path::Path;

use crate::error::EngineError;
use crate::run::Engine;
use crate::spec::RunOptions;

impl Engine {
    /// `opts` with `--volumes-from` turned into `-v` entries (borrowed as
    /// they are when there is none).
    pub(crate) fn with_volumes_from<'a>(
        &self,
        opts: &'a RunOptions,
    ) -> Result<Cow<'a, RunOptions>, EngineError> {
        if opts.volumes_from.is_empty() {
            return Ok(Cow::Borrowed(opts));
        }
        let (_, mut taken) = crate::mounts::volume_mounts(&opts.mounts)?;
        let mut out = opts.clone();
        for spec in &opts.volumes_from {
            let (name, mode) = match spec.rsplit_once(':') {
                Some((n, m @ ("ro" | "rw"))) => (n, Some(m)),
                Some((_, m)) => {
                    return Err(EngineError::InvalidOption {
                        option: "--volumes-from",
                        value: spec.clone(),
                        reason: format!("{m:?}: the mode is ro or rw"),
                    })
                }
                None => (spec.as_str(), None),
            };
            let rec = self.container(name)?;
            let bundle = crate::rootfs::container_dir(&self.root, &rec.id)?.join("bundle");
            let loaded =
                runtime::spec::load(&bundle).map_err(|e| EngineError::Spec(e.to_string()))?;
            let volumes = self.root.join("volumes");
            for m in loaded.spec.mounts().iter().flatten() {
                let Some(source) = m.source() else { continue };
                if m.typ().as_deref() != Some("bind") {
                    continue;
                }
                let dest = m.destination().display().to_string();
                let what = if let Ok(rest) = source.strip_prefix(&volumes) {
                    // <root>/volumes/NAME/_data
                    let mut parts = rest.components();
                    match (parts.next(), parts.next()) {
                        (Some(n), Some(d)) if d.as_os_str() == "_data" => {
                            n.as_os_str().to_string_lossy().into_owned()
                        }
                        _ => continue,
                    }
                } else if source.starts_with(&self.root) || !source.is_absolute() {
                    // berth's own: /etc/hosts, resolv.conf, hostname, the init.
                    continue;
                } else {
                    source.display().to_string()
                };
                if taken.iter().any(|t| Path::new(t) == Path::new(&dest)) {
                    continue;
                }
                let was_ro = m.options().iter().flatten().any(|o| o == "ro");
                let ro = match mode {
                    Some(m) => m == "ro",
                    None => was_ro,
                };
                out.mounts
                    .volumes
                    .push(format!("{what}:{dest}:{}", if ro { "ro" } else { "rw" }));
                taken.push(dest);
            }
        }
        Ok(Cow::Owned(out))
    }
}
