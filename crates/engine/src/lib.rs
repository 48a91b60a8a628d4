//! berth's container engine: an image plus Docker's `run` options become a
//! container. This first slice runs a container in the foreground and
//! removes it when it exits (`berth run --rm`); the container store,
//! berth-shim, detached containers and the rest of the lifecycle come next
//! (see docs/engine.md for what works today).
//!
//! - [`image_config`]: how the image says its containers run.
//! - [`user`]: `--user` against the image's /etc/passwd and /etc/group.
//! - [`spec`]: the OCI spec from the runtime's defaults, the image and the options.
//! - [`limits`], [`mounts`], [`confine`]: Docker's resource, mount and
//!   confinement flags as spec edits.
//! - [`lookup`]: the program checked before start (Docker's 126 and 127).
//! - [`run`]: the foreground run itself.

pub mod confine;
pub mod error;
pub mod image_config;
pub mod limits;
pub mod lookup;
pub mod mounts;
pub mod run;
pub mod spec;
pub mod user;

pub use error::EngineError;
pub use run::Engine;
pub use spec::RunOptions;
