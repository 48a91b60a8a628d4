//! `list` and `ps`: the tables of containers and of a container's processes.

use std::io::Write;

use anyhow::{Context, Result};
use runtime::{StateStore, Status};

/// `ps`: ps(1)'s output (or a JSON list of pids) for the container's
/// processes only.
pub fn ps(store: &StateStore, id: &str, json: bool, ps_args: &[String]) -> Result<()> {
    let pids = runtime::pids(store, id)?;
    if json {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        anyhow::bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let pid_col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .context("ps output has no PID column")?;
    println!("{header}");
    for line in lines {
        if let Some(pid) = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok())
        {
            if pids.contains(&pid) {
                println!("{line}");
            }
        }
    }
    Ok(())
}

/// `list`: the containers as a table, JSON or ids.
pub fn list(store: &StateStore, json: bool, quiet: bool) -> Result<()> {
    let mut rows = vec![];
    for id in store.ids()? {
        let Ok(rec) = store.load(&id) else { continue };
        let status = store.status(&rec);
        rows.push((rec, status));
    }
    let mut out = std::io::stdout().lock();
    if quiet {
        for (r, _) in &rows {
            writeln!(out, "{}", r.id)?;
        }
        return Ok(());
    }
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(r, s)| {
                serde_json::json!({
                    "ociVersion": runtime::state::OCI_VERSION,
                    "id": r.id,
                    "pid": if *s == Status::Stopped { 0 } else { r.pid },
                    "status": s.to_string(),
                    "bundle": r.bundle,
                    "rootfs": r.rootfs,
                    "created": r.created,
                    "annotations": r.annotations(),
                    "owner": owner_name(r.owner),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
        return Ok(());
    }
    let mut table = vec![[
        "ID".to_string(),
        "PID".into(),
        "STATUS".into(),
        "BUNDLE".into(),
        "CREATED".into(),
        "OWNER".into(),
    ]];
    for (r, s) in &rows {
        let pid = if *s == Status::Stopped { 0 } else { r.pid };
        table.push([
            r.id.clone(),
            pid.to_string(),
            s.to_string(),
            r.bundle.display().to_string(),
            r.created.clone(),
            owner_name(r.owner),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| table.iter().map(|row| row[i].len()).max().unwrap_or(0))
        .collect();
    for row in table {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 5 {
                    c.clone()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        writeln!(out, "{}", line.join("   ").trim_end())?;
    }
    Ok(())
}

fn owner_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("#{uid}"))
}
