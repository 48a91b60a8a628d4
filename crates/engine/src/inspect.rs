//! `inspect` for containers: the record in Docker's JSON shape (the fields
//! berth knows so far), and Docker's `--format` for the templates people
//! use most: `{{.Path.To.Field}}`, `{{json .Path}}` and literal text
//! between them. Anything else in a template is an error naming it.

use serde_json::{json, Value};

use crate::error::EngineError;
use crate::store::{Record, State};

/// Unix seconds as RFC 3339 (Docker's zero time for 0).
pub fn rfc3339(secs: i64) -> String {
    if secs <= 0 {
        return "0001-01-01T00:00:00Z".into();
    }
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}

/// Unix seconds with fractions in RFC 3339 with nanoseconds, as Docker
/// writes times.
pub fn rfc3339_f(secs: f64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}

/// The container as `docker inspect` shows it.
pub fn container_json(r: &Record) -> Value {
    let running = r.is_running();
    let mut settings = crate::restart::ContainerSettings::parse(&r.config);
    let status = match r.state {
        State::Running if running && settings.paused => "paused",
        State::Running if running => "running",
        State::Running | State::Exited => "exited",
        State::Created => "created",
    };
    let exit_code = match r.state {
        State::Running if !running => 255,
        _ => r.exit_code,
    };
    let mut v = json!({
        "Id": r.id,
        "Created": rfc3339(r.created),
        "Path": r.command.first().cloned().unwrap_or_default(),
        "Args": r.command.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": status,
            "Running": running,
            "Paused": running && settings.paused,
            "Restarting": false,
            "OOMKilled": settings.oom_killed,
            "Dead": false,
            "Pid": if running { r.pid } else { 0 },
            "ExitCode": exit_code,
            "Error": "",
            "StartedAt": rfc3339(r.started),
            "FinishedAt": rfc3339(r.finished),
            "Health": settings.health,
        },
        "Image": r.image_id,
        "Name": format!("/{}", r.name),
        "RestartCount": settings.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "HostConfig": {
            "AutoRemove": r.auto_remove,
            "Init": settings.init,
            "LogConfig": {
                "Type": settings.log.name(),
                "Config": log_options(&settings.log),
            },
            "PortBindings": settings.port_bindings,
            "NetworkMode": network_mode(&settings),
            "RestartPolicy": {
                "Name": settings.restart_policy.name(),
                "MaximumRetryCount": match settings.restart_policy {
                    crate::restart::RestartPolicy::OnFailure { max } => max,
                    _ => 0,
                },
            },
        },
        "NetworkSettings": {
            "Networks": settings.networks,
            "Ports": network_ports(&settings, running),
        },
        "Config": {
            "Image": r.image,
            "Cmd": r.command,
            "Labels": settings.labels,
            "StopSignal": settings.stop_signal,
            "StopTimeout": settings.stop_timeout,
            "Tty": settings.tty,
            "OpenStdin": settings.open_stdin,
            "StdinOnce": settings.stdin_once,
            "Healthcheck": settings.healthcheck,
            "ExposedPorts": settings.exposed.iter().map(|p| (p.clone(), serde_json::json!({}))).collect::<serde_json::Map<_, _>>(),
        },
    });
    // The documents kept for inspect are moved in, not copied.
    if let Some(h) = v["HostConfig"].as_object_mut() {
        for (k, x) in std::mem::take(&mut settings.shown_host_config) {
            h.entry(k).or_insert(x);
        }
        for (k, x) in std::mem::take(&mut settings.resources) {
            h.insert(k, x);
        }
    }
    if let Some(c) = v["Config"].as_object_mut() {
        for (k, x) in std::mem::take(&mut settings.shown_config) {
            c.insert(k, x);
        }
    }
    v["Mounts"] = Value::Array(std::mem::take(&mut settings.mounts));
    v
}

/// `HostConfig.NetworkMode`: the network it was made with (none when
/// it has none).
pub fn network_mode(settings: &crate::restart::ContainerSettings) -> &str {
    if settings.network_mode.is_empty() {
        "none"
    } else {
        settings.network_mode.as_str()
    }
}

/// `NetworkSettings.Ports`: each exposed port, with its host sides while
/// the container runs (null when it has none), as Docker shows it.
pub fn network_ports(settings: &crate::restart::ContainerSettings, running: bool) -> Value {
    ports_shown(&settings.exposed, &settings.ports, running)
}

