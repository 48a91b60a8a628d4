//! Stored registry credentials: a JSON file in Docker's `config.json`
//! format (`{"auths": {"<registry>": {"auth": base64("user:password")}}}`),
//! so `skopeo --authfile` and `podman --authfile` read it too. Written
//! atomically with mode 0600, since it holds passwords.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Errors reading or writing the credentials file.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file could not be read or written.
    #[error("{op} {path}: {err}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Default, Serialize, Deserialize)]
struct Document {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
    /// Whatever else a Docker config holds is kept as it was.
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    #[serde(default)]
    auth: String,
}

/// The credentials file.
pub struct AuthFile {
    path: PathBuf,
}

/// The key Docker uses for Docker Hub.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The key credentials for `registry` are stored under.
fn key_for(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_string(),
        r => r.to_string(),
    }
}

impl AuthFile {
    /// The file at `path` (it need not exist yet).
    pub fn new(path: &Path) -> Self {
        AuthFile {
            path: path.to_path_buf(),
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<Document, AuthError> {
        match std::fs::read(&self.path) {
            Ok(d) => serde_json::from_slice(&d).map_err(|e| AuthError::Invalid {
                path: self.path.clone(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Document::default()),
            Err(err) => Err(AuthError::Io {
                op: "read",
                path: self.path.clone(),
                err,
            }),
        }
    }

    fn write(&self, doc: &Document) -> Result<(), AuthError> {
        let io = |op| {
            let path = self.path.clone();
            move |err| AuthError::Io { op, path, err }
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io("create the directory of"))?;
        }
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let data = serde_json::to_vec_pretty(doc).map_err(|e| AuthError::Invalid {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io("write"))
    }

    /// The (user, password) stored for `registry`, if any.
    pub fn get(&self, registry: &str) -> Result<Option<(String, String)>, AuthError> {
        let doc = self.read()?;
        let Some(entry) = doc.auths.get(&key_for(registry)) else {
            return Ok(None);
        };
        let invalid = |reason: &str| AuthError::Invalid {
            path: self.path.clone(),
            reason: format!("auths.{registry}.auth: {reason}"),
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(entry.auth.trim())
            .map_err(|_| invalid("not base64"))?;
        let text = String::from_utf8(raw).map_err(|_| invalid("not UTF-8"))?;
        let (user, password) = text
            .split_once(':')
            .ok_or_else(|| invalid("not user:password"))?;
        Ok(Some((user.to_string(), password.to_string())))
    }

    /// Stores credentials for `registry` (the file becomes 0600).
    pub fn set(&self, registry: &str, user: &str, password: &str) -> Result<(), AuthError> {
        let mut doc = self.read()?;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        doc.auths.insert(key_for(registry), Entry { auth });
        self.write(&doc)
    }

    /// Removes the credentials for `registry`; false when there were none.
    pub fn remove(&self, registry: &str) -> Result<bool, AuthError> {
        let mut doc = self.read()?;
        if doc.auths.remove(&key_for(registry)).is_none() {
            return Ok(false);
        }
        self.write(&doc)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn credentials_round_trip_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        std::fs::write(&path, r#"{"auths":{},"credsStore":"keep-me"}"#).unwrap();
        let f = AuthFile::new(&path);
        assert_eq!(f.get("127.0.0.1:5000").unwrap(), None);
        f.set("127.0.0.1:5000", "alice", "pa:ss").unwrap();
        assert_eq!(
            f.get("127.0.0.1:5000").unwrap(),
            Some(("alice".into(), "pa:ss".into()))
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("keep-me"), "other settings are kept: {text}");
        assert!(
            !text.contains("pa:ss"),
            "the password is not stored in clear"
        );
        f.set("docker.io", "bob", "x").unwrap();
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains(DOCKER_HUB_KEY));
        assert!(f.remove("127.0.0.1:5000").unwrap());
        assert!(!f.remove("127.0.0.1:5000").unwrap());
        assert_eq!(f.get("127.0.0.1:5000").unwrap(), None);
    }

    #[test]
    fn a_corrupt_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        std::fs::write(&path, r#"{"auths":{"r":{"auth":"%%%"}}}"#).unwrap();
        let e = AuthFile::new(&path).get("r").unwrap_err().to_string();
        assert!(e.contains("auth.json") && e.contains("base64"), "{e}");
    }
}
