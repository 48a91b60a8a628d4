//! The container commands (`ps`, `rm`, `start`, `stop`, `kill`, `wait`,
//! `inspect`, and their `container …` forms, with `container prune`):
//! parse, call the engine, print Docker's tables and messages.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use engine::Engine;

/// `docker rm` flags.
#[derive(Args)]
pub struct RmArgs {
    /// Kill and remove a running container.
    #[arg(short, long)]
    force: bool,
    /// Remove the container's anonymous volumes too.
    #[arg(short, long)]
    volumes: bool,
    /// Containers (names, ids or id prefixes).
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `docker start` flags.
#[derive(Args)]
pub struct StartArgs {
    /// Attach to the container's output and wait for it (one container).
    #[arg(short, long)]
    pub(crate) attach: bool,
    /// Attach our stdin too (implies -a).
    #[arg(short, long)]
    pub(crate) interactive: bool,
    /// The keys that detach from the container and leave it running.
    #[arg(long = "detach-keys")]
    pub(crate) detach_keys: Option<String>,
    /// Every stopped container (with --filter, those that pass).
    #[arg(long, conflicts_with_all = ["attach", "interactive"])]
    all: bool,
    /// With --all: `restart-policy=NAME` (always, unless-stopped, on-failure,
    /// no); as at boot, an unless-stopped container stopped by hand stays
    /// stopped.
    #[arg(long, requires = "all")]
    filter: Vec<String>,
    /// The containers.
    #[arg(required_unless_present = "all")]
    containers: Vec<String>,
}

/// The stopped containers `start --all [--filter restart-policy=…]` starts.
fn start_all_targets(e: &Engine, filters: &[String]) -> Result<Vec<String>> {
    let mut policies = vec![];
    for f in filters {
        match f.split_once('=') {
            Some(("restart-policy", p @ ("always" | "unless-stopped" | "on-failure" | "no"))) => {
                policies.push(p.to_string())
            }
            _ => bail!(
                "--filter {f:?}: start --all filters by restart-policy=always|unless-stopped|on-failure|no"
            ),
        }
    }
    Ok(e.containers()?
        .into_iter()
        .filter(|r| !r.is_running())
        .filter(|r| {
            if policies.is_empty() {
                return true;
            }
            let s = engine::restart::ContainerSettings::parse(&r.config);
            let name = s.restart_policy.name();
            policies.iter().any(|p| p == name) && !(name == "unless-stopped" && s.manually_stopped)
        })
        .map(|r| r.name)
        .collect())
}

/// `docker stop` flags.
#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait before SIGKILL (default: the container's --stop-timeout, else 10).
    #[arg(short = 't', long = "time")]
    time: Option<u64>,
    /// The signal to send first (default SIGTERM).
    #[arg(short, long)]
    signal: Option<String>,
    /// Containers.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `docker kill` flags.
#[derive(Args)]
pub struct KillArgs {
    /// The signal (default SIGKILL).
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    /// Containers.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Containers named on the command line.
#[derive(Args)]
pub struct Targets {
    /// Containers.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `docker inspect` flags (containers).
#[derive(Args)]
pub struct InspectArgs {
    /// Format each with a template (`{{.State.Pid}}`, `{{json .State}}`).
    #[arg(short, long)]
    format: Option<String>,
    /// Only objects of this type: container, image, volume or network.
    #[arg(long = "type")]
    kind: Option<String>,
    /// Containers (or images, volumes, networks: the first kind that has the name).
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Object `name` as `inspect` shows it: a container, else an image, a
/// volume or a network (only `kind` when given), as the docker CLI looks.
fn inspect_object(engine: &Engine, kind: Option<&str>, name: &str) -> Result<serde_json::Value> {
    let wants = |k: &str| kind.is_none_or(|x| x == k);
    if let Some(k) = kind.filter(|k| !["container", "image", "volume", "network"].contains(k)) {
        bail!("--type {k:?}: expected container, image, volume or network");
    }
    if wants("container") {
        if let Ok(r) = engine.container(name) {
            return Ok(engine::inspect::container_json(&r));
        }
    }
    if wants("image") {
        let store = image::ContentStore::open(&engine.root)?;
        let refs = image::refs::Refs::new(&engine.root).load()?;
        if let Ok(v) = crate::images::inspect_json(&store, &refs, name) {
            return Ok(v);
        }
    }
    if wants("volume") {
        if let Ok(v) = engine.volume(name) {
            return Ok(crate::volumes::inspect_json(engine, &v));
        }
    }
    if wants("network") {
        if let Ok(v) = engine.network_inspect(name) {
            return Ok(v);
        }
    }
    bail!("no such object: {name}")
}

/// `berth container …`.
#[derive(Subcommand)]
pub enum ContainerCommand {
    /// Run a stopped container again (attached).
    Start(StartArgs),
    /// Attach our stdio to a running container.
    Attach(crate::attach::AttachArgs),
    /// Make an image of a container's changes.
    Commit(crate::commit::CommitArgs),
    /// Stop running containers.
    Stop(StopArgs),
    /// Stop and start containers again.
    Restart(StopArgs),
    /// Freeze every process of containers.
    Pause(crate::manage::Containers),
    /// Thaw paused containers.
    Unpause(crate::manage::Containers),
    /// Rename a container.
    Rename(crate::manage::RenameArgs),
    /// Show a container's processes.
    Top(crate::manage::TopArgs),
    /// Change containers' resource limits and restart policy.
    Update(Box<crate::manage::UpdateArgs>),
    /// Show what a container changed in its root.
    Diff {
        /// The container.
        container: String,
    },
    /// Make a container without starting it.
    Create(Box<crate::run::RunArgs>),
    /// Signal running containers.
    Kill(KillArgs),
    /// Wait for containers to stop and print their exit codes.
    Wait(Targets),
    /// Show containers as JSON.
    Inspect(InspectArgs),
    /// Show a detached container's output.
    Logs(crate::logs::LogsArgs),
    /// Run a command in a running container.
    Exec(Box<crate::exec::ExecArgs>),
    /// Record a detached container's exit and take it down (berth-shim calls this).
    #[command(hide = true)]
    Cleanup {
        /// The container id.
        id: String,
    },
    /// Run a container's health check once and record the result
    /// (berth-shim calls this on the check's schedule).
    #[command(hide = true)]
    Healthcheck {
        /// The container id.
        id: String,
    },
    /// List containers.
    #[command(visible_aliases = ["ps", "list"])]
    Ls(crate::ps::PsArgs),
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
    let berth = std::env::current_exe()?;
    let runtime = runtime.unwrap_or_else(|| berth.with_file_name("berth-runtime"));
    Ok(Engine {
        root: root.to_path_buf(),
        runtime,
        shim: berth.with_file_name("berth-shim"),
        berth,
    })
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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

/// How many containers `rm` takes down at once (as the docker CLI, which
/// removes them in parallel).
const RM_PARALLEL: usize = 8;

fn rm(engine: &Engine, a: &RmArgs) -> Result<()> {
    // Each container in a thread of a small pool; results printed in the
    // order given.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<std::result::Result<(), String>>>> = a
        .containers
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..RM_PARALLEL.min(a.containers.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(c) = a.containers.get(i) else { return };
                let r = engine
                    .remove_container(c, a.force, a.volumes)
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                if let Ok(mut slot) = results[i].lock() {
                    *slot = Some(r);
                }
            });
        }
    });
    let mut failed = false;
    for (c, r) in a.containers.iter().zip(results) {
        match r.into_inner().ok().flatten() {
            Some(Ok(())) => println!("{c}"),
            Some(Err(e)) => {
                eprintln!("berth: {e}");
                failed = true;
            }
            None => failed = true,
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

/// Runs `each` for every container named, printing what it returns;
/// errors are printed and make the command fail at the end, as Docker's.
pub(crate) fn for_each(
    containers: &[String],
    mut each: impl FnMut(&str) -> Result<String>,
) -> Result<()> {
    let mut failed = false;
    for c in containers {
        match each(c) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("berth: {e:#}");
                failed = true;
            }
        }
    }
    if failed {
        bail!("the command failed for some containers");
    }
    Ok(())
}

fn inspect(engine: &Engine, a: &InspectArgs) -> Result<()> {
    let mut all = vec![];
    let mut failed = false;
    for c in &a.containers {
        match inspect_object(engine, a.kind.as_deref(), c) {
            Ok(v) => all.push(v),
            Err(e) => {
                eprintln!("berth: {e:#}");
                failed = true;
            }
        }
    }
    match &a.format {
        Some(t) => {
            for v in &all {
                println!("{}", engine::inspect::format(t, v)?);
            }
        }
        None => println!("{}", serde_json::to_string_pretty(&all)?),
    }
    if failed {
        bail!("some objects were not found");
    }
    Ok(())
}

/// The commands that exit with a status of their own (`start -a`).
pub fn start_main(root: &Path, a: &StartArgs) -> std::process::ExitCode {
    let e = match engine(root, None) {
        Ok(e) => e,
        Err(err) => {
            eprintln!("berth: {err:#}");
            return std::process::ExitCode::from(125);
        }
    };
    let targets = if a.all {
        match start_all_targets(&e, &a.filter) {
            Ok(t) => t,
            Err(err) => {
                eprintln!("berth: {err:#}");
                return std::process::ExitCode::from(125);
            }
        }
    } else {
        a.containers.clone()
    };
    if !a.attach && !a.interactive {
        // Detached, under berth-shim; prints each name, as Docker.
        return match for_each(&targets, |c| {
            e.start_container(c)?;
            Ok(c.to_string())
        }) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(_) => std::process::ExitCode::from(1),
        };
    }
    let [container] = a.containers.as_slice() else {
        eprintln!("berth: start -a takes one container");
        return std::process::ExitCode::from(125);
    };
    let opts = engine::attach::AttachOptions {
        stdin: a.interactive,
        detach_keys: a.detach_keys.clone(),
        sig_proxy: true,
    };
    crate::attach::exit(e.start_attached(container, &opts))
}

/// `berth restart`.
pub fn restart_main(root: &Path, a: &StopArgs) -> Result<()> {
    let e = engine(root, None)?;
    for_each(&a.containers, |c| {
        e.restart_container(c, a.time.map(std::time::Duration::from_secs))?;
        Ok(c.to_string())
    })
}

/// `berth rm`.
pub fn rm_main(root: &Path, a: &RmArgs) -> Result<()> {
    rm(&engine(root, None)?, a)
}

/// `berth stop`.
pub fn stop_main(root: &Path, a: &StopArgs) -> Result<()> {
    let e = engine(root, None)?;
    for_each(&a.containers, |c| {
        e.stop_container(
            c,
            a.time.map(std::time::Duration::from_secs),
            a.signal.as_deref(),
        )?;
        Ok(c.to_string())
    })
}

/// `berth kill`.
pub fn kill_main(root: &Path, a: &KillArgs) -> Result<()> {
    let e = engine(root, None)?;
    for_each(&a.containers, |c| {
        e.kill_container(c, &a.signal)?;
        Ok(c.to_string())
    })
}

/// `berth wait`.
pub fn wait_main(root: &Path, a: &Targets) -> Result<()> {
    let e = engine(root, None)?;
    for_each(&a.containers, |c| Ok(e.wait_container(c)?.to_string()))
}

/// `berth inspect` (containers).
pub fn inspect_main(root: &Path, a: &InspectArgs) -> Result<()> {
    inspect(&engine(root, None)?, a)
}

/// `berth container …`.
pub fn container_main(root: &Path, c: &ContainerCommand) -> Result<()> {
    let engine = engine(root, None)?;
    match c {
        ContainerCommand::Start(_)
        | ContainerCommand::Exec(_)
        | ContainerCommand::Create(_)
        | ContainerCommand::Attach(_) => {
            bail!("container start, exec, create and attach are dispatched by main")
        }
        ContainerCommand::Stop(a) => stop_main(root, a),
        ContainerCommand::Restart(a) => restart_main(root, a),
        ContainerCommand::Pause(a) => crate::manage::pause_main(root, a),
        ContainerCommand::Unpause(a) => crate::manage::unpause_main(root, a),
        ContainerCommand::Rename(a) => crate::manage::rename_main(root, a),
        ContainerCommand::Top(a) => crate::manage::top_main(root, a),
        ContainerCommand::Update(a) => crate::manage::update_main(root, a),
        ContainerCommand::Diff { container } => crate::manage::diff_main(root, container),
        ContainerCommand::Kill(a) => kill_main(root, a),
        ContainerCommand::Wait(a) => wait_main(root, a),
        ContainerCommand::Inspect(a) => inspect(&engine, a),
        ContainerCommand::Logs(a) => crate::logs::logs(&engine, a),
        ContainerCommand::Cleanup { id } => Ok(engine.cleanup_container(id)?),
        ContainerCommand::Commit(a) => crate::commit::main(root, a),
        ContainerCommand::Healthcheck { id } => Ok(engine.health_check(id)?),
        ContainerCommand::Ls(a) => crate::ps::ps(&engine, a),
        ContainerCommand::Rm(a) => rm(&engine, a),
        ContainerCommand::Prune { force } => prune(&engine, *force),
    }
}
