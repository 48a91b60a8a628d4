//! berth-runtime: a runc-compatible OCI runtime command line. Parsing and
//! printing only; every operation lives in the `runtime` library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use runtime::{CreateOptions, StateStore, Status};

#[derive(Parser)]
#[command(
    name = "berth-runtime",
    version,
    about = "berth's OCI runtime (runc-compatible command line)"
)]
struct Cli {
    /// Root directory for container state [default: /run/berth-runtime for root,
    /// $XDG_RUNTIME_DIR/berth-runtime (or /tmp/berth-runtime-UID) for other users].
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Write logs to this file instead of stderr.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Log debug messages.
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd to manage cgroups.
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct CreateArgs {
    /// Path to the bundle directory.
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// File to write the container's init pid to.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master.
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root.
    #[arg(long)]
    no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long)]
    no_new_keyring: bool,
    /// Pass this many descriptors above stdio to the container.
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    /// Container id.
    id: String,
}

#[derive(Args, Clone)]
struct ExecArgs {
    /// A process.json to run instead of the command line.
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    tty: bool,
    /// Unix socket that receives the pty master.
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE).
    #[arg(short, long)]
    env: Vec<String>,
    /// User as UID[:GID].
    #[arg(short, long)]
    user: Option<String>,
    /// Additional group ids.
    #[arg(short = 'g', long)]
    additional_gids: Vec<u32>,
    /// Add a capability.
    #[arg(short, long)]
    cap: Vec<String>,
    /// Set no_new_privs.
    #[arg(long)]
    no_new_privs: bool,
    /// SELinux label (SELinux is not supported on this host).
    #[arg(long)]
    process_label: Option<String>,
    /// AppArmor profile (AppArmor is not supported on this host).
    #[arg(long)]
    apparmor: Option<String>,
    /// Return once the process runs.
    #[arg(short, long)]
    detach: bool,
    /// File to write the process pid to.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Pass this many descriptors above stdio to the process.
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    /// Container id.
    id: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args, Clone)]
struct UpdateArgs {
    /// A JSON file with a linux.resources section (- for stdin).
    #[arg(short = 'r', long)]
    resources: Option<PathBuf>,
    /// Memory limit in bytes (suffixes k, m, g allowed).
    #[arg(long)]
    memory: Option<String>,
    /// Memory plus swap limit (-1 for unlimited).
    #[arg(long)]
    memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long)]
    memory_reservation: Option<String>,
    /// CPU shares (relative weight).
    #[arg(long)]
    cpu_shares: Option<u64>,
    /// CFS quota in microseconds per period (-1 for none).
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    #[arg(long)]
    cpu_period: Option<u64>,
    /// CPUs to run on (0-3, 0,1).
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// Maximum number of processes (0 or -1 for unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Block I/O weight (10-1000).
    #[arg(long)]
    blkio_weight: Option<u16>,
    /// Container id.
    id: String,
}

/// Parses 64m / 1g / 1024 / -1.
fn parse_bytes(s: &str) -> Result<i64> {
    let lower = s.trim().to_ascii_lowercase();
    if lower == "-1" {
        return Ok(-1);
    }
    let t = lower.strip_suffix('b').unwrap_or(&lower);
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: i64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a size"))?;
    if n < 0 {
        anyhow::bail!("{s:?} is not a size (only -1, unlimited, may be negative)");
    }
    n.checked_mul(mul)
        .with_context(|| format!("{s:?} is too large (the limit is {} bytes)", i64::MAX))
}

