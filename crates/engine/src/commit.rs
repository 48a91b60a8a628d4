//! `commit`: a container's changes become a new image. The writable
//! layer (overlayfs's upper directory) is written as a layer tar by
//! descriptor (every entry looked at with `fstatat`, opened with
//! `O_NOFOLLOW`), overlayfs's whiteouts and opaque directories turned into
//! the OCI's `.wh.` files, mount points left out as `diff` leaves them.
//! The config is the container's (command, environment, working
//! directory, labels) over the image's, then the `--change` lines. A
//! running container is paused meanwhile (`--pause`, Docker's default).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::Seek;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use image::ContentStore;
use serde_json::{json, Value};

use crate::error::EngineError;
use crate::run::Engine;

/// What `commit` takes beyond the container.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `REPOSITORY[:TAG]` of the new image.
    pub name: String,
    /// `-c`: Dockerfile instructions for the config.
    pub changes: Vec<String>,
    /// `-m`.
    pub message: Option<String>,
    /// `-a`.
    pub author: Option<String>,
    /// `--pause` (pause a running container meanwhile).
    pub pause: bool,
}

/// The deepest directory written (as deep as a tar reader accepts).
const MAX_DEPTH: usize = 256;

fn io_err(op: &'static str, rel: &Path) -> impl Fn(std::io::Error) -> EngineError {
    let path = Path::new("/").join(rel);
    move |err| EngineError::Io {
        op,
        path: path.clone(),
        err,
    }
}

impl Engine {
    /// Commits container `key`'s changes as the image `opts.name`;
    /// returns the new image's config digest (its id).
    pub fn commit(
        &self,
        store: &ContentStore,
        key: &str,
        opts: &CommitOptions,
    ) -> Result<String, EngineError> {
        let rec = self.container(key)?;
        let refs = image::refs::Refs::new(&self.root);
        let parent = refs
            .load()
            .ok()
            .and_then(|m| {
                m.iter()
                    .find(|(_, r)| r.config == rec.image_id)
                    .and_then(|(k, r)| r.to_import(Some(k.clone())))
            })
            .ok_or_else(|| EngineError::BadImage {
                name: rec.image.clone(),
                reason: "the container's image is no longer in the store: it cannot be committed"
                    .into(),
            })?;
        let settings = crate::restart::ContainerSettings::parse(&rec.config);
        let pause = opts.pause && rec.is_running() && !settings.paused;
        if pause {
            self.pause_container(&rec.id)?;
        }
        let layer = self.layer_tar(&rec.id);
        if pause {
            let _ = self.unpause_container(&rec.id);
        }
        let mut layer = layer?;
        let parent_config: Value = std::fs::read(store.path(&parent.config))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let bundle = crate::rootfs::container_dir(&self.root, &rec.id)?.join("bundle");
        let config = container_config(&parent_config["config"], &bundle, &rec.command, &settings);
        let img = image::commit::commit(
            store,
            &parent,
            &mut layer,
            &image::commit::CommitOptions {
                config: Some(config),
                changes: opts.changes.clone(),
                comment: opts.message.clone(),
                author: opts.author.clone(),
                created_by: rec.command.join(" "),
                created: crate::run::now(),
            },
        )
        .map_err(|e| EngineError::BadImage {
            name: opts.name.clone(),
            reason: e.to_string(),
        })?;
        // Unpacked now, so a container of it starts at once (and gc sees it used).
        image::snapshot::prepare(store, &self.root, &img)?;
        let record = image::refs::ImageRecord::of(store, &img);
        // No name: a dangling image, as Docker's `commit` without one.
        let name = if opts.name.is_empty() {
            format!("<none>:{}", image::refs::short_id(&img.config.to_string()))
        } else {
            image::refs::normalize(&opts.name)
        };
        refs.update(|m| m.insert(name.clone(), record))
            .map_err(|err| EngineError::Io {
                op: "update",
                path: self.root.join("images.json"),
                err,
            })?;
        crate::events::record(
            &self.root,
            "container",
            "commit",
            &rec.id,
            &[("name", &rec.name), ("image", &name)],
        );
        Ok(img.config.to_string())
    }

    /// Container `id`'s writable layer as a tar in an unnamed file.
    fn layer_tar(&self, id: &str) -> Result<std::fs::File, EngineError> {
        let kept: HashSet<String> = self.diff(id)?.into_iter().map(|(_, p)| p).collect();
        let dir = crate::rootfs::container_dir(&self.root, id)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(&self.root)
            .map_err(io_err("create a layer file in", &self.root))?;
        let mut b = tar::Builder::new(file);
        let upper = nix::dir::Dir::open(
            &dir.join("upper"),
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        );
        match upper {
            Ok(d) => add_dir(&mut b, &d, Path::new(""), &kept, 0)?,
            // Never started: an empty layer.
            Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(io_err("open", Path::new("upper"))(e.into())),
        }
        let mut file = b
            .into_inner()
            .map_err(io_err("write the layer of", Path::new(id)))?;
        file.rewind()
            .map_err(io_err("write the layer of", Path::new(id)))?;
        Ok(file)
    }
}

