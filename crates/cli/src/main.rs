//! berth: the Docker-style command line. Images so far: load, images,
//! rmi, image mount/unmount. Parsing and printing only; the work is in the
//! `image` library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use image::refs::{normalize, ImageRecord, Refs};
use image::ContentStore;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "berth: containers from the kernel up"
)]
struct Cli {
    /// Root of berth's store.
    #[arg(
        long,
        global = true,
        env = "BERTH_ROOT",
        default_value = "/var/lib/berth"
    )]
    root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load images from an OCI archive or a docker-archive.
    Load {
        /// The archive (default: standard input).
        #[arg(short, long)]
        input: Option<PathBuf>,
        /// Print nothing.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Import a root filesystem (directory or tarball) as an image.
    Import {
        /// The directory or tar file.
        source: PathBuf,
        /// The image's name.
        name: Option<String>,
        /// Config changes: CMD, ENTRYPOINT, ENV, WORKDIR, USER.
        #[arg(short, long)]
        change: Vec<String>,
    },
    /// Save images to a docker-archive (which `docker load` and `podman load` read).
    Save {
        /// The archive to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Images.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// List images.
    #[command(alias = "ls")]
    Images {
        /// Only image IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Show manifest digests.
        #[arg(long)]
        digests: bool,
        /// Output format: table or json.
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Give an image another name.
    Tag {
        /// Existing image.
        source: String,
        /// New name.
        target: String,
    },
    /// Show an image's creation history (from its config).
    History {
        /// Image.
        name: String,
    },
    /// Remove image references.
    Rmi {
        /// Unmount a mounted image first.
        #[arg(short, long)]
        force: bool,
        /// Images.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Image commands.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// List images.
    Ls {
        /// Only image IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Show manifest digests.
        #[arg(long)]
        digests: bool,
        /// Output format: table or json.
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Remove snapshots and blobs no image refers to.
    Prune,
    /// Print an image's details as JSON (Docker's field names).
    Inspect {
        /// Images.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Mount an image's root filesystem read-only and print its path.
    Mount {
        /// Image.
        name: String,
    },
    /// Unmount an image mounted with `image mount`.
    Unmount {
        /// Image.
        name: String,
    },
}

/// Sizes as Docker prints them (decimal units).
fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + units[i]
    }
}

fn short_id(config: &str) -> String {
    config
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect()
}

fn find<'a>(
    refs: &'a std::collections::BTreeMap<String, ImageRecord>,
    name: &str,
) -> Result<(String, &'a ImageRecord)> {
    let n = normalize(name);
    if let Some(r) = refs.get(&n) {
        return Ok((n, r));
    }
    // A short name matches a stored name under any registry (`localhost/x:1` for `x:1`).
    let mut suffix = refs.iter().filter(|(k, _)| k.ends_with(&format!("/{n}")));
    if let (Some((k, r)), None) = (suffix.next(), suffix.next()) {
        return Ok((k.clone(), r));
    }
    refs.iter()
        .find(|(_, r)| short_id(&r.config).starts_with(name) && name.len() >= 4)
        .map(|(k, r)| (k.clone(), r))
        .with_context(|| format!("no such image: {name}"))
}

fn read_config(store: &ContentStore, rec: &ImageRecord) -> Result<serde_json::Value> {
    let d: image::Digest = rec.config.parse().context("corrupt images.json")?;
    let data = std::fs::read(store.path(&d)).with_context(|| format!("read config {d}"))?;
    serde_json::from_slice(&data).with_context(|| format!("config {d} is not JSON"))
}

fn mount_dir(root: &Path, rec: &ImageRecord) -> PathBuf {
    root.join("mounts").join(short_id(&rec.config))
}

fn list(root: &Path, quiet: bool, digests: bool, format: &str) -> Result<()> {
    let refs = Refs::new(root).load().context("read images.json")?;
    if quiet {
        for r in refs.values() {
            println!("{}", short_id(&r.config));
        }
        return Ok(());
    }
    if format == "json" {
        let v: Vec<serde_json::Value> = refs
            .iter()
            .map(|(name, r)| {
                let (repo, tag) = name.rsplit_once(':').unwrap_or((name, "latest"));
                serde_json::json!({"Repository": repo, "Tag": tag, "ID": short_id(&r.config), "Digest": r.manifest, "Size": human(r.size)})
            })
            .collect();
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    if digests {
        println!(
            "{:<30} {:<10} {:<72} {:<14} SIZE",
            "REPOSITORY", "TAG", "DIGEST", "IMAGE ID"
        );
    } else {
        println!("{:<30} {:<10} {:<14} SIZE", "REPOSITORY", "TAG", "IMAGE ID");
    }
    for (name, r) in &refs {
        let (repo, tag) = name.rsplit_once(':').unwrap_or((name, "latest"));
        if digests {
            println!(
                "{:<30} {:<10} {:<72} {:<14} {}",
                repo,
                tag,
                r.manifest,
                short_id(&r.config),
                human(r.size)
            );
        } else {
            println!(
                "{:<30} {:<10} {:<14} {}",
                repo,
                tag,
                short_id(&r.config),
                human(r.size)
            );
        }
    }
    Ok(())
}

fn run(cli: &Cli) -> Result<()> {
    let root = &cli.root;
    std::fs::create_dir_all(root).with_context(|| format!("create {}", root.display()))?;
    let store = ContentStore::open(root)?;
    let refs_file = Refs::new(root);
    match &cli.command {
        Command::Load { input, quiet } => {
            let images = match input {
                Some(p) => image::archive::load_archive(
                    &store,
                    root,
                    std::fs::File::open(p).with_context(|| format!("open {}", p.display()))?,
                )?,
                None => image::archive::load_archive(&store, root, std::io::stdin().lock())?,
            };
            let mut refs = refs_file.load().context("read images.json")?;
            for img in &images {
                let name = img
                    .name
                    .as_deref()
                    .map(normalize)
                    .unwrap_or_else(|| format!("<none>:{}", short_id(&img.config.to_string())));
                refs.insert(name.clone(), ImageRecord::of(&store, img));
                if !quiet {
                    println!("Loaded image: {name}");
                }
            }
            refs_file.save(&refs).context("write images.json")?;
        }
        Command::Import {
            source,
            name,
            change,
        } => {
            let name = name.as_deref().map(normalize);
            let img = image::import::import_rootfs(&store, source, name.clone(), change)?;
            let mut refs = refs_file.load().context("read images.json")?;
            let key =
                name.unwrap_or_else(|| format!("<none>:{}", short_id(&img.config.to_string())));
            refs.insert(key, ImageRecord::of(&store, &img));
            refs_file.save(&refs).context("write images.json")?;
            println!("{}", img.config);
        }
        Command::Tag { source, target } => {
            let mut refs = refs_file.load().context("read images.json")?;
            let (_, rec) = find(&refs, source)?;
            let rec = rec.clone();
            refs.insert(normalize(target), rec);
            refs_file.save(&refs).context("write images.json")?;
        }
        Command::History { name } => {
            let refs = refs_file.load().context("read images.json")?;
            let (_, rec) = find(&refs, name)?;
            let config = read_config(&store, rec)?;
            println!(
                "{:<14} {:<32} {:<50} COMMENT",
                "IMAGE", "CREATED", "CREATED BY"
            );
            let history = config["history"].as_array().cloned().unwrap_or_default();
            for (i, h) in history.iter().enumerate().rev() {
                let id = if i + 1 == history.len() {
                    short_id(&rec.config)
                } else {
                    "<missing>".to_string()
                };
                let by: String = h["created_by"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(50)
                    .collect();
                println!(
                    "{:<14} {:<32} {:<50} {}",
                    id,
                    h["created"].as_str().unwrap_or(""),
                    by,
                    h["comment"].as_str().unwrap_or("")
                );
            }
        }
        Command::Image {
            command: ImageCommand::Inspect { names },
        } => {
            let refs = refs_file.load().context("read images.json")?;
            let mut out = vec![];
            for n in names {
                let (key, rec) = find(&refs, n)?;
                let config = read_config(&store, rec)?;
                let tags: Vec<&String> = refs
                    .iter()
                    .filter(|(_, r)| r.config == rec.config)
                    .map(|(k, _)| k)
                    .collect();
                out.push(serde_json::json!({
                    "Id": rec.config,
                    "RepoTags": tags,
                    "RepoDigests": [format!("{}@{}", key.rsplit_once(':').map(|(r, _)| r).unwrap_or(&key), rec.manifest)],
                    "Created": config["created"],
                    "Architecture": config["architecture"],
                    "Os": config["os"],
                    "Config": config["config"],
                    "Size": rec.size,
                    "RootFS": {"Type": "layers", "Layers": rec.layers.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>()},
                }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Save { output, names } => {
            let refs = refs_file.load().context("read images.json")?;
            let mut images = vec![];
            for n in names {
                let (key, rec) = find(&refs, n)?;
                images.push((
                    rec.to_import(Some(key.clone()))
                        .context("corrupt images.json")?,
                    vec![key],
                ));
            }
            let tmp = output.with_extension("tmp-berth");
            let file =
                std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
            let result =
                image::save::save_docker_archive(&store, &images, std::io::BufWriter::new(file));
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
            let refs = refs_file.load().context("read images.json")?;
            let images: Vec<_> = refs
                .iter()
                .filter_map(|(k, r)| r.to_import(Some(k.clone())))
                .collect();
            let (blobs, snaps) = image::gc::collect(&store, root, &images)?;
            println!("Deleted {blobs} blobs and {snaps} snapshots");
        }
        Command::Rmi { names, force } => {
            let mut refs = refs_file.load().context("read images.json")?;
            for n in names {
                let (key, rec) = find(&refs, n)?;
                let mounted = mount_dir(root, rec);
                if mounted.exists() {
                    if !force {
                        bail!("image {n} is mounted: berth image unmount {n} first (or rmi -f)");
                    }
                    nix::mount::umount2(&mounted, nix::mount::MntFlags::MNT_DETACH)
                        .with_context(|| format!("unmount {}", mounted.display()))?;
                    std::fs::remove_dir(&mounted)
                        .with_context(|| format!("remove {}", mounted.display()))?;
                }
                refs.remove(&key);
                println!("Untagged: {key}");
            }
            refs_file.save(&refs).context("write images.json")?;
        }
        Command::Image {
            command: ImageCommand::Mount { name },
        } => {
            let refs = refs_file.load().context("read images.json")?;
            let (key, rec) = find(&refs, name)?;
            let img = rec.to_import(Some(key)).context("corrupt images.json")?;
            let target = mount_dir(root, rec);
            if !target.exists() {
                let lowers = image::snapshot::prepare(&store, root, &img)?;
                std::fs::create_dir_all(&target)
                    .with_context(|| format!("create {}", target.display()))?;
                if let Err(e) = image::snapshot::mount_overlay(&lowers, None, &target) {
                    let _ = std::fs::remove_dir(&target);
                    return Err(e.into());
                }
            }
            println!("{}", target.display());
        }
        Command::Image {
            command: ImageCommand::Unmount { name },
        } => {
            let refs = refs_file.load().context("read images.json")?;
            let (_, rec) = find(&refs, name)?;
            let target = mount_dir(root, rec);
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::from(1)
        }
    }
}
