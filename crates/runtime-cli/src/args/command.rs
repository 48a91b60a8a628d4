//! What the command line asks for: the global options and the subcommand
//! with its arguments, as the parser hands them to `main`.

use std::path::PathBuf;

/// The log line format of `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `time LEVEL message`.
    Text,
    /// runc's JSON lines: `{"level":…,"msg":…,"time":…}`.
    Json,
}

/// The whole command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    /// `--root`: the state directory.
    pub root: Option<PathBuf>,
    /// `--log`: the log file (stderr when absent).
    pub log: Option<PathBuf>,
    /// `--log-format`.
    pub log_format: LogFormat,
    /// `--debug`.
    pub debug: bool,
    /// `--systemd-cgroup`.
    pub systemd_cgroup: bool,
    /// What to do.
    pub command: Command,
}

/// `create`'s arguments (also `run`'s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateArgs {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub id: String,
}

/// `exec`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecArgs {
    pub process: Option<PathBuf>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub cap: Vec<String>,
    pub no_new_privs: bool,
    pub process_label: Option<String>,
    pub apparmor: Option<String>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    pub id: String,
    pub command: Vec<String>,
}

/// `update`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateArgs {
    pub resources: Option<PathBuf>,
    pub memory: Option<String>,
    pub memory_swap: Option<String>,
    pub memory_reservation: Option<String>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
    pub id: String,
}

/// A subcommand with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Create(CreateArgs),
    Start {
        id: String,
    },
    Run {
        create: CreateArgs,
        detach: bool,
        keep: bool,
    },
    State {
        id: String,
    },
    List {
        json: bool,
        quiet: bool,
    },
    Kill {
        all: bool,
        id: String,
        signal: String,
    },
    Delete {
        force: bool,
        id: String,
    },
    Exec(ExecArgs),
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    Ps {
        json: bool,
        id: String,
        ps_args: Vec<String>,
    },
    Update(UpdateArgs),
    Events {
        stats: bool,
        interval: String,
        id: String,
    },
    Spec {
        bundle: PathBuf,
        rootless: bool,
    },
    Features,
    /// Print this text (`--help`, `help`) and exit 0.
    Help(String),
    /// Print the version and exit 0.
    Version,
}
