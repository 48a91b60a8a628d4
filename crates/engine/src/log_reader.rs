//! Reading a container's json-file log as `logs` does, for the command
//! line and the API alike: every whole line there is (the rotated files
//! first, oldest first, then the current one), then, to follow it, the
//! lines written since. A rotation while following is seen by the current
//! file's inode changing: the rest of the file that became `.1` comes
//! first, then the new file from its start. A line still being written
//! (no newline yet) is left for the next read.

use std::io::{BufRead, Seek};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A reader positioned after the lines it has given.
#[derive(Debug)]
pub struct LogReader {
    path: PathBuf,
    pos: u64,
    inode: u64,
}

/// The whole lines of `file` from `from`, and where they end.
fn whole_lines(file: std::fs::File, from: u64) -> std::io::Result<(Vec<String>, u64)> {
    let mut r = std::io::BufReader::new(file);
    r.seek(std::io::SeekFrom::Start(from))?;
    let (mut lines, mut pos) = (vec![], from);
    loop {
        let mut l = String::new();
        let n = r.read_line(&mut l)?;
        if n == 0 || !l.ends_with('\n') {
            return Ok((lines, pos));
        }
        pos += n as u64;
        lines.push(l);
    }
}

impl LogReader {
    /// Every whole line of the log at `path` now, and a reader to follow
    /// it; None when nothing was ever written (the file does not exist).
    pub fn open(path: &Path) -> std::io::Result<Option<(LogReader, Vec<String>)>> {
        let mut lines = vec![];
        let files = crate::logging::log_files(path);
        for old in &files[..files.len() - 1] {
            if let Ok(f) = std::fs::File::open(old) {
                lines.extend(whole_lines(f, 0)?.0);
            }
        }
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let inode = file.metadata()?.ino();
        let (current, pos) = whole_lines(file, 0)?;
        lines.extend(current);
        Ok(Some((
            LogReader {
                path: path.to_path_buf(),
                pos,
                inode,
            },
            lines,
        )))
    }

    /// The whole lines written since the last read; None when the log is
    /// gone (the container was removed).
    pub fn more(&mut self) -> std::io::Result<Option<Vec<String>>> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut lines = vec![];
        let inode = file.metadata()?.ino();
        if inode != self.inode {
            // Rotated: the file we were reading is now `.1`.
            self.inode = inode;
            let rotated = crate::logging::log_files(&self.path);
            if let Some(old) = rotated.iter().rev().nth(1) {
                if let Ok(f) = std::fs::File::open(old) {
                    lines.extend(whole_lines(f, self.pos)?.0);
                }
            }
            self.pos = 0;
        }
        let (new, pos) = whole_lines(file, self.pos)?;
        self.pos = pos;
        lines.extend(new);
        Ok(Some(lines))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn lines_come_whole_in_order_across_a_rotation() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("log.json");
        assert!(LogReader::open(&log).unwrap().is_none());
        std::fs::write(d.path().join("log.json.1"), "a\nb\n").unwrap();
        std::fs::write(&log, "c\npart").unwrap();
        let (mut r, lines) = LogReader::open(&log).unwrap().unwrap();
        assert_eq!(lines, ["a\n", "b\n", "c\n"]);
        assert!(r.more().unwrap().unwrap().is_empty());
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(b"ial\nd\n")
            .unwrap();
        assert_eq!(r.more().unwrap().unwrap(), ["partial\n", "d\n"]);
        // Rotated: the old file's rest first, then the new one.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(b"e\n")
            .unwrap();
        std::fs::rename(&log, d.path().join("log.json.1")).unwrap();
        std::fs::write(&log, "f\n").unwrap();
        assert_eq!(r.more().unwrap().unwrap(), ["e\n", "f\n"]);
        std::fs::remove_file(&log).unwrap();
        assert!(r.more().unwrap().is_none());
    }
}
