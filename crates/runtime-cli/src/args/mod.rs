//! The command line of berth-runtime: runc's global flags, subcommands and
//! their flags, parsed by hand from a table per subcommand.
//!
//! A hand-written parser instead of a general one keeps the runtime small:
//! the runtime is exec'd for every create, start, state and delete an
//! engine makes, and every page of parser it touches is paid on each of
//! them (see bench/README.md). The rules are those of runc's parser (Go's
//! `flag` package under urfave/cli), slightly more lenient:
//! - `--name value`, `--name=value`, `-n value` and `-n=value`;
//! - a boolean takes no value, or `=true`/`=false`;
//! - flags may come before or after the positional arguments, except for
//!   `exec` and `ps`, whose arguments after the container id are the
//!   command (as runc's, they may begin with `-`); `--` ends the flags;
//! - the global flags (`--root`, `--log`, …) may also follow the
//!   subcommand.

mod command;
mod table;

use std::fmt;
use std::path::PathBuf;

pub use command::*;
pub use table::global_help;
use table::sub_help;
use table::{Flag, Sub, GLOBAL, SUBS};

/// A command line that cannot be parsed; printed with a hint to `--help`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    /// The subcommand whose flags were wrong ("" for the global ones).
    pub command: &'static str,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.command.is_empty() {
            write!(f, "{} (see berth-runtime --help)", self.message)
        } else {
            write!(
                f,
                "{}: {} (see berth-runtime {} --help)",
                self.command, self.message, self.command
            )
        }
    }
}

impl std::error::Error for UsageError {}
/// The flags and positionals found for one subcommand.
#[derive(Default)]
struct Found {
    /// (long name, value) in command-line order; booleans as "true"/"false".
    flags: Vec<(&'static str, String)>,
    positionals: Vec<String>,
}

impl Found {
    fn last(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.flags
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn bool(&self, name: &str) -> bool {
        self.last(name) == Some("true")
    }

    fn path(&self, name: &str) -> Option<PathBuf> {
        self.last(name).map(PathBuf::from)
    }

    fn string(&self, name: &str) -> Option<String> {
        self.last(name).map(str::to_string)
    }
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Cli, UsageError> {
    let args: Vec<String> = args.into_iter().collect();
    let mut found = Found::default();
    // The global flags, up to the subcommand.
    let mut i = 0;
    let sub = loop {
        let Some(word) = args.get(i) else {
            break None;
        };
        if word.starts_with('-') && word != "-" {
            i = take_flag(&args, i, &[GLOBAL], "", &mut found)?;
            continue;
        }
        i += 1;
        if word == "help" {
            let text = match args.get(i) {
                Some(w) => sub_help(find_sub(w)?),
                None => global_help(),
            };
            return cli_from(&found, Command::Help(text));
        }
        break Some(find_sub(word)?);
    };
    if found.bool("version") {
        return cli_from(&found, Command::Version);
    }
    let Some(sub) = sub.filter(|_| !found.bool("help")) else {
        return cli_from(&found, Command::Help(global_help()));
    };
    // The subcommand's flags (and the global ones), and its positionals.
    let mut tables: Vec<&[Flag]> = sub.flags.to_vec();
    tables.push(GLOBAL);
    let mut sub_found = Found::default();
    let mut only_positionals = false;
    while let Some(word) = args.get(i) {
        let trailing = sub
            .trailing_after
            .is_some_and(|n| sub_found.positionals.len() >= n);
        if only_positionals || trailing || !word.starts_with('-') || word == "-" {
            sub_found.positionals.push(word.clone());
            i += 1;
        } else if word == "--" {
            only_positionals = true;
            i += 1;
        } else {
            i = take_flag(&args, i, &tables, sub.name, &mut sub_found)?;
        }
    }
    if sub_found.bool("help") {
        return cli_from(&found, Command::Help(sub_help(sub)));
    }
    // Global flags given after the subcommand count as well.
    for (name, value) in &sub_found.flags {
        if GLOBAL.iter().any(|g| g.long == *name) {
            found.flags.push((name, value.clone()));
        }
    }
    let command = build(sub, &sub_found)?;
    cli_from(&found, command)
}

fn find_sub(name: &str) -> Result<&'static Sub, UsageError> {
    let name = if name == "ls" { "list" } else { name };
    SUBS.iter()
        .find(|s| s.name == name)
        .ok_or_else(|| UsageError {
            command: "",
            message: format!("unknown command {name:?}"),
        })
}

/// Reads the flag at `args[i]` into `found`; returns the next index.
fn take_flag(
    args: &[String],
    i: usize,
    tables: &[&'static [Flag]],
    command: &'static str,
    found: &mut Found,
) -> Result<usize, UsageError> {
    let usage = |message: String| UsageError { command, message };
    let word = &args[i];
    let body = word
        .strip_prefix("--")
        .or_else(|| word.strip_prefix('-'))
        .unwrap_or(word);
    let (name, inline) = match body.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (body, None),
    };
    let long = word.starts_with("--");
    let spec = tables.iter().flat_map(|t| t.iter()).find(|f| {
        if long {
            f.long == name
        } else {
            // Go's flag package takes -name as well as --name.
            f.long == name || (name.chars().count() == 1 && f.short == name.chars().next())
        }
    });
    let Some(spec) = spec else {
        return Err(usage(format!("unknown flag {word:?}")));
    };
    if !spec.value {
        let value = match inline {
            None | Some("true") => "true",
            Some("false") => "false",
            Some(v) => {
                return Err(usage(format!(
                    "--{} takes no value (or true/false), not {v:?}",
                    spec.long
                )))
            }
        };
        found.flags.push((spec.long, value.to_string()));
        return Ok(i + 1);
    }
    match inline {
        Some(v) => {
            found.flags.push((spec.long, v.to_string()));
            Ok(i + 1)
        }
        None => {
            let v = args
                .get(i + 1)
                .ok_or_else(|| usage(format!("--{} needs a value", spec.long)))?;
            found.flags.push((spec.long, v.clone()));
            Ok(i + 2)
        }
    }
}

fn cli_from(found: &Found, command: Command) -> Result<Cli, UsageError> {
    let log_format = match found.last("log-format").unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(UsageError {
                command: "",
                message: format!("--log-format {other:?}: expected text or json"),
            })
        }
    };
    Ok(Cli {
        root: found.path("root"),
        log: found.path("log"),
        log_format,
        debug: found.bool("debug"),
        systemd_cgroup: found.bool("systemd-cgroup"),
        command,
    })
}

