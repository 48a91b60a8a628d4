//! `--log-driver` and `--log-opt`: which drivers berth has (json-file,
//! local, none), their options as Docker takes them, and the files a
//! container's log is in (the current one and those rotated out).
//!
//! berth-shim writes both json-file and local logs as json-file lines
//! (Docker's local driver uses a binary format of its own, which no tool
//! reads but the daemon); local differs in its defaults, as in Docker:
//! rotated at 20 MB, five files kept.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// `a,b,c` as a list (empty items dropped).
fn list(v: &str) -> Vec<String> {
    v.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// A container's log driver and its options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSettings {
    /// `json-file` (the default), `local` or `none`.
    #[serde(rename = "Type", default)]
    pub driver: String,
    /// Rotate at this many bytes (`max-size`).
    #[serde(rename = "MaxSize", default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// Keep this many files (`max-file`).
    #[serde(rename = "MaxFile", default, skip_serializing_if = "Option::is_none")]
    pub max_file: Option<u32>,
    /// The container labels whose values go with every entry (`labels`).
    #[serde(rename = "Labels", default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The environment variables whose values go with every entry (`env`).
    #[serde(rename = "Env", default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// What `labels` and `env` found when the container was made: the
    /// attributes of every entry (`logs --details` shows them).
    #[serde(
        rename = "Attrs",
        default,
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub attrs: std::collections::BTreeMap<String, String>,
}

const DRIVERS: &str = "json-file, local, none";

impl LogSettings {
    /// Checks `--log-driver` and `--log-opt KEY=VALUE`s.
    pub fn parse(driver: Option<&str>, opts: &[String]) -> Result<LogSettings, EngineError> {
        let driver = driver.unwrap_or("json-file");
        let bad = |option, value: &str, reason: String| EngineError::InvalidOption {
            option,
            value: value.to_string(),
            reason,
        };
        let mut s = LogSettings {
            driver: driver.to_string(),
            ..Default::default()
        };
        match driver {
            "json-file" => {}
            "local" => {
                s.max_size = Some(20 << 20);
                s.max_file = Some(5);
            }
            "none" => {}
            other => {
                return Err(bad(
                    "--log-driver",
                    other,
                    format!("berth has the log drivers {DRIVERS}"),
                ))
            }
        }
        for o in opts {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| bad("--log-opt", o, "expected KEY=VALUE".into()))?;
            match (driver, k) {
                ("none", _) => {
                    return Err(bad(
                        "--log-opt",
                        o,
                        "the none log driver takes no options".into(),
                    ))
                }
                (_, "max-size") => {
                    let n = crate::limits::parse_size("--log-opt max-size", v)?;
                    if n <= 0 {
                        return Err(bad("--log-opt", o, "max-size must be positive".into()));
                    }
                    s.max_size = Some(n as u64);
                }
                (_, "max-file") => {
                    let n: u32 = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        bad("--log-opt", o, "max-file must be a whole number ≥ 1".into())
                    })?;
                    s.max_file = Some(n);
                }
                // Compression of rotated files is not done: said, not ignored.
                (_, "compress") if v == "false" => {}
                (_, "labels") => s.labels = list(v),
                (_, "env") => s.env = list(v),
                _ => {
                    return Err(bad(
                        "--log-opt",
                        o,
                        format!("unknown log opt {k:?} for the {driver} log driver (berth takes max-size, max-file, labels, env, compress=false)"),
                    ))
                }
            }
        }
        if s.max_file.is_some_and(|n| n > 1) && s.max_size.is_none() {
            return Err(bad(
                "--log-opt",
                "max-file",
                "max-file needs max-size (without it the log is never rotated)".into(),
            ));
        }
        Ok(s)
    }

    /// Fills [`Self::attrs`] from the container's `labels` and `env`
    /// (`KEY=value` strings), as Docker's json-file does when it starts.
    pub fn set_attrs(
        &mut self,
        labels: &std::collections::BTreeMap<String, String>,
        env: &[String],
    ) {
        self.attrs.clear();
        for k in &self.labels {
            if let Some(v) = labels.get(k) {
                self.attrs.insert(k.clone(), v.clone());
            }
        }
        for k in &self.env {
            if let Some(v) = env
                .iter()
                .find_map(|e| e.split_once('=').filter(|(ek, _)| ek == k).map(|(_, v)| v))
            {
                self.attrs.insert(k.clone(), v.to_string());
            }
        }
    }

    /// Whether `logs` can read it.
    pub fn readable(&self) -> bool {
        self.driver != "none"
    }

    /// The driver's name as inspect shows it.
    pub fn name(&self) -> &str {
        if self.driver.is_empty() {
            "json-file"
        } else {
            &self.driver
        }
    }

    /// berth-shim's options for this log.
    pub fn shim_args(&self) -> Vec<String> {
        let mut a = vec![];
        if !self.readable() {
            a.extend(["--log-driver".into(), "none".into()]);
        }
        if let Some(n) = self.max_size {
            a.extend(["--log-max-size".into(), n.to_string()]);
        }
        if let Some(n) = self.max_file {
            a.extend(["--log-max-file".into(), n.to_string()]);
        }
        if !self.attrs.is_empty() {
            a.extend([
                "--log-attrs".into(),
                serde_json::to_string(&self.attrs).unwrap_or_default(),
            ]);
        }
        a
    }

    /// The shim's log configuration at `path` (for a foreground run's
    /// passthrough, which writes the log itself).
    pub fn log_config(&self, path: PathBuf) -> shim::log::LogConfig {
        shim::log::LogConfig {
            path,
            enabled: self.readable(),
            max_size: self.max_size,
            max_file: self.max_file.unwrap_or(1).clamp(1, 1000),
            attrs: self.attrs.clone().into_iter().collect(),
        }
    }
}

/// The files of the log at `path`, oldest first: the rotated ones
/// (`path.N` … `path.1`) and the current one, those that exist.
pub fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut files = vec![];
    for n in (1..1000).rev() {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{n}"));
        let p = PathBuf::from(p);
        if p.exists() {
            files.push(p);
        }
    }
    files.push(path.to_path_buf());
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_as_docker_checks_them() {
        let s = LogSettings::parse(None, &["max-size=10k".into(), "max-file=3".into()]).unwrap();
        assert_eq!((s.max_size, s.max_file), (Some(10 << 10), Some(3)));
        assert_eq!(
            s.shim_args(),
            ["--log-max-size", "10240", "--log-max-file", "3"]
        );
        let local = LogSettings::parse(Some("local"), &[]).unwrap();
        assert_eq!((local.max_size, local.max_file), (Some(20 << 20), Some(5)));
        assert_eq!(
            LogSettings::parse(Some("none"), &[]).unwrap().shim_args(),
            ["--log-driver", "none"]
        );
        for (driver, opts) in [
            (Some("syslog"), vec![]),
            (None, vec!["max-size"]),
            (None, vec!["max-size=0"]),
            (None, vec!["max-file=0"]),
            (None, vec!["max-file=3"]),
            (None, vec!["labels-regex=a"]),
            (Some("none"), vec!["max-size=1m"]),
        ] {
            let opts: Vec<String> = opts.into_iter().map(String::from).collect();
            let err = LogSettings::parse(driver, &opts).unwrap_err().to_string();
            assert!(err.contains("--log"), "{driver:?} {opts:?}: {err}");
        }
    }
}
