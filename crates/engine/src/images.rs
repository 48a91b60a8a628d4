//! The image commands that touch names and containers: `tag`, `rmi`,
//! `history`, `save`, `load` and `image prune`, for the command line and
//! the API alike. The names live in `images.json` (`image::refs`), changed
//! under its lock; the blobs and snapshots in the image store.
//!
//! `rmi` removes a name. The last name of an image that a container uses
//! is kept unless forced (and never while the container runs), as Docker
//! keeps it; an image mounted with `image mount` is kept unless forced. An
//! image no name points at any more is reported deleted; its blobs and
//! snapshots go at the next `image prune`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use image::manifest::Platform;
use image::refs::{find, normalize, short_id, ImageRecord, Refs};
use image::ContentStore;

use crate::error::EngineError;
use crate::run::Engine;

/// What `rmi` did to one image, as Docker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A name was removed.
    Untagged(String),
    /// No name is left for the image with this id.
    Deleted(String),
}

/// One step of an image's history, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryStep {
    /// The image's id for the newest step, `<missing>` for the others.
    pub id: String,
    /// When (RFC 3339, as the config has it).
    pub created: String,
    /// The instruction that made it.
    pub created_by: String,
    /// Its comment.
    pub comment: String,
    /// Whether it added no layer.
    pub empty_layer: bool,
}

/// Docker's rule for an image name, roughly: `[HOST[:PORT]/]PATH[:TAG]`
/// with a lower-case path of `[a-z0-9._-]` parts and a tag of at most
/// 128 `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    let (rest, tag) = match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t)),
        _ => (name, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && !t.starts_with(['.', '-'])
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err("a tag is at most 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'");
        }
    }
    let mut parts: Vec<&str> = rest.split('/').collect();
    // A first part with a '.' or ':' (or localhost) is a registry host.
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        parts.remove(0);
    }
    let ok = !parts.is_empty()
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && p.starts_with(|c: char| c.is_ascii_alphanumeric())
                && p.ends_with(|c: char| c.is_ascii_alphanumeric())
        });
    if ok {
        Ok(())
    } else {
        Err("a repository name is lower-case letters, digits and '.', '_', '-' between them, in '/'-separated parts")
    }
}

/// Where `image mount` mounts image `rec`.
pub fn mount_dir(root: &Path, rec: &ImageRecord) -> PathBuf {
    root.join("mounts").join(short_id(&rec.config))
}

fn refs_error(refs: &Refs) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |err| EngineError::Io {
        op: "update",
        path: refs.path().to_path_buf(),
        err,
    }
}

fn found<'a>(
    refs: &'a BTreeMap<String, ImageRecord>,
    name: &str,
) -> Result<(String, &'a ImageRecord), EngineError> {
    find(refs, name).ok_or_else(|| EngineError::NoSuchImage(name.to_string()))
}

/// Records an image event (`tag`, `untag`, `delete`, `load`, `save`).
fn event(root: &Path, action: &str, name: &str) {
    crate::events::record(root, "image", action, name, &[("name", name)]);
}

impl Engine {
    fn image_store(&self) -> Result<ContentStore, EngineError> {
        Ok(ContentStore::open(&self.root)?)
    }

    /// `tag SOURCE TARGET`: one more name for an image; the name given.
    pub fn tag_image(&self, source: &str, target: &str) -> Result<String, EngineError> {
        check_name(target).map_err(|reason| EngineError::InvalidOption {
            option: "image name",
            value: target.to_string(),
            reason: reason.into(),
        })?;
        let target = normalize(target);
        let refs = Refs::new(&self.root);
        refs.update(|map| {
            let (_, rec) = found(map, source)?;
            let rec = rec.clone();
            map.insert(target.clone(), rec);
            Ok::<_, EngineError>(())
        })
        .map_err(refs_error(&refs))??;
        event(&self.root, "tag", &target);
        Ok(target)
    }

