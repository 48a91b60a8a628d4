//! berth's container engine: an image plus Docker's `run` options become a
//! container, kept in the container store (SQLite) through its lifecycle,
//! daemonless: a plain `run` supervises its container itself, the rest
//! run under one berth-shim each (see docs/engine.md for what works today).
//!
//! - [`image_config`]: how the image says its containers run.
//! - [`user`]: `--user` against the image's /etc/passwd and /etc/group;
//!   [`userns`]: `--userns` and `--uidmap`/`--gidmap` remapping.
//! - [`spec`]: the OCI spec from the runtime's defaults, the image and the options;
//!   [`hosts`]: the container's /etc/hosts and /etc/resolv.conf.
//! - [`limits`] (with [`blkio`]), [`mounts`], [`confine`], [`devices`],
//!   [`namespaces`]: Docker's resource, mount, confinement, device and
//!   namespace flags as spec edits.
//! - [`lookup`]: the program checked before start (Docker's 126 and 127).
//! - [`run`]: `run` and `create`, and the plain foreground run;
//!   [`detach`]: berth-shim started and called back; [`attach`]: `attach`,
//!   `run -it`, `start -a`; [`logging`]: log drivers and rotation; [`exec`]: `exec`;
//!   [`health`]: health checks; [`init`]: `--init`;
//!   [`lifecycle`]: `create`, `start`, `restart`; [`restart`]: restart policies;
//!   [`manage`]: `pause`, `unpause`, `rename`, `update`, `top`; [`diff`]: `diff`;
//!   [`stats`]: `stats`; [`archive`]: `export` and `cp`; [`events`]: the event log.
//! - [`rootfs`]: each container's writable root (`<root>/containers/<id>`), idmapped for a user namespace;
//! - [`store`], [`names`]: the container database and container names;
//!   [`volumes`]: named and anonymous volumes (the local driver).
//! - [`containers`]: listing, stopping, signalling, waiting for, removing
//!   and pruning containers; [`inspect`]: their JSON and `--format`.
//! - [`networks`]: networks and the default `bridge`; [`net_setup`]: a
//!   container's network while it runs; [`ports`]: published ports;
//!   [`dns`]: each user-defined network's DNS server; [`connect`]:
//!   `network connect` and `disconnect`.

pub mod archive;
pub mod attach;
pub mod blkio;
pub mod check;
pub mod cni;
pub mod commit;
pub mod confine;
pub mod connect;
mod container;
pub mod containers;
pub mod detach;
pub mod devices;
pub mod diff;
pub mod dns;
pub mod error;
pub mod events;
pub mod exec;
pub mod exec_spawn;
pub mod health;
pub mod hosts;
pub mod image_config;
pub mod images;
pub mod info;
pub mod init;
pub mod inspect;
pub mod lifecycle;
pub mod limits;
pub mod listing;
pub mod log_reader;
pub mod logging;
pub mod lookup;
pub mod manage;
pub mod mounts;
pub mod names;
pub mod namespaces;
pub mod net_setup;
pub mod network_inspect;
mod network_store;
pub mod networks;
pub mod ports;
pub mod restart;
pub mod rootfs;
pub mod run;
mod schema;
pub mod seccomp_profile;
mod shown;
pub mod spec;
pub mod stats;
pub mod store;
pub mod template;
mod tty;
pub mod user;
pub mod userns;
mod volume_files;
mod volume_store;
pub mod volumes;
mod volumes_from;

pub use error::EngineError;
pub use exec::ExecOptions;
pub use run::Engine;
pub use spec::RunOptions;
