//! `berth volume create|ls|inspect|rm|prune`: Docker's volume commands,
//! flags and output over the engine's volume store.

use std::path::Path;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use engine::volumes::Volume;
use engine::Engine;

/// `docker volume …`.
#[derive(Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (a random name when none is given).
    Create(CreateArgs),
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show volumes as JSON.
    Inspect {
        /// Go template (`{{.Mountpoint}}`, `{{json .Labels}}`).
        #[arg(short, long)]
        format: Option<String>,
        /// Volume names.
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove volumes (never one a container uses).
    #[command(visible_alias = "remove")]
    Rm {
        /// A missing volume is no error.
        #[arg(short, long)]
        force: bool,
        /// Volume names.
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove the anonymous volumes no container uses (all unused with -a).
    Prune {
        /// Named volumes too.
        #[arg(short, long)]
        all: bool,
        /// Do not ask.
        #[arg(short, long)]
        force: bool,
    },
}

/// `volume create` flags.
#[derive(Args)]
pub struct CreateArgs {
    /// The volume's name.
    name: Option<String>,
    /// The name, as a flag (Docker's older form).
    #[arg(long = "name", conflicts_with = "name")]
    name_flag: Option<String>,
    /// The driver (only `local`).
    #[arg(short, long, default_value = "local")]
    driver: String,
    /// A driver option: `type=tmpfs`, `device=…`, `o=…`.
    #[arg(short, long = "opt")]
    opt: Vec<String>,
    /// A label: `KEY=VALUE`.
    #[arg(long)]
    label: Vec<String>,
}

/// `volume ls` flags.
#[derive(Args)]
pub struct LsArgs {
    /// Only names.
    #[arg(short, long)]
    quiet: bool,
    /// `dangling=true|false`, `name=…`, `label=KEY[=VALUE]`, `driver=local`.
    #[arg(short, long)]
    filter: Vec<String>,
    /// Go template for each volume (`{{.Name}}`, `{{.Driver}}`, `{{.Mountpoint}}`).
    #[arg(long)]
    format: Option<String>,
}

/// A volume as `volume inspect` shows it.
pub(crate) fn inspect_json(e: &Engine, v: &Volume) -> serde_json::Value {
    engine::listing::volume_json(e, v)
}

/// Runs a `volume` subcommand.
pub fn main(root: &Path, command: &VolumeCommand) -> Result<()> {
    let e = crate::containers::engine(root, None)?;
    match command {
        VolumeCommand::Create(a) => {
            let name = a.name.as_deref().or(a.name_flag.as_deref());
            let v = e.create_volume(name, &a.driver, &a.opt, &a.label)?;
            println!("{}", v.name);
        }
        VolumeCommand::Ls(a) => {
            // Every filter is checked, also when no volume exists.
            let probe = Volume {
                name: String::new(),
                driver: String::new(),
                created: 0,
                labels: Default::default(),
                options: Default::default(),
                anonymous: false,
            };
            let filters = engine::listing::split_filters(&a.filter);
            engine::listing::volume_matches(&filters, &probe, &[])?;
            let mut rows = vec![vec!["DRIVER".to_string(), "VOLUME NAME".to_string()]];
            for (v, users) in e.volumes()? {
                if !engine::listing::volume_matches(&filters, &v, &users)? {
                    continue;
                }
                if a.quiet {
                    println!("{}", v.name);
                } else if let Some(t) = &a.format {
                    println!("{}", engine::inspect::format(t, &inspect_json(&e, &v))?);
                } else {
                    rows.push(vec![v.driver.clone(), v.name.clone()]);
                }
            }
            if !a.quiet && a.format.is_none() {
                crate::containers::table(&rows);
            }
        }
        VolumeCommand::Inspect { format, volumes } => {
            let mut all = vec![];
            let mut failed = false;
            for name in volumes {
                match e.volume(name) {
                    Ok(v) => all.push(inspect_json(&e, &v)),
                    Err(err) => {
                        eprintln!("berth: {err}");
                        failed = true;
                    }
                }
            }
            match format {
                Some(t) => {
                    for v in &all {
                        println!("{}", engine::inspect::format(t, v)?);
                    }
                }
                None => println!("{}", serde_json::to_string_pretty(&all)?),
            }
            if failed {
                bail!("some volumes do not exist");
            }
        }
        VolumeCommand::Rm { force, volumes } => {
            let mut failed = false;
            for name in volumes {
                match e.remove_volume(name, *force) {
                    Ok(()) => println!("{name}"),
                    Err(err) => {
                        eprintln!("berth: {err}");
                        failed = true;
                    }
                }
            }
            if failed {
                bail!("some volumes could not be removed");
            }
        }
        VolumeCommand::Prune { all, force } => {
            if !force {
                use std::io::Write;
                print!(
                    "WARNING! This will remove {} volumes not used by at least one container.\nAre you sure you want to continue? [y/N] ",
                    if *all { "all local" } else { "anonymous local" }
                );
                std::io::stdout().flush()?;
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Ok(());
                }
            }
            let removed = e.prune_volumes(*all)?;
            let total: u64 = removed.iter().map(|(_, s)| s).sum();
            if !removed.is_empty() {
                println!("Deleted Volumes:");
                for (name, _) in &removed {
                    println!("{name}");
                }
                println!();
            }
            println!("Total reclaimed space: {}", crate::format::human(total));
        }
    }
    Ok(())
}
