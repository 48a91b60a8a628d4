//! berth's OCI runtime library: an OCI bundle in, a running container out.
//!
//! It owns namespaces, user mappings, the root filesystem and its mounts,
//! pivot_root, /dev, masked and read-only paths, process setup (user,
//! capabilities, rlimits, no_new_privs, environment, cwd), hooks, the
//! console, and the container state kept under the runtime root. It knows
//! nothing of images, networks or the engine, and it is synchronous: the
//! start path is a few forks and system calls, with no async runtime.
//!
//! One file per container operation: [`container_create`],
//! [`container_start`], [`container_kill`], [`container_delete`],
//! [`container_run`]; the start path is explained at the top of
//! `container_create`.

pub mod capabilities;
mod cgroup_mount;
pub mod console;
pub mod console_client;
mod container_cgroup;
pub mod container_create;
pub mod container_delete;
pub mod container_events;
pub mod container_exec;
pub mod container_kill;
pub mod container_pause;
pub mod container_run;
pub mod container_start;
pub mod devices;
pub mod error;
mod exec_trampoline;
pub mod features;
mod fork_guard;
pub mod hooks;
mod id_maps;
pub mod init;
/// The mount system calls (one copy, in the shared `berth-fs` crate).
pub use berth_fs::mount_api;
pub mod mounts;
pub mod namespaces;
pub mod prepared_binds;
pub mod process_attrs;
mod process_setup;
pub mod rootfs;
pub mod safe_path;
pub mod seccomp;
pub mod spec;
pub mod spec_default;
pub mod state;
pub mod sync;
pub mod tmpcopyup;

pub use container_create::{create, CreateOptions};
pub use container_delete::delete;
pub use container_exec::{exec, ExecOptions};
pub use container_kill::{kill, parse_signal};
pub use container_pause::{pause, pids, resume, update};
pub use container_run::run;
pub use container_start::start;
pub use error::{CleanupError, Result, RuntimeError};
pub use state::{ContainerRecord, OciState, StateStore, Status};
