//! `berth ps`, `berth rm` and `berth container ls|rm|prune`: parse, call
//! the engine, print Docker's table and messages.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use engine::store::{Record, State};
use engine::Engine;

use crate::format;

/// `docker ps` flags.
#[derive(Args)]
pub struct PsArgs {
    /// Show every container (default: running ones).
    #[arg(short, long)]
    all: bool,
    /// Only ids.
    #[arg(short, long)]
    quiet: bool,
    /// Full ids and commands.
    #[arg(long)]
    no_trunc: bool,
    /// The last N containers (any state).
    #[arg(short = 'n', long)]
    last: Option<usize>,
    /// The latest container (any state).
    #[arg(short = 'l', long)]
    latest: bool,
}

/// `docker rm` flags.
#[derive(Args)]
pub struct RmArgs {
    /// Kill and remove a running container.
    #[arg(short, long)]
    force: bool,
    /// Containers (names, ids or id prefixes).
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `berth container …`.
#[derive(Subcommand)]
pub enum ContainerCommand {
    /// List containers.
    #[command(visible_aliases = ["ps", "list"])]
    Ls(PsArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// Remove every stopped container.
    Prune {
        /// Do not ask.
        #[arg(short, long)]
        force: bool,
    },
}

/// The engine over `root` with the runtime `runtime` (default:
/// berth-runtime beside this program).
pub fn engine(root: &Path, runtime: Option<PathBuf>) -> Result<Engine> {
    let runtime = match runtime {
        Some(r) => r,
        None => std::env::current_exe()?.with_file_name("berth-runtime"),
    };
    Ok(Engine {
        root: root.to_path_buf(),
        runtime,
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `Up 3 seconds`, `Exited (0) 2 minutes ago`, `Created`, as Docker words them.
pub fn status(r: &Record, now: i64) -> String {
    match r.state {
        State::Running if r.is_running() => format!("Up {}", format::duration(now - r.started)),
        // The record says running but its process is gone: berth run died.
        State::Running => "Exited (255) (its berth run ended)".into(),
        State::Exited => format!("Exited ({}) {}", r.exit_code, format::ago(r.finished, now)),
        State::Created => "Created".into(),
    }
}

/// Docker's `"sh -c 'ech…"`: the command quoted, cut at 20 characters.
fn command(r: &Record, no_trunc: bool) -> String {
    let full = r.command.join(" ");
    let n = full.chars().count();
    if no_trunc || n <= 20 {
        format!("\"{full}\"")
    } else {
        format!("\"{}…\"", full.chars().take(19).collect::<String>())
    }
}

/// Prints rows as Docker's table writer does: columns padded to their
/// widest cell plus three spaces.
pub fn table(rows: &[Vec<String>]) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}", w = widths[c] + 3));
            }
        }
        println!("{}", line.trim_end());
    }
}

fn ps(engine: &Engine, a: &PsArgs) -> Result<()> {
    let mut list = engine.containers()?;
    let limit = if a.latest { Some(1) } else { a.last };
    if let Some(n) = limit {
        list.truncate(n);
    } else if !a.all {
        list.retain(|r| r.is_running());
    }
    if a.quiet {
        for r in &list {
            println!("{}", if a.no_trunc { &r.id[..] } else { &r.id[..12] });
        }
        return Ok(());
    }
    let now = now();
    let mut rows = vec![[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    .map(String::from)
    .to_vec()];
    for r in &list {
        rows.push(vec![
            if a.no_trunc {
                r.id.clone()
            } else {
                r.id[..12].to_string()
            },
            r.image.clone(),
            command(r, a.no_trunc),
            format::ago(r.created, now),
            status(r, now),
            String::new(),
            r.name.clone(),
        ]);
    }
    table(&rows);
    Ok(())
}

fn rm(engine: &Engine, a: &RmArgs) -> Result<()> {
    let mut failed = false;
    for c in &a.containers {
        match engine.remove_container(c, a.force) {
            Ok(_) => println!("{c}"),
            Err(e) => {
                eprintln!("berth: {e}");
                failed = true;
            }
        }
    }
    if failed {
        bail!("some containers could not be removed");
    }
    Ok(())
}

fn prune(engine: &Engine, force: bool) -> Result<()> {
    if !force {
        use std::io::Write;
        print!("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let removed = engine.prune_containers()?;
    if !removed.is_empty() {
        println!("Deleted Containers:");
        for id in &removed {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed space: 0B");
    Ok(())
}

/// `berth ps`.
pub fn ps_main(root: &Path, a: &PsArgs) -> Result<()> {
    ps(&engine(root, None)?, a)
}

/// `berth rm`.
pub fn rm_main(root: &Path, a: &RmArgs) -> Result<()> {
    rm(&engine(root, None)?, a)
}

/// `berth container …`.
pub fn container_main(root: &Path, c: &ContainerCommand) -> Result<()> {
    let engine = engine(root, None)?;
    match c {
        ContainerCommand::Ls(a) => ps(&engine, a),
        ContainerCommand::Rm(a) => rm(&engine, a),
        ContainerCommand::Prune { force } => prune(&engine, *force),
    }
}