fn number<T: std::str::FromStr>(
    found: &Found,
    sub: &Sub,
    name: &str,
) -> Result<Option<T>, UsageError> {
    found
        .last(name)
        .map(|v| {
            v.parse().map_err(|_| UsageError {
                command: sub.name,
                message: format!("--{name} {v:?}: not a valid number"),
            })
        })
        .transpose()
}

fn table_format(found: &Found, sub: &Sub) -> Result<bool, UsageError> {
    match found.last("format").unwrap_or("table") {
        "table" => Ok(false),
        "json" => Ok(true),
        other => Err(UsageError {
            command: sub.name,
            message: format!("--format {other:?}: expected table or json"),
        }),
    }
}

/// Checks the count of positionals and returns them.
fn positionals(
    found: &Found,
    sub: &Sub,
    min: usize,
    max: usize,
) -> Result<Vec<String>, UsageError> {
    let n = found.positionals.len();
    if n < min {
        return Err(UsageError {
            command: sub.name,
            message: if sub.usage.starts_with("ID") {
                "needs a container id".to_string()
            } else {
                format!("needs {}", sub.usage)
            },
        });
    }
    if n > max {
        return Err(UsageError {
            command: sub.name,
            message: format!("unexpected argument {:?}", found.positionals[max]),
        });
    }
    Ok(found.positionals.clone())
}

