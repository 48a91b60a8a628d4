//! The runtime's error type. Every variant says what was being done to what,
//! so that a one-line rendering is enough for a user to act on it.

use std::path::PathBuf;

use nix::errno::Errno;

/// Errors returned by the runtime library.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// config.json could not be read or parsed.
    #[error("{path}: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A field of the spec has a value the runtime refuses.
    #[error("invalid spec: {field}: {reason}")]
    InvalidSpec {
        /// The offending field, as a JSON path such as `linux.namespaces[2].type`.
        field: String,
        /// Why it is refused.
        reason: String,
    },
    /// The spec asks for something this kernel or this runtime cannot do.
    #[error("unsupported: {field}: {reason}")]
    Unsupported {
        /// The field that asks for it.
        field: String,
        /// What is missing.
        reason: String,
    },
    /// A container id is malformed.
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId {
        /// The id as given.
        id: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A container with this id already exists.
    #[error("container {0:?} already exists")]
    Exists(String),
    /// No container with this id exists.
    #[error("container {0:?} does not exist")]
    NotFound(String),
    /// The container is not in a state that allows the operation.
    #[error("container {id:?} is {status}: cannot {operation}")]
    WrongState {
        /// The container.
        id: String,
        /// Its current status.
        status: String,
        /// What was asked.
        operation: &'static str,
    },
    /// A system call failed.
    #[error("{call} {target}: {errno}")]
    Sys {
        /// The call (and step), e.g. `pivot_root` or `mount proc`.
        call: &'static str,
        /// What it was applied to (a path, pid, or name).
        target: String,
        /// The kernel's answer.
        errno: Errno,
    },
    /// A file operation failed.
    #[error("{op} {path}: {err}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        err: std::io::Error,
    },
    /// A hook failed or timed out.
    #[error("{kind} hook {path}: {reason}")]
    Hook {
        /// Which hook list (prestart, createRuntime, ...).
        kind: &'static str,
        /// The hook's path.
        path: PathBuf,
        /// What happened.
        reason: String,
    },
    /// The container's init process reported a failure while it was being set up.
    #[error("container init: {0}")]
    Init(String),
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] cgroups::CgroupError),
    /// The state root is not the caller's own directory (a symlink, or
    /// owned by another user): what it holds may have been planted.
    #[error("state root: {0}")]
    StateRoot(#[from] berth_fs::PrivateDirError),
    /// The container runs without a cgroup (rootless, none delegated), so
    /// the operation, which acts on the cgroup, cannot be done.
    #[error("container {id:?} has no cgroup: cannot {operation}")]
    NoCgroup {
        /// The container.
        id: String,
        /// What was asked.
        operation: &'static str,
    },
    /// A signal given by name or number is not one.
    #[error("invalid signal {value:?}: {reason}")]
    InvalidSignal {
        /// The signal as given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// create, run and exec fork and run code in the child, which is only
    /// sound in a single-threaded caller.
    #[error("{operation} must be called from a single-threaded process (this one has {threads} threads): run it in a child process")]
    NotSingleThreaded {
        /// What was asked.
        operation: &'static str,
        /// How many threads the process has.
        threads: usize,
    },
    /// A step failed, and undoing what it had done failed too: both are
    /// kept, the cause first.
    #[error("{error} (and while cleaning up: {})", join_cleanup(.cleanup))]
    WithCleanup {
        /// What failed first.
        error: Box<RuntimeError>,
        /// What failed while undoing it.
        cleanup: Vec<CleanupError>,
    },
    /// Anything else that carries its own full description.
    #[error("{0}")]
    Other(String),
}

/// A cleanup step that failed, with what it was cleaning up.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    /// The container's cgroup could not be removed.
    #[error("remove cgroup: {0}")]
    Cgroup(#[from] cgroups::CgroupError),
    /// The container's state directory could not be removed.
    #[error("remove state: {0}")]
    State(Box<RuntimeError>),
}

fn join_cleanup(errs: &[CleanupError]) -> String {
    errs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl RuntimeError {
    /// A failed system call on `target`.
    pub fn sys(call: &'static str, target: impl std::fmt::Display, errno: Errno) -> Self {
        RuntimeError::Sys {
            call,
            target: target.to_string(),
            errno,
        }
    }

    /// A failed file operation on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            op,
            path: path.into(),
            err: source,
        }
    }

    /// An invalid spec field.
    pub fn spec(field: impl Into<String>, reason: impl Into<String>) -> Self {
        RuntimeError::InvalidSpec {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A spec field asking for something unsupported.
    pub fn unsupported(field: impl Into<String>, reason: impl Into<String>) -> Self {
        RuntimeError::Unsupported {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The runtime's result type.
pub type Result<T> = std::result::Result<T, RuntimeError>;
