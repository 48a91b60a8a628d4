//! Volumes, as Docker's `local` driver keeps them: a named directory,
//! `<root>/volumes/<name>/_data`, that outlives the containers mounting
//! it. A volume is made by `volume create`, or on first use by `-v
//! NAME:/path` and `--mount type=volume`; an anonymous one (`-v /path`, an
//! image's `VOLUME`) gets a random name and goes with its container on
//! `rm -v` and `--rm`.
//!
//! The local driver's options are those Docker takes: none (a directory),
//! `type=tmpfs` (with `device=tmpfs` and `o=size=…,mode=…`: a tmpfs mounted
//! on `_data` when first used, kept until the volume is removed), and
//! `type=none,o=bind,device=/host/path` (the host path itself).
//!
//! A new, empty volume mounted over a directory of the image starts with a
//! copy of that directory (unless `nocopy`), made by descriptor without
//! following links. The database records which container mounts which
//! volume; a volume in use is never removed, and a failure to read that
//! record removes nothing. Volume changes are serialised by one lock file.

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, MountBuilder};

use crate::error::{invalid, EngineError};
use crate::run::Engine;
use crate::store::Store;
use crate::volume_files::{copy_up, dir_size, is_mount_point, mount_tmpfs};

/// One volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Its name (64 hex digits for an anonymous one).
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// Creation time (Unix seconds).
    pub created: i64,
    /// `--label`s.
    pub labels: BTreeMap<String, String>,
    /// The driver's `-o` options.
    pub options: BTreeMap<String, String>,
    /// Made for one container (`-v /path`, an image's VOLUME).
    pub anonymous: bool,
}

/// A volume mount that `-v` or `--mount type=volume` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeMount {
    /// The volume (None: a new anonymous one).
    pub name: Option<String>,
    /// Where in the container.
    pub destination: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// Do not copy the image's content into a new volume.
    pub nocopy: bool,
    /// `volume-opt=` options for a volume this mount creates.
    pub options: Vec<String>,
    /// `volume-label=` labels for a volume this mount creates.
    pub labels: Vec<String>,
}

/// Where a volume's data lives, from its options.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Backing {
    /// `_data`, a plain directory.
    Directory,
    /// A tmpfs mounted on `_data` with these mount options.
    Tmpfs(String),
    /// A host path, bound in place of `_data`.
    Bind(PathBuf),
}

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn check_name(name: &str) -> Result<(), EngineError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = name.len() >= 2
        && name.len() <= 255
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(invalid(
            "volume name",
            name,
            "a name is 2 or more of [a-zA-Z0-9_.-], starting with a letter or digit",
        ))
    }
}

/// `KEY=VALUE` pairs (`-o`, `--label`) as a map.
pub fn key_values(
    option: &'static str,
    list: &[String],
) -> Result<BTreeMap<String, String>, EngineError> {
    let mut map = BTreeMap::new();
    for kv in list {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        if k.is_empty() {
            return Err(invalid(option, kv, "expected KEY=VALUE"));
        }
        map.insert(k.to_string(), v.to_string());
    }
    Ok(map)
}

