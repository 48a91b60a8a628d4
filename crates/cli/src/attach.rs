//! `berth attach`, and the exit status of an attached `start`.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use engine::attach::{AttachEnd, AttachOptions};
use engine::error::EngineError;

/// `docker attach` flags.
#[derive(Args)]
pub struct AttachArgs {
    /// Do not attach our stdin.
    #[arg(long = "no-stdin")]
    no_stdin: bool,
    /// Pass the signals we get on to the container (not with a terminal).
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set)]
    sig_proxy: bool,
    /// The keys that detach and leave the container running.
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// The container.
    container: String,
}

/// The exit status of an attach: the container's, 0 after a detach, 125
/// (or Docker's code for the error) when berth failed.
pub fn exit(end: Result<AttachEnd, EngineError>) -> ExitCode {
    match end {
        Ok(AttachEnd::Exited(code)) => ExitCode::from(code.clamp(0, 255) as u8),
        Ok(AttachEnd::Detached) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// `berth attach`.
pub fn main(root: &Path, a: &AttachArgs) -> ExitCode {
    let engine = match crate::containers::engine(root, None) {
        Ok(e) => e,
        Err(err) => {
            eprintln!("berth: {err:#}");
            return ExitCode::from(125);
        }
    };
    let opts = AttachOptions {
        stdin: !a.no_stdin,
        detach_keys: a.detach_keys.clone(),
        sig_proxy: a.sig_proxy,
    };
    exit(engine.attach(&a.container, &opts))
}
