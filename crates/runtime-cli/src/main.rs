//! berth-runtime: a runc-compatible OCI runtime command line. Parsing and
//! printing only; every operation lives in the `runtime` library.

mod args;
mod exec;
mod list;
mod log;
mod update;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use runtime::{CreateOptions, StateStore};

use args::{Cli, Command, CreateArgs};

/// Installs the logger of `--log`, `--log-format` and `--debug`.
fn init_logging(cli: &Cli) -> Result<()> {
    let level = if cli.debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::WARN
    };
    let out: Box<dyn Write + Send> = match &cli.log {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("open log file {}", path.display()))?,
        ),
        None => Box::new(std::io::stderr()),
    };
    tracing::subscriber::set_global_default(log::LineLogger::new(level, cli.log_format, out))
        .context("install the logger")?;
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
        Command::List { json, quiet } => list::list(&store, *json, *quiet)?,
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
        Command::Exec(a) => return exec::exec(&store, a),
        Command::Pause { id } => runtime::pause(&store, id)?,
        Command::Resume { id } => runtime::resume(&store, id)?,
        Command::Ps { json, id, ps_args } => list::ps(&store, id, *json, ps_args)?,
        Command::Update(a) => runtime::update(&store, &a.id, &update::update_resources(a)?)?,
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
        Command::Help(text) => print!("{text}"),
        Command::Version => println!("berth-runtime {}", env!("CARGO_PKG_VERSION")),
        Command::Features => println!(
            "{}",
            serde_json::to_string_pretty(&runtime::features::features())?
        ),
    }
    Ok(0)
}

/// The command line as UTF-8 strings (a path that is not UTF-8 is refused
/// by name rather than mangled).
fn command_line() -> Result<Vec<String>> {
    std::env::args_os()
        .skip(1)
        .enumerate()
        .map(|(i, a)| {
            a.into_string()
                .map_err(|a| anyhow::anyhow!("argument {} ({a:?}) is not valid UTF-8", i + 1))
        })
        .collect()
}

fn main() -> ExitCode {
    let cli = match command_line().and_then(|words| Ok(args::parse(words)?)) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("berth-runtime: {e:#}");
            return ExitCode::from(1);
        }
    };
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