/// What the local driver makes of `options`.
fn backing(options: &BTreeMap<String, String>) -> Result<Backing, EngineError> {
    for k in options.keys() {
        if !matches!(k.as_str(), "type" | "device" | "o") {
            return Err(invalid(
                "--opt",
                k,
                "the local driver takes type, device and o",
            ));
        }
    }
    let o = options.get("o").map(String::as_str).unwrap_or("");
    match (options.get("type").map(String::as_str), options.get("device")) {
        (None, None) if o.is_empty() => Ok(Backing::Directory),
        (Some("tmpfs"), device) => {
            if device.is_some_and(|d| d != "tmpfs") {
                return Err(invalid("--opt", "device", "a tmpfs volume's device is tmpfs"));
            }
            for opt in o.split(',').filter(|s| !s.is_empty()) {
                let key = opt.split('=').next().unwrap_or("");
                if !matches!(key, "size" | "mode" | "uid" | "gid" | "nr_inodes" | "nr_blocks") {
                    return Err(invalid("--opt", o, format!("{key}: not a tmpfs option")));
                }
            }
            Ok(Backing::Tmpfs(o.to_string()))
        }
        (Some("none"), Some(device)) if o.split(',').any(|s| s == "bind" || s == "rbind") => {
            let path = PathBuf::from(device);
            if !path.is_absolute() || !path.is_dir() {
                return Err(invalid(
                    "--opt",
                    device,
                    "a bind volume's device must be an existing host directory",
                ));
            }
            Ok(Backing::Bind(path))
        }
        (Some(t), _) => Err(EngineError::NotImplemented(match t {
            "nfs" | "cifs" => "network file systems as volumes (-o type=nfs|cifs)",
            _ => "volumes of this type (the local driver here takes type=tmpfs and type=none with o=bind)",
        })),
        _ => Err(invalid(
            "--opt",
            o,
            "expected no options, type=tmpfs, or type=none,o=bind,device=PATH",
        )),
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.to_path_buf();
    move |err| EngineError::Io { op, path, err }
}

/// Holds the volume lock (an exclusive flock) while it lives.
type VolumeLock = nix::fcntl::Flock<std::fs::File>;

impl Engine {
    /// `<root>/volumes`, private to the engine.
    fn volumes_dir(&self) -> Result<PathBuf, EngineError> {
        let dir = self.root.join("volumes");
        berth_fs::private_dir(&dir).map_err(|e| EngineError::Io {
            op: "create",
            path: dir.clone(),
            err: std::io::Error::other(e.to_string()),
        })?;
        Ok(dir)
    }

    fn volume_lock(&self) -> Result<VolumeLock, EngineError> {
        let path = self.volumes_dir()?.join(".lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("open", &path))?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| io("lock", &path)(e.into()))
    }

    /// Where volume `name`'s data is on the host (Docker's `Mountpoint`).
    pub fn volume_mountpoint(&self, name: &str) -> PathBuf {
        self.root.join("volumes").join(name).join("_data")
    }

    /// Makes volume `name` (a random one when None) unless it exists;
    /// an existing one must have the same options. Call with the lock.
    fn ensure_volume(
        &self,
        db: &Store,
        name: Option<&str>,
        options: BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<Volume, EngineError> {
        let name = match name {
            Some(n) => {
                check_name(n)?;
                n.to_string()
            }
            None => crate::run::new_id()?,
        };
        backing(&options)?;
        if let Some(v) = db.volume(&name)? {
            if !options.is_empty() && v.options != options {
                return Err(invalid(
                    "volume",
                    &name,
                    "a volume of this name exists with other options",
                ));
            }
            return Ok(v);
        }
        let data = self.volumes_dir()?.join(&name).join("_data");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&data)
            .map_err(io("create", &data))?;
        let v = Volume {
            name,
            driver: "local".into(),
            created: crate::run::now(),
            labels,
            options,
            anonymous,
        };
        if db.insert_volume(&v)? {
            crate::events::record(
                &self.root,
                "volume",
                "create",
                &v.name,
                &[("driver", "local")],
            );
        }
        Ok(v)
    }

    /// `volume create`: makes a volume of the local driver (`driver` must
    /// be `local`) and returns it; an existing name is returned as it is.
    pub fn create_volume(
        &self,
        name: Option<&str>,
        driver: &str,
        options: &[String],
        labels: &[String],
    ) -> Result<Volume, EngineError> {
        if driver != "local" {
            return Err(invalid("--driver", driver, "only the local driver exists"));
        }
        let options = key_values("--opt", options)?;
        let labels = key_values("--label", labels)?;
        let _lock = self.volume_lock()?;
        let db = Store::open(&self.root)?;
        self.ensure_volume(&db, name, options, labels, false)
    }

    /// The volume `name`.
    pub fn volume(&self, name: &str) -> Result<Volume, EngineError> {
        Store::open(&self.root)?
            .volume(name)?
            .ok_or_else(|| EngineError::NoSuchVolume(name.to_string()))
    }

    /// Every volume with the ids of the containers that mount it.
    pub fn volumes(&self) -> Result<Vec<(Volume, Vec<String>)>, EngineError> {
        let db = Store::open(&self.root)?;
        db.volumes()?
            .into_iter()
            .map(|v| {
                let users = db.volume_users(&v.name)?;
                Ok((v, users))
            })
            .collect()
    }

    /// `volume rm`: removes volume `name` unless a container (running or
    /// not) mounts it. `force` only makes a missing volume no error, as in
    /// Docker.
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<(), EngineError> {
        let _lock = self.volume_lock()?;
        let db = Store::open(&self.root)?;
        let Some(v) = db.volume(name)? else {
            return if force {
                Ok(())
            } else {
                Err(EngineError::NoSuchVolume(name.to_string()))
            };
        };
        db.delete_volume_if_unused(&v.name)?;
        self.remove_volume_files(&v)
    }

    /// Removes the volume's directory, unmounting its tmpfs first.
    fn remove_volume_files(&self, v: &Volume) -> Result<(), EngineError> {
        crate::events::record(
            &self.root,
            "volume",
            "destroy",
            &v.name,
            &[("driver", "local")],
        );
        let dir = self.volumes_dir()?.join(&v.name);
        let data = dir.join("_data");
        if matches!(backing(&v.options), Ok(Backing::Tmpfs(_))) && is_mount_point(&data) {
            nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| io("unmount", &data)(e.into()))?;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &dir)(e)),
        }
    }

    /// `volume prune`: removes the volumes no container mounts, only the
    /// anonymous ones unless `all` (Docker 23's rule). Returns each
    /// removed volume with the bytes it held.
    pub fn prune_volumes(&self, all: bool) -> Result<Vec<(String, u64)>, EngineError> {
        self.prune_volumes_except(all, &[])
    }

    /// [`Engine::prune_volumes`] that keeps the volumes named in `keep`
    /// (those a filter leaves out).
    pub fn prune_volumes_except(
        &self,
        all: bool,
        keep: &[String],
    ) -> Result<Vec<(String, u64)>, EngineError> {
        let _lock = self.volume_lock()?;
        let db = Store::open(&self.root)?;
        let mut removed = vec![];
        for v in db.volumes()? {
            if !(all || v.anonymous)
                || keep.contains(&v.name)
                || !db.volume_users(&v.name)?.is_empty()
            {
                continue;
            }
            let size = dir_size(&self.volume_mountpoint(&v.name));
            db.delete_volume_if_unused(&v.name)?;
            self.remove_volume_files(&v)?;
            removed.push((v.name, size));
        }
        Ok(removed)
    }

    /// Removes the anonymous volumes a removed container had, those that
    /// no other container mounts (best effort, as Docker's `rm -v`).
    pub(crate) fn remove_anonymous_volumes(&self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let Ok(_lock) = self.volume_lock() else {
            return;
        };
        let Ok(db) = Store::open(&self.root) else {
            return;
        };
        for name in names {
            if let Ok(Some(v)) = db.volume(name) {
                if v.anonymous && db.delete_volume_if_unused(name).is_ok() {
                    if let Err(e) = self.remove_volume_files(&v) {
                        tracing::warn!("volume {name}: {e}");
                    }
                }
            }
        }
    }

    /// The mounts of container `id`'s volumes: the volumes `wanted` names
    /// (made when missing), and an anonymous one for each of the image's
    /// `VOLUME`s no other mount covers (`taken`). Each is recorded as
    /// mounted by `id`; a new, empty one gets a copy of what the image
    /// has at its destination in `rootfs`.
    pub(crate) fn attach_volumes(
        &self,
        db: &Store,
        id: &str,
        rootfs: &Path,
        wanted: &[VolumeMount],
        image_volumes: &[String],
        taken: &[String],
    ) -> Result<Vec<Mount>, EngineError> {
        let mut all: Vec<VolumeMount> = wanted.to_vec();
        for dest in image_volumes {
            let dest = crate::mounts::clean_destination(dest);
            if !taken.contains(&dest) && !all.iter().any(|w| w.destination == dest) {
                all.push(VolumeMount {
                    destination: dest,
                    ..Default::default()
                });
            }
        }
        if all.is_empty() {
            return Ok(vec![]);
        }
        let _lock = self.volume_lock()?;
        let mut mounts = vec![];
        for w in &all {
            let v = self.ensure_volume(
                db,
                w.name.as_deref(),
                key_values("volume-opt", &w.options)?,
                key_values("volume-label", &w.labels)?,
                w.name.is_none(),
            )?;
            db.link_volume(id, &v.name, &w.destination)?;
            let data = self.volume_mountpoint(&v.name);
            let source = match backing(&v.options)? {
                Backing::Directory => data.clone(),
                Backing::Tmpfs(o) => {
                    if !is_mount_point(&data) {
                        mount_tmpfs(&data, &o)?;
                    }
                    data.clone()
                }
                Backing::Bind(host) => host,
            };
            if !w.nocopy && !matches!(backing(&v.options)?, Backing::Bind(_)) {
                copy_up(rootfs, &w.destination, &data)?;
            }
            let options = vec![
                "rbind".to_string(),
                "rprivate".to_string(),
                if w.read_only { "ro" } else { "rw" }.to_string(),
            ];
            mounts.push(
                MountBuilder::default()
                    .destination(w.destination.clone())
                    .typ("bind")
                    .source(source)
                    .options(options)
                    .build()
                    .map_err(|e| EngineError::Spec(e.to_string()))?,
            );
        }
        Ok(mounts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> BTreeMap<String, String> {
        key_values(
            "--opt",
            &list.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn an_images_volumes_become_anonymous_ones_unless_covered() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine {
            root: dir.path().join("root"),
            runtime: "/nonexistent".into(),
            shim: "/nonexistent".into(),
            berth: "/nonexistent".into(),
        };
        std::fs::create_dir_all(&engine.root).unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("data/sub")).unwrap();
        std::fs::write(rootfs.join("data/sub/file"), "from the image").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", rootfs.join("data/link")).unwrap();
        let db = Store::open(&engine.root).unwrap();
        let image = vec!["/data/".to_string(), "/covered".to_string()];
        let taken = vec!["/covered".to_string()];
        let mounts = engine
            .attach_volumes(&db, "c1", &rootfs, &[], &image, &taken)
            .unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].destination(), Path::new("/data"));
        let source = mounts[0].source().clone().unwrap();
        assert!(source.starts_with(engine.root.join("volumes")));
        // The image's content, copied; the link copied as a link.
        assert_eq!(
            std::fs::read_to_string(source.join("sub/file")).unwrap(),
            "from the image"
        );
        assert_eq!(
            std::fs::read_link(source.join("link")).unwrap(),
            Path::new("/etc/shadow")
        );
        let volumes = db.volumes().unwrap();
        assert_eq!(volumes.len(), 1);
        assert!(volumes[0].anonymous);
        assert_eq!(db.volume_users(&volumes[0].name).unwrap(), ["c1"]);
        // Its container's removal hands it back for `rm -v`.
        assert_eq!(db.remove("c1").unwrap(), vec![volumes[0].name.clone()]);
        engine.remove_anonymous_volumes(&[volumes[0].name.clone()]);
        assert!(db.volumes().unwrap().is_empty());
        assert!(!source.exists());

        // A VOLUME path that is a link out of the root copies nothing.
        std::os::unix::fs::symlink("/etc", rootfs.join("evil")).unwrap();
        let mounts = engine
            .attach_volumes(&db, "c2", &rootfs, &[], &["/evil".to_string()], &[])
            .unwrap();
        let source = mounts[0].source().clone().unwrap();
        assert_eq!(std::fs::read_dir(&source).unwrap().count(), 0);
        let anonymous = db.remove("c2").unwrap();
        engine.remove_anonymous_volumes(&anonymous);
    }

    #[test]
    fn names_as_docker_allows_them() {
        for ok in ["ab", "data", "my_vol.1-x", "0abc"] {
            check_name(ok).unwrap();
        }
        for bad in ["a", "", "-x", ".x", "a/b", "a b", "../x", &"x".repeat(256)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_local_drivers_options() {
        assert_eq!(backing(&opts(&[])).unwrap(), Backing::Directory);
        assert_eq!(
            backing(&opts(&["type=tmpfs", "device=tmpfs", "o=size=1m,mode=700"])).unwrap(),
            Backing::Tmpfs("size=1m,mode=700".into())
        );
        assert_eq!(
            backing(&opts(&["type=none", "o=bind", "device=/tmp"])).unwrap(),
            Backing::Bind("/tmp".into())
        );
        assert!(backing(&opts(&["type=none", "o=bind", "device=/no/such/dir"])).is_err());
        assert!(backing(&opts(&["type=tmpfs", "o=exec"])).is_err());
        assert!(backing(&opts(&["colour=blue"])).is_err());
        assert!(matches!(
            backing(&opts(&["type=nfs", "device=:/x"])),
            Err(EngineError::NotImplemented(_))
        ));
        assert!(key_values("--opt", &["=x".to_string()]).is_err());
    }
}
