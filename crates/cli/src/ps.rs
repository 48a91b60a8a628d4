//! `berth ps`: Docker's container list, its filters (`--filter
//! id|name|label|status|ancestor|exited`) and `--format` templates
//! (`table …`, `{{.Names}}`, `{{json .}}`).

use std::path::Path;

use anyhow::Result;
use clap::Args;
use engine::store::{Record, State};
use engine::Engine;

use crate::containers::{now, table};
use crate::format;

/// `docker ps` flags.
#[derive(Args)]
pub struct PsArgs {
    /// Show every container (default: running ones).
    #[arg(short, long)]
    all: bool,
    /// Only ids.
    #[arg(short, long)]
    quiet: bool,
    /// Full ids and commands.
    #[arg(long)]
    no_trunc: bool,
    /// The last N containers (any state).
    #[arg(short = 'n', long)]
    last: Option<usize>,
    /// The latest container (any state).
    #[arg(short = 'l', long)]
    latest: bool,
    /// Only containers that match: id=, name=, label=KEY[=VALUE], status=,
    /// ancestor=IMAGE, exited=CODE (repeatable; the same key is an OR).
    #[arg(short, long)]
    filter: Vec<String>,
    /// Go template for each container (`table …` adds the header).
    #[arg(long)]
    format: Option<String>,
}

/// The state word of `--filter status=` and `{{.State}}`.
fn state_word(r: &Record) -> &'static str {
    match r.state {
        State::Running if r.is_running() => {
            if engine::restart::ContainerSettings::parse(&r.config).paused {
                "paused"
            } else {
                "running"
            }
        }
        State::Running | State::Exited => "exited",
        State::Created => "created",
    }
}

/// A parsed `--filter`: each key with the values any of which may match.
struct Filters(Vec<(String, Vec<String>)>);

impl Filters {
    fn parse(list: &[String]) -> Result<Filters> {
        let mut out: Vec<(String, Vec<String>)> = vec![];
        for f in list {
            let (k, v) = f
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--filter {f:?}: expected KEY=VALUE"))?;
            match k {
                "id" | "name" | "label" | "ancestor" | "volume" | "before" | "since" => {}
                "status" => {
                    let known = ["created", "restarting", "running", "removing", "paused", "exited", "dead"];
                    if !known.contains(&v) {
                        anyhow::bail!("--filter {f:?}: the status is one of {}", known.join(", "));
                    }
                }
                "health" => {
                    let known = ["starting", "healthy", "unhealthy", "none"];
                    if !known.contains(&v) {
                        anyhow::bail!("--filter {f:?}: the health is one of {}", known.join(", "));
                    }
                }
                "exited" => {
                    v.parse::<i64>()
                        .map_err(|_| anyhow::anyhow!("--filter {f:?}: exited takes an exit code"))?;
                }
                _ => anyhow::bail!(
                    "--filter {f:?}: berth filters containers by id, name, label, status, ancestor, exited, health, volume, before and since"
                ),
            }
            match out.iter_mut().find(|(key, _)| key == k) {
                Some((_, values)) => values.push(v.to_string()),
                None => out.push((k.to_string(), vec![v.to_string()])),
            }
        }
        Ok(Filters(out))
    }

    /// Resolves what the filters refer to: the containers of `before=`
    /// and `since=` (their places in `list`, newest first) and the users
    /// of the `volume=`s.
    fn context(&self, engine: &Engine, list: &[Record]) -> Result<Context> {
        let mut ctx = Context::default();
        for (k, values) in &self.0 {
            for v in values {
                match k.as_str() {
                    "before" | "since" => {
                        let target = engine.container(v)?;
                        let at = list.iter().position(|r| r.id == target.id).unwrap_or(0);
                        ctx.places.insert(v.clone(), at);
                    }
                    "volume" => {
                        let users = engine
                            .volumes()?
                            .into_iter()
                            .find(|(vol, _)| vol.name == *v)
                            .map(|(_, users)| users)
                            .unwrap_or_default();
                        ctx.volume_users.insert(v.clone(), users);
                    }
                    _ => {}
                }
            }
        }
        Ok(ctx)
    }

    /// Whether `r` (at `at` in the list, newest first) passes: every key,
    /// any of its values (every one of `label`'s, as dockerd).
    fn pass(&self, r: &Record, at: usize, ctx: &Context) -> bool {
        let settings = engine::restart::ContainerSettings::parse(&r.config);
        let labels = &settings.labels;
        // Docker: "none" for a container without a check; a stopped one
        // keeps its last health.
        let health = settings
            .health
            .as_ref()
            .map_or("none", |h| h.status.as_str());
        self.0.iter().all(|(k, values)| {
            let one = |v: &String| match k.as_str() {
                "id" => r.id.starts_with(v.as_str()),
                "name" => r.name.contains(v.trim_start_matches('/')),
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => labels.get(lk).is_some_and(|x| x == lv),
                    None => labels.contains_key(v),
                },
                "status" => state_word(r) == v,
                "ancestor" => {
                    r.image == *v
                        || (!v.contains(':') && r.image == format!("{v}:latest"))
                        || r.image_id
                            .trim_start_matches("sha256:")
                            .starts_with(v.trim_start_matches("sha256:"))
                }
                "exited" => state_word(r) == "exited" && v.parse::<i64>().ok() == Some(r.exit_code),
                "health" => health == v && (v == "none" || r.is_running()),
                // Created before the named container: later in the list.
                "before" => ctx.places.get(v).is_some_and(|p| at > *p),
                "since" => ctx.places.get(v).is_some_and(|p| at < *p),
                "volume" => ctx
                    .volume_users
                    .get(v)
                    .is_some_and(|users| users.contains(&r.id)),
                _ => false,
            };
            if k == "label" {
                values.iter().all(one)
            } else {
                values.iter().any(one)
            }
        })
    }
}

