//! berth's command line as clap parses it: the commands and their
//! arguments (each command's own arguments live beside its code), and
//! which commands only read and print.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{
    attach, commit, containers, copy, events, exec, logs, manage, networks, ps, run, stats, system,
    volumes,
};

/// The store's default place: /var/lib/berth for root; for another user
/// `$XDG_DATA_HOME/berth`, else `~/.local/share/berth` (rootless berth is
/// later work, but nothing of a user's goes under /var).
pub(crate) fn default_root() -> PathBuf {
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
pub(crate) struct Cli {
    /// Root of berth's store.
    #[arg(
        long,
        global = true,
        env = "BERTH_ROOT",
        default_value_os_t = default_root()
    )]
    pub(crate) root: PathBuf,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
pub(crate) enum ImageCommand {
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
impl Command {
    /// Whether the command only reads the store and prints. Such a command
    /// ends quietly, killed by SIGPIPE as other Unix tools are, when its
    /// reader goes away (`berth ps | head -1`). The others keep SIGPIPE
    /// ignored (Rust's default): they see EPIPE as an error and finish or
    /// undo their work, and the ones that supervise a container or relay
    /// its streams (run, start, attach, exec, serve) must not die of it.
    pub(crate) fn only_prints(&self) -> bool {
        use containers::ContainerCommand as C;
        use networks::NetworkCommand as N;
        use system::SystemCommand as S;
        use volumes::VolumeCommand as V;
        match self {
            Command::Ps(_)
            | Command::Inspect(_)
            | Command::Logs(_)
            | Command::Top(_)
            | Command::Diff { .. }
            | Command::Stats(_)
            | Command::Port { .. }
            | Command::Events(_)
            | Command::Export(_)
            | Command::Version { .. }
            | Command::Info { .. }
            | Command::Images { .. }
            | Command::History { .. }
            | Command::Save { .. } => true,
            Command::Image { command } => matches!(
                command,
                ImageCommand::Ls { .. } | ImageCommand::Inspect { .. }
            ),
            Command::Container { command } => matches!(
                command,
                C::Inspect(_) | C::Logs(_) | C::Top(_) | C::Diff { .. }
            ),
            Command::Volume { command } => matches!(command, V::Ls(_) | V::Inspect { .. }),
            Command::Network { command } => matches!(command, N::Ls(_) | N::Inspect { .. }),
            Command::System { command } => matches!(command, S::Df { .. } | S::Info { .. }),
            _ => false,
        }
    }
}
