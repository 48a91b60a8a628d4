//! The event log behind `berth events`: one JSON object per line in
//! `<root>/events.jsonl` (0600, appended with `O_APPEND`, so concurrent
//! berth commands do not interleave a line), with Docker's fields (`Type`,
//! `Action`, `Actor.ID`, `Actor.Attributes`, `time`, `timeNano`). The log
//! is bounded: past 2 MiB it becomes `events.jsonl.1` (the one before is
//! dropped) and a new one starts.
//!
//! Recording is best effort: an event that cannot be written is logged,
//! never an error for the operation it describes.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where a log rotates.
const MAX_BYTES: u64 = 2 << 20;

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The container id, volume name, image id, …
    #[serde(rename = "ID")]
    pub id: String,
    /// `name`, `image`, `exitCode`, `signal`, …
    #[serde(rename = "Attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

/// One event, as Docker's API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `container`, `volume`, `image`.
    #[serde(rename = "Type")]
    pub typ: String,
    /// `create`, `start`, `die`, `destroy`, `pause`, …
    #[serde(rename = "Action")]
    pub action: String,
    /// What it is about.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Unix seconds.
    pub time: i64,
    /// Unix nanoseconds.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

fn log_path(root: &Path) -> PathBuf {
    root.join("events.jsonl")
}

/// Appends an event (best effort).
pub fn record(root: &Path, typ: &str, action: &str, id: &str, attributes: &[(&str, &str)]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let e = Event {
        typ: typ.to_string(),
        action: action.to_string(),
        actor: Actor {
            id: id.to_string(),
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
        time: now.as_secs() as i64,
        time_nano: now.as_nanos() as i64,
    };
    if let Err(err) = append(root, &e) {
        tracing::warn!("event {typ} {action} {id}: {err}");
    }
}

fn append(root: &Path, e: &Event) -> std::io::Result<()> {
    let path = log_path(root);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_BYTES) {
        // Two writers may both rotate: the second renames a fresh, small
        // log over the first one's, which loses only old events.
        let _ = std::fs::rename(&path, path.with_extension("jsonl.1"));
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)?;
    let mut line = serde_json::to_vec(e).map_err(std::io::Error::other)?;
    line.push(b'\n');
    // One write: O_APPEND keeps concurrent lines whole.
    f.write_all(&line)
}

/// Every logged event, oldest first (the rotated log, then the current).
pub fn read(root: &Path) -> Vec<Event> {
    let path = log_path(root);
    let mut out = vec![];
    for p in [path.with_extension("jsonl.1"), path] {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        out.extend(
            text.lines()
                .filter_map(|l| serde_json::from_str::<Event>(l).ok()),
        );
    }
    out
}

/// The events logged after the first `skip` bytes of the current log, and
/// the log's length now (for following it).
pub fn read_from(root: &Path, skip: u64) -> (Vec<Event>, u64) {
    use std::io::{Read, Seek};
    let path = log_path(root);
    let Ok(mut f) = std::fs::File::open(&path) else {
        return (vec![], 0);
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    // Rotated meanwhile: start the new log from its beginning.
    let skip = if len < skip { 0 } else { skip };
    if f.seek(std::io::SeekFrom::Start(skip)).is_err() {
        return (vec![], skip);
    }
    let mut text = String::new();
    let _ = f.read_to_string(&mut text);
    // Only whole lines; a line being written is read next time.
    let whole = text.rfind('\n').map_or(0, |i| i + 1);
    let events = text[..whole]
        .lines()
        .filter_map(|l| serde_json::from_str::<Event>(l).ok())
        .collect();
    (events, skip + whole as u64)
}

/// The length of the current log (where following starts).
pub fn end(root: &Path) -> u64 {
    std::fs::metadata(log_path(root)).map_or(0, |m| m.len())
}

/// The keys events are filtered by.
pub const FILTERS: &[&str] = &[
    "type",
    "container",
    "event",
    "image",
    "volume",
    "network",
    "label",
];

/// Refuses a filter key berth does not know, naming it.
pub fn check_filters(filters: &[(String, String)]) -> Result<(), crate::EngineError> {
    match filters.iter().find(|(k, _)| !FILTERS.contains(&k.as_str())) {
        Some((k, v)) => Err(crate::error::invalid(
            "--filter",
            &format!("{k}={v}"),
            format!("events are filtered by {}", FILTERS.join(", ")),
        )),
        None => Ok(()),
    }
}

/// Whether event `e` passes `filters`: every key, any of its values
/// (every one of `label`'s), as dockerd matches them.
pub fn matches(filters: &[(String, String)], e: &Event) -> bool {
    let keys: std::collections::BTreeSet<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
    keys.into_iter().all(|key| {
        let mut values = filters.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
        let named = |typ: &str, v: &str| {
            e.typ == typ
                && (e.actor.id.starts_with(v)
                    || e.actor.attributes.get("name").is_some_and(|n| n == v))
        };
        let one = |v: &String| match key {
            "type" => e.typ == *v,
            "event" => e.action == *v || e.action.split(':').next() == Some(v.as_str()),
            "container" => named("container", v),
            "volume" => named("volume", v),
            "network" => named("network", v),
            "image" => e.actor.attributes.get("image") == Some(v) || named("image", v),
            "label" => match v.split_once('=') {
                Some((k, want)) => e.actor.attributes.get(k).is_some_and(|x| x == want),
                None => e.actor.attributes.contains_key(v.as_str()),
            },
            _ => false,
        };
        if key == "label" {
            values.all(one)
        } else {
            values.any(one)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_appended_read_back_and_followed() {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), "container", "create", "abc", &[("name", "web")]);
        let start = end(dir.path());
        record(dir.path(), "container", "start", "abc", &[("name", "web")]);
        let all = read(dir.path());
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].action, "create");
        assert_eq!(all[1].actor.attributes["name"], "web");
        assert!(all[1].time_nano >= all[0].time_nano);
        let (new, pos) = read_from(dir.path(), start);
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].action, "start");
        assert_eq!(pos, end(dir.path()));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("events.jsonl"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
