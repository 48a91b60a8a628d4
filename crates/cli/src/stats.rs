//! `berth stats`: Docker's table of CPU, memory, network, block I/O and
//! process counts for running containers: one table with `--no-stream`,
//! else a table redrawn every second until interrupted.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use engine::stats::Sample;

/// `docker stats` flags.
#[derive(Args)]
pub struct StatsArgs {
    /// Print one table and exit.
    #[arg(long)]
    no_stream: bool,
    /// Every container (stopped ones show zeros).
    #[arg(short, long)]
    all: bool,
    /// Go template for each container (`table …` adds the header).
    #[arg(long)]
    format: Option<String>,
    /// Full ids.
    #[arg(long)]
    no_trunc: bool,
    /// Containers (default: every running one).
    containers: Vec<String>,
}

/// Docker's binary sizes with four significant digits (`2.293MiB`).
fn bytes_size(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    let digits = if v >= 1000.0 {
        0
    } else if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let mut s = format!("{v:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    s + units[i]
}

/// One row's fields, as `--format` names them.
fn fields(id: &str, name: &str, now: &Sample, before: &Sample) -> serde_json::Value {
    serde_json::json!({
        "ID": id,
        "Container": id,
        "Name": name,
        "CPUPerc": format!("{:.2}%", now.cpu_percent(before)),
        "MemUsage": format!("{} / {}", bytes_size(now.memory), bytes_size(now.memory_limit)),
        "MemPerc": format!("{:.2}%", now.memory_percent()),
        "NetIO": format!("{} / {}", crate::format::human(now.net_io.0), crate::format::human(now.net_io.1)),
        "BlockIO": format!("{} / {}", crate::format::human(now.block_io.0), crate::format::human(now.block_io.1)),
        "PIDs": now.pids.to_string(),
    })
}

const DEFAULT: &str =
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Container", "CONTAINER"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

/// The table (or the formatted lines) of one round.
fn render(t: &str, rows: &[serde_json::Value]) -> Result<String> {
    let t = t.replace("\\t", "\t");
    let mut out = String::new();
    match t.strip_prefix("table") {
        Some(body) => {
            let body = body.trim_start();
            let header: serde_json::Map<String, serde_json::Value> = HEADERS
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                .collect();
            let mut cells =
                vec![
                    engine::inspect::format(body, &serde_json::Value::Object(header))?
                        .split('\t')
                        .map(str::to_string)
                        .collect::<Vec<_>>(),
                ];
            for r in rows {
                cells.push(
                    engine::inspect::format(body, r)?
                        .split('\t')
                        .map(str::to_string)
                        .collect(),
                );
            }
            let cols = cells.iter().map(Vec::len).max().unwrap_or(0);
            let widths: Vec<usize> = (0..cols)
                .map(|c| {
                    cells
                        .iter()
                        .map(|r| r.get(c).map_or(0, |x| x.chars().count()))
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for r in &cells {
                let mut line = String::new();
                for (c, cell) in r.iter().enumerate() {
                    if c + 1 == r.len() {
                        line.push_str(cell);
                    } else {
                        line.push_str(&format!("{cell:<w$}", w = widths[c] + 3));
                    }
                }
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
        None => {
            for r in rows {
                out.push_str(&engine::inspect::format(&t, r)?);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// `berth stats`.
pub fn stats_main(root: &Path, a: &StatsArgs) -> Result<()> {
    let e = crate::containers::engine(root, None)?;
    let targets: Vec<(String, String)> = if a.containers.is_empty() {
        e.containers()?
            .into_iter()
            .filter(|r| a.all || r.is_running())
            .map(|r| (r.id, r.name))
            .collect()
    } else {
        a.containers
            .iter()
            .map(|c| e.container(c).map(|r| (r.id, r.name)))
            .collect::<Result<_, _>>()?
    };
    let template = a.format.clone().unwrap_or_else(|| DEFAULT.to_string());
    let sample = |id: &str| e.stats_sample(id).unwrap_or_default();
    let mut before: Vec<Sample> = targets.iter().map(|(id, _)| sample(id)).collect();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now: Vec<Sample> = targets.iter().map(|(id, _)| sample(id)).collect();
        let rows: Vec<serde_json::Value> = targets
            .iter()
            .zip(now.iter().zip(&before))
            .map(|((id, name), (n, b))| {
                let shown = if a.no_trunc { &id[..] } else { &id[..12] };
                fields(shown, name, n, b)
            })
            .collect();
        let text = render(&template, &rows)?;
        if a.no_stream {
            print!("{text}");
            return Ok(());
        }
        // Docker's live view: clear the screen, home the cursor, redraw.
        print!("\x1b[2J\x1b[H{text}");
        use std::io::Write;
        std::io::stdout().flush()?;
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(bytes_size(0), "0B");
        assert_eq!(bytes_size(2_404_352), "2.293MiB");
        assert_eq!(bytes_size(25_271_000_000), "23.54GiB");
        assert_eq!(bytes_size(64 << 20), "64MiB");
    }
}
