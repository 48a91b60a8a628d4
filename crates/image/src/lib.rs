//! berth's image store. Today: the content-addressed blob store every other
//! part builds on (manifests, configs and layers are all blobs), and layer
//! unpacking into snapshot directories in overlay's format. It trusts
//! no byte it has not verified: a blob is hashed while it is written and
//! becomes visible, atomically, only under the digest it really has.
//! It knows nothing of containers or the runtime.

pub mod archive;
pub mod commit;
pub mod digest;
pub mod flatten;
pub mod gc;
pub mod import;
pub mod imported;
pub mod layout;
pub mod load;
pub mod manifest;
pub mod overlay;
pub mod refs;
pub mod save;
pub mod snapshot;
pub mod store;
pub mod unpack;

pub use digest::{Digest, DigestError};
pub use store::{ContentStore, StoreError};
pub use unpack::{apply_layer, LayerStats, UnpackError};
