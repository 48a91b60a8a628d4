//! Where blobs are known to be: `<root>/blob-sources.json` maps a blob
//! digest to the `registry/repository` names it was pulled from or pushed
//! to, so a push to another repository of the same registry can mount the
//! blob (`Mounted from …`) instead of uploading it again.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The blob-sources file of a store root.
pub struct Sources {
    path: PathBuf,
}

impl Sources {
    /// The file under `root`.
    pub fn new(root: &Path) -> Self {
        Sources {
            path: root.join("blob-sources.json"),
        }
    }

    fn load(&self) -> BTreeMap<String, BTreeSet<String>> {
        std::fs::read(&self.path)
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default()
    }

    /// The repositories (`registry/repository`) known to hold `digest`.
    pub fn of(&self, digest: &str) -> Vec<String> {
        self.load()
            .remove(digest)
            .map(|s| s.into_iter().collect())
            .unwrap_or_default()
    }

    /// Records that `repository` (`registry/repository`) holds `digests`.
    /// A hint only: losing a record costs an upload, so a failure to
    /// write is ignored.
    pub fn record<'a>(&self, repository: &str, digests: impl IntoIterator<Item = &'a str>) {
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.path.with_extension("lock"));
        let _guard = lock
            .ok()
            .and_then(|f| nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).ok());
        let mut map = self.load();
        for d in digests {
            map.entry(d.to_string())
                .or_default()
                .insert(repository.to_string());
        }
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let ok = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(&map).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if ok.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}
