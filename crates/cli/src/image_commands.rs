//! The image commands: pull, push, login/logout, load, save, import,
//! images, tag, history, rmi and `image ls|prune|inspect|mount|unmount`.
//! Parsing and printing only; the work is in the `image` and `registry`
//! libraries.

use std::path::Path;

use anyhow::{bail, Context, Result};
use image::refs::{normalize, Refs};
use image::ContentStore;

use crate::command::{Cli, Command, ImageCommand};
use crate::images::{find, list, short_id, LoadBars};
use crate::{containers, images, progress, remote};

/// Runs the image command `cli` names (any other command: nothing).
pub(crate) fn main(cli: &Cli) -> Result<()> {
    let root = &cli.root;
    // Opening the store makes the root private (0700, the caller's own).
    let store = ContentStore::open(root)?;
    let refs_file = Refs::new(root);
    // Commands that add content keep garbage collection away meanwhile.
    let _adding = match &cli.command {
        Command::Pull { .. } | Command::Load { .. } | Command::Import { .. } => {
            Some(image::gc::hold_shared(root)?)
        }
        _ => None,
    };
    match &cli.command {
        Command::Pull {
            reference,
            platform,
            insecure,
            quiet,
            authfile,
        } => {
            remote::pull(
                root,
                reference,
                platform.as_deref(),
                *insecure,
                *quiet,
                remote::auth_path(root, authfile),
            )?;
            image_event(root, "pull", &normalize(reference));
        }
        Command::Push {
            name,
            destination,
            insecure,
            quiet,
            authfile,
        } => {
            let refs = refs_file.load().context("read images.json")?;
            let (key, rec) = find(&refs, name)?;
            let img = rec
                .to_import(Some(key.clone()))
                .context("corrupt images.json")?;
            let dest = destination.clone().unwrap_or(key);
            remote::push(
                root,
                &img,
                &dest,
                *insecure,
                *quiet,
                remote::auth_path(root, authfile),
            )?;
            image_event(root, "push", &dest);
        }
        Command::Login {
            server,
            username,
            password,
            password_stdin,
            insecure,
            authfile,
        } => remote::login(
            server,
            username.clone(),
            password.clone(),
            *password_stdin,
            *insecure,
            remote::auth_path(root, authfile),
        )?,
        Command::Logout { server, authfile } => {
            remote::logout(server, remote::auth_path(root, authfile))?
        }
        Command::Load {
            input,
            quiet,
            platform,
        } => {
            let platform = platform
                .as_deref()
                .map(image::manifest::Platform::parse)
                .transpose()
                .map_err(anyhow::Error::msg)?
                .unwrap_or_else(image::manifest::Platform::linux_amd64);
            // Layers are stored and unpacked in one read, as docker load
            // does, so the first container starts at once.
            let bars = LoadBars(progress::Bars::terminal_only(*quiet));
            let images = match input {
                Some(p) if p.is_dir() => {
                    image::layout::load_oci_layout(&store, root, p, &platform, &bars)
                        .with_context(|| format!("load the OCI layout {}", p.display()))?
                }
                Some(p) => image::archive::load_archive_file(&store, root, p, &platform, &bars)?,
                None => {
                    use std::os::fd::AsFd;
                    let stdin = std::io::stdin()
                        .as_fd()
                        .try_clone_to_owned()
                        .context("duplicate standard input")?;
                    image::archive::load_archive_open(
                        &store,
                        root,
                        std::fs::File::from(stdin),
                        Path::new("(standard input)"),
                        &platform,
                        &bars,
                    )?
                }
            };
            let names = containers::engine(root, None)?.name_loaded(&store, &images)?;
            if !quiet {
                for name in names {
                    println!("Loaded image: {name}");
                }
            }
        }
        Command::Import {
            source,
            name,
            change,
        } => {
            let name = name.as_deref().map(normalize);
            let img = image::import::import_rootfs(&store, source, name, change)?;
            let (_, id) = containers::engine(root, None)?.name_imported(&store, &img)?;
            println!("{id}");
        }
        Command::Tag { source, target } => {
            containers::engine(root, None)?.tag_image(source, target)?;
        }
        Command::History { name } => {
            let (_, steps) = containers::engine(root, None)?.image_history(name)?;
            println!(
                "{:<14} {:<32} {:<50} COMMENT",
                "IMAGE", "CREATED", "CREATED BY"
            );
            for h in steps {
                let id = if h.id.starts_with("sha256:") {
                    short_id(&h.id)
                } else {
                    h.id.clone()
                };
                let by: String = h.created_by.chars().take(50).collect();
                println!("{:<14} {:<32} {:<50} {}", id, h.created, by, h.comment);
            }
        }
        Command::Image {
            command: ImageCommand::Inspect { names },
        } => {
            let refs = refs_file.load().context("read images.json")?;
            let mut out = vec![];
            for n in names {
                out.push(images::inspect_json(&store, &refs, n)?);
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Save { output, names } => {
            let tmp = output.with_extension("tmp-berth");
            let file =
                std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
            let result =
                containers::engine(root, None)?.save_images(names, std::io::BufWriter::new(file));
            if let Err(e) = result {
                let _ = std::fs::remove_file(&tmp);
                return Err(e.into());
            }
            std::fs::rename(&tmp, output)
                .with_context(|| format!("rename to {}", output.display()))?;
        }
        Command::Images {
            quiet,
            digests,
            format,
        }
        | Command::Image {
            command:
                ImageCommand::Ls {
                    quiet,
                    digests,
                    format,
                },
        } => list(root, *quiet, *digests, format)?,
        Command::Image {
            command: ImageCommand::Prune,
        } => {
            let gone = containers::engine(root, None)?.prune_images()?;
            println!(
                "Deleted {} blobs and {} snapshots, {} bytes",
                gone.blobs, gone.snapshots, gone.bytes
            );
        }
        Command::Rmi { names, force } => {
            let e = containers::engine(root, None)?;
            for n in names {
                for r in e.remove_image(n, *force)? {
                    match r {
                        engine::images::Removed::Untagged(k) => println!("Untagged: {k}"),
                        engine::images::Removed::Deleted(id) => println!("Deleted: {id}"),
                    }
                }
            }
        }
        Command::Image {
            command: ImageCommand::Mount { name },
        } => {
            let refs = refs_file.load().context("read images.json")?;
            let (key, rec) = find(&refs, name)?;
            let img = rec.to_import(Some(key)).context("corrupt images.json")?;
            let target = engine::images::mount_dir(root, rec);
            if !target.exists() {
                let lowers = image::snapshot::prepare(&store, root, &img)?;
                berth_fs::private_dir(&root.join("mounts"))?;
                std::fs::create_dir(&target)
                    .with_context(|| format!("create {}", target.display()))?;
                if let Err(e) = image::overlay::mount_overlay(&lowers, None, &target) {
                    let _ = std::fs::remove_dir(&target);
                    return Err(e.into());
                }
                // For looking at, not for running: no setuid, no device nodes.
                if let Err(e) = image::overlay::restrict_mount(&target) {
                    let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
                    let _ = std::fs::remove_dir(&target);
                    return Err(e.into());
                }
            }
            println!("{}", target.display());
        }
        // Container commands: handled by main.
        Command::Run(_)
        | Command::Ps(_)
        | Command::Rm(_)
        | Command::Start(_)
        | Command::Attach(_)
        | Command::Commit(_)
        | Command::Stop(_)
        | Command::Kill(_)
        | Command::Wait(_)
        | Command::Inspect(_)
        | Command::Logs(_)
        | Command::Exec(_)
        | Command::Create(_)
        | Command::Restart(_)
        | Command::Pause(_)
        | Command::Unpause(_)
        | Command::Rename(_)
        | Command::Top(_)
        | Command::Update(_)
        | Command::Diff { .. }
        | Command::Stats(_)
        | Command::System { .. }
        | Command::Cp(_)
        | Command::Events(_)
        | Command::Export(_)
        | Command::Port { .. }
        | Command::Version { .. }
        | Command::Info { .. }
        | Command::Volume { .. }
        | Command::Network { .. }
        | Command::Serve { .. }
        | Command::Container { .. } => {
            bail!("container commands are dispatched before the image commands")
        }
        Command::Image {
            command: ImageCommand::Unmount { name },
        } => {
            let refs = refs_file.load().context("read images.json")?;
            let (_, rec) = find(&refs, name)?;
            let target = engine::images::mount_dir(root, rec);
            if !target.exists() {
                bail!("image {name} is not mounted");
            }
            nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH)
                .with_context(|| format!("unmount {}", target.display()))?;
            std::fs::remove_dir(&target).with_context(|| format!("remove {}", target.display()))?;
        }
    }
    Ok(())
}

/// Records an image event (`berth events`), as Docker's: the name as the actor.
fn image_event(root: &Path, action: &str, name: &str) {
    engine::events::record(root, "image", action, name, &[("name", name)]);
}
