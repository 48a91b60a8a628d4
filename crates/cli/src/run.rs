//! `berth run`: parses Docker's flags, resolves the image and hands both to
//! the engine; exits with the container's status, or with Docker's 125,
//! 126 or 127 when the container could not run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use engine::{Engine, EngineError, RunOptions};
use image::refs::Refs;
use image::ContentStore;

/// `docker run`'s flags that berth has so far.
#[derive(Args)]
pub struct RunArgs {
    /// Remove the container when it exits (required for now: see docs/engine.md).
    #[arg(long)]
    rm: bool,
    /// Run in the background (not implemented yet).
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keep stdin open (not implemented yet).
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a terminal (not implemented yet).
    #[arg(short = 't', long)]
    tty: bool,
    /// Set an environment variable (`KEY=value`, or `KEY` to take it from here).
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Read environment variables from a file (one `KEY=value` per line).
    #[arg(long = "env-file")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    /// User (`name|uid[:group|gid]`).
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Override the image's ENTRYPOINT ("" clears it).
    #[arg(long)]
    entrypoint: Option<String>,
    /// The container's host name (default: the first 12 digits of its id).
    #[arg(long)]
    hostname: Option<String>,
    /// The OCI runtime binary (default: berth-runtime beside this program).
    #[arg(long, env = "BERTH_RUNTIME")]
    runtime: Option<PathBuf>,
    /// The image.
    image: String,
    /// The command and its arguments (default: the image's CMD).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Reads an `--env-file`: `KEY=value` or `KEY` lines; blank lines and `#`
/// comments skipped, as Docker reads them.
fn env_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("--env-file {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

fn not_yet(what: &'static str) -> anyhow::Error {
    EngineError::NotImplemented(what).into()
}

fn run(root: &Path, args: &RunArgs) -> anyhow::Result<i32> {
    if args.detach {
        return Err(not_yet(
            "berth run -d (detached containers need berth-shim)",
        ));
    }
    if args.interactive || args.tty {
        return Err(not_yet(
            "berth run -i/-t (stdin and terminals need berth-shim)",
        ));
    }
    if !args.rm {
        return Err(not_yet(
            "berth run without --rm (keeping a stopped container needs the container store)",
        ));
    }
    let mut env = vec![];
    for f in &args.env_file {
        env.extend(env_file(f)?);
    }
    env.extend(args.env.iter().cloned());
    let store = ContentStore::open(root)?;
    let refs = Refs::new(root).load().context("read images.json")?;
    let (key, rec) = crate::find(&refs, &args.image)
        .map_err(|_| EngineError::NoSuchImage(args.image.clone()))?;
    let img = rec
        .to_import(Some(key.clone()))
        .context("corrupt images.json")?;
    let runtime = match &args.runtime {
        Some(r) => r.clone(),
        None => std::env::current_exe()
            .context("find berth's own path")?
            .with_file_name("berth-runtime"),
    };
    let engine = Engine {
        root: root.to_path_buf(),
        runtime,
    };
    let opts = RunOptions {
        cmd: args.command.clone(),
        entrypoint: args.entrypoint.clone(),
        env,
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        hostname: args.hostname.clone(),
    };
    Ok(engine.run_foreground(&store, &key, &img, &opts)?)
}

/// Runs `berth run` and returns the exit status: the container's, or 125
/// (berth failed), 126 (cannot execute) or 127 (not found).
pub fn main(root: &Path, args: &RunArgs) -> ExitCode {
    match run(root, args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("berth: {e:#}");
            let code = e
                .downcast_ref::<EngineError>()
                .map_or(125, |e| e.exit_code());
            ExitCode::from(code)
        }
    }
}
