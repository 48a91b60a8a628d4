//! `import`: a root filesystem (a directory or a tarball) becomes a
//! one-layer image, with the config changes Docker's `--change` allows
//! (CMD, ENTRYPOINT, ENV, WORKDIR, USER).

use std::io::{BufRead, Read};
use std::path::Path;

use serde_json::{json, Value};

use crate::digest::Digest;
use crate::imported::ImportedImage;
use crate::store::{ContentStore, StoreError};

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A `--change` that is not understood.
    #[error("--change {0:?}: only CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME and WORKDIR are supported")]
    Change(String),
    /// Reading the source.
    #[error("import {path}: {err}")]
    Io {
        /// The source.
        path: String,
        /// The error.
        err: std::io::Error,
    },
    /// Storing.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A `--change` argument list (`["/bin/sh","-c"]` JSON, or words).
fn words(rest: &str) -> Value {
    serde_json::from_str::<Vec<String>>(rest)
        .map(|v| json!(v))
        .unwrap_or_else(|_| json!(["/bin/sh", "-c", rest]))
}

fn push_array(config: &mut Value, key: &str, item: Value) {
    let mut list = config[key].as_array().cloned().unwrap_or_default();
    list.push(item);
    config[key] = json!(list);
}

/// `LABEL a=1 "b c"="d e"` or the old `LABEL key value` form.
fn key_values(rest: &str) -> Vec<(String, String)> {
    let unquote = |s: &str| s.trim_matches('"').to_string();
    if !rest.contains('=') {
        let (k, v) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        return vec![(unquote(k), unquote(v.trim()))];
    }
    // Split on whitespace outside double quotes.
    let mut words = vec![];
    let (mut cur, mut quoted) = (String::new(), false);
    for ch in rest.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                cur.push(ch);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
        .iter()
        .map(|w| {
            let (k, v) = w.split_once('=').unwrap_or((w, ""));
            (unquote(k), unquote(v))
        })
        .collect()
}

/// Applies Docker-style `--change` lines to an image config's `config` object.
pub fn apply_changes(config: &mut Value, changes: &[String]) -> Result<(), ImportError> {
    for c in changes {
        let (instr, rest) = c
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| ImportError::Change(c.clone()))?;
        let rest = rest.trim();
        match instr.to_ascii_uppercase().as_str() {
            "CMD" => config["Cmd"] = words(rest),
            "ENTRYPOINT" => config["Entrypoint"] = words(rest),
            "WORKDIR" => config["WorkingDir"] = json!(rest),
            "USER" => config["User"] = json!(rest),
            "STOPSIGNAL" => config["StopSignal"] = json!(rest),
            "ONBUILD" => push_array(config, "OnBuild", json!(rest)),
            "EXPOSE" | "VOLUME" => {
                let key = if instr.eq_ignore_ascii_case("EXPOSE") {
                    "ExposedPorts"
                } else {
                    "Volumes"
                };
                let items: Vec<String> = serde_json::from_str(rest)
                    .unwrap_or_else(|_| rest.split_whitespace().map(String::from).collect());
                for mut item in items {
                    if key == "ExposedPorts" && !item.contains('/') {
                        item.push_str("/tcp");
                    }
                    if !config[key].is_object() {
                        config[key] = json!({});
                    }
                    config[key][item] = json!({});
                }
            }
            "LABEL" => {
                if !config["Labels"].is_object() {
                    config["Labels"] = json!({});
                }
                for (k, v) in key_values(rest) {
                    config["Labels"][k] = json!(v);
                }
            }
            "ENV" => {
                let kv = if rest.contains('=') {
                    rest.to_string()
                } else {
                    rest.replacen(char::is_whitespace, "=", 1)
                };
                let env = config["Env"]
                    .as_array_mut()
                    .map(std::mem::take)
                    .unwrap_or_default();
                let key = kv.split('=').next().unwrap_or("").to_string();
                let mut env: Vec<Value> = env
                    .into_iter()
                    .filter(|e| e.as_str().and_then(|s| s.split('=').next()) != Some(key.as_str()))
                    .collect();
                env.push(json!(kv));
                config["Env"] = json!(env);
            }
            _ => return Err(ImportError::Change(c.clone())),
        }
    }
    Ok(())
}

