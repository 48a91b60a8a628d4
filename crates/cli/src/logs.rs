//! `berth logs`: a detached container's json-file log, with Docker's
//! `--follow`, `--tail`, `--timestamps`, `--since`, `--until` and
//! `--details`.

use std::path::Path;

use anyhow::Result;
use clap::Args;
use engine::Engine;

/// `docker logs` flags.
#[derive(Args)]
pub struct LogsArgs {
    /// Keep printing output as it comes, until the container stops.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines (`all`: every line).
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show each line's time.
    #[arg(short, long)]
    timestamps: bool,
    /// Only lines since this time: RFC 3339, Unix seconds, or a duration ago (10m, 1h30m).
    #[arg(long)]
    since: Option<String>,
    /// Only lines before this time (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Show each line's attributes (`--log-opt labels=…`, `env=…`) before it.
    #[arg(long)]
    details: bool,
    /// The container.
    container: String,
}

/// `key=value` escaped as Go's url.QueryEscape does it for `logs --details`.
fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Prints one json-file log line to stdout or stderr.
fn print_log_line(line: &str, timestamps: bool, details: bool) -> Result<()> {
    use std::io::Write;
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return Ok(());
    };
    let text = v["log"].as_str().unwrap_or("");
    let mut prefix = if timestamps {
        format!("{} ", v["time"].as_str().unwrap_or(""))
    } else {
        String::new()
    };
    if details {
        // As dockerd: the attributes sorted, `k=v` joined by commas, a space.
        let mut attrs: Vec<String> = v["attrs"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        format!(
                            "{}={}",
                            query_escape(k),
                            query_escape(v.as_str().unwrap_or(""))
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        attrs.sort();
        prefix.push_str(&attrs.join(","));
        prefix.push(' ');
    }
    if v["stream"] == "stderr" {
        write!(std::io::stderr(), "{prefix}{text}")?;
    } else {
        let mut out = std::io::stdout();
        write!(out, "{prefix}{text}")?;
        out.flush()?;
    }
    Ok(())
}

/// A `--since`/`--until` value as Unix seconds: RFC 3339, Unix seconds
/// (fractions allowed), or a Go duration back from `now` (`90s`, `1h30m`).
pub fn parse_time(option: &str, v: &str, now: f64) -> Result<f64> {
    if let Some(t) = crate::format::parse_rfc3339_f(v) {
        return Ok(t);
    }
    if let Ok(secs) = v.parse::<f64>() {
        return Ok(secs);
    }
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = v.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next().unwrap_or('s'));
        }
        let n: f64 = num
            .parse()
            .map_err(|_| anyhow::anyhow!("{option} {v:?}: not a time or duration"))?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => anyhow::bail!("{option} {v:?}: units are h, m, s and ms"),
        };
        any = true;
    }
    if !any || !num.is_empty() {
        anyhow::bail!("{option} {v:?}: expected RFC 3339, Unix seconds or a duration (10m)");
    }
    Ok(now - total)
}

pub(crate) fn logs(engine: &Engine, a: &LogsArgs) -> Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let since = a
        .since
        .as_deref()
        .map(|v| parse_time("--since", v, now))
        .transpose()?;
    let until = a
        .until
        .as_deref()
        .map(|v| parse_time("--until", v, now))
        .transpose()?;
    let in_window = |line: &str| -> bool {
        if since.is_none() && until.is_none() {
            return true;
        }
        let t = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["time"].as_str().and_then(crate::format::parse_rfc3339_f));
        let Some(t) = t else { return true };
        since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u)
    };
    let path = engine.log_path(&a.container)?;
    let tail: Option<usize> = match a.tail.as_str() {
        "all" => None,
        n => Some(
            n.parse()
                .map_err(|_| anyhow::anyhow!("--tail {n:?}: a number or all"))?,
        ),
    };
    // The rotated files first, oldest first; then the current one, which
    // --follow goes on reading.
    let Some((mut reader, mut lines)) = engine::log_reader::LogReader::open(&path)? else {
        // Nothing written yet.
        return Ok(());
    };
    lines.retain(|l| in_window(l));
    let skip = tail.map_or(0, |n| lines.len().saturating_sub(n));
    for l in &lines[skip..] {
        print_log_line(l, a.timestamps, a.details)?;
    }
    if !a.follow {
        return Ok(());
    }
    loop {
        let running = engine.container(&a.container).is_ok_and(|r| r.is_running());
        // Removed (--rm) once it stopped: nothing more will come.
        let Some(more) = reader.more()? else {
            return Ok(());
        };
        if until.is_some_and(|u| now >= u) && !more.is_empty() {
            // Nothing written from now on is before --until.
            return Ok(());
        }
        for l in &more {
            if in_window(l) {
                print_log_line(l, a.timestamps, a.details)?;
            }
        }
        if !running && more.is_empty() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `berth logs`.
pub fn logs_main(root: &Path, a: &LogsArgs) -> Result<()> {
    logs(&crate::containers::engine(root, None)?, a)
}
