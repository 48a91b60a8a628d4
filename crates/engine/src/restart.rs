//! Restart policies (`--restart no|on-failure[:N]|always|unless-stopped`)
//! and the per-container settings the store keeps beside the record (its
//! `config` column): the policy, how often it has restarted, whether a
//! user stopped it (a stopped container is not restarted, as in Docker),
//! whether it is paused, its stop signal and timeout, and its labels.
//!
//! berth has no daemon: a policy acts when a container exits (its shim's
//! cleanup, or the foreground `berth run` that watched it), not when the
//! machine boots.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// When a container that exited is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "Name", rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never (`no`, the default).
    #[default]
    No,
    /// After a non-zero exit, at most `MaximumRetryCount` times (0: no limit).
    OnFailure {
        /// The limit (0: none).
        #[serde(rename = "MaximumRetryCount")]
        max: u32,
    },
    /// After every exit, unless a user stopped it.
    Always,
    /// As `always`; the two differ only at a daemon's start, which berth
    /// does not have.
    UnlessStopped,
}

impl RestartPolicy {
    /// Parses `--restart`'s value.
    pub fn parse(s: &str) -> Result<RestartPolicy, EngineError> {
        let bad = |reason: &str| EngineError::InvalidOption {
            option: "--restart",
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let (name, count) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        match (name, count) {
            ("" | "no", None) => Ok(RestartPolicy::No),
            ("always", None) => Ok(RestartPolicy::Always),
            ("unless-stopped", None) => Ok(RestartPolicy::UnlessStopped),
            ("on-failure", None) => Ok(RestartPolicy::OnFailure { max: 0 }),
            ("on-failure", Some(c)) => c
                .parse::<u32>()
                .map(|max| RestartPolicy::OnFailure { max })
                .map_err(|_| bad("the retry count must be a number of 0 or more")),
            ("no" | "always" | "unless-stopped", Some(_)) => {
                Err(bad("only on-failure takes a retry count"))
            }
            _ => Err(bad("expected no, on-failure[:N], always or unless-stopped")),
        }
    }

    /// Docker's name for it (`HostConfig.RestartPolicy.Name`).
    pub fn name(&self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure { .. } => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }
}

/// What the store keeps beside a container's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSettings {
    /// `--restart`.
    #[serde(rename = "RestartPolicy", default)]
    pub restart_policy: RestartPolicy,
    /// How often the policy has started it again.
    #[serde(rename = "RestartCount", default)]
    pub restart_count: u32,
    /// A user stopped or killed it: the policy leaves it stopped until it
    /// is started by hand.
    #[serde(rename = "ManuallyStopped", default)]
    pub manually_stopped: bool,
    /// Frozen by `pause` (meaningful while it runs).
    #[serde(rename = "Paused", default)]
    pub paused: bool,
    /// The signal `stop` sends first (`--stop-signal`, else the image's).
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL (`--stop-timeout`).
    #[serde(
        rename = "StopTimeout",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_timeout: Option<i64>,
    /// `--label`s.
    #[serde(
        rename = "Labels",
        default,
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub labels: std::collections::BTreeMap<String, String>,
    /// `-t`: it has a terminal.
    #[serde(rename = "Tty", default)]
    pub tty: bool,
    /// `-i`: its stdin stays open for attached clients.
    #[serde(rename = "OpenStdin", default)]
    pub open_stdin: bool,
    /// Its stdin closes when the first attached client's input ends
    /// (`run -i` in the foreground).
    #[serde(rename = "StdinOnce", default)]
    pub stdin_once: bool,
    /// `--init`.
    #[serde(rename = "Init", default)]
    pub init: bool,
    /// The kernel's OOM killer killed a process of it in its last run.
    #[serde(rename = "OOMKilled", default)]
    pub oom_killed: bool,
    /// The process that supervises it: the `berth` that is making it or
    /// runs it in the foreground, else its berth-shim. `system check` finds
    /// containers whose supervisor is gone.
    #[serde(
        rename = "Supervisor",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub supervisor: Option<Supervisor>,
    /// `--log-driver` and `--log-opt`.
    #[serde(rename = "LogConfig", default)]
    pub log: crate::logging::LogSettings,
    /// The health check (the image's merged with `--health-*`).
    #[serde(
        rename = "Healthcheck",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthcheck: Option<crate::health::HealthConfig>,
    /// Its health since it last started.
    #[serde(rename = "Health", default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::HealthState>,
    /// Its user namespace's id mappings (`--userns`, `--uidmap`), if it
    /// has one of its own.
    #[serde(
        rename = "IdMappings",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub id_mappings: Option<crate::userns::IdMappings>,
    /// `--network` as given (`none` by default).
    #[serde(
        rename = "NetworkMode",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub network_mode: String,
    /// Its places on networks, by network name.
    #[serde(
        rename = "Networks",
        default,
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub networks: std::collections::BTreeMap<String, crate::net_setup::Attachment>,
    /// `-p`/`-P`: its container ports and the host sides asked for.
    #[serde(
        rename = "PortBindings",
        default,
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub port_bindings: crate::ports::PortMap,
    /// The ports it exposes (the image's EXPOSE and `--expose`).
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "std::collections::BTreeSet::is_empty"
    )]
    pub exposed: std::collections::BTreeSet<String>,
    /// Its volumes and binds as `inspect` shows them under `Mounts`
    /// (Docker's MountPoint objects; set when its bundle is written).
    #[serde(rename = "Mounts", default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<serde_json::Value>,
    /// What `inspect` shows under `Config` beyond the record: `Env`,
    /// `WorkingDir`, `User`, `Hostname` (set when its bundle is written).
    #[serde(
        rename = "ShownConfig",
        default,
        skip_serializing_if = "serde_json::Map::is_empty"
    )]
    pub shown_config: serde_json::Map<String, serde_json::Value>,
    /// `HostConfig` as `inspect` shows it beyond the fields kept apart
    /// (set when its bundle is written; the limits go over it).
    #[serde(
        rename = "ShownHostConfig",
        default,
        skip_serializing_if = "serde_json::Map::is_empty"
    )]
    pub shown_host_config: serde_json::Map<String, serde_json::Value>,
    /// Its resource limits as `HostConfig` names them (set by `run` and
    /// `update`; what `inspect` shows).
    #[serde(
        rename = "Resources",
        default,
        skip_serializing_if = "serde_json::Map::is_empty"
    )]
    pub resources: serde_json::Map<String, serde_json::Value>,
    /// The host sides chosen when it last started (while it runs).
    #[serde(
        rename = "Ports",
        default,
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub ports: crate::ports::PortMap,
}

