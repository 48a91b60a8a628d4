//! The volume tables of the engine's database: the volumes, and which
//! container mounts which volume where (what `volume rm` and `prune`
//! check before they remove anything, and what `rm -v` removes).

use rusqlite::{params, OptionalExtension};

use crate::error::EngineError;
use crate::store::{sql, Store};
use crate::volumes::Volume;

impl Store {
    /// Adds `v` unless a volume has its name; whether it was added.
    pub(crate) fn insert_volume(&self, v: &Volume) -> Result<bool, EngineError> {
        let labels = serde_json::to_string(&v.labels).unwrap_or_default();
        let options = serde_json::to_string(&v.options).unwrap_or_default();
        self.db
            .execute(
                "INSERT OR IGNORE INTO volumes (name, driver, created, labels, options, anonymous) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![v.name, v.driver, v.created, labels, options, v.anonymous],
            )
            .map(|n| n == 1)
            .map_err(sql(&self.path))
    }

    /// The volume `name`, if there is one.
    pub fn volume(&self, name: &str) -> Result<Option<Volume>, EngineError> {
        self.db
            .query_row(
                "SELECT name, driver, created, labels, options, anonymous FROM volumes WHERE name = ?1",
                params![name],
                volume_row,
            )
            .optional()
            .map_err(sql(&self.path))
    }

    /// Every volume, by name.
    pub fn volumes(&self) -> Result<Vec<Volume>, EngineError> {
        let mut st = self
            .db
            .prepare("SELECT name, driver, created, labels, options, anonymous FROM volumes ORDER BY name")
            .map_err(sql(&self.path))?;
        let rows = st.query_map([], volume_row).map_err(sql(&self.path))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql(&self.path))
    }

    /// The ids of the containers that mount volume `name`.
    pub fn volume_users(&self, name: &str) -> Result<Vec<String>, EngineError> {
        let mut st = self
            .db
            .prepare("SELECT DISTINCT container FROM container_volumes WHERE volume = ?1 ORDER BY container")
            .map_err(sql(&self.path))?;
        let rows = st
            .query_map(params![name], |r| r.get::<_, String>(0))
            .map_err(sql(&self.path))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql(&self.path))
    }

    /// Records that container `id` mounts `volume` at `destination`.
    pub(crate) fn link_volume(
        &self,
        id: &str,
        volume: &str,
        destination: &str,
    ) -> Result<(), EngineError> {
        self.db
            .execute(
                "INSERT OR REPLACE INTO container_volumes (container, volume, destination) VALUES (?1, ?2, ?3)",
                params![id, volume, destination],
            )
            .map(|_| ())
            .map_err(sql(&self.path))
    }

    /// Deletes volume `name`'s record if no container mounts it, in one
    /// transaction. Err(VolumeInUse) names the containers.
    pub(crate) fn delete_volume_if_unused(&self, name: &str) -> Result<(), EngineError> {
        // IMMEDIATE: the write lock is taken (or waited for) at the start, so
        // the read below cannot fail to upgrade under a concurrent writer.
        let tx = rusqlite::Transaction::new_unchecked(
            &self.db,
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(sql(&self.path))?;
        let users = self.volume_users(name)?;
        if !users.is_empty() {
            return Err(EngineError::VolumeInUse {
                name: name.to_string(),
                containers: users,
            });
        }
        tx.execute("DELETE FROM volumes WHERE name = ?1", params![name])
            .map_err(sql(&self.path))?;
        tx.commit().map_err(sql(&self.path))
    }
}

fn volume_row(r: &rusqlite::Row) -> rusqlite::Result<Volume> {
    let labels: String = r.get(3)?;
    let options: String = r.get(4)?;
    Ok(Volume {
        name: r.get(0)?,
        driver: r.get(1)?,
        created: r.get(2)?,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        options: serde_json::from_str(&options).unwrap_or_default(),
        anonymous: r.get(5)?,
    })
}