/// What `before=`, `since=` and `volume=` refer to.
#[derive(Default)]
struct Context {
    places: std::collections::HashMap<String, usize>,
    volume_users: std::collections::HashMap<String, Vec<String>>,
}

/// The fields a `--format` template reads, as `docker ps` names them.
fn fields(r: &Record, now: i64, no_trunc: bool) -> serde_json::Value {
    let settings = engine::restart::ContainerSettings::parse(&r.config);
    let labels = &settings.labels;
    serde_json::json!({
        "ID": if no_trunc { r.id.clone() } else { r.id[..12].to_string() },
        "Image": r.image,
        "Command": command(r, no_trunc),
        "CreatedAt": time::OffsetDateTime::from_unix_timestamp(r.created)
            .ok()
            .map(|t| format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000 UTC",
                t.year(), t.month() as u8, t.day(), t.hour(), t.minute(), t.second()
            ))
            .unwrap_or_default(),
        "RunningFor": format::ago(r.created, now),
        "Ports": ports_column(r),
        "State": state_word(r),
        "Status": status(r, now),
        "Size": "",
        "Names": r.name,
        "Labels": labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        "Mounts": "",
        "Networks": "",
    })
}

/// The PORTS column: the host sides of a running container's published
/// ports and its other exposed ports (the settings are read only for a
/// container that has some).
fn ports_column(r: &Record) -> String {
    if !r.is_running() || !r.config.contains("\"ExposedPorts\"") {
        return String::new();
    }
    let settings = engine::restart::ContainerSettings::parse(&r.config);
    engine::ports::ports_text(&settings.ports, &settings.exposed)
}

/// The column titles `table` templates get, per field.
const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
];

/// Prints `list` through template `t`: `table T` aligns `\t`-separated
/// columns under a header, as Docker's tab writer does.
fn print_formatted(t: &str, list: &[Record], now: i64, no_trunc: bool) -> Result<()> {
    let t = t.replace("\\t", "\t").replace("\\n", "\n");
    match t.strip_prefix("table") {
        Some(body) => {
            let body = body.trim_start();
            let header_values: serde_json::Map<String, serde_json::Value> = HEADERS
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                .collect();
            let mut rows = vec![];
            let header = engine::inspect::format(body, &serde_json::Value::Object(header_values))?;
            rows.push(header.split('\t').map(str::to_string).collect::<Vec<_>>());
            for r in list {
                let line = engine::inspect::format(body, &fields(r, now, no_trunc))?;
                rows.push(line.split('\t').map(str::to_string).collect());
            }
            let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
            for row in rows.iter_mut() {
                row.resize(cols, String::new());
            }
            table(&rows);
        }
        None => {
            for r in list {
                println!(
                    "{}",
                    engine::inspect::format(&t, &fields(r, now, no_trunc))?
                );
            }
        }
    }
    Ok(())
}

/// `Up 3 seconds`, `Exited (0) 2 minutes ago`, `Created`, as Docker words them.
pub fn status(r: &Record, now: i64) -> String {
    engine::inspect::status_text(r, now)
}

/// Docker's `"sh -c 'ech…"`: the command quoted, cut at 20 characters.
fn command(r: &Record, no_trunc: bool) -> String {
    let full = r.command.join(" ");
    let n = full.chars().count();
    if no_trunc || n <= 20 {
        format!("\"{full}\"")
    } else {
        format!("\"{}…\"", full.chars().take(19).collect::<String>())
    }
}

pub(crate) fn ps(engine: &Engine, a: &PsArgs) -> Result<()> {
    let mut list = engine.containers()?;
    let limit = if a.latest { Some(1) } else { a.last };
    let filters = Filters::parse(&a.filter)?;
    // Docker: a status or exited filter looks at every container.
    let any_state = a.all
        || a.filter
            .iter()
            .any(|f| f.starts_with("status=") || f.starts_with("exited="));
    let ctx = filters.context(engine, &list)?;
    let mut at = 0;
    list.retain(|r| {
        at += 1;
        filters.pass(r, at - 1, &ctx)
    });
    if let Some(n) = limit {
        list.truncate(n);
    } else if !any_state {
        list.retain(|r| r.is_running());
    }
    if a.quiet {
        for r in &list {
            println!("{}", if a.no_trunc { &r.id[..] } else { &r.id[..12] });
        }
        return Ok(());
    }
    let now = now();
    if let Some(t) = &a.format {
        return print_formatted(t, &list, now, a.no_trunc);
    }
    let mut rows = vec![[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    .map(String::from)
    .to_vec()];
    for r in &list {
        rows.push(vec![
            if a.no_trunc {
                r.id.clone()
            } else {
                r.id[..12].to_string()
            },
            r.image.clone(),
            command(r, a.no_trunc),
            format::ago(r.created, now),
            status(r, now),
            ports_column(r),
            r.name.clone(),
        ]);
    }
    table(&rows);
    Ok(())
}

/// `berth ps`.
pub fn ps_main(root: &Path, a: &PsArgs) -> Result<()> {
    ps(&crate::containers::engine(root, None)?, a)
}
