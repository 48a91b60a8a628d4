//! berth-runtime's log output: a small `tracing` subscriber that writes one
//! line per event, as text or as runc's JSON, to stderr or a log file.
//!
//! The runtime logs little (warnings, errors, and debug lines under
//! `--debug`) and has no spans, so a full formatting subscriber would only
//! add code that every runtime call pages in.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::args::LogFormat;

/// Writes each enabled event as one line.
pub struct LineLogger {
    max: Level,
    format: LogFormat,
    out: Mutex<Box<dyn Write + Send>>,
}

impl LineLogger {
    /// A logger of events up to `max` (WARN or DEBUG) into `out`.
    pub fn new(max: Level, format: LogFormat, out: Box<dyn Write + Send>) -> Self {
        Self {
            max,
            format,
            out: Mutex::new(out),
        }
    }

    /// The line for one event with its message and fields, without the
    /// newline.
    fn line(&self, level: &Level, target: &str, fields: &Fields) -> String {
        let time = runtime::container_create::now_rfc3339();
        match self.format {
            LogFormat::Json => {
                let mut msg = fields.message.clone();
                if !fields.rest.is_empty() {
                    msg.push_str(&fields.rest);
                }
                serde_json::json!({
                    "level": level.as_str().to_ascii_lowercase(),
                    "msg": msg,
                    "time": time,
                })
                .to_string()
            }
            LogFormat::Text => format!(
                "{time} {:>5} {target}: {}{}",
                level.as_str(),
                fields.message,
                fields.rest
            ),
        }
    }
}

/// The message of an event and its other fields as ` key=value`.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}

impl Subscriber for LineLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // tracing orders levels by verbosity: ERROR < WARN < … < TRACE.
        *metadata.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::from_level(self.max))
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        // Spans are not recorded; every one gets the same id.
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let line = self.line(meta.level(), meta.target(), &fields);
        // A poisoned lock (a panic while writing) still holds a usable
        // writer; a failed write has nowhere to be reported.
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A writer whose bytes the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(format: LogFormat, max: Level) -> String {
        let buf = Shared::default();
        let logger = LineLogger::new(max, format, Box::new(buf.clone()));
        tracing::subscriber::with_default(logger, || {
            tracing::debug!("quiet");
            tracing::warn!(path = "/x", "went {}", "wrong");
        });
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn json_lines_are_runcs() {
        let out = logged(LogFormat::Json, Level::WARN);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["msg"], "went wrong path=\"/x\"");
        assert!(v["time"].as_str().unwrap().starts_with("20"));
    }

    #[test]
    fn text_lines_and_the_debug_level() {
        let out = logged(LogFormat::Text, Level::DEBUG);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(
            lines[0].ends_with("DEBUG berth_runtime::log::tests: quiet"),
            "{out}"
        );
        assert!(
            lines[1].contains(" WARN ") && lines[1].ends_with("went wrong path=\"/x\""),
            "{out}"
        );
    }
}
