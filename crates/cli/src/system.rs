//! `version` and `info`: what berth is and what it holds, in Docker's
//! layout (berth has no server: the "server" facts are the engine's own),
//! or as JSON through `--format`; `system df` (space used and what could
//! be reclaimed) and `system prune`.

use std::path::Path;

use anyhow::Result;
use clap::Subcommand;
use engine::info::goarch;
use serde_json::{json, Value};

/// `docker system …`.
#[derive(Subcommand)]
pub enum SystemCommand {
    /// Space used by images, containers and volumes, and what could be reclaimed.
    Df {
        /// Each image, container and volume.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Find what a crash left (lost exits, unsupervised or half-made
    /// containers, stray runtime state, mounts, files) and repair it.
    Check {
        /// Only report.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove stopped containers and unused image content.
    Prune {
        /// Also images that no container uses.
        #[arg(short, long)]
        all: bool,
        /// Also anonymous volumes that no container uses.
        #[arg(long)]
        volumes: bool,
        /// Do not ask.
        #[arg(short, long)]
        force: bool,
    },
    /// Show what berth holds and how it runs (as `info`).
    Info {
        /// Go template.
        #[arg(short, long)]
        format: Option<String>,
    },
}

/// Runs a `system` subcommand.
pub fn main(root: &Path, c: &SystemCommand) -> Result<()> {
    match c {
        SystemCommand::Df { verbose } => df_main(root, *verbose),
        SystemCommand::Check { dry_run } => crate::check::main(root, *dry_run),
        SystemCommand::Prune {
            all,
            volumes,
            force,
        } => prune_main(root, *all, *volumes, *force),
        SystemCommand::Info { format } => info_main(root, format.as_deref()),
    }
}

/// The facts `version` prints.
fn version_json(root: &Path) -> Value {
    let engine = crate::containers::engine(root, None).ok();
    let runtime = engine
        .as_ref()
        .map(|e| e.runtime.display().to_string())
        .unwrap_or_default();
    json!({
        "Client": {
            "Version": env!("CARGO_PKG_VERSION"),
            "Os": std::env::consts::OS,
            "Arch": goarch(),
            "Daemonless": true,
        },
        "Runtime": {"Name": "berth-runtime", "Path": runtime},
    })
}

/// `berth version [-f TEMPLATE]`.
pub fn version_main(root: &Path, format: Option<&str>) -> Result<()> {
    let v = version_json(root);
    if let Some(t) = format {
        println!("{}", engine::inspect::format(t, &v)?);
        return Ok(());
    }
    println!("Client:");
    println!(
        " Version:      {}",
        v["Client"]["Version"].as_str().unwrap_or("")
    );
    println!(" OS/Arch:      {}/{}", std::env::consts::OS, goarch());
    println!(" Daemonless:   true (no server: each berth command is the engine)");
    println!(
        " Runtime:      berth-runtime ({})",
        v["Runtime"]["Path"].as_str().unwrap_or("")
    );
    Ok(())
}

/// The facts `info` prints.
fn info_json(root: &Path) -> Result<Value> {
    Ok(crate::containers::engine(root, None)?.info()?)
}

/// `berth info [-f TEMPLATE]`.
pub fn info_main(root: &Path, format: Option<&str>) -> Result<()> {
    let v = info_json(root)?;
    if let Some(t) = format {
        println!("{}", engine::inspect::format(t, &v)?);
        return Ok(());
    }
    let s = |k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    println!("Server:");
    println!(" Containers: {}", s("Containers"));
    println!("  Running: {}", s("ContainersRunning"));
    println!("  Paused: {}", s("ContainersPaused"));
    println!("  Stopped: {}", s("ContainersStopped"));
    println!(" Images: {}", s("Images"));
    println!(" Volumes: {}", s("Volumes"));
    println!(" Server Version: {} (daemonless)", s("ServerVersion"));
    println!(" Storage Driver: {}", s("Driver"));
    println!(" Cgroup Driver: {}", s("CgroupDriver"));
    println!(" Cgroup Version: {}", s("CgroupVersion"));
    println!(" Default Runtime: {}", s("DefaultRuntime"));
    println!(" Security Options:\n  seccomp\n   Profile: builtin");
    println!(" Kernel Version: {}", s("KernelVersion"));
    println!(" Operating System: {}", s("OperatingSystem"));
    println!(" OSType: {}", s("OSType"));
    println!(" Architecture: {}", s("Architecture"));
    println!(" CPUs: {}", s("NCPU"));
    println!(
        " Total Memory: {}",
        crate::format::human_binary(v["MemTotal"].as_u64().unwrap_or(0))
    );
    println!(" Berth Root Dir: {}", s("BerthRootDir"));
    Ok(())
}

/// `berth system df`.
pub fn df_main(root: &Path, verbose: bool) -> Result<()> {
    let e = crate::containers::engine(root, None)?;
    let containers = e.containers()?;
    let refs = image::refs::Refs::new(root).load()?;
    // Images by config digest (several names may share one).
    let mut images: std::collections::BTreeMap<String, u64> = Default::default();
    for r in refs.values() {
        images.insert(r.config.clone(), r.size);
    }
    let used: std::collections::BTreeSet<&str> =
        containers.iter().map(|c| c.image_id.as_str()).collect();
    let image_size: u64 = images.values().sum();
    let image_reclaim: u64 = images
        .iter()
        .filter(|(c, _)| !used.contains(c.as_str()))
        .map(|(_, s)| s)
        .sum();
    let sizes: Vec<(bool, u64)> = containers
        .iter()
        .map(|c| (c.is_running(), e.writable_layer_size(&c.id)))
        .collect();
    let container_size: u64 = sizes.iter().map(|(_, s)| s).sum();
    let container_reclaim: u64 = sizes.iter().filter(|(r, _)| !r).map(|(_, s)| s).sum();
    let volumes = e.volumes()?;
    let volume_sizes: Vec<(bool, u64)> = volumes
        .iter()
        .map(|(v, users)| (!users.is_empty(), e.volume_size(&v.name)))
        .collect();
    let volume_size: u64 = volume_sizes.iter().map(|(_, s)| s).sum();
    let volume_reclaim: u64 = volume_sizes
        .iter()
        .filter(|(u, _)| !u)
        .map(|(_, s)| s)
        .sum();
    let human = crate::format::human;
    let pct = |part: u64, whole: u64| match (part * 100).checked_div(whole) {
        Some(p) => format!("{} ({p}%)", human(part)),
        None => human(part),
    };
    let rows = vec![
        vec![
            "TYPE".into(),
            "TOTAL".into(),
            "ACTIVE".into(),
            "SIZE".into(),
            "RECLAIMABLE".into(),
        ],
        vec![
            "Images".into(),
            images.len().to_string(),
            images
                .keys()
                .filter(|c| used.contains(c.as_str()))
                .count()
                .to_string(),
            human(image_size),
            pct(image_reclaim, image_size),
        ],
        vec![
            "Containers".into(),
            containers.len().to_string(),
            sizes.iter().filter(|(r, _)| *r).count().to_string(),
            human(container_size),
            pct(container_reclaim, container_size),
        ],
        vec![
            "Local Volumes".into(),
            volumes.len().to_string(),
            volume_sizes.iter().filter(|(u, _)| *u).count().to_string(),
            human(volume_size),
            pct(volume_reclaim, volume_size),
        ],
        vec![
            "Build Cache".into(),
            "0".into(),
            "0".into(),
            "0B".into(),
            "0B".into(),
        ],
    ];
    if !verbose {
        crate::containers::table(&rows);
        return Ok(());
    }
    df_verbose(&e, &refs, &containers, &volumes)
}

/// `system df -v`: each image, container and volume, as Docker lists them.
fn df_verbose(
    e: &engine::Engine,
    refs: &std::collections::BTreeMap<String, image::refs::ImageRecord>,
    containers: &[engine::store::Record],
    volumes: &[(engine::volumes::Volume, Vec<String>)],
) -> Result<()> {
    let human = crate::format::human;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    println!("Images space usage:\n");
    let mut rows = vec![["REPOSITORY", "TAG", "IMAGE ID", "SIZE", "CONTAINERS"]
        .map(String::from)
        .to_vec()];
    for (name, r) in refs {
        let (repo, tag) = match name.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
            _ => (name.clone(), "<none>".into()),
        };
        let users = containers.iter().filter(|c| c.image_id == r.config).count();
        rows.push(vec![
            repo,
            tag,
            crate::images::short_id(&r.config),
            human(r.size),
            users.to_string(),
        ]);
    }
    crate::containers::table(&rows);
    println!("\nContainers space usage:\n");
    let mut rows = vec![["CONTAINER ID", "IMAGE", "SIZE", "STATUS", "NAMES"]
        .map(String::from)
        .to_vec()];
    for c in containers {
        rows.push(vec![
            c.id[..12].to_string(),
            c.image.clone(),
            human(e.writable_layer_size(&c.id)),
            crate::ps::status(c, now),
            c.name.clone(),
        ]);
    }
    crate::containers::table(&rows);
    println!("\nLocal Volumes space usage:\n");
    let mut rows = vec![["VOLUME NAME", "LINKS", "SIZE"].map(String::from).to_vec()];
    for (v, users) in volumes {
        rows.push(vec![
            v.name.clone(),
            users.len().to_string(),
            human(e.volume_size(&v.name)),
        ]);
    }
    crate::containers::table(&rows);
    println!("\nBuild cache usage: 0B");
    Ok(())
}

/// `berth system prune`: stopped containers, then image content no name
/// refers to; with `all` the names of images no container uses first;
/// with `volumes` the anonymous volumes no container uses.
pub fn prune_main(root: &Path, all: bool, volumes: bool, force: bool) -> Result<()> {
    if !force {
        use std::io::Write;
        print!(
            "WARNING! This will remove:\n  - all stopped containers\n{}{}Are you sure you want to continue? [y/N] ",
            if volumes { "  - all anonymous volumes not used by at least one container\n" } else { "" },
            if all {
                "  - all images without at least one container associated to them\n"
            } else {
                "  - all dangling images\n"
            },
        );
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let e = crate::containers::engine(root, None)?;
    let removed = e.prune_containers()?;
    if !removed.is_empty() {
        println!("Deleted Containers:");
        for id in &removed {
            println!("{id}");
        }
        println!();
    }
    if volumes {
        let gone = e.prune_volumes(false)?;
        if !gone.is_empty() {
            println!("Deleted Volumes:");
            for (name, _) in &gone {
                println!("{name}");
            }
            println!();
        }
    }
    if all {
        let used: std::collections::BTreeSet<String> =
            e.containers()?.into_iter().map(|c| c.image_id).collect();
        let refs_file = image::refs::Refs::new(root);
        let mut untagged = vec![];
        refs_file.update(|refs| {
            let names: Vec<String> = refs
                .iter()
                .filter(|(_, r)| !used.contains(&r.config))
                .map(|(k, _)| k.clone())
                .collect();
            for n in names {
                refs.remove(&n);
                untagged.push(n);
            }
        })?;
        if !untagged.is_empty() {
            println!("Deleted Images:");
            for n in &untagged {
                println!("untagged: {n}");
            }
            println!();
        }
    }
    let gone = crate::containers::engine(root, None)?.prune_images()?;
    println!(
        "Deleted {} blobs and {} snapshots, {} bytes",
        gone.blobs, gone.snapshots, gone.bytes
    );
    Ok(())
}
