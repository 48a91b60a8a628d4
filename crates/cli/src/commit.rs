//! `berth commit`: a container's changes as a new image.

use std::path::Path;

use anyhow::Result;
use clap::Args;

/// `docker commit` flags.
#[derive(Args)]
pub struct CommitArgs {
    /// The author (`"Name <mail>"`).
    #[arg(short, long)]
    author: Option<String>,
    /// A Dockerfile instruction for the config (CMD, ENTRYPOINT, ENV,
    /// EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR).
    #[arg(short, long)]
    change: Vec<String>,
    /// The commit message.
    #[arg(short, long)]
    message: Option<String>,
    /// Pause the container while its layer is written.
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set)]
    pause: bool,
    /// The container.
    container: String,
    /// The new image's name (`REPOSITORY[:TAG]`).
    name: Option<String>,
}

/// `berth commit`: prints the new image's id.
pub fn main(root: &Path, a: &CommitArgs) -> Result<()> {
    let Some(name) = &a.name else {
        anyhow::bail!(
            "commit without REPOSITORY[:TAG]: berth keeps images by name, so give the new image one"
        );
    };
    let engine = crate::containers::engine(root, None)?;
    let store = image::ContentStore::open(root)?;
    let id = engine.commit(
        &store,
        &a.container,
        &engine::commit::CommitOptions {
            name: name.clone(),
            changes: a.change.clone(),
            message: a.message.clone(),
            author: a.author.clone(),
            pause: a.pause,
        },
    )?;
    println!("{id}");
    Ok(())
}
