//! The engine's errors, each naming what it was about, and the exit code
//! Docker gives each kind.

use std::path::PathBuf;

/// Why the engine could not run a container.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A file operation failed.
    #[error("{op} {path}: {err}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
    /// No image has this name.
    #[error("no such image: {0}")]
    NoSuchImage(String),
    /// The image's records or config are unusable.
    #[error("image {name}: {reason}")]
    BadImage {
        /// The image.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A `--user` (or the image's `USER`) that cannot be resolved.
    #[error("unable to find user {user:?}: {reason}")]
    User {
        /// The user as given.
        user: String,
        /// Why.
        reason: String,
    },
    /// An option value that is not acceptable.
    #[error("invalid {option} {value:?}: {reason}")]
    InvalidOption {
        /// The option (`--env`, `--workdir`, …).
        option: &'static str,
        /// The value given.
        value: String,
        /// Why.
        reason: String,
    },
    /// A feature of `docker run` that berth does not have yet.
    #[error("{0} is not implemented yet (see docs/engine.md)")]
    NotImplemented(&'static str),
    /// Neither the image nor the command line gives a program to run.
    #[error("no command specified: the image has no CMD or ENTRYPOINT")]
    NoCommand,
    /// The program is not in the container (Docker: 127).
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    /// The program cannot be executed (Docker: 126).
    #[error("exec: {0:?}: permission denied")]
    NotExecutable(String),
    /// The image store failed.
    #[error(transparent)]
    ImageStore(#[from] image::StoreError),
    /// An image cannot be removed as asked (in use, mounted, several names).
    #[error("unable to remove image {image}: {reason}")]
    ImageConflict {
        /// The image as named.
        image: String,
        /// Why.
        reason: String,
    },
    /// Loading an image archive failed.
    #[error(transparent)]
    ImageLoad(#[from] image::load::LoadError),
    /// An import failed (a bad `--change`, an unreadable archive).
    #[error(transparent)]
    ImageImport(#[from] image::import::ImportError),
    /// Saving an image archive failed.
    #[error(transparent)]
    ImageSave(#[from] image::save::SaveError),
    /// Collecting unused blobs and snapshots failed (nothing was removed
    /// when the names could not be read).
    #[error(transparent)]
    ImageGc(#[from] image::gc::GcError),
    /// Preparing or removing the container's root failed.
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    /// Snapshots could not be prepared.
    #[error(transparent)]
    Snapshot(#[from] image::snapshot::SnapshotError),
    /// The OCI runtime failed (its own message, not the container's).
    #[error("OCI runtime {step} failed: {message}")]
    Runtime {
        /// `create`, `start`, `delete`, …
        step: &'static str,
        /// What the runtime said.
        message: String,
    },
    /// The container database failed.
    #[error("container store {path}: {err}")]
    ContainerStore {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        err: String,
    },
    /// Another berth process held the container store longer than we waited.
    #[error("container store {}: database is locked (another berth process holds it)", path.display())]
    StoreBusy {
        /// The database file.
        path: PathBuf,
    },
    /// Another container has this name.
    #[error(
        "the container name {0:?} is already in use: remove that container or choose another name"
    )]
    NameInUse(String),
    /// `cp` into a container refused an entry of the archive (it would
    /// leave the directory, or replace a directory with a file or the
    /// reverse); what came before it was written.
    #[error("copy into the container refused at {path}: {reason}")]
    CopyRefused {
        /// The entry's path in the container.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No container has this id, id prefix or name.
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    /// An id prefix that more than one container has.
    #[error("{0} matches more than one container: give more of the id")]
    Ambiguous(String),
    /// An operation that needs a running container.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// Attach to a running container whose attach socket is gone (its
    /// supervisor died, or an older berth started it).
    #[error("container {0} serves no attach socket (its supervisor is gone, or an older berth started it): `berth system check` repairs the first")]
    NotAttachable(String),
    /// An operation refused while the container is paused.
    #[error("container {0} is paused: unpause it first")]
    Paused(String),
    /// `logs` of a container whose log driver keeps nothing.
    #[error("container {name}: the {driver} log driver keeps no log to read")]
    LogNotReadable {
        /// The container.
        name: String,
        /// Its log driver.
        driver: String,
    },
    /// An operation that needs a stopped container.
    #[error("container {0} is running: stop it first or use --force")]
    Running(String),
    /// No volume has this name.
    #[error("no such volume: {0}")]
    NoSuchVolume(String),
    /// A volume that containers use (running or stopped) cannot go.
    #[error("volume {name} is in use by container(s) {}: remove them first", containers.join(", "))]
    VolumeInUse {
        /// The volume.
        name: String,
        /// The ids of the containers that mount it.
        containers: Vec<String>,
    },
    /// The spec could not be built.
    #[error("container spec: {0}")]
    Spec(String),
    /// No network has this name or id.
    #[error("no such network: {0}")]
    NoSuchNetwork(String),
    /// A network name that another network has.
    #[error("network with name {0} already exists")]
    NetworkExists(String),
    /// A network that containers are on cannot go.
    #[error("network {name} has active endpoints (containers {}): remove them or disconnect them first", containers.join(", "))]
    NetworkInUse {
        /// The network.
        name: String,
        /// The containers on it.
        containers: Vec<String>,
    },
    /// A subnet that overlaps another network's, or the host's routes.
    #[error("subnet {subnet} overlaps {other}")]
    SubnetOverlap {
        /// The subnet asked for.
        subnet: String,
        /// What it overlaps (a network, or a route of the host).
        other: String,
    },
    /// An address that cannot be had on a network.
    #[error("network {network}: {reason}")]
    Address {
        /// The network.
        network: String,
        /// Why.
        reason: String,
    },
    /// A network's DNS server failed.
    #[error("network {network}: {reason}")]
    Dns {
        /// The network.
        network: String,
        /// What went wrong.
        reason: String,
    },
    /// A host port a socket of the host's holds.
    #[error("cannot publish {port}: address already in use")]
    PortInUse {
        /// `ip:port/proto`.
        port: String,
    },
    /// Setting up or taking down a container's network failed.
    #[error("container {id}: network: {err}")]
    Network {
        /// The container.
        id: String,
        /// What failed.
        err: network::NetworkError,
    },
}

impl EngineError {
    /// The exit status `docker run` gives this error: 127 when the program
    /// is not there, 126 when it cannot run, 125 for everything else
    /// (berth itself failed).
    pub fn exit_code(&self) -> u8 {
        match self {
            EngineError::NotFound(_) => 127,
            EngineError::NotExecutable(_) => 126,
            _ => 125,
        }
    }
}

/// A flag's value refused, naming the flag, the value and why.
pub(crate) fn invalid(option: &'static str, value: &str, reason: impl Into<String>) -> EngineError {
    EngineError::InvalidOption {
        option,
        value: value.to_string(),
        reason: reason.into(),
    }
}
