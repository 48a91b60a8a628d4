//! The commands that talk to registries: pull, push, login, logout.
//! They run on a small tokio runtime of their own; everything else in
//! the command line stays synchronous.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use image::manifest::Platform;
use registry::connect::registry_of_server;
use registry::{AuthFile, PullOptions, PushOptions};

use crate::progress::Bars;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")
}

/// The credentials file: `--authfile`, else `<root>/auth.json`.
pub fn auth_path(root: &Path, authfile: &Option<PathBuf>) -> PathBuf {
    authfile.clone().unwrap_or_else(|| root.join("auth.json"))
}

/// `berth pull`.
pub fn pull(
    root: &Path,
    reference: &str,
    platform: Option<&str>,
    insecure: bool,
    quiet: bool,
    authfile: PathBuf,
) -> Result<()> {
    let platform = platform
        .map(Platform::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let has_tag = {
        let last = reference.rsplit('/').next().unwrap_or(reference);
        last.contains(':') || reference.contains('@')
    };
    if !has_tag && !quiet {
        println!("Using default tag: latest");
    }
    let opts = PullOptions {
        platform,
        insecure,
        auth_file: Some(authfile),
        concurrency: 0,
    };
    let progress = Arc::new(Bars::new(quiet));
    let pulled = runtime()?.block_on(registry::pull(root, reference, &opts, progress))?;
    if !quiet {
        println!("Digest: {}", pulled.digest);
        if pulled.downloaded {
            println!("Status: Downloaded newer image for {}", pulled.name);
        } else {
            println!("Status: Image is up to date for {}", pulled.name);
        }
    }
    println!("{}", pulled.name);
    Ok(())
}

/// The pull a `run` or `create` does (`--pull`): progress and result on
/// stderr (nothing with `quiet`), the credentials in `<root>/auth.json`.
pub fn pull_for_run(
    root: &Path,
    reference: &str,
    platform: Option<&str>,
    quiet: bool,
) -> Result<()> {
    let platform = platform
        .map(Platform::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let opts = PullOptions {
        platform,
        insecure: false,
        auth_file: Some(auth_path(root, &None)),
        concurrency: 0,
    };
    let progress = Arc::new(Bars::on_stderr(quiet));
    let pulled = runtime()?.block_on(registry::pull(root, reference, &opts, progress))?;
    engine::events::record(
        root,
        "image",
        "pull",
        &pulled.name,
        &[("name", &pulled.name)],
    );
    if !quiet {
        eprintln!("Digest: {}", pulled.digest);
        if pulled.downloaded {
            eprintln!("Status: Downloaded newer image for {}", pulled.name);
        } else {
            eprintln!("Status: Image is up to date for {}", pulled.name);
        }
    }
    Ok(())
}

/// `berth push`.
pub fn push(
    root: &Path,
    image: &image::layout::ImportedImage,
    destination: &str,
    insecure: bool,
    quiet: bool,
    authfile: PathBuf,
) -> Result<()> {
    let opts = PushOptions {
        insecure,
        auth_file: Some(authfile),
        concurrency: 0,
    };
    let progress = Arc::new(Bars::new(quiet));
    let pushed = runtime()?.block_on(registry::push(root, image, destination, &opts, progress))?;
    if quiet {
        println!("{}", pushed.digest);
    } else {
        println!(
            "{}: digest: {} size: {}",
            pushed.tag, pushed.digest, pushed.size
        );
    }
    Ok(())
}

fn prompt(label: &str) -> Result<String> {
    print!("{label}");
    std::io::stdout().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads a line from the terminal without echoing it.
fn prompt_secret(label: &str) -> Result<String> {
    use nix::sys::termios;
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(&stdin).context("read terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(termios::LocalFlags::ECHO);
    termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &quiet).context("turn echo off")?;
    let answer = prompt(label);
    let _ = termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &saved);
    println!();
    answer
}

/// `berth login`.
pub fn login(
    server: &str,
    username: Option<String>,
    password: Option<String>,
    password_stdin: bool,
    insecure: bool,
    authfile: PathBuf,
) -> Result<()> {
    let registry = registry_of_server(server);
    let username = match username {
        Some(u) => u,
        None if std::io::stdin().is_terminal() => prompt("Username: ")?,
        None => bail!("login: give a username with -u (standard input is not a terminal)"),
    };
    let password = match (password, password_stdin) {
        (Some(_), true) => bail!("login: --password and --password-stdin are mutually exclusive"),
        (Some(p), false) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p
        }
        (None, true) => {
            let mut p = String::new();
            std::io::stdin()
                .read_to_string(&mut p)
                .context("read the password from standard input")?;
            p.trim_end_matches(['\r', '\n']).to_string()
        }
        (None, false) if std::io::stdin().is_terminal() => prompt_secret("Password: ")?,
        (None, false) => bail!("login: give a password with --password-stdin"),
    };
    if username.is_empty() || password.is_empty() {
        bail!("login: username and password must not be empty");
    }
    runtime()?.block_on(registry::connect::verify_login(
        &registry, insecure, &username, &password,
    ))?;
    AuthFile::new(&authfile).set(&registry, &username, &password)?;
    println!("Login Succeeded");
    Ok(())
}

/// `berth logout`.
pub fn logout(server: &str, authfile: PathBuf) -> Result<()> {
    let registry = registry_of_server(server);
    if AuthFile::new(&authfile).remove(&registry)? {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(())
}
