//! The container commands (`ps`, `rm`, `start`, `stop`, `kill`, `wait`,
//! `inspect`, and their `container …` forms, with `container prune`):
//! parse, call the engine, print Docker's tables and messages.

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
    attach: bool,
    /// The containers.
    #[arg(required = true)]
    containers: Vec<String>,
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
    /// Containers.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `docker logs` flags.
#[derive(Args)]
pub struct LogsArgs {
    /// Keep printing output as it comes, until the container stops.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines (`all`: every line).
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show each line's time.
    #[arg(short, long)]
    timestamps: bool,
    /// The container.
    container: String,
}

/// `berth container …`.
#[derive(Subcommand)]
pub enum ContainerCommand {
    /// Run a stopped container again (attached).
    Start(StartArgs),
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
    Logs(LogsArgs),
    /// Run a command in a running container.
    Exec(Box<crate::exec::ExecArgs>),
    /// Record a detached container's exit and take it down (berth-shim calls this).
    #[command(hide = true)]
    Cleanup {
        /// The container id.
        id: String,
    },
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
    let berth = std::env::current_exe()?;
    let runtime = runtime.unwrap_or_else(|| berth.with_file_name("berth-runtime"));
    Ok(Engine {
        root: root.to_path_buf(),
        runtime,
        shim: berth.with_file_name("berth-shim"),
        berth,
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
        State::Running if r.is_running() => {
            let paused = engine::restart::ContainerSettings::parse(&r.config).paused;
            format!(
                "Up {}{}",
                format::duration(now - r.started),
                if paused { " (Paused)" } else { "" }
            )
        }
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
        match engine.remove_container(c, a.force, a.volumes) {
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
        match engine.container(c) {
            Ok(r) => all.push(engine::inspect::container_json(&r)),
            Err(e) => {
                eprintln!("berth: {e}");
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
        bail!("some containers were not found");
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
    if !a.attach {
        // Detached, under berth-shim; prints each name, as Docker.
        return match for_each(&a.containers, |c| {
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
    match e.start_foreground(container) {
        Ok(code) => std::process::ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("berth: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}

/// `berth restart`.
pub fn restart_main(root: &Path, a: &StopArgs) -> Result<()> {
    let e = engine(root, None)?;
    for_each(&a.containers, |c| {
        e.restart_container(c, a.time.map(std::time::Duration::from_secs))?;
        Ok(c.to_string())
    })
}

/// Prints one json-file log line to stdout or stderr.
fn print_log_line(line: &str, timestamps: bool) -> Result<()> {
    use std::io::Write;
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return Ok(());
    };
    let text = v["log"].as_str().unwrap_or("");
    let prefix = if timestamps {
        format!("{} ", v["time"].as_str().unwrap_or(""))
    } else {
        String::new()
    };
    if v["stream"] == "stderr" {
        write!(std::io::stderr(), "{prefix}{text}")?;
    } else {
        let mut out = std::io::stdout();
        write!(out, "{prefix}{text}")?;
        out.flush()?;
    }
    Ok(())
}

fn logs(engine: &Engine, a: &LogsArgs) -> Result<()> {
    use std::io::{BufRead, Seek};
    let path = engine.log_path(&a.container)?;
    let tail: Option<usize> = match a.tail.as_str() {
        "all" => None,
        n => Some(
            n.parse()
                .map_err(|_| anyhow::anyhow!("--tail {n:?}: a number or all"))?,
        ),
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        // A foreground container's output went to its terminal only.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut reader = std::io::BufReader::new(file);
    let mut lines: Vec<String> = vec![];
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 {
        lines.push(std::mem::take(&mut line));
    }
    let skip = tail.map_or(0, |n| lines.len().saturating_sub(n));
    for l in &lines[skip..] {
        print_log_line(l, a.timestamps)?;
    }
    if !a.follow {
        return Ok(());
    }
    let mut pos = reader.stream_position()?;
    loop {
        let running = engine.container(&a.container).is_ok_and(|r| r.is_running());
        // Removed (--rm) once it stopped: nothing more will come.
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        f.seek(std::io::SeekFrom::Start(pos))?;
        let mut r = std::io::BufReader::new(f);
        let mut got = false;
        loop {
            let mut l = String::new();
            let n = r.read_line(&mut l)?;
            if n == 0 || !l.ends_with('\n') {
                break;
            }
            pos += n as u64;
            print_log_line(&l, a.timestamps)?;
            got = true;
        }
        if !running && !got {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `berth logs`.
pub fn logs_main(root: &Path, a: &LogsArgs) -> Result<()> {
    logs(&engine(root, None)?, a)
}

/// `berth ps`.
pub fn ps_main(root: &Path, a: &PsArgs) -> Result<()> {
    ps(&engine(root, None)?, a)
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
        ContainerCommand::Start(_) | ContainerCommand::Exec(_) | ContainerCommand::Create(_) => {
            bail!("container start, exec and create are dispatched by main")
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
        ContainerCommand::Logs(a) => logs(&engine, a),
        ContainerCommand::Cleanup { id } => Ok(engine.cleanup_container(id)?),
        ContainerCommand::Ls(a) => ps(&engine, a),
        ContainerCommand::Rm(a) => rm(&engine, a),
        ContainerCommand::Prune { force } => prune(&engine, *force),
    }
}
