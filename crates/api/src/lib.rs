//! `berth serve`: the Docker Engine API in front of the engine, so the
//! docker CLI, Compose and the SDKs work against berth. The server keeps
//! no state of its own: every request is an engine call (run on tokio's
//! blocking pool, as the engine is synchronous), so `berth` and `berth
//! serve` see the same containers, and restarting the server touches no
//! running container. This is the only async code in berth.
//!
//! - [`server`]: the listeners (unix sockets, TCP, systemd's) and connections;
//!   [`tls`]: TLS and mutual TLS for TCP;
//! - [`router`]: the version prefix, the routes, the errors;
//! - [`system`], [`containers`], [`container_ops`], [`archive`], [`create`], [`attach`], [`attach_ws`],
//!   [`exec`], [`logs`], [`events`],
//!   [`images`], [`image_ops`], [`volumes`], [`networks`]: the endpoints (docs/api.md lists each with its state);
//! - [`http`]: bodies, queries, bounded reads; [`error`]: status codes;
//!   `fields`: typed reads of JSON bodies.

pub mod archive;
pub mod attach;
pub mod attach_ws;
pub mod container_ops;
pub mod containers;
pub mod create;
pub mod error;
pub mod events;
pub mod exec;
mod fields;
pub mod http;
pub mod image_ops;
pub mod images;
pub mod logs;
pub mod networks;
pub mod router;
pub mod server;
pub mod system;
pub mod tls;
pub mod volumes;

pub use error::ApiError;
pub use server::{serve, Host, ServeError, DEFAULT_HOST};
pub use tls::TlsOptions;