fn update_resources(a: &UpdateArgs) -> Result<oci_spec::runtime::LinuxResources> {
    use serde_json::{json, Value};
    let mut v: Value = match &a.resources {
        Some(p) if p.as_os_str() == "-" => {
            serde_json::from_reader(std::io::stdin()).context("resources from stdin")?
        }
        Some(p) => serde_json::from_slice(
            &std::fs::read(p).with_context(|| format!("read {}", p.display()))?,
        )
        .with_context(|| format!("{}: invalid resources", p.display()))?,
        None => json!({}),
    };
    let obj = v
        .as_object_mut()
        .context("resources must be a JSON object")?;
    let mut memory = serde_json::Map::new();
    if let Some(m) = &a.memory {
        memory.insert("limit".into(), json!(parse_bytes(m)?));
    }
    if let Some(m) = &a.memory_swap {
        memory.insert("swap".into(), json!(parse_bytes(m)?));
    }
    if let Some(m) = &a.memory_reservation {
        memory.insert("reservation".into(), json!(parse_bytes(m)?));
    }
    if !memory.is_empty() {
        obj.insert("memory".into(), Value::Object(memory));
    }
    let mut cpu = serde_json::Map::new();
    if let Some(x) = a.cpu_shares {
        cpu.insert("shares".into(), json!(x));
    }
    if let Some(x) = a.cpu_quota {
        cpu.insert("quota".into(), json!(x));
    }
    if let Some(x) = a.cpu_period {
        cpu.insert("period".into(), json!(x));
    }
    if let Some(x) = &a.cpuset_cpus {
        cpu.insert("cpus".into(), json!(x));
    }
    if let Some(x) = &a.cpuset_mems {
        cpu.insert("mems".into(), json!(x));
    }
    if !cpu.is_empty() {
        obj.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = a.pids_limit {
        obj.insert("pids".into(), json!({"limit": p}));
    }
    if let Some(w) = a.blkio_weight {
        obj.insert("blockIO".into(), json!({"weight": w}));
    }
    serde_json::from_value(v).context("invalid resources")
}

fn ps(store: &StateStore, id: &str, format: &str, ps_args: &[String]) -> Result<()> {
    let pids = runtime::pids(store, id)?;
    if format == "json" {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        anyhow::bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let pid_col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .context("ps output has no PID column")?;
    println!("{header}");
    for line in lines {
        if let Some(pid) = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok())
        {
            if pids.contains(&pid) {
                println!("{line}");
            }
        }
    }
    Ok(())
}

#[derive(Subcommand)]
enum Command {
    /// Create a container (its program waits for `start`).
    Create(CreateArgs),
    /// Start a created container.
    Start {
        /// Container id.
        id: String,
    },
    /// Create and start a container, and wait for it unless --detach.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once started.
        #[arg(short, long)]
        detach: bool,
        /// Keep the container after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// Print a container's OCI state.
    State {
        /// Container id.
        id: String,
    },
    /// List containers.
    #[command(alias = "ls")]
    List {
        /// Output format: table or json.
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Print only ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Send a signal to a container (default SIGTERM).
    Kill {
        /// Send to every process in the container's cgroup.
        #[arg(short, long)]
        all: bool,
        /// Container id.
        id: String,
        /// Signal name or number.
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container.
    Delete {
        /// Kill a running container first.
        #[arg(short, long)]
        force: bool,
        /// Container id.
        id: String,
    },
    /// Run a process inside a running container.
    Exec(ExecArgs),
    /// Freeze every process of a container.
    Pause {
        /// Container id.
        id: String,
    },
    /// Thaw a paused container.
    Resume {
        /// Container id.
        id: String,
    },
    /// List the processes of a container.
    Ps {
        /// Output format: table or json.
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Container id.
        id: String,
        /// Arguments for ps(1) (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Change the resource limits of a container.
    Update(UpdateArgs),
    /// Print resource statistics and OOM events as JSON lines.
    Events {
        /// Print one statistics event and exit.
        #[arg(long)]
        stats: bool,
        /// Statistics interval (5s, 250ms, 1m).
        #[arg(long, default_value = "5s")]
        interval: String,
        /// Container id.
        id: String,
    },
    /// Write a default config.json.
    Spec {
        /// Where to write config.json.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A spec for an unprivileged user.
        #[arg(long)]
        rootless: bool,
    },
    /// Print the features document.
    Features,
}

/// runc's JSON log line: `{"level":"error","msg":"...","time":"..."}`,
/// which containerd and Podman parse to report a runtime's error.
struct RuncJson;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for RuncJson
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        struct Msg(String);
        impl tracing::field::Visit for Msg {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "message" {
                    self.0 = value.to_string();
                }
            }
        }
        let mut msg = Msg(String::new());
        event.record(&mut msg);
        let line = serde_json::json!({
            "level": event.metadata().level().as_str().to_ascii_lowercase(),
            "msg": msg.0,
            "time": runtime::container_create::now_rfc3339(),
        });
        writeln!(w, "{line}")
    }
}

fn init_logging(cli: &Cli) -> Result<()> {
    let level = if cli.debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::WARN
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false);
    match (&cli.log, cli.log_format.as_str()) {
        (Some(path), fmt) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("open log file {}", path.display()))?;
            if fmt == "json" {
                builder
                    .event_format(RuncJson)
                    .with_writer(std::sync::Mutex::new(file))
                    .init();
            } else {
                builder.with_writer(std::sync::Mutex::new(file)).init();
            }
        }
        (None, "json") => builder
            .event_format(RuncJson)
            .with_writer(std::io::stderr)
            .init(),
        (None, _) => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