    /// `rmi NAME`: removes a name (an id: its only name, or with `force`
    /// all of them).
    pub fn remove_image(&self, name: &str, force: bool) -> Result<Vec<Removed>, EngineError> {
        let used = self.containers()?;
        let refs = Refs::new(&self.root);
        let root = self.root.clone();
        let removed = refs
            .update(|map| {
                let (key, rec) = found(map, name)?;
                let rec = rec.clone();
                let names: Vec<String> = map
                    .iter()
                    .filter(|(_, r)| r.config == rec.config)
                    .map(|(k, _)| k.clone())
                    .collect();
                // By id: every name of it goes, which Docker asks to force.
                let by_id =
                    normalize(name) != key && !key.ends_with(&format!("/{}", normalize(name)));
                let doomed = if by_id {
                    names.clone()
                } else {
                    vec![key.clone()]
                };
                if by_id && names.len() > 1 && !force {
                    return Err(EngineError::ImageConflict {
                        image: name.to_string(),
                        reason: format!(
                            "it has {} names ({}): remove them by name (or rmi -f)",
                            names.len(),
                            names.join(", ")
                        ),
                    });
                }
                if doomed.len() == names.len() {
                    let users: Vec<_> = used.iter().filter(|c| c.image_id == rec.config).collect();
                    if let Some(c) = users.iter().find(|c| c.is_running()) {
                        return Err(EngineError::ImageConflict {
                            image: name.to_string(),
                            reason: format!(
                                "it is used by running container {} ({}): stop it first",
                                c.name,
                                &c.id[..12]
                            ),
                        });
                    }
                    if let (Some(c), false) = (users.first(), force) {
                        return Err(EngineError::ImageConflict {
                            image: name.to_string(),
                            reason: format!(
                                "it is used by container {} ({}): remove it first (or rmi -f)",
                                c.name,
                                &c.id[..12]
                            ),
                        });
                    }
                }
                let mounted = mount_dir(&root, &rec);
                if mounted.exists() {
                    if !force {
                        return Err(EngineError::ImageConflict {
                            image: name.to_string(),
                            reason: format!(
                                "it is mounted: berth image unmount {name} first (or rmi -f)"
                            ),
                        });
                    }
                    nix::mount::umount2(&mounted, nix::mount::MntFlags::MNT_DETACH).map_err(
                        |e| EngineError::Io {
                            op: "unmount",
                            path: mounted.clone(),
                            err: e.into(),
                        },
                    )?;
                    std::fs::remove_dir(&mounted).map_err(|err| EngineError::Io {
                        op: "remove",
                        path: mounted.clone(),
                        err,
                    })?;
                }
                let mut out = vec![];
                for k in &doomed {
                    map.remove(k);
                    out.push(Removed::Untagged(k.clone()));
                }
                if !map.values().any(|r| r.config == rec.config) {
                    out.push(Removed::Deleted(rec.config.clone()));
                }
                Ok(out)
            })
            .map_err(refs_error(&refs))??;
        for r in &removed {
            match r {
                Removed::Untagged(k) => event(&self.root, "untag", k),
                Removed::Deleted(id) => event(&self.root, "delete", id),
            }
        }
        Ok(removed)
    }

    /// `history NAME`: the image's steps, newest first, and its id.
    pub fn image_history(&self, name: &str) -> Result<(String, Vec<HistoryStep>), EngineError> {
        let refs = Refs::new(&self.root);
        let map = refs.load().map_err(refs_error(&refs))?;
        let (key, rec) = found(&map, name)?;
        let config = image::refs::read_config(&self.image_store()?, rec).map_err(|e| {
            EngineError::BadImage {
                name: key.clone(),
                reason: e.to_string(),
            }
        })?;
        let history = config["history"].as_array().cloned().unwrap_or_default();
        let n = history.len();
        let steps = history
            .iter()
            .enumerate()
            .rev()
            .map(|(i, h)| HistoryStep {
                id: if i + 1 == n {
                    rec.config.clone()
                } else {
                    "<missing>".into()
                },
                created: h["created"].as_str().unwrap_or("").to_string(),
                created_by: h["created_by"].as_str().unwrap_or("").to_string(),
                comment: h["comment"].as_str().unwrap_or("").to_string(),
                empty_layer: h["empty_layer"].as_bool().unwrap_or(false),
            })
            .collect();
        Ok((rec.config.clone(), steps))
    }

    /// The image `name` names, under that name (for `push` and `save`).
    pub fn named_image(&self, name: &str) -> Result<image::imported::ImportedImage, EngineError> {
        let refs = Refs::new(&self.root);
        let map = refs.load().map_err(refs_error(&refs))?;
        let (key, rec) = found(&map, name)?;
        rec.to_import(Some(key.clone()))
            .ok_or_else(|| EngineError::BadImage {
                name: key,
                reason: "its record in images.json is corrupt".into(),
            })
    }

