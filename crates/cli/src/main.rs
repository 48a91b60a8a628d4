//! berth: the Docker-style command line. Images so far: pull, push,
//! login/logout, load, save, import, images, tag, inspect, history, rmi,
//! prune, image mount/unmount. Parsing and printing only; the work is in
//! the `image` and `registry` libraries.

mod attach;
mod check;
mod commit;
mod containers;
mod copy;
mod events;
mod exec;
mod format;
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

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use image::refs::{normalize, ImageRecord, Refs};
use image::ContentStore;

/// The store's default place: /var/lib/berth for root; for another user
/// `$XDG_DATA_HOME/berth`, else `~/.local/share/berth` (rootless berth is
/// later work, but nothing of a user's goes under /var).
fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/berth");
    }
    std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("berth")
}

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
        default_value_os_t = default_root()
    )]
    root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a command in a new container (-d: in the background, under berth-shim).
    Run(Box<run::RunArgs>),
    /// List containers.
    Ps(ps::PsArgs),
    /// Remove containers.
    Rm(containers::RmArgs),
    /// Start stopped containers (under berth-shim; -a attaches).
    Start(containers::StartArgs),
    /// Attach our stdio to a running container.
    Attach(attach::AttachArgs),
    /// Make an image of a container's changes.
    Commit(commit::CommitArgs),
    /// Stop running containers (SIGTERM, then SIGKILL).
    Stop(containers::StopArgs),
    /// Signal running containers.
    Kill(containers::KillArgs),
    /// Wait for containers to stop; print their exit codes.
    Wait(containers::Targets),
    /// Show containers as JSON.
    Inspect(containers::InspectArgs),
    /// Show a detached container's output.
    Logs(logs::LogsArgs),
    /// Run a command in a running container.
    Exec(Box<exec::ExecArgs>),
    /// Make a container without starting it; prints its id.
    Create(Box<run::RunArgs>),
    /// Stop and start containers again.
    Restart(containers::StopArgs),
    /// Freeze every process of containers.
    Pause(manage::Containers),
    /// Thaw paused containers.
    Unpause(manage::Containers),
    /// Rename a container.
    Rename(manage::RenameArgs),
    /// Show a container's processes.
    Top(manage::TopArgs),
    /// Change containers' resource limits and restart policy.
    Update(Box<manage::UpdateArgs>),
    /// Show what a container changed in its root (A added, C changed, D deleted).
    Diff {
        /// The container.
        container: String,
    },
    /// Show containers' CPU, memory, network, block I/O and process counts.
    Stats(stats::StatsArgs),
    /// Show a container's published ports.
    Port {
        /// The container.
        container: String,
        /// Only this port (`80`, `80/tcp`).
        port: Option<String>,
    },
    /// Show the engine's events (then follow them, unless --until).
    Events(events::EventsArgs),
    /// Copy files between a container and the host (`-`: a tar stream).
    Cp(copy::CpArgs),
    /// Write a container's root as a tar archive.
    Export(copy::ExportArgs),
    /// System commands (df, prune, info).
    System {
        #[command(subcommand)]
        command: system::SystemCommand,
    },
    /// Show berth's version.
    Version {
        /// Go template (`{{.Client.Version}}`).
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Show what berth holds and how it runs.
    Info {
        /// Go template (`{{.Containers}}`, `{{json .}}`).
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Volume commands.
    Volume {
        #[command(subcommand)]
        command: volumes::VolumeCommand,
    },
    /// Serve the Docker Engine API (the docker CLI, Compose and the SDKs work against it).
    Serve {
        /// Where to listen (repeatable): unix:///PATH (default unix:///run/berth/berth.sock),
        /// tcp://ADDR:PORT (beyond loopback only with --tlsverify), or fd:// (systemd's sockets).
        #[arg(short = 'H', long = "host")]
        hosts: Vec<String>,
        /// Serve TCP over TLS (--tlscert, --tlskey).
        #[arg(long)]
        tls: bool,
        /// Serve TCP over mutual TLS: clients present a certificate --tlscacert signed.
        #[arg(long)]
        tlsverify: bool,
        /// The CA that signs client certificates.
        #[arg(long)]
        tlscacert: Option<PathBuf>,
        /// The server's certificate (PEM).
        #[arg(long)]
        tlscert: Option<PathBuf>,
        /// The server's key (PEM).
        #[arg(long)]
        tlskey: Option<PathBuf>,
        /// The OCI runtime containers are run with (default: berth-runtime beside berth).
        #[arg(long)]
        runtime: Option<PathBuf>,
    },
    /// Network commands.
    Network {
        #[command(subcommand)]
        command: networks::NetworkCommand,
    },
    /// Container commands.
    Container {
        #[command(subcommand)]
        command: containers::ContainerCommand,
    },
    /// Download an image from a registry.
    Pull {
        /// The image (`[registry/]name[:tag|@digest]`).
        reference: String,
        /// Platform to pick from a multi-platform image (os/arch[/variant]).
        #[arg(long)]
        platform: Option<String>,
        /// Allow plain HTTP (always allowed for localhost and 127.0.0.0/8).
        #[arg(long)]
        insecure: bool,
        /// Print only the image name.
        #[arg(short, long)]
        quiet: bool,
        /// Credentials file (default: <root>/auth.json).
        #[arg(long, env = "REGISTRY_AUTH_FILE")]
        authfile: Option<PathBuf>,
    },
    /// Upload an image to a registry.
    Push {
        /// The image (`registry/name[:tag]`).
        name: String,
        /// Push under another name (default: the image's own).
        destination: Option<String>,
        /// Allow plain HTTP (always allowed for localhost and 127.0.0.0/8).
        #[arg(long)]
        insecure: bool,
        /// Print only the manifest digest.
        #[arg(short, long)]
        quiet: bool,
        /// Credentials file (default: <root>/auth.json).
        #[arg(long, env = "REGISTRY_AUTH_FILE")]
        authfile: Option<PathBuf>,
    },
    /// Log in to a registry (credentials are checked, then stored 0600).
    Login {
        /// The registry (`host[:port]`).
        server: String,
        /// Username.
        #[arg(short, long)]
        username: Option<String>,
        /// Password (prefer --password-stdin).
        #[arg(short, long)]
        password: Option<String>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Allow plain HTTP (always allowed for localhost and 127.0.0.0/8).
        #[arg(long)]
        insecure: bool,
        /// Credentials file (default: <root>/auth.json).
        #[arg(long, env = "REGISTRY_AUTH_FILE")]
        authfile: Option<PathBuf>,
    },
    /// Remove stored credentials for a registry.
    Logout {
        /// The registry (`host[:port]`).
        server: String,
        /// Credentials file (default: <root>/auth.json).
        #[arg(long, env = "REGISTRY_AUTH_FILE")]
        authfile: Option<PathBuf>,
    },
    /// Load images from an OCI archive, an OCI layout directory or a docker-archive.
    Load {
        /// The archive or layout directory (default: standard input).
        #[arg(short, long)]
        input: Option<PathBuf>,
        /// Print nothing.
        #[arg(short, long)]
        quiet: bool,
        /// Platform to pick from multi-platform archives (os/arch[/variant]).
        #[arg(long)]
        platform: Option<String>,
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

use images::{find, list, short_id, LoadBars};

fn run(cli: &Cli) -> Result<()> {
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
            let img = image::import::import_rootfs(&store, source, name.clone(), change)?;
            image::snapshot::prepare(&store, root, &img)?;
            let key =
                name.unwrap_or_else(|| format!("<none>:{}", short_id(&img.config.to_string())));
            let rec = ImageRecord::of(&store, &img);
            refs_file
                .update(|refs| refs.insert(key.clone(), rec))
                .context("update images.json")?;
            image_event(root, "import", &key);
            println!("{}", img.config);
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

/// Records an image event (`berth events`), as Docker's: the name as the actor.
fn image_event(root: &Path, action: &str, name: &str) {
    engine::events::record(root, "image", action, name, &[("name", name)]);
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::from(1)
        }
    }
}
