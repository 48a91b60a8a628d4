//! The part of an image's config (the OCI/Docker config blob's `config`
//! object) that decides how its containers run: entrypoint, command,
//! environment, working directory, user, stop signal, volumes, health check.

use serde::Deserialize;

/// How an image says its containers run.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct RunDefaults {
    /// `ENTRYPOINT`.
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    /// `ENV`, as `KEY=value`.
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    /// `WORKDIR`.
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
    /// `USER`.
    #[serde(rename = "User", default)]
    pub user: Option<String>,
    /// `STOPSIGNAL`.
    #[serde(rename = "StopSignal", default)]
    pub stop_signal: Option<String>,
    /// `VOLUME`: paths that get an anonymous volume unless a mount covers them.
    #[serde(rename = "Volumes", default)]
    pub volumes: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// `HEALTHCHECK`.
    #[serde(rename = "Healthcheck", default)]
    pub healthcheck: Option<crate::health::HealthConfig>,
    /// `EXPOSE`: `80/tcp` and the like (what `-P` publishes).
    #[serde(rename = "ExposedPorts", default)]
    pub exposed_ports: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct ConfigBlob {
    #[serde(default)]
    config: Option<RunDefaults>,
}

/// Reads the run defaults from an image config blob; an image without a
/// `config` object has none.
pub fn parse(blob: &[u8]) -> Result<RunDefaults, serde_json::Error> {
    let c: ConfigBlob = serde_json::from_slice(blob)?;
    Ok(c.config.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_and_oci_configs_parse() {
        let d = parse(
            br#"{"architecture":"amd64","config":{"Env":["PATH=/bin","A=1"],"Cmd":["sh"],"Entrypoint":null,"WorkingDir":"/srv","User":"1000:1000"}}"#,
        )
        .unwrap();
        assert_eq!(d.cmd, Some(vec!["sh".to_string()]));
        assert_eq!(d.entrypoint, None);
        assert_eq!(d.working_dir.as_deref(), Some("/srv"));
        assert_eq!(d.user.as_deref(), Some("1000:1000"));
        assert_eq!(parse(br#"{"rootfs":{}}"#).unwrap(), RunDefaults::default());
        let h = parse(
            br#"{"config":{"Healthcheck":{"Test":["CMD-SHELL","curl -f localhost"],"Interval":5000000000,"Retries":2}}}"#,
        )
        .unwrap()
        .healthcheck
        .unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "curl -f localhost"]);
        assert_eq!((h.interval, h.retries, h.timeout), (5_000_000_000, 2, 0));
        assert!(parse(b"not json").is_err());
    }
}
