//! `berth system check`: what a crash left, found and repaired (see the
//! engine's `check` module for what is looked at).

use std::path::Path;

use anyhow::Result;

/// `berth system check [--dry-run]`: one line per finding and what was
/// done; fails (exit 1) when a repair failed.
pub fn main(root: &Path, dry_run: bool) -> Result<()> {
    let engine = crate::containers::engine(root, None)?;
    let found = engine.system_check(dry_run)?;
    if found.is_empty() {
        println!("No problems found");
        return Ok(());
    }
    let mut failed = 0;
    for f in &found {
        println!("{}: {}", f.subject, f.problem);
        match (&f.repair, &f.error) {
            (Some(done), _) => println!("  repaired: {done}"),
            (None, Some(e)) => {
                failed += 1;
                println!("  NOT repaired: {e}");
            }
            (None, None) => println!("  (dry run: left as it is)"),
        }
    }
    let repaired = found.iter().filter(|f| f.repair.is_some()).count();
    println!("{} found, {repaired} repaired", found.len());
    if failed > 0 {
        anyhow::bail!("{failed} problem(s) could not be repaired");
    }
    Ok(())
}
