//! berth's registry client: `pull` and `push` over the OCI distribution
//! protocol, and the credentials `login` stores. The protocol itself
//! (requests, token negotiation, chunked uploads, blob mounts) is the
//! `oci-client` crate's; this crate decides what to fetch and send,
//! verifies every byte into berth's content store, unpacks layers into
//! snapshots and names the result. It is async (tokio) because a pull or
//! push moves many blobs at once; the runtime and shim never link it.

pub mod auth;
pub mod connect;
pub mod manifest_fetch;
pub mod progress;
pub mod pull;
pub mod push;
pub mod sources;

pub use auth::AuthFile;
pub use connect::{Connection, RegistryError};
pub use progress::Progress;
pub use pull::{pull, PullOptions, Pulled};
pub use push::{push, PushOptions, Pushed};
