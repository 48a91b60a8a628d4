//! Health checks: the image's HEALTHCHECK merged with `--health-*` as
//! Docker merges them, one probe run as an exec in the container
//! (`berth container healthcheck ID`, which berth-shim runs on its
//! schedule), and the health state it leaves: starting, healthy or
//! unhealthy, the failing streak, the last five results.

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::run::Engine;
use crate::store::Store;

/// A container's health check, as Docker's `Config.Healthcheck` (times in
/// nanoseconds; 0 means the default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// `["CMD", prog, args…]`, `["CMD-SHELL", "command"]` or `["NONE"]`.
    #[serde(rename = "Test", default)]
    pub test: Vec<String>,
    /// Between probes (default 30 s).
    #[serde(rename = "Interval", default)]
    pub interval: i64,
    /// A probe running longer fails (default 30 s).
    #[serde(rename = "Timeout", default)]
    pub timeout: i64,
    /// Failures in this time after start do not count (default 0).
    #[serde(rename = "StartPeriod", default)]
    pub start_period: i64,
    /// Between probes during the start period (default 5 s).
    #[serde(rename = "StartInterval", default)]
    pub start_interval: i64,
    /// Failures in a row that make it unhealthy (default 3).
    #[serde(rename = "Retries", default)]
    pub retries: i64,
}

const SECOND: i64 = 1_000_000_000;

impl HealthConfig {
    /// The interval in effect, in nanoseconds.
    pub fn interval(&self) -> i64 {
        if self.interval > 0 {
            self.interval
        } else {
            30 * SECOND
        }
    }
    /// The timeout in effect.
    pub fn timeout(&self) -> i64 {
        if self.timeout > 0 {
            self.timeout
        } else {
            30 * SECOND
        }
    }
    /// The start interval in effect.
    pub fn start_interval(&self) -> i64 {
        if self.start_interval > 0 {
            self.start_interval
        } else {
            5 * SECOND
        }
    }
    /// The retries in effect.
    pub fn retries(&self) -> i64 {
        if self.retries > 0 {
            self.retries
        } else {
            3
        }
    }

    /// The probe's command line.
    fn argv(&self) -> Vec<String> {
        match self.test.first().map(String::as_str) {
            Some("CMD") => self.test[1..].to_vec(),
            Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), self.test[1..].join(" ")],
            _ => vec![],
        }
    }

    /// berth-shim's options for this check.
    pub fn shim_args(&self) -> Vec<String> {
        let ms = |ns: i64| (ns / 1_000_000).max(1).to_string();
        let mut a = vec!["--health-interval".into(), ms(self.interval())];
        if self.start_period > 0 {
            a.extend([
                "--health-start-period".into(),
                ms(self.start_period),
                "--health-start-interval".into(),
                ms(self.start_interval()),
            ]);
        }
        a
    }
}

/// `--health-cmd`, `--health-interval`, … and `--no-healthcheck`.
#[derive(Debug, Clone, Default)]
pub struct HealthFlags {
    /// `--health-cmd` (run by /bin/sh -c).
    pub cmd: Option<String>,
    /// `--health-interval` (a Go duration).
    pub interval: Option<String>,
    /// `--health-timeout`.
    pub timeout: Option<String>,
    /// `--health-start-period`.
    pub start_period: Option<String>,
    /// `--health-start-interval`.
    pub start_interval: Option<String>,
    /// `--health-retries`.
    pub retries: Option<i64>,
    /// `--no-healthcheck`.
    pub none: bool,
}

/// Parses a Go duration (`30s`, `1m30s`, `500ms`, `1.5h`) into nanoseconds.
pub fn parse_duration(option: &'static str, s: &str) -> Result<i64, EngineError> {
    let bad = || EngineError::InvalidOption {
        option,
        value: s.to_string(),
        reason: "not a duration (such as 30s, 1m30s, 500ms)".into(),
    };
    if s == "0" {
        return Ok(0);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += n * mult;
    }
    Ok(total as i64)
}

