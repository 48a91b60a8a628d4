//! The container's log as the shim writes it: one JSON object per line,
//! `{"log":…,"stream":…,"time":…}`, as Docker's json-file driver writes
//! them, rotated at a size limit into `LOG.1` … `LOG.<max-file - 1>`
//! (`--log-opt max-size`, `max-file`). The `none` driver writes nothing.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

/// Where and how the log is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The log file; rotated files get `.1`, `.2`, … appended.
    pub path: PathBuf,
    /// False for the `none` driver.
    pub enabled: bool,
    /// Rotate when the file would grow past this many bytes.
    pub max_size: Option<u64>,
    /// How many files to keep, the current one included (at least 1).
    pub max_file: u32,
    /// Attributes written with every entry (`"attrs"`, `--log-opt labels/env`).
    pub attrs: Vec<(String, String)>,
}

/// An open log.
pub struct LogWriter {
    config: LogConfig,
    file: Option<File>,
    size: u64,
}

/// The path of rotated file `n` (0 is the current file).
pub fn rotated(path: &std::path::Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl LogWriter {
    /// Opens (appends to) the log.
    pub fn open(config: LogConfig) -> LogWriter {
        let file = config.enabled.then(|| open_append(&config.path)).flatten();
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        LogWriter { config, file, size }
    }

    /// Writes one log entry for `text` (a line with its newline, or a
    /// partial line) from `stream`.
    pub fn write(&mut self, stream: &str, text: &[u8]) {
        if !self.config.enabled {
            return;
        }
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut line = serde_json::json!({
            "log": String::from_utf8_lossy(text),
            "stream": stream,
        });
        if !self.config.attrs.is_empty() {
            line["attrs"] = self
                .config
                .attrs
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        line["time"] = now.into();
        let line = format!("{line}\n");
        if let Some(max) = self.config.max_size {
            if self.size > 0 && self.size + line.len() as u64 > max {
                self.rotate();
            }
        }
        if let Some(f) = self.file.as_mut() {
            if f.write_all(line.as_bytes()).is_ok() {
                self.size += line.len() as u64;
            }
        }
    }

    /// Moves `LOG.n` to `LOG.n+1` (the oldest goes), `LOG` to `LOG.1`,
    /// and starts an empty `LOG`. With one file kept, empties it.
    fn rotate(&mut self) {
        let path = self.config.path.clone();
        self.file = None;
        let keep = self.config.max_file.max(1);
        if keep == 1 {
            self.file = File::create(&path).ok();
        } else {
            let _ = std::fs::remove_file(rotated(&path, keep - 1));
            for n in (0..keep - 1).rev() {
                let _ = std::fs::rename(rotated(&path, n), rotated(&path, n + 1));
            }
            self.file = open_append(&path);
        }
        self.size = 0;
    }
}

fn open_append(path: &std::path::Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(p: &std::path::Path) -> usize {
        std::fs::read_to_string(p).map_or(0, |s| s.lines().count())
    }

    #[test]
    fn rotation_keeps_max_file_files_each_under_max_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("json.log");
        let mut log = LogWriter::open(LogConfig {
            path: path.clone(),
            enabled: true,
            max_size: Some(300),
            max_file: 3,
            attrs: vec![],
        });
        for i in 0..40 {
            log.write("stdout", format!("line {i}\n").as_bytes());
        }
        for n in 0..3 {
            let f = rotated(&path, n);
            let size = std::fs::metadata(&f).unwrap().len();
            assert!(size <= 300 && size > 0, "{} is {size} bytes", f.display());
        }
        assert!(!rotated(&path, 3).exists());
        // The newest line is in the current file, the oldest kept in .2.
        let current = std::fs::read_to_string(&path).unwrap();
        assert!(current.contains("line 39"), "{current}");
        assert!(lines(&path) + lines(&rotated(&path, 1)) + lines(&rotated(&path, 2)) < 40);
    }

    #[test]
    fn the_none_driver_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("json.log");
        let mut log = LogWriter::open(LogConfig {
            path: path.clone(),
            enabled: false,
            max_size: None,
            max_file: 1,
            attrs: vec![("k".into(), "v".into())],
        });
        log.write("stdout", b"x\n");
        assert!(!path.exists());
    }
}
