//! `berth events`: the engine's event log, as `docker events` prints it:
//! the events between `--since` and `--until`, then (without `--until`)
//! each new one as it is logged, until interrupted.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use engine::events::Event;

/// `docker events` flags.
#[derive(Args)]
pub struct EventsArgs {
    /// Events since this time (RFC 3339, Unix seconds, or a duration ago: 10m).
    #[arg(long)]
    since: Option<String>,
    /// Events before this time; then exit instead of following.
    #[arg(long)]
    until: Option<String>,
    /// type=, container=, event=, image=, volume=, network=, label= (the same key twice: either; labels: both).
    #[arg(short, long)]
    filter: Vec<String>,
    /// Go template for each event (`{{json .}}`, `{{.Action}}`).
    #[arg(long)]
    format: Option<String>,
}

fn check_filters(filters: &[String]) -> Result<Vec<(String, String)>> {
    let pairs = filters
        .iter()
        .map(|f| {
            let (k, v) = f
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--filter {f:?}: expected KEY=VALUE"))?;
            Ok((k.to_string(), v.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    engine::events::check_filters(&pairs)?;
    Ok(pairs)
}

fn passes(filters: &[(String, String)], e: &Event) -> bool {
    engine::events::matches(filters, e)
}

fn print(e: &Event, format: Option<&str>) -> Result<()> {
    use std::io::Write;
    let line = match format {
        Some(t) => engine::inspect::format(t, &serde_json::to_value(e)?)?,
        None => {
            let when = time::OffsetDateTime::from_unix_timestamp_nanos(e.time_nano as i128)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default();
            let attrs: Vec<String> = e
                .actor
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!(
                "{when} {} {} {} ({})",
                e.typ,
                e.action,
                e.actor.id,
                attrs.join(", ")
            )
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// `berth events`.
pub fn events_main(root: &Path, a: &EventsArgs) -> Result<()> {
    let filters = check_filters(&a.filter)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let since = a
        .since
        .as_deref()
        .map(|v| crate::logs::parse_time("--since", v, now))
        .transpose()?;
    let until = a
        .until
        .as_deref()
        .map(|v| crate::logs::parse_time("--until", v, now))
        .transpose()?;
    let in_window = |e: &Event| {
        let t = e.time_nano as f64 / 1e9;
        since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
    };
    // Follow from where the log ends now; the past first when asked for.
    let mut pos = engine::events::end(root);
    if since.is_some() || until.is_some() {
        for e in engine::events::read(root)
            .iter()
            .filter(|e| in_window(e) && passes(&filters, e))
        {
            print(e, a.format.as_deref())?;
        }
    }
    if until.is_some_and(|u| u <= now) {
        return Ok(());
    }
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let (new, next) = engine::events::read_from(root, pos);
        pos = next;
        for e in new.iter().filter(|e| passes(&filters, e)) {
            if until.is_some_and(|u| e.time_nano as f64 / 1e9 > u) {
                return Ok(());
            }
            print(e, a.format.as_deref())?;
        }
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        if until.is_some_and(|u| t > u) {
            return Ok(());
        }
    }
}
