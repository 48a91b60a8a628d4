//! The container store's schema and its upgrades: each step is run once,
//! under the database's write lock, even when several berth processes open
//! a new store at the same moment.

use std::path::Path;

use crate::error::EngineError;
use crate::store::sql;

/// Brings the store from `version` to the current schema.
pub(crate) fn upgrade(
    db: &rusqlite::Connection,
    path: &Path,
    version: i64,
) -> Result<(), EngineError> {
    if version < 1 {
        migrate(db, path, 1, |tx| {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS containers (
                 id TEXT PRIMARY KEY,
                 name TEXT NOT NULL UNIQUE,
                 image TEXT NOT NULL,
                 image_id TEXT NOT NULL,
                 command TEXT NOT NULL,
                 created INTEGER NOT NULL,
                 state TEXT NOT NULL,
                 pid INTEGER NOT NULL DEFAULT 0,
                 pid_start INTEGER NOT NULL DEFAULT 0,
                 exit_code INTEGER NOT NULL DEFAULT 0,
                 started INTEGER NOT NULL DEFAULT 0,
                 finished INTEGER NOT NULL DEFAULT 0,
                 auto_remove INTEGER NOT NULL DEFAULT 0,
                 config TEXT NOT NULL DEFAULT '{}'
             );",
            )
        })?;
    }
    if version < 2 {
        // Volumes, and which containers mount them (a volume in use is
        // never removed; a container's anonymous volumes go with it on
        // `rm -v` and `--rm`).
        migrate(db, path, 2, |tx| {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS volumes (
                 name TEXT PRIMARY KEY,
                 driver TEXT NOT NULL,
                 created INTEGER NOT NULL,
                 labels TEXT NOT NULL DEFAULT '{}',
                 options TEXT NOT NULL DEFAULT '{}',
                 anonymous INTEGER NOT NULL DEFAULT 0
             );
             CREATE TABLE IF NOT EXISTS container_volumes (
                 container TEXT NOT NULL,
                 volume TEXT NOT NULL,
                 destination TEXT NOT NULL,
                 PRIMARY KEY (container, destination)
             );
             CREATE INDEX IF NOT EXISTS container_volumes_by_volume
                 ON container_volumes (volume);",
            )
        })?;
    }
    if version < 3 {
        // Networks, and each container's place on them (its address
        // lease: one per network, never two alike on one network).
        migrate(db, path, 3, |tx| {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS networks (
                 id TEXT PRIMARY KEY,
                 name TEXT NOT NULL UNIQUE,
                 driver TEXT NOT NULL,
                 subnet TEXT NOT NULL,
                 gateway TEXT NOT NULL,
                 bridge TEXT NOT NULL UNIQUE,
                 internal INTEGER NOT NULL DEFAULT 0,
                 labels TEXT NOT NULL DEFAULT '{}',
                 options TEXT NOT NULL DEFAULT '{}',
                 created INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS endpoints (
                 network TEXT NOT NULL,
                 container TEXT NOT NULL,
                 ip TEXT NOT NULL,
                 aliases TEXT NOT NULL DEFAULT '[]',
                 PRIMARY KEY (network, container),
                 UNIQUE (network, ip)
             );
             CREATE INDEX IF NOT EXISTS endpoints_by_container ON endpoints (container);",
            )
        })?;
    }
    if version < 4 {
        // The interface a lease is (eth<slot>), so a container's
        // interfaces keep their names when networks are connected.
        migrate(db, path, 4, |tx| {
            add_column(tx, "endpoints", "slot", "INTEGER NOT NULL DEFAULT 0")
        })?;
    }
    if version < 5 {
        // Dual-stack networks and their IPv6 leases; `--ip-range`.
        migrate(db, path, 5, |tx| {
            add_column(tx, "endpoints", "ip6", "TEXT NOT NULL DEFAULT ''")?;
            tx.execute_batch(
                "CREATE UNIQUE INDEX IF NOT EXISTS endpoints_ip6 ON endpoints (network, ip6) WHERE ip6 != ''",
            )?;
            add_column(tx, "networks", "subnet6", "TEXT NOT NULL DEFAULT ''")?;
            add_column(tx, "networks", "gateway6", "TEXT NOT NULL DEFAULT ''")?;
            add_column(tx, "networks", "ip_range", "TEXT NOT NULL DEFAULT ''")
        })?;
    }
    if version < 6 {
        // The last addresses handed out on each network: the next lease
        // starts after them (addresses in turn, as Docker and Podman).
        migrate(db, path, 6, |tx| {
            add_column(tx, "networks", "last_ip", "TEXT NOT NULL DEFAULT ''")?;
            add_column(tx, "networks", "last_ip6", "TEXT NOT NULL DEFAULT ''")
        })?;
    }
    Ok(())
}

/// Runs schema step `to` unless the database is there already: the step
/// and the version are read and written under one write lock, so two
/// processes opening a new store at once run it once (and neither sets the
/// version back).
fn migrate(
    db: &rusqlite::Connection,
    path: &Path,
    to: i64,
    step: impl FnOnce(&rusqlite::Transaction) -> rusqlite::Result<()>,
) -> Result<(), EngineError> {
    let tx = rusqlite::Transaction::new_unchecked(db, rusqlite::TransactionBehavior::Immediate)
        .map_err(sql(path))?;
    let now: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sql(path))?;
    if now < to {
        step(&tx).map_err(sql(path))?;
        tx.pragma_update(None, "user_version", to)
            .map_err(sql(path))?;
    }
    tx.commit().map_err(sql(path))
}

/// Adds `column` to `table` unless it has it (a store an older berth set
/// back to an earlier version may have it already).
fn add_column(
    tx: &rusqlite::Transaction,
    table: &str,
    column: &str,
    decl: &str,
) -> rusqlite::Result<()> {
    let has: bool = tx.query_row(
        &format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = ?1"),
        [column],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has {
        tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
    }
    Ok(())
}