/// Imports the root filesystem at `source` (a directory, or a tar file,
/// plain or gzip) as a one-layer image named `name`.
pub fn import_rootfs(
    store: &ContentStore,
    source: &Path,
    name: Option<String>,
    changes: &[String],
) -> Result<ImportedImage, ImportError> {
    let io = |err| ImportError::Io {
        path: source.display().to_string(),
        err,
    };
    let created_by = format!("berth import {}", source.display());
    if source.is_dir() {
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        b.mode(tar::HeaderMode::Complete);
        b.append_dir_all(".", source).map_err(io)?;
        let layer = b.into_inner().map_err(io)?;
        import_archive(store, &layer[..], &created_by, None, name, changes)
    } else {
        let file = std::fs::File::open(source).map_err(io)?;
        import_archive(store, file, &created_by, None, name, changes).map_err(|e| match e {
            ImportError::Io { err, .. } => io(err),
            other => other,
        })
    }
}

/// Imports the tar archive `input` (plain or gzip, told apart by its
/// first bytes) as a one-layer image named `name`, streamed into the
/// store (never held in memory whole). `created_by` and `comment` (`docker
/// import -m`) go into its history.
pub fn import_archive(
    store: &ContentStore,
    input: impl Read,
    created_by: &str,
    comment: Option<&str>,
    name: Option<String>,
    changes: &[String],
) -> Result<ImportedImage, ImportError> {
    let io = |err| ImportError::Io {
        path: "the archive".into(),
        err,
    };
    // Checked first: a bad --change costs no copy.
    let mut cfg =
        json!({"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]});
    apply_changes(&mut cfg, changes)?;
    let mut input = std::io::BufReader::with_capacity(256 * 1024, input);
    let gzip = input.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    // The layer is stored uncompressed: its digest is its diff ID.
    let mut counted = Counted {
        inner: if gzip {
            Box::new(flate2::read::GzDecoder::new(input)) as Box<dyn Read>
        } else {
            Box::new(input)
        },
        bytes: 0,
    };
    let diff = store.ingest_unknown(&mut counted)?;
    let layer_size = counted.bytes;
    let created = rfc3339(created_time());
    let mut step = json!({"created": created, "created_by": created_by});
    if let Some(c) = comment {
        step["comment"] = json!(c);
    }
    let config = json!({
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [diff.to_string()]},
        "history": [step],
    });
    let config_bytes = serde_json::to_vec(&config).map_err(|e| io(std::io::Error::other(e)))?;
    let config_digest = store.ingest_unknown(&config_bytes[..])?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config_bytes.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff.to_string(), "size": layer_size}],
    }))
    .map_err(|e| io(std::io::Error::other(e)))?;
    let manifest = store.ingest_unknown(&manifest[..])?;
    Ok(ImportedImage {
        name,
        manifest,
        config: config_digest,
        layers: vec![(diff.clone(), Digest::clone(&diff))],
    })
}

/// A reader that counts the bytes read through it.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_set_the_config() {
        let mut c = json!({"Env": ["PATH=/bin", "A=1"]});
        apply_changes(
            &mut c,
            &[
                "CMD [\"/bin/sh\"]".into(),
                "ENV A 2".into(),
                "WORKDIR /srv".into(),
                "ENTRYPOINT echo hi".into(),
            ],
        )
        .unwrap();
        assert_eq!(c["Cmd"], json!(["/bin/sh"]));
        assert_eq!(c["Env"], json!(["PATH=/bin", "A=2"]));
        assert_eq!(c["WorkingDir"], json!("/srv"));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "echo hi"]));
        apply_changes(
            &mut c,
            &[
                "EXPOSE 80 53/udp".into(),
                "LABEL a=1 \"b c\"=\"d e\"".into(),
                "VOLUME [\"/data\"]".into(),
                "STOPSIGNAL SIGINT".into(),
            ],
        )
        .unwrap();
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Labels"], json!({"a": "1", "b c": "d e"}));
        assert_eq!(c["Volumes"], json!({"/data": {}}));
        assert_eq!(c["StopSignal"], json!("SIGINT"));
        assert!(apply_changes(&mut c, &["RUN make".into()])
            .unwrap_err()
            .to_string()
            .contains("RUN make"));
    }
}

/// When the image is made: now, or `SOURCE_DATE_EPOCH` for reproducible images.
fn created_time() -> i64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        })
}

/// `secs` since the epoch as an RFC 3339 UTC time (`2024-01-02T03:04:05Z`).
pub fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_868_800), "2000-03-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