/// The part of [`ContainerSettings`] a container list shows. Read on its
/// own, the rest of the `config` column (the documents only `inspect`
/// shows) is skipped without being built, which a list of hundreds of
/// containers would otherwise do for each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ListedSettings {
    /// Frozen by `pause`.
    #[serde(rename = "Paused", default)]
    pub paused: bool,
    /// Its health since it last started.
    #[serde(rename = "Health", default)]
    pub health: Option<crate::health::HealthState>,
    /// `--label`s.
    #[serde(rename = "Labels", default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// `--network` as given.
    #[serde(rename = "NetworkMode", default)]
    pub network_mode: String,
    /// Its places on networks, by network name.
    #[serde(rename = "Networks", default)]
    pub networks: std::collections::BTreeMap<String, crate::net_setup::Attachment>,
    /// The ports it exposes.
    #[serde(rename = "ExposedPorts", default)]
    pub exposed: std::collections::BTreeSet<String>,
    /// The host sides chosen when it last started.
    #[serde(rename = "Ports", default)]
    pub ports: crate::ports::PortMap,
    /// Its volumes and binds as Docker's MountPoint objects.
    #[serde(rename = "Mounts", default)]
    pub mounts: Vec<serde_json::Value>,
}

impl ListedSettings {
    /// Reads the `config` column (an unreadable one: the defaults).
    pub fn parse(json: &str) -> ListedSettings {
        serde_json::from_str(json).unwrap_or_default()
    }
}

/// A process, told apart from a later one with the same pid by its
/// start time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supervisor {
    /// Its pid.
    #[serde(rename = "Pid")]
    pub pid: i64,
    /// Its start time (/proc/PID/stat field 22).
    #[serde(rename = "Start")]
    pub start: i64,
}

impl Supervisor {
    /// The process `pid`, if it lives.
    pub fn of(pid: i64) -> Option<Supervisor> {
        crate::store::process_start(pid as i32).map(|start| Supervisor { pid, start })
    }

    /// Whether it still lives.
    pub fn alive(&self) -> bool {
        crate::store::process_start(self.pid as i32) == Some(self.start)
    }
}