    /// `save NAME…`: the images as a docker-archive written to `out`.
    pub fn save_images(&self, names: &[String], out: impl Write) -> Result<(), EngineError> {
        let mut images = vec![];
        for n in names {
            let img = self.named_image(n)?;
            let key = img.name.clone().unwrap_or_else(|| n.clone());
            images.push((img, vec![key]));
        }
        image::save::save_docker_archive(&self.image_store()?, &images, out)?;
        for (_, keys) in &images {
            event(&self.root, "save", &keys[0]);
        }
        Ok(())
    }

    /// `load`: the images of the docker-archive or OCI archive `input`;
    /// the names they are stored under.
    pub fn load_images(
        &self,
        input: impl Read,
        platform: &Platform,
        progress: &dyn image::load::LoadProgress,
    ) -> Result<Vec<String>, EngineError> {
        let store = self.image_store()?;
        let images = image::archive::load_archive(&store, &self.root, input, platform, progress)?;
        self.name_loaded(&store, &images)
    }

    /// `import`: the tar archive `input` (plain or gzip) as a one-layer
    /// image named `name` (`<none>:ID` without one), with Docker's
    /// `--change`s and `comment` in its history; its snapshot is unpacked
    /// at once. The name and the image's id.
    pub fn import_image(
        &self,
        input: impl Read,
        created_by: &str,
        comment: Option<&str>,
        name: Option<&str>,
        changes: &[String],
    ) -> Result<(String, String), EngineError> {
        if let Some(n) = name {
            check_name(n).map_err(|reason| EngineError::InvalidOption {
                option: "image name",
                value: n.to_string(),
                reason: reason.into(),
            })?;
        }
        let store = self.image_store()?;
        let _adding = image::gc::hold_shared(&self.root)?;
        let img = image::import::import_archive(
            &store,
            input,
            created_by,
            comment,
            name.map(normalize),
            changes,
        )?;
        self.name_imported(&store, &img)
    }

    /// Unpacks the snapshot of an imported image and stores its name
    /// (`<none>:ID` without one); the name and the image's id.
    pub fn name_imported(
        &self,
        store: &ContentStore,
        img: &image::imported::ImportedImage,
    ) -> Result<(String, String), EngineError> {
        image::snapshot::prepare(store, &self.root, img)?;
        let key = img
            .name
            .clone()
            .unwrap_or_else(|| format!("<none>:{}", short_id(&img.config.to_string())));
        let rec = ImageRecord::of(store, img);
        let refs = Refs::new(&self.root);
        refs.update(|map| map.insert(key.clone(), rec))
            .map_err(refs_error(&refs))?;
        event(&self.root, "import", &key);
        Ok((key, img.config.to_string()))
    }

    /// Stores the names of loaded images (`<none>:ID` for one without).
    pub fn name_loaded(
        &self,
        store: &ContentStore,
        images: &[image::imported::ImportedImage],
    ) -> Result<Vec<String>, EngineError> {
        let refs = Refs::new(&self.root);
        let names = refs
            .update(|map| {
                let mut names = vec![];
                for img in images {
                    let name =
                        img.name.as_deref().map(normalize).unwrap_or_else(|| {
                            format!("<none>:{}", short_id(&img.config.to_string()))
                        });
                    map.insert(name.clone(), ImageRecord::of(store, img));
                    names.push(name);
                }
                names
            })
            .map_err(refs_error(&refs))?;
        for n in &names {
            event(&self.root, "load", n);
        }
        Ok(names)
    }

    /// `image prune`: removes the blobs and snapshots no named image
    /// refers to (nothing when the names cannot be read whole). Returns
    /// their counts.
    pub fn prune_images(&self) -> Result<image::gc::Collected, EngineError> {
        let refs_file = Refs::new(&self.root);
        image::gc::collect(&self.image_store()?, &self.root, || {
            let refs =
                refs_file
                    .load()
                    .map_err(|err| image::gc::GcError::UnreadableReferences {
                        path: refs_file.path().to_path_buf(),
                        err,
                    })?;
            refs.iter()
                .map(|(k, r)| {
                    r.to_import(Some(k.clone()))
                        .ok_or_else(|| image::gc::GcError::CorruptReference { name: k.clone() })
                })
                .collect()
        })
        .map_err(EngineError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_are_checked_as_docker_checks_them() {
        for ok in [
            "a",
            "bb:1",
            "127.0.0.1:5000/team/app:v1.2",
            "localhost/x",
            "my-app_2.x",
        ] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Upper",
            "a:",
            "a:-x",
            "/a",
            "a//b",
            "a b",
            "-a",
            &format!("a:{}", "x".repeat(129)),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
