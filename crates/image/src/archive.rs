//! Archives of images: a tar holding an OCI layout or a docker-archive,
//! read in place when it is a file, spooled to a temp file under the store
//! root first when it is a stream (standard input). The work is
//! [`crate::load`]'s.

use std::io::Read;
use std::path::Path;

use crate::imported::ImportedImage;
use crate::load::{load, LoadError, LoadProgress, TarSource};
use crate::manifest::Platform;
use crate::store::ContentStore;

/// Loads every image of the archive file at `path` (from multi-platform
/// indexes, the manifest for `platform`) and unpacks their layers.
pub fn load_archive_file(
    store: &ContentStore,
    root: &Path,
    path: &Path,
    platform: &Platform,
    progress: &dyn LoadProgress,
) -> Result<Vec<ImportedImage>, LoadError> {
    let source = TarSource::open(path)?;
    load(store, Some(root), &source, platform, progress)
}

/// [`load_archive_file`] for an archive on an open file, named `name` in
/// errors (standard input redirected from a file, as in `berth load <
/// image.tar`): read in place when it is a regular file at offset 0,
/// spooled like a stream otherwise.
pub fn load_archive_open(
    store: &ContentStore,
    root: &Path,
    mut file: std::fs::File,
    name: &Path,
    platform: &Platform,
    progress: &dyn LoadProgress,
) -> Result<Vec<ImportedImage>, LoadError> {
    use std::io::Seek;
    let regular = file.metadata().is_ok_and(|m| m.is_file());
    if regular && file.stream_position().is_ok_and(|p| p == 0) {
        let source = TarSource::index(file, name)?;
        return load(store, Some(root), &source, platform, progress);
    }
    load_archive(store, root, file, platform, progress)
}

/// [`load_archive_file`] for an archive arriving on a stream: it is
/// written to a temp file under `root` (removed at the end) and read from
/// there.
pub fn load_archive(
    store: &ContentStore,
    root: &Path,
    mut input: impl Read,
    platform: &Platform,
    progress: &dyn LoadProgress,
) -> Result<Vec<ImportedImage>, LoadError> {
    let io = |op: &'static str| {
        move |err| LoadError::Io {
            op,
            path: root.to_path_buf(),
            err,
        }
    };
    let mut spool = tempfile::Builder::new()
        .prefix(".load-")
        .tempfile_in(root)
        .map_err(io("create a temp file in"))?;
    std::io::copy(&mut input, &mut spool).map_err(io("write the archive to a temp file in"))?;
    let file = spool.reopen().map_err(io("reopen the temp file in"))?;
    let source = TarSource::index(file, Path::new("(standard input)"))?;
    load(store, Some(root), &source, platform, progress)
}