/// [`network_ports`] from the exposed ports and the host sides chosen.
pub fn ports_shown(
    exposed: &std::collections::BTreeSet<String>,
    ports: &crate::ports::PortMap,
    running: bool,
) -> Value {
    let mut m = serde_json::Map::new();
    for p in exposed {
        let bound = running.then(|| ports.get(p)).flatten();
        m.insert(
            p.clone(),
            serde_json::to_value(bound).unwrap_or(Value::Null),
        );
    }
    Value::Object(m)
}

/// The `--log-opt`s in effect, as inspect shows them.
fn log_options(l: &crate::logging::LogSettings) -> Value {
    let mut m = serde_json::Map::new();
    if let Some(n) = l.max_size {
        m.insert("max-size".into(), n.to_string().into());
    }
    if let Some(n) = l.max_file {
        m.insert("max-file".into(), n.to_string().into());
    }
    Value::Object(m)
}

/// Evaluates a `--format` template against `v` (Go's template language,
/// see [`crate::template`]).
pub fn format(template: &str, v: &Value) -> Result<String, EngineError> {
    crate::template::render(template, v)
}

/// A duration as Docker's units.HumanDuration says it (`Less than a
/// second`, `5 minutes`, `About an hour`, `3 weeks`).
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match s {
        0..=1 => "Less than a second".into(),
        2..=59 => plural(s, "second"),
        60..=119 => "About a minute".into(),
        120..=3599 => plural(s / 60, "minute"),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => plural(s / 3600, "hour"),
        172_800..=1_209_599 => plural(s / 86400, "day"),
        1_209_600..=5_183_999 => plural(s / 604_800, "week"),
        5_184_000..=63_071_999 => plural(s / 2_592_000, "month"),
        _ => plural(s / 31_536_000, "year"),
    }
}

/// A container's state in `ps`'s words (`Up 5 minutes (healthy)`,
/// `Exited (0) 3 seconds ago`, `Created`), at Unix time `now`.
pub fn status_text(r: &crate::store::Record, now: i64) -> String {
    let settings = crate::restart::ListedSettings::parse(&r.config);
    status_text_of(r, &settings, r.is_running(), now)
}

/// [`status_text`] with the container's settings read already, and
/// whether its process lives (`running`) found out already.
pub fn status_text_of(
    r: &crate::store::Record,
    settings: &crate::restart::ListedSettings,
    running: bool,
    now: i64,
) -> String {
    use crate::store::State;
    match r.state {
        State::Running if running => {
            let note = match (&settings.health, settings.paused) {
                (_, true) => " (Paused)".to_string(),
                (Some(h), _) if h.status == "starting" => " (health: starting)".into(),
                (Some(h), _) => format!(" ({})", h.status),
                (None, _) => String::new(),
            };
            format!("Up {}{note}", human_duration(now - r.started))
        }
        // The record says running but its process is gone: berth run died.
        State::Running => "Exited (255) (its berth run ended)".into(),
        State::Exited => format!(
            "Exited ({}) {} ago",
            r.exit_code,
            human_duration(now - r.finished)
        ),
        State::Created => "Created".into(),
    }
}

/// Seconds (with the fraction) since the epoch of an RFC 3339 time
/// (`2024-05-01T12:00:00.5Z`, offsets allowed), or None.
pub fn parse_rfc3339_f(s: &str) -> Option<f64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos() as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_read_fields_as_docker_prints_them() {
        let v = json!({"State": {"Pid": 42, "Running": true, "Status": "running"}, "Name": "/web", "Args": ["-c", "x"]});
        assert_eq!(format("{{.State.Pid}}", &v).unwrap(), "42");
        assert_eq!(
            format("{{.Name}} is {{.State.Status}}", &v).unwrap(),
            "/web is running"
        );
        assert_eq!(format("{{json .State.Running}}", &v).unwrap(), "true");
        assert_eq!(format("{{.Args}}", &v).unwrap(), "[-c x]");
        assert_eq!(format("{{json .Args}}", &v).unwrap(), r#"["-c","x"]"#);
        assert!(format("{{.Nope}}", &v).is_err());
        assert_eq!(format("{{range .Args}}{{.}};{{end}}", &v).unwrap(), "-c;x;");
        assert!(format("{{.Name", &v).is_err());
    }
}