/// The new image's `config`: the image's, with the container's command,
/// environment, working directory and labels.
fn container_config(
    image: &Value,
    bundle: &Path,
    command: &[String],
    settings: &crate::restart::ContainerSettings,
) -> Value {
    let mut c = if image.is_object() {
        image.clone()
    } else {
        json!({})
    };
    let entrypoint: Vec<String> =
        serde_json::from_value(c["Entrypoint"].clone()).unwrap_or_default();
    if !entrypoint.is_empty() && command.starts_with(&entrypoint) {
        c["Cmd"] = json!(command[entrypoint.len()..]);
    } else {
        c["Entrypoint"] = Value::Null;
        c["Cmd"] = json!(command);
    }
    if let Ok(b) = runtime::spec::load(bundle) {
        if let Some(p) = b.spec.process() {
            // HOSTNAME is the container's, not the image's.
            let env: Vec<&String> = p
                .env()
                .iter()
                .flatten()
                .filter(|e| !e.starts_with("HOSTNAME="))
                .collect();
            c["Env"] = json!(env);
            c["WorkingDir"] = json!(p.cwd().display().to_string());
        }
    }
    if !settings.labels.is_empty() {
        if !c["Labels"].is_object() {
            c["Labels"] = json!({});
        }
        for (k, v) in &settings.labels {
            c["Labels"][k] = json!(v);
        }
    }
    c
}

/// Writes the entries of `dir` (at `rel`) that `kept` lists, and below.
fn add_dir(
    b: &mut tar::Builder<std::fs::File>,
    dir: &nix::dir::Dir,
    rel: &Path,
    kept: &HashSet<String>,
    depth: usize,
) -> Result<(), EngineError> {
    use nix::fcntl::{AtFlags, OFlag};
    use nix::sys::stat::{fstatat, Mode, SFlag};
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let fd = dir.as_raw_fd();
    let mut names = vec![];
    let dup = nix::unistd::dup(fd).map_err(|e| io_err("read", rel)(e.into()))?;
    let mut iter = nix::dir::Dir::from_fd(dup).map_err(|e| io_err("read", rel)(e.into()))?;
    for entry in iter.iter().flatten() {
        let name = entry.file_name().to_owned();
        if name.as_bytes() != b"." && name.as_bytes() != b".." {
            names.push(name);
        }
    }
    names.sort();
    for name in names {
        let child = rel.join(OsStr::from_bytes(name.as_bytes()));
        if !kept.contains(&format!("/{}", child.display())) {
            continue;
        }
        let Ok(st) = fstatat(Some(fd), name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
        let mut h = tar::Header::new_gnu();
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(st.st_uid as u64);
        h.set_gid(st.st_gid as u64);
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        let write = io_err("write the layer at", &child);
        if kind == SFlag::S_IFCHR && st.st_rdev == 0 {
            // An overlayfs whiteout: the OCI's `.wh.NAME`.
            let mut wh_name = b".wh.".to_vec();
            wh_name.extend_from_slice(name.as_bytes());
            let wh = rel.join(OsStr::from_bytes(&wh_name));
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o600);
            b.append_data(&mut h, &wh, std::io::empty())
                .map_err(write)?;
            continue;
        }
        match kind {
            SFlag::S_IFDIR => {
                h.set_entry_type(tar::EntryType::Directory);
                b.append_data(&mut h, &child, std::io::empty())
                    .map_err(&write)?;
                let Ok(sub) = nix::dir::Dir::openat(
                    Some(fd),
                    name.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                ) else {
                    continue;
                };
                if is_opaque(&sub) {
                    let mut o = tar::Header::new_gnu();
                    o.set_entry_type(tar::EntryType::Regular);
                    o.set_mode(0o600);
                    o.set_size(0);
                    b.append_data(&mut o, child.join(".wh..wh..opq"), std::io::empty())
                        .map_err(&write)?;
                }
                add_dir(b, &sub, &child, kept, depth + 1)?;
            }
            SFlag::S_IFREG => {
                let Ok(f) = nix::fcntl::openat(
                    Some(fd),
                    name.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                ) else {
                    continue;
                };
                // SAFETY: openat returned a new descriptor that nothing else owns.
                let f = unsafe { std::fs::File::from_raw_fd(f) };
                let len = f.metadata().map_err(&write)?.len();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(len);
                b.append_data(&mut h, &child, std::io::Read::take(f, len))
                    .map_err(write)?;
            }
            SFlag::S_IFLNK => {
                let Ok(target) = nix::fcntl::readlinkat(Some(fd), name.as_c_str()) else {
                    continue;
                };
                h.set_entry_type(tar::EntryType::Symlink);
                b.append_link(&mut h, &child, &target).map_err(write)?;
            }
            SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO => {
                h.set_entry_type(match kind {
                    SFlag::S_IFCHR => tar::EntryType::Char,
                    SFlag::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                });
                let _ = h.set_device_major(libc::major(st.st_rdev));
                let _ = h.set_device_minor(libc::minor(st.st_rdev));
                b.append_data(&mut h, &child, std::io::empty())
                    .map_err(write)?;
            }
            // Sockets are not content.
            _ => {}
        }
    }
    Ok(())
}

/// Whether overlayfs marked the directory opaque (it hides the layers
/// below: `trusted.overlay.opaque=y`).
fn is_opaque(dir: &nix::dir::Dir) -> bool {
    let mut v = [0u8; 4];
    // SAFETY: the buffer and its length are ours; the name is a C string.
    let n = unsafe {
        libc::fgetxattr(
            dir.as_raw_fd(),
            c"trusted.overlay.opaque".as_ptr(),
            v.as_mut_ptr().cast(),
            v.len(),
        )
    };
    n == 1 && v[0] == b'y'
}