/// The state root: `--root`, else the default for the calling user.
fn state_root(given: Option<&std::path::Path>) -> PathBuf {
    if let Some(r) = given {
        return r.to_path_buf();
    }
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return PathBuf::from("/run/berth-runtime");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("berth-runtime"),
        _ => {
            // The user's own runtime directory, which nobody else can
            // create; /tmp only as the last resort, where the state store
            // refuses a directory another user made first.
            let run_user = PathBuf::from(format!("/run/user/{uid}"));
            let owned = std::fs::symlink_metadata(&run_user).is_ok_and(|m| {
                use std::os::unix::fs::MetadataExt;
                m.is_dir() && m.uid() == uid.as_raw()
            });
            if owned {
                run_user.join("berth-runtime")
            } else {
                PathBuf::from(format!("/tmp/berth-runtime-{uid}"))
            }
        }
    }
}

fn create_options(a: &CreateArgs) -> CreateOptions {
    CreateOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        signal_mask: None,
    }
}

fn execute(cli: &Cli) -> Result<i32> {
    if cli.systemd_cgroup && !std::path::Path::new("/run/systemd/system").exists() {
        anyhow::bail!(
            "--systemd-cgroup: systemd is not running on this host (no /run/systemd/system)"
        );
    }
    if cli.systemd_cgroup {
        anyhow::bail!("--systemd-cgroup: the systemd cgroup driver is not supported yet; use the default cgroupfs driver");
    }
    let store = StateStore::new(state_root(cli.root.as_deref()));
    if cli.debug {
        if let Ok(h) = cgroups::Hierarchy::detect() {
            tracing::debug!("cgroups: {}", h.describe());
        }
    }
    match &cli.command {
        Command::Create(a) => {
            runtime::create(&store, &create_options(a))?;
        }
        Command::Start { id } => runtime::start(&store, id)?,
        Command::Run {
            create,
            detach,
            keep,
        } => {
            return Ok(runtime::run(
                &store,
                create_options(create),
                *detach,
                *keep,
            )?)
        }
        Command::State { id } => {
            let rec = store.load(id)?;
            println!("{}", serde_json::to_string_pretty(&store.oci_state(&rec))?);
        }
        Command::List { format, quiet } => list(&store, format, *quiet)?,
        Command::Kill { all, id, signal } => {
            runtime::kill(&store, id, runtime::parse_signal(signal)?, *all)?
        }
        Command::Delete { force, id } => runtime::delete(&store, id, *force)?,
        Command::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                anyhow::bail!("{}: file exists; remove it first", path.display());
            }
            let spec = runtime::spec_default::default_spec(*rootless)?;
            let data = serde_json::to_string_pretty(&spec)?;
            std::fs::write(&path, data + "\n")
                .with_context(|| format!("write {}", path.display()))?;
        }
        Command::Exec(a) => return exec(&store, a),
        Command::Pause { id } => runtime::pause(&store, id)?,
        Command::Resume { id } => runtime::resume(&store, id)?,
        Command::Ps {
            format,
            id,
            ps_args,
        } => ps(&store, id, format, ps_args)?,
        Command::Update(a) => runtime::update(&store, &a.id, &update_resources(a)?)?,
        Command::Events {
            stats,
            interval,
            id,
        } => {
            let interval = runtime::container_events::parse_interval(interval)?;
            let mut out = std::io::stdout().lock();
            runtime::container_events::events(&store, id, interval, *stats, &mut |e| {
                let _ = writeln!(out, "{e}");
                let _ = out.flush();
            })?;
        }
        Command::Features => println!(
            "{}",
            serde_json::to_string_pretty(&runtime::features::features())?
        ),
    }
    Ok(0)
}