fn create_args(found: &Found, sub: &Sub, id: String) -> Result<CreateArgs, UsageError> {
    Ok(CreateArgs {
        bundle: found.path("bundle").unwrap_or_else(|| PathBuf::from(".")),
        pid_file: found.path("pid-file"),
        console_socket: found.path("console-socket"),
        no_pivot: found.bool("no-pivot"),
        no_new_keyring: found.bool("no-new-keyring"),
        preserve_fds: number(found, sub, "preserve-fds")?.unwrap_or(0),
        id,
    })
}

fn build(sub: &Sub, f: &Found) -> Result<Command, UsageError> {
    let one_id = || positionals(f, sub, 1, 1).map(|mut p| p.remove(0));
    Ok(match sub.name {
        "create" => Command::Create(create_args(f, sub, one_id()?)?),
        "start" => Command::Start { id: one_id()? },
        "run" => Command::Run {
            create: create_args(f, sub, one_id()?)?,
            detach: f.bool("detach"),
            keep: f.bool("keep"),
        },
        "state" => Command::State { id: one_id()? },
        "list" => {
            positionals(f, sub, 0, 0)?;
            Command::List {
                json: table_format(f, sub)?,
                quiet: f.bool("quiet"),
            }
        }
        "kill" => {
            let mut p = positionals(f, sub, 1, 2)?.into_iter();
            Command::Kill {
                all: f.bool("all"),
                id: p.next().unwrap_or_default(),
                signal: p.next().unwrap_or_else(|| "SIGTERM".to_string()),
            }
        }
        "delete" => Command::Delete {
            force: f.bool("force"),
            id: one_id()?,
        },
        "exec" => {
            let mut p = positionals(f, sub, 1, usize::MAX)?;
            let id = p.remove(0);
            let gids = f
                .all("additional-gids")
                .iter()
                .map(|g| {
                    g.parse::<u32>().map_err(|_| UsageError {
                        command: sub.name,
                        message: format!("--additional-gids {g:?}: not a group id"),
                    })
                })
                .collect::<Result<Vec<u32>, _>>()?;
            Command::Exec(ExecArgs {
                process: f.path("process"),
                tty: f.bool("tty"),
                console_socket: f.path("console-socket"),
                cwd: f.path("cwd"),
                env: f.all("env"),
                user: f.string("user"),
                additional_gids: gids,
                cap: f.all("cap"),
                no_new_privs: f.bool("no-new-privs"),
                process_label: f.string("process-label"),
                apparmor: f.string("apparmor"),
                detach: f.bool("detach"),
                pid_file: f.path("pid-file"),
                preserve_fds: number(f, sub, "preserve-fds")?.unwrap_or(0),
                id,
                command: p,
            })
        }
        "pause" => Command::Pause { id: one_id()? },
        "resume" => Command::Resume { id: one_id()? },
        "ps" => {
            let mut p = positionals(f, sub, 1, usize::MAX)?;
            let id = p.remove(0);
            Command::Ps {
                json: table_format(f, sub)?,
                id,
                ps_args: p,
            }
        }
        "update" => Command::Update(UpdateArgs {
            resources: f.path("resources"),
            memory: f.string("memory"),
            memory_swap: f.string("memory-swap"),
            memory_reservation: f.string("memory-reservation"),
            cpu_shares: number(f, sub, "cpu-shares")?,
            cpu_quota: number(f, sub, "cpu-quota")?,
            cpu_period: number(f, sub, "cpu-period")?,
            cpuset_cpus: f.string("cpuset-cpus"),
            cpuset_mems: f.string("cpuset-mems"),
            pids_limit: number(f, sub, "pids-limit")?,
            blkio_weight: number(f, sub, "blkio-weight")?,
            id: one_id()?,
        }),
        "events" => Command::Events {
            stats: f.bool("stats"),
            interval: f.string("interval").unwrap_or_else(|| "5s".to_string()),
            id: one_id()?,
        },
        "spec" => {
            positionals(f, sub, 0, 0)?;
            Command::Spec {
                bundle: f.path("bundle").unwrap_or_else(|| PathBuf::from(".")),
                rootless: f.bool("rootless"),
            }
        }
        "features" => {
            positionals(f, sub, 0, 0)?;
            Command::Features
        }
        other => unreachable!("subcommand {other} has no builder"),
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Cli, UsageError> {
        parse(line.split_whitespace().map(str::to_string))
    }

    #[test]
    fn containerd_create_line() {
        let cli = p("--root /r --log /l.json --log-format json --systemd-cgroup create --bundle /b --pid-file /p x1").unwrap();
        assert_eq!(cli.root, Some(PathBuf::from("/r")));
        assert_eq!(cli.log, Some(PathBuf::from("/l.json")));
        assert_eq!(cli.log_format, LogFormat::Json);
        assert!(cli.systemd_cgroup);
        let Command::Create(c) = cli.command else {
            panic!()
        };
        assert_eq!(c.bundle, PathBuf::from("/b"));
        assert_eq!(c.pid_file, Some(PathBuf::from("/p")));
        assert_eq!(c.id, "x1");
        assert_eq!(c.preserve_fds, 0);
    }

    #[test]
    fn equals_short_and_global_after_the_subcommand() {
        let cli = p("create -b=/b --preserve-fds=2 --root=/r x --debug").unwrap();
        assert!(cli.debug);
        assert_eq!(cli.root, Some(PathBuf::from("/r")));
        let Command::Create(c) = cli.command else {
            panic!()
        };
        assert_eq!((c.bundle, c.preserve_fds), (PathBuf::from("/b"), 2));
    }

    #[test]
    fn exec_command_keeps_its_own_flags() {
        let cli = p("exec -t -e A=1 --env B=2 -g 5 x sh -c -e").unwrap();
        let Command::Exec(e) = cli.command else {
            panic!()
        };
        assert!(e.tty);
        assert_eq!(e.env, ["A=1", "B=2"]);
        assert_eq!(e.additional_gids, [5]);
        assert_eq!(e.id, "x");
        assert_eq!(e.command, ["sh", "-c", "-e"]);
    }

    #[test]
    fn kill_defaults_and_negative_values() {
        let Command::Kill { all, id, signal } = p("kill x").unwrap().command else {
            panic!()
        };
        assert_eq!((all, id.as_str(), signal.as_str()), (false, "x", "SIGTERM"));
        let Command::Update(u) = p("update --cpu-quota -1 --pids-limit -1 x")
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!((u.cpu_quota, u.pids_limit), (Some(-1), Some(-1)));
    }

    #[test]
    fn bad_lines_name_the_problem() {
        assert!(p("create")
            .unwrap_err()
            .to_string()
            .contains("needs a container id"));
        assert!(p("create --bogus x")
            .unwrap_err()
            .to_string()
            .contains("\"--bogus\""));
        assert!(p("create --pid-file")
            .unwrap_err()
            .to_string()
            .contains("--pid-file needs a value"));
        assert!(p("frob x")
            .unwrap_err()
            .to_string()
            .contains("unknown command \"frob\""));
        assert!(p("start a b")
            .unwrap_err()
            .to_string()
            .contains("unexpected argument \"b\""));
        assert!(p("--log-format xml state x")
            .unwrap_err()
            .to_string()
            .contains("text or json"));
        assert!(p("update --cpu-shares lots x")
            .unwrap_err()
            .to_string()
            .contains("--cpu-shares \"lots\""));
        assert!(p("delete --force=maybe x")
            .unwrap_err()
            .to_string()
            .contains("true/false"));
    }

    #[test]
    fn help_version_and_aliases() {
        assert!(matches!(p("").unwrap().command, Command::Help(_)));
        assert!(matches!(p("--version").unwrap().command, Command::Version));
        let Command::Help(h) = p("create --help").unwrap().command else {
            panic!()
        };
        assert!(h.contains("--console-socket"));
        let Command::Help(h) = p("help exec").unwrap().command else {
            panic!()
        };
        assert!(h.contains("--process"));
        assert!(matches!(
            p("ls -q").unwrap().command,
            Command::List {
                quiet: true,
                json: false
            }
        ));
        assert!(matches!(
            p("delete -f=false x").unwrap().command,
            Command::Delete { force: false, .. }
        ));
    }
}
