//! Bind mounts cloned before the container's user namespace exists
//! ([`PreparedBinds`]), with the `idmap`/`ridmap` option applied: the
//! init of a container whose root is an unprivileged host id attaches
//! them with `move_mount`, which needs no path to their sources.

use std::os::fd::OwnedFd;

use berth_fs::idmap::{IdRange, UserNamespace};
use oci_spec::runtime::Mount;

use crate::error::{Result, RuntimeError};
use crate::mounts::{bind_tree, MountOptions};

/// A spec's id mappings as ranges.
fn ranges(maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>) -> Vec<IdRange> {
    maps.map(|v| {
        v.iter()
            .map(|m| IdRange {
                container: m.container_id(),
                host: m.host_id(),
                size: m.size(),
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The bind mounts of a spec, cloned as detached trees (with their flags
/// set) by the runtime while it is still the host's root, before the
/// container's user namespace exists. The container's root maps to an id
/// that cannot traverse a private store (`<root>` is 0700, root's), so
/// the init could not open these sources itself; it attaches the trees
/// with `move_mount`, which needs no path to them (as runc 1.2 does).
#[derive(Debug, Default)]
pub struct PreparedBinds {
    trees: Vec<Option<OwnedFd>>,
}

impl PreparedBinds {
    /// Clones every bind mount source of `mounts` (entries that are not
    /// binds get no tree). An `idmap` bind gets its entry's
    /// `uidMappings`/`gidMappings`, or else the container's (`linux`).
    pub fn open(mounts: &[Mount], linux: &oci_spec::runtime::Linux) -> Result<Self> {
        let mut trees = Vec::with_capacity(mounts.len());
        // One user namespace per mapping, however many binds use it.
        type Mapping = (Vec<IdRange>, Vec<IdRange>);
        let mut namespaces: Vec<(Mapping, UserNamespace)> = vec![];
        for (index, m) in mounts.iter().enumerate() {
            let opts = MountOptions::parse(m.options().as_deref().unwrap_or(&[]))?;
            let bind = opts.bind || m.typ().as_deref() == Some("bind");
            let tree = match (bind, m.source()) {
                (true, Some(source)) => {
                    let tree = bind_tree(source, &opts, m.destination(), index)?;
                    if let Some(recursive) = opts.idmap {
                        let field = format!("mounts[{index}]");
                        let uids =
                            ranges(m.uid_mappings().as_ref().or(linux.uid_mappings().as_ref()));
                        let gids =
                            ranges(m.gid_mappings().as_ref().or(linux.gid_mappings().as_ref()));
                        let at = match namespaces
                            .iter()
                            .position(|(k, _)| *k == (uids.clone(), gids.clone()))
                        {
                            Some(i) => i,
                            None => {
                                let ns = UserNamespace::new(&uids, &gids).map_err(|e| {
                                    RuntimeError::spec(field.clone(), format!("idmap: {e}"))
                                })?;
                                namespaces.push(((uids, gids), ns));
                                namespaces.len() - 1
                            }
                        };
                        berth_fs::idmap::set_idmap(&tree, &namespaces[at].1, recursive).map_err(
                            |e| {
                                RuntimeError::spec(
                                    field,
                                    format!("idmap of {}: {e}", source.display()),
                                )
                            },
                        )?;
                    }
                    Some(tree)
                }
                _ => None,
            };
            trees.push(tree);
        }
        Ok(Self { trees })
    }

    /// The tree cloned for entry `index`.
    pub(crate) fn get(&self, index: usize) -> Option<&OwnedFd> {
        self.trees.get(index).and_then(|t| t.as_ref())
    }
}