/// Builds the process of `exec`: from --process, or from the container's
/// own process with the command line's changes, as runc does.
fn exec(store: &StateStore, a: &ExecArgs) -> Result<i32> {
    if a.process_label.is_some() {
        anyhow::bail!("--process-label: SELinux is not enabled on this kernel");
    }
    if a.apparmor.is_some() {
        anyhow::bail!("--apparmor: AppArmor is not enabled on this kernel");
    }
    let process: oci_spec::runtime::Process = if let Some(path) = &a.process {
        let data = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        serde_json::from_slice(&data)
            .with_context(|| format!("{}: invalid process", path.display()))?
    } else {
        if a.command.is_empty() {
            anyhow::bail!("exec needs a command (or --process)");
        }
        let rec = store.load(&a.id)?;
        let mut p = rec.config.process().clone().unwrap_or_default();
        p.set_args(Some(a.command.clone()));
        p.set_terminal(Some(a.tty));
        let mut env = p.env().clone().unwrap_or_default();
        for kv in &a.env {
            let key = kv.split('=').next().unwrap_or("");
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        p.set_env(Some(env));
        if let Some(cwd) = &a.cwd {
            p.set_cwd(cwd.clone());
        }
        if let Some(u) = &a.user {
            let (uid, gid) = match u.split_once(':') {
                Some((u, g)) => (u.parse::<u32>()?, g.parse::<u32>()?),
                None => (
                    u.parse::<u32>()
                        .with_context(|| format!("--user {u:?}: expected UID[:GID]"))?,
                    0,
                ),
            };
            p.user_mut().set_uid(uid);
            p.user_mut().set_gid(gid);
        }
        if !a.additional_gids.is_empty() {
            p.user_mut()
                .set_additional_gids(Some(a.additional_gids.clone()));
        }
        if !a.cap.is_empty() {
            let mut caps = p.capabilities().clone().unwrap_or_default();
            for c in &a.cap {
                let cap: oci_spec::runtime::Capability =
                    serde_json::from_value(serde_json::Value::from(c.as_str()))
                        .with_context(|| format!("--cap {c:?}: unknown capability"))?;
                let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                    let mut s = s.clone().unwrap_or_default();
                    s.insert(cap);
                    Some(s)
                };
                caps.set_bounding(add(caps.bounding()));
                caps.set_effective(add(caps.effective()));
                caps.set_permitted(add(caps.permitted()));
            }
            p.set_capabilities(Some(caps));
        }
        if a.no_new_privs {
            p.set_no_new_privileges(Some(true));
        }
        p
    };
    let opts = runtime::ExecOptions {
        process,
        console_socket: a.console_socket.clone(),
        detach: a.detach,
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
    };
    Ok(runtime::exec(store, &a.id, &opts)?)
}

fn list(store: &StateStore, format: &str, quiet: bool) -> Result<()> {
    let mut rows = vec![];
    for id in store.ids()? {
        let Ok(rec) = store.load(&id) else { continue };
        let status = store.status(&rec);
        rows.push((rec, status));
    }
    let mut out = std::io::stdout().lock();
    if quiet {
        for (r, _) in &rows {
            writeln!(out, "{}", r.id)?;
        }
        return Ok(());
    }
    if format == "json" {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(r, s)| {
                serde_json::json!({
                    "ociVersion": runtime::state::OCI_VERSION,
                    "id": r.id,
                    "pid": if *s == Status::Stopped { 0 } else { r.pid },
                    "status": s.to_string(),
                    "bundle": r.bundle,
                    "rootfs": r.rootfs,
                    "created": r.created,
                    "annotations": r.annotations(),
                    "owner": owner_name(r.owner),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
        return Ok(());
    }
    let mut table = vec![[
        "ID".to_string(),
        "PID".into(),
        "STATUS".into(),
        "BUNDLE".into(),
        "CREATED".into(),
        "OWNER".into(),
    ]];
    for (r, s) in &rows {
        let pid = if *s == Status::Stopped { 0 } else { r.pid };
        table.push([
            r.id.clone(),
            pid.to_string(),
            s.to_string(),
            r.bundle.display().to_string(),
            r.created.clone(),
            owner_name(r.owner),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| table.iter().map(|row| row[i].len()).max().unwrap_or(0))
        .collect();
    for row in table {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 5 {
                    c.clone()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        writeln!(out, "{}", line.join("   ").trim_end())?;
    }
    Ok(())
}

fn owner_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("#{uid}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(&cli) {
        eprintln!("berth-runtime: {e:#}");
        return ExitCode::from(1);
    }
    match execute(&cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            if cli.log.is_some() {
                // runc callers (containerd, podman) read the error from the log file.
                tracing::error!("{e:#}");
            }
            eprintln!("berth-runtime: {e:#}");
            ExitCode::from(1)
        }
    }
}
