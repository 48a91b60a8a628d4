//! What a pull or push reports as it goes, per blob. The library only
//! calls these; the command line draws bars or prints lines.

/// Receives progress of a pull or push. Blob ids are the short (12 hex)
/// digests Docker prints.
pub trait Progress: Send + Sync {
    /// A line of its own (`latest: Pulling from library/busybox`).
    fn message(&self, line: &str);
    /// Work on blob `id` starts: `action` is "Downloading" or "Pushing",
    /// `total` its size when known.
    fn start(&self, id: &str, action: &str, total: Option<u64>);
    /// `bytes` more of blob `id` moved.
    fn advance(&self, id: &str, bytes: u64);
    /// Blob `id` is finished: `status` is Docker's word for how
    /// ("Pull complete", "Already exists", "Pushed", "Mounted from …").
    fn done(&self, id: &str, status: &str);
}

/// Reports nothing (`--quiet`, tests).
pub struct Silent;

impl Progress for Silent {
    fn message(&self, _: &str) {}
    fn start(&self, _: &str, _: &str, _: Option<u64>) {}
    fn advance(&self, _: &str, _: u64) {}
    fn done(&self, _: &str, _: &str) {}
}

/// The short id of a digest string (`sha256:abcdef…` → 12 hex digits).
pub fn short(digest: &str) -> String {
    let hex = digest.rsplit(':').next().unwrap_or(digest);
    hex.chars().take(12).collect()
}
