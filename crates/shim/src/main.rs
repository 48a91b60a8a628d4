//! `berth-shim [OPTIONS] RUNTIME RUNTIME_ROOT ID BUNDLE LOG EXIT_FILE -- CLEANUP...`:
//! started by the engine for a detached container; see the library for
//! what it does. It answers on stdout (`ok <pid>`, `created <pid>` with
//! `--wait-attach`, or `error: <why>`), then goes quiet.
//!
//! Options: `--tty`, `--stdin`, `--stdin-once`, `--wait-attach`,
//! `--console-dir DIR`, `--log-driver json-file|none`, `--log-max-size BYTES`,
//! `--log-max-file N`, `--health-interval MS`, `--health-start-period MS`,
//! `--health-start-interval MS`. CALLBACK is the engine's command line; the
//! shim appends `cleanup ID` or `healthcheck ID`.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: berth-shim [--tty] [--stdin] [--stdin-once] [--wait-attach] \
[--console-dir DIR] [--log-driver json-file|none] [--log-max-size BYTES] [--log-max-file N] \
[--health-interval MS [--health-start-period MS --health-start-interval MS]] \
RUNTIME RUNTIME_ROOT ID BUNDLE LOG EXIT_FILE -- CALLBACK...";

fn parse(args: &[String]) -> Result<shim::Config, String> {
    let mut flags = std::collections::HashMap::new();
    let mut switches = std::collections::HashSet::new();
    let mut i = 0;
    while let Some(a) = args.get(i).filter(|a| a.starts_with("--") && *a != "--") {
        match a.as_str() {
            "--tty" | "--stdin" | "--stdin-once" | "--wait-attach" => {
                switches.insert(a.clone());
                i += 1;
            }
            "--console-dir"
            | "--log-driver"
            | "--log-max-size"
            | "--log-max-file"
            | "--log-attrs"
            | "--health-interval"
            | "--health-start-period"
            | "--health-start-interval" => {
                let v = args.get(i + 1).ok_or(format!("{a} needs a value"))?;
                flags.insert(a.clone(), v.clone());
                i += 2;
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    let rest = &args[i..];
    let sep = rest.iter().position(|a| a == "--").ok_or("no --")?;
    if sep != 6 || rest.len() == sep + 1 {
        return Err("wrong number of arguments".into());
    }
    let number = |k: &str| -> Result<Option<u64>, String> {
        flags
            .get(k)
            .map(|v| v.parse().map_err(|_| format!("{k} {v}: not a number")))
            .transpose()
    };
    let enabled = match flags.get("--log-driver").map(String::as_str) {
        None | Some("json-file") => true,
        Some("none") => false,
        Some(other) => return Err(format!("--log-driver {other}: unknown")),
    };
    Ok(shim::Config {
        runtime: PathBuf::from(&rest[0]),
        runtime_root: PathBuf::from(&rest[1]),
        id: rest[2].clone(),
        bundle: PathBuf::from(&rest[3]),
        log: shim::log::LogConfig {
            path: PathBuf::from(&rest[4]),
            enabled,
            max_size: number("--log-max-size")?,
            max_file: number("--log-max-file")?.unwrap_or(1).clamp(1, 1000) as u32,
            attrs: match flags.get("--log-attrs") {
                None => vec![],
                Some(j) => serde_json::from_str::<std::collections::BTreeMap<String, String>>(j)
                    .map_err(|e| format!("--log-attrs: {e}"))?
                    .into_iter()
                    .collect(),
            },
        },
        exit_file: PathBuf::from(&rest[5]),
        callback: rest[sep + 1..].to_vec(),
        health: match number("--health-interval")? {
            None => None,
            Some(ms) => Some(shim::HealthSchedule {
                interval: Duration::from_millis(ms.max(1)),
                start_period: Duration::from_millis(number("--health-start-period")?.unwrap_or(0)),
                start_interval: Duration::from_millis(
                    number("--health-start-interval")?.unwrap_or(ms).max(1),
                ),
            }),
        },
        tty: switches.contains("--tty"),
        stdin: switches.contains("--stdin"),
        stdin_once: switches.contains("--stdin-once"),
        wait_attach: switches.contains("--wait-attach"),
        console_dir: flags
            .get("--console-dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(&rest[3])),
    })
}

/// Points stdio at /dev/null: the engine has stopped listening.
fn quiet() {
    let _ = std::io::stdout().flush();
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let c = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-shim: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // A session of our own: the engine's terminal and process group are
    // not ours; the container's init becomes our child.
    let _ = nix::unistd::setsid();
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    // Until the answer, the engine is listening and takes the container
    // down on an error.
    let listener = match shim::listen(&c) {
        Ok(l) => l,
        Err(e) => {
            println!("error: {}", e.0);
            return ExitCode::from(1);
        }
    };
    let created = match shim::create(&c) {
        Ok(created) => created,
        Err(e) => {
            println!("error: {}", e.0);
            return ExitCode::from(1);
        }
    };
    let mut clients = Vec::new();
    if c.wait_attach {
        println!("created {}", created.pid);
        quiet();
        clients.extend(shim::first_client(&listener));
        if let Err(e) = shim::start(&c) {
            shim::supervise::refuse(
                clients,
                &shim::protocol::frame(shim::protocol::ERROR, e.0.as_bytes()),
            );
            shim::write_exit(&c, 125);
            return cleanup(&c);
        }
    } else {
        if let Err(e) = shim::start(&c) {
            println!("error: {}", e.0);
            return ExitCode::from(1);
        }
        println!("ok {}", created.pid);
        quiet();
    }
    let code = shim::supervise(&c, created.pid, created.io, Some(listener), clients);
    shim::write_exit(&c, code);
    cleanup(&c)
}

/// Becomes the engine's cleanup callback.
fn cleanup(c: &shim::Config) -> ExitCode {
    let _ = shim::callback(c, "cleanup").exec();
    ExitCode::from(1)
}
