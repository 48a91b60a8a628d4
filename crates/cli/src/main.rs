//! berth: the Docker-style command line. Parsing and printing only; the
//! work is in the engine, `image` and `registry` libraries. `command`
//! has the commands as clap parses them; `main` sends each to its
//! module.

mod attach;
mod check;
mod command;
mod commit;
mod containers;
mod copy;
mod events;
mod exec;
mod format;
mod image_commands;
mod images;
mod logs;
mod manage;
mod networks;
mod progress;
mod ps;
mod remote;
mod run;
mod stats;
mod system;
mod volumes;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use command::{Cli, Command};

/// `berth serve`: the Docker Engine API until SIGINT or SIGTERM.
fn serve_main(
    root: &Path,
    hosts: &[String],
    runtime: Option<PathBuf>,
    tls: Option<api::TlsOptions>,
) -> Result<()> {
    let hosts = if hosts.is_empty() {
        vec![api::DEFAULT_HOST.to_string()]
    } else {
        hosts.to_vec()
    };
    let hosts = hosts
        .iter()
        .map(|h| api::Host::parse(h))
        .collect::<Result<Vec<_>, _>>()?;
    let engine = containers::engine(root, runtime)?;
    api::serve(engine, &hosts, tls.as_ref())?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.only_prints() {
        // SAFETY: SIG_DFL is a valid disposition for SIGPIPE, and no
        // handler of ours is replaced (Rust's start-up set SIG_IGN).
        let dfl = nix::sys::signal::SigHandler::SigDfl;
        let _ = unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, dfl) };
    }
    let containers = match &cli.command {
        Command::Run(args) => return run::main(&cli.root, args),
        Command::Create(args)
        | Command::Container {
            command: containers::ContainerCommand::Create(args),
        } => return run::create_main(&cli.root, args),
        Command::Restart(a) => Some(containers::restart_main(&cli.root, a)),
        Command::Commit(a) => Some(commit::main(&cli.root, a)),
        Command::Pause(a) => Some(manage::pause_main(&cli.root, a)),
        Command::Unpause(a) => Some(manage::unpause_main(&cli.root, a)),
        Command::Rename(a) => Some(manage::rename_main(&cli.root, a)),
        Command::Top(a) => Some(manage::top_main(&cli.root, a)),
        Command::Update(a) => Some(manage::update_main(&cli.root, a)),
        Command::Diff { container } => Some(manage::diff_main(&cli.root, container)),
        Command::Stats(a) => Some(stats::stats_main(&cli.root, a)),
        Command::System { command } => Some(system::main(&cli.root, command)),
        Command::Cp(a) => Some(copy::cp_main(&cli.root, a)),
        Command::Events(a) => Some(events::events_main(&cli.root, a)),
        Command::Export(a) => Some(copy::export_main(&cli.root, a)),
        Command::Port { container, port } => {
            Some(manage::port_main(&cli.root, container, port.as_deref()))
        }
        Command::Version { format } => Some(system::version_main(&cli.root, format.as_deref())),
        Command::Info { format } => Some(system::info_main(&cli.root, format.as_deref())),
        Command::Serve {
            hosts,
            runtime,
            tls,
            tlsverify,
            tlscacert,
            tlscert,
            tlskey,
        } => Some((|| {
            let tls = match (*tls || *tlsverify, tlscert, tlskey) {
                (false, None, None) => None,
                (_, Some(cert), Some(key)) => Some(api::TlsOptions {
                    verify: *tlsverify,
                    ca: tlscacert.clone(),
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => anyhow::bail!("--tls and --tlsverify need --tlscert and --tlskey"),
            };
            serve_main(&cli.root, hosts, runtime.clone(), tls)
        })()),
        Command::Exec(a)
        | Command::Container {
            command: containers::ContainerCommand::Exec(a),
        } => return exec::main(&cli.root, a),
        Command::Ps(a) => Some(ps::ps_main(&cli.root, a)),
        Command::Rm(a) => Some(containers::rm_main(&cli.root, a)),
        Command::Start(a)
        | Command::Container {
            command: containers::ContainerCommand::Start(a),
        } => return containers::start_main(&cli.root, a),
        Command::Attach(a)
        | Command::Container {
            command: containers::ContainerCommand::Attach(a),
        } => return attach::main(&cli.root, a),
        Command::Stop(a) => Some(containers::stop_main(&cli.root, a)),
        Command::Kill(a) => Some(containers::kill_main(&cli.root, a)),
        Command::Wait(a) => Some(containers::wait_main(&cli.root, a)),
        Command::Inspect(a) => Some(containers::inspect_main(&cli.root, a)),
        Command::Logs(a) => Some(logs::logs_main(&cli.root, a)),
        Command::Volume { command } => Some(volumes::main(&cli.root, command)),
        Command::Network { command } => Some(networks::main(&cli.root, command)),
        Command::Container { command } => Some(containers::container_main(&cli.root, command)),
        _ => None,
    };
    if let Some(result) = containers {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("berth: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    match image_commands::main(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::from(1)
        }
    }
}