impl ContainerSettings {
    /// Reads the `config` column (an unreadable one: the defaults).
    pub fn parse(json: &str) -> ContainerSettings {
        serde_json::from_str(json).unwrap_or_default()
    }

    /// As the `config` column keeps it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Whether a container that exited with `code` starts again.
    pub fn should_restart(&self, code: i64) -> bool {
        if self.manually_stopped {
            return false;
        }
        match self.restart_policy {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure { max } => code != 0 && (max == 0 || self.restart_count < max),
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        }
    }

    /// How long to wait before the next restart: Docker's back-off, 100 ms
    /// doubled with each restart in a row, at most a minute; none when the
    /// container ran for 10 s or more (a one-off failure).
    pub fn delay(&self, ran: Duration) -> Duration {
        if ran >= Duration::from_secs(10) {
            return Duration::from_millis(100);
        }
        let doublings = self.restart_count.min(10);
        Duration::from_millis(100 << doublings).min(Duration::from_secs(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list's partial read finds what the full settings wrote (the
    /// two must keep the same field names).
    #[test]
    fn listed_settings_read_what_the_settings_wrote() {
        let mut full = ContainerSettings {
            paused: true,
            network_mode: "web".into(),
            ..Default::default()
        };
        full.labels.insert("tier".into(), "db".into());
        full.networks.insert(
            "web".into(),
            crate::net_setup::Attachment {
                ip: "10.0.0.2".into(),
                ..Default::default()
            },
        );
        full.exposed.insert("80/tcp".into());
        full.ports.insert(
            "80/tcp".into(),
            vec![crate::ports::HostBinding {
                host_ip: String::new(),
                host_port: "8080".into(),
            }],
        );
        full.mounts.push(serde_json::json!({"Type": "volume"}));
        full.shown_config
            .insert("Env".into(), serde_json::json!(["A=1"]));
        let listed = ListedSettings::parse(&full.to_json());
        assert!(listed.paused);
        assert_eq!(listed.network_mode, "web");
        assert_eq!(listed.labels, full.labels);
        assert_eq!(listed.networks, full.networks);
        assert_eq!(listed.exposed, full.exposed);
        assert_eq!(listed.ports, full.ports);
        assert_eq!(listed.mounts, full.mounts);
        assert_eq!(ListedSettings::parse("not json"), ListedSettings::default());
    }

    #[test]
    fn policies_parse_as_docker() {
        assert_eq!(RestartPolicy::parse("no").unwrap(), RestartPolicy::No);
        assert_eq!(
            RestartPolicy::parse("always").unwrap(),
            RestartPolicy::Always
        );
        assert_eq!(
            RestartPolicy::parse("on-failure:3").unwrap(),
            RestartPolicy::OnFailure { max: 3 }
        );
        assert_eq!(
            RestartPolicy::parse("on-failure").unwrap(),
            RestartPolicy::OnFailure { max: 0 }
        );
        for bad in ["sometimes", "always:2", "on-failure:x", "on-failure:-1"] {
            assert!(RestartPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn when_a_container_restarts() {
        let mut s = ContainerSettings {
            restart_policy: RestartPolicy::OnFailure { max: 2 },
            ..Default::default()
        };
        assert!(!s.should_restart(0));
        assert!(s.should_restart(1));
        s.restart_count = 2;
        assert!(!s.should_restart(1), "the limit is reached");
        s.restart_policy = RestartPolicy::Always;
        assert!(s.should_restart(0));
        s.manually_stopped = true;
        assert!(!s.should_restart(0), "a user stopped it");
        assert!(!ContainerSettings::default().should_restart(1));
        // The settings survive the store's JSON.
        let back = ContainerSettings::parse(&s.to_json());
        assert_eq!(back, s);
        assert_eq!(ContainerSettings::parse("{}"), ContainerSettings::default());
    }

    #[test]
    fn the_back_off_doubles_and_is_capped() {
        let mut s = ContainerSettings::default();
        assert_eq!(s.delay(Duration::ZERO), Duration::from_millis(100));
        s.restart_count = 3;
        assert_eq!(s.delay(Duration::ZERO), Duration::from_millis(800));
        s.restart_count = 40;
        assert_eq!(s.delay(Duration::ZERO), Duration::from_secs(60));
        assert_eq!(s.delay(Duration::from_secs(30)), Duration::from_millis(100));
    }
}