/// The check a container gets: the image's, with what the flags set
/// replacing its fields. None when there is none or it is disabled.
pub fn merge(
    image: Option<&HealthConfig>,
    flags: &HealthFlags,
) -> Result<Option<HealthConfig>, EngineError> {
    let any_flag = flags.cmd.is_some()
        || flags.interval.is_some()
        || flags.timeout.is_some()
        || flags.start_period.is_some()
        || flags.start_interval.is_some()
        || flags.retries.is_some();
    if flags.none {
        if any_flag {
            return Err(EngineError::InvalidOption {
                option: "--no-healthcheck",
                value: String::new(),
                reason: "conflicts with the --health-* options".into(),
            });
        }
        return Ok(None);
    }
    let mut c = image.cloned().unwrap_or_default();
    if let Some(cmd) = &flags.cmd {
        c.test = vec!["CMD-SHELL".into(), cmd.clone()];
    }
    let at_least_1ms =
        |option: &'static str, v: &Option<String>| -> Result<Option<i64>, EngineError> {
            let Some(v) = v else { return Ok(None) };
            let ns = parse_duration(option, v)?;
            if ns != 0 && ns < 1_000_000 {
                return Err(EngineError::InvalidOption {
                    option,
                    value: v.clone(),
                    reason: "cannot be less than 1ms".into(),
                });
            }
            Ok(Some(ns))
        };
    if let Some(ns) = at_least_1ms("--health-interval", &flags.interval)? {
        c.interval = ns;
    }
    if let Some(ns) = at_least_1ms("--health-timeout", &flags.timeout)? {
        c.timeout = ns;
    }
    if let Some(ns) = at_least_1ms("--health-start-period", &flags.start_period)? {
        c.start_period = ns;
    }
    if let Some(ns) = at_least_1ms("--health-start-interval", &flags.start_interval)? {
        c.start_interval = ns;
    }
    if let Some(r) = flags.retries {
        if r < 0 {
            return Err(EngineError::InvalidOption {
                option: "--health-retries",
                value: r.to_string(),
                reason: "cannot be negative".into(),
            });
        }
        c.retries = r;
    }
    match c.test.first().map(String::as_str) {
        None | Some("NONE") => Ok(None),
        Some("CMD") | Some("CMD-SHELL") if c.test.len() > 1 => Ok(Some(c)),
        _ => Err(EngineError::InvalidOption {
            option: "--health-cmd",
            value: c.test.join(" "),
            reason: "the test must be CMD or CMD-SHELL with a command".into(),
        }),
    }
}

/// One probe's result, as Docker's `State.Health.Log` entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    /// When it started (RFC 3339).
    #[serde(rename = "Start")]
    pub start: String,
    /// When it ended.
    #[serde(rename = "End")]
    pub end: String,
    /// Its exit status; -1 when it timed out or could not run.
    #[serde(rename = "ExitCode")]
    pub exit_code: i64,
    /// The first 4 KiB of its output.
    #[serde(rename = "Output")]
    pub output: String,
}

/// A container's health, as Docker's `State.Health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthState {
    /// `starting`, `healthy` or `unhealthy`.
    #[serde(rename = "Status")]
    pub status: String,
    /// Failed probes in a row (those in the start period not counted).
    #[serde(rename = "FailingStreak")]
    pub failing_streak: i64,
    /// The last five results, oldest first.
    #[serde(rename = "Log")]
    pub log: Vec<HealthResult>,
}

impl HealthState {
    /// Where every start begins.
    pub fn starting() -> HealthState {
        HealthState {
            status: "starting".into(),
            ..Default::default()
        }
    }

    /// Takes one result in; `in_start_period` failures do not count.
    pub fn record(&mut self, r: HealthResult, retries: i64, in_start_period: bool) {
        if r.exit_code == 0 {
            self.status = "healthy".into();
            self.failing_streak = 0;
        } else if !in_start_period || self.status == "healthy" {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = "unhealthy".into();
            }
        }
        self.log.push(r);
        let n = self.log.len();
        if n > 5 {
            self.log.drain(..n - 5);
        }
    }
}

/// The most of a probe's output kept.
const OUTPUT_LIMIT: usize = 4096;

