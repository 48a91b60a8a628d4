//! Progress of pull and push as the user sees it: one bar per blob
//! (bytes, speed, ETA) on a terminal; plain lines, one per state change,
//! when standard output is not a terminal (logs, CI); nothing with
//! `--quiet`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::format::human;

/// Renders registry progress on standard output.
pub struct Bars {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    quiet: bool,
    stderr: bool,
}

impl Bars {
    /// Bars when stdout is a terminal, lines otherwise, nothing when `quiet`.
    pub fn new(quiet: bool) -> Self {
        let tty = std::io::stdout().is_terminal();
        Self::build(tty, quiet)
    }

    /// Bars on a terminal and nothing otherwise (`docker load` prints
    /// only its result lines when its output is not a terminal).
    pub fn terminal_only(quiet: bool) -> Self {
        let tty = std::io::stdout().is_terminal();
        Self::build(tty, quiet || !tty)
    }

    /// As [`Bars::new`], on standard error (a `run` that pulls keeps
    /// stdout for the container).
    pub fn on_stderr(quiet: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        Bars {
            multi: (tty && !quiet)
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            bars: Mutex::new(HashMap::new()),
            quiet,
            stderr: true,
        }
    }

    fn build(tty: bool, quiet: bool) -> Self {
        Bars {
            multi: (tty && !quiet)
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout())),
            bars: Mutex::new(HashMap::new()),
            quiet,
            stderr: false,
        }
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None if self.stderr => eprintln!("{text}"),
            None => println!("{text}"),
        }
    }
}

impl registry::Progress for Bars {
    fn message(&self, line: &str) {
        self.line(line);
    }

    fn start(&self, id: &str, action: &str, total: Option<u64>) {
        let Some(multi) = &self.multi else {
            match total {
                Some(t) => self.line(&format!("{id}: {action} {}", human(t))),
                None => self.line(&format!("{id}: {action}")),
            }
            return;
        };
        let bar = multi.add(ProgressBar::new(total.unwrap_or(0)));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix}: {msg:<12} [{bar:30}] {decimal_bytes:>9}/{decimal_total_bytes:<9} {decimal_bytes_per_sec:>11} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(id.to_string());
        bar.set_message(action.to_string());
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(id.to_string(), bar);
        }
    }

    fn advance(&self, id: &str, bytes: u64) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(id).cloned()) {
            bar.inc(bytes);
        }
    }

    fn done(&self, id: &str, status: &str) {
        let Some(multi) = &self.multi else {
            self.line(&format!("{id}: {status}"));
            return;
        };
        // A blob keeps its line: a later status ("Pull complete" after
        // "Extracting") replaces the earlier one in place.
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        let bar = bars
            .entry(id.to_string())
            .or_insert_with(|| {
                let bar = multi.add(ProgressBar::new(0));
                bar.set_prefix(id.to_string());
                bar
            })
            .clone();
        bar.set_style(
            ProgressStyle::with_template("{prefix}: {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.finish_with_message(status.to_string());
    }
}
