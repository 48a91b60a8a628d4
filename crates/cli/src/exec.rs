//! `berth exec`: Docker's flags for one more process in a running
//! container; exits with the process's status, or with Docker's codes
//! when it could not run (127 not found, 126 cannot execute or the runtime
//! failed, 1 for a container that is missing or stopped).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use engine::{EngineError, ExecOptions};

/// `docker exec`'s flags.
#[derive(Args)]
pub struct ExecArgs {
    /// Start the process and return.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keep stdin open: ours goes to the process.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a terminal.
    #[arg(short = 't', long)]
    tty: bool,
    /// Set an environment variable (`KEY=value`, or `KEY` to take it from here).
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Read environment variables from a file (one `KEY=value` per line).
    #[arg(long = "env-file")]
    env_file: Vec<PathBuf>,
    /// User (`name|uid[:group|gid]`).
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    /// Give extended privileges (not implemented yet).
    #[arg(long)]
    privileged: bool,
    /// The container (name, id or id prefix).
    container: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

fn exec(root: &Path, a: &ExecArgs) -> anyhow::Result<i32> {
    let mut env = vec![];
    for f in &a.env_file {
        env.extend(crate::run::env_file(f)?);
    }
    env.extend(a.env.iter().cloned());
    let engine = crate::containers::engine(root, None)?;
    let opts = ExecOptions {
        cmd: a.command.clone(),
        env,
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        interactive: a.interactive,
        tty: a.tty,
        detach: a.detach,
        privileged: a.privileged,
    };
    Ok(engine.exec(&a.container, &opts)?)
}

/// Runs `berth exec` and returns the exit status.
pub fn main(root: &Path, a: &ExecArgs) -> ExitCode {
    match exec(root, a) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("berth: {e:#}");
            let code = match e.downcast_ref::<EngineError>() {
                Some(EngineError::NotFound(_)) => 127,
                Some(EngineError::NotExecutable(_) | EngineError::Runtime { .. }) => 126,
                _ => 1,
            };
            ExitCode::from(code)
        }
    }
}