impl Engine {
    /// Runs container `key`'s health check once and records the result
    /// (what berth-shim calls on its schedule). Nothing to do for a
    /// container without a check or not running.
    pub fn health_check(&self, key: &str) -> Result<(), EngineError> {
        let db = Store::open(&self.root)?;
        let rec = db.find(key)?;
        let settings = crate::restart::ContainerSettings::parse(&rec.config);
        let Some(check) = settings.healthcheck.clone() else {
            return Ok(());
        };
        if !rec.is_running() || settings.paused {
            return Ok(());
        }
        let start = crate::run::now_f();
        let timeout = std::time::Duration::from_nanos(check.timeout() as u64);
        let (exit_code, output) = match self.exec_captured(&rec, check.argv(), timeout) {
            Ok(Some((code, out))) => (code as i64, out),
            Ok(None) => (
                -1,
                format!(
                    "Health check exceeded timeout ({})",
                    crate::health::go_duration(check.timeout())
                ),
            ),
            Err(e) => (-1, e.to_string()),
        };
        let result = HealthResult {
            start: crate::inspect::rfc3339_f(start),
            end: crate::inspect::rfc3339_f(crate::run::now_f()),
            exit_code,
            output: truncate(output, OUTPUT_LIMIT),
        };
        let in_start_period = (start - rec.started as f64) * 1e9 < check.start_period as f64;
        let mut changed = None;
        db.update_settings(&rec.id, |s| {
            let h = s.health.get_or_insert_with(HealthState::starting);
            let before = h.status.clone();
            h.record(result.clone(), check.retries(), in_start_period);
            if h.status != before {
                changed = Some(h.status.clone());
            }
        })?;
        if let Some(status) = changed {
            crate::events::record(
                &self.root,
                "container",
                &format!("health_status: {status}"),
                &rec.id,
                &[("name", &rec.name)],
            );
        }
        Ok(())
    }
}

fn truncate(mut s: String, limit: usize) -> String {
    if s.len() > limit {
        let mut cut = limit;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Nanoseconds as Go prints a duration (`30s`, `1m30s`, `500ms`).
pub fn go_duration(ns: i64) -> String {
    if ns % SECOND != 0 || ns < SECOND {
        return format!("{}ms", ns / 1_000_000);
    }
    let s = ns / SECOND;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_go_writes_them() {
        assert_eq!(parse_duration("x", "30s").unwrap(), 30 * SECOND);
        assert_eq!(parse_duration("x", "1m30s").unwrap(), 90 * SECOND);
        assert_eq!(parse_duration("x", "250ms").unwrap(), 250_000_000);
        assert_eq!(parse_duration("x", "1.5h").unwrap(), 5400 * SECOND);
        for bad in ["", "30", "s", "3x", "1m30"] {
            assert!(parse_duration("x", bad).is_err(), "{bad:?}");
        }
        assert_eq!(go_duration(90 * SECOND), "1m30s");
        assert_eq!(go_duration(250_000_000), "250ms");
    }

    #[test]
    fn flags_replace_the_images_fields_and_none_disables() {
        let image = HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: 10 * SECOND,
            retries: 5,
            ..Default::default()
        };
        let flags = HealthFlags {
            interval: Some("2s".into()),
            ..Default::default()
        };
        let c = merge(Some(&image), &flags).unwrap().unwrap();
        assert_eq!(
            (c.test.clone(), c.interval, c.retries),
            (image.test.clone(), 2 * SECOND, 5)
        );
        let flags = HealthFlags {
            cmd: Some("curl -f localhost".into()),
            ..Default::default()
        };
        assert_eq!(
            merge(Some(&image), &flags).unwrap().unwrap().argv(),
            ["/bin/sh", "-c", "curl -f localhost"]
        );
        let none = HealthFlags {
            none: true,
            ..Default::default()
        };
        assert_eq!(merge(Some(&image), &none).unwrap(), None);
        let both = HealthFlags {
            none: true,
            cmd: Some("true".into()),
            ..Default::default()
        };
        assert!(merge(None, &both).is_err());
        let tiny = HealthFlags {
            cmd: Some("true".into()),
            interval: Some("10us".into()),
            ..Default::default()
        };
        assert!(merge(None, &tiny).is_err());
        assert_eq!(merge(None, &HealthFlags::default()).unwrap(), None);
    }

    #[test]
    fn failures_count_after_the_start_period_and_a_success_resets() {
        let fail = HealthResult {
            exit_code: 1,
            ..Default::default()
        };
        let ok = HealthResult::default();
        let mut h = HealthState::starting();
        h.record(fail.clone(), 2, true);
        assert_eq!((h.status.as_str(), h.failing_streak), ("starting", 0));
        h.record(fail.clone(), 2, false);
        h.record(fail.clone(), 2, false);
        assert_eq!((h.status.as_str(), h.failing_streak), ("unhealthy", 2));
        h.record(ok, 2, false);
        assert_eq!((h.status.as_str(), h.failing_streak), ("healthy", 0));
        for _ in 0..6 {
            h.record(fail.clone(), 9, false);
        }
        assert_eq!(h.log.len(), 5);
    }
}
