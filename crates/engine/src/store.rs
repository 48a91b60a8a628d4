//! The container store: one SQLite database, `<root>/engine.db` (0600,
//! WAL, schema version in `user_version`), one transaction per change.
//! Names are unique by the database's own constraint, so two concurrent
//! `berth run --name x` cannot both get `x`.
//!
//! A record's state says what the engine last did; whether a "running"
//! container still runs is checked against its init process (pid and
//! start time), so a record cannot claim a container that a crash ended.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::EngineError;

/// The schema this build reads and writes.
/// The schema this berth writes (`crate::schema`).
pub(crate) const SCHEMA_VERSION: i64 = 6;

/// How long a statement waits for another process's lock.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Made, not started (or being started).
    Created,
    /// Its process runs (as far as the record knows: see [`Record::is_running`]).
    Running,
    /// Its process ended.
    Exited,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Exited => "exited",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "running" => State::Running,
            "exited" => State::Exited,
            _ => State::Created,
        }
    }
}

/// One container as the store keeps it.
#[derive(Debug, Clone)]
pub struct Record {
    /// 64 hex digits.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// The image as the user named it.
    pub image: String,
    /// The image's config digest.
    pub image_id: String,
    /// The process's argv.
    pub command: Vec<String>,
    /// Creation time (Unix seconds).
    pub created: i64,
    /// Last state the engine recorded.
    pub state: State,
    /// The init's host pid while running.
    pub pid: i64,
    /// The init's start time (clock ticks since boot), to tell pid reuse.
    pub pid_start: i64,
    /// Exit status once exited.
    pub exit_code: i64,
    /// Start and finish times (Unix seconds, 0: never).
    pub started: i64,
    /// See `started`.
    pub finished: i64,
    /// Remove when it exits (`--rm`).
    pub auto_remove: bool,
    /// The engine's options, as JSON (for `start` and `inspect`).
    pub config: String,
}

impl Record {
    /// Whether the container's init is alive: the record says running and
    /// the process with that pid has the recorded start time.
    pub fn is_running(&self) -> bool {
        self.state == State::Running
            && self.pid > 0
            && process_start(self.pid as i32) == Some(self.pid_start)
    }
}

/// The start time (field 22 of /proc/PID/stat) of a live process.
pub fn process_start(pid: i32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split(' ').collect();
    // A zombie has ended: it is not running.
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// The engine's database.
pub struct Store {
    pub(crate) db: Connection,
    pub(crate) path: PathBuf,
}

pub(crate) fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> EngineError + '_ {
    move |e| match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy => {
            EngineError::StoreBusy {
                path: path.to_path_buf(),
            }
        }
        e => EngineError::ContainerStore {
            path: path.to_path_buf(),
            err: e.to_string(),
        },
    }
}

const COLUMNS: &str = "id, name, image, image_id, command, created, state, pid, pid_start, \
                       exit_code, started, finished, auto_remove, config";

fn row(r: &rusqlite::Row) -> rusqlite::Result<Record> {
    let command: String = r.get(4)?;
    let state: String = r.get(6)?;
    Ok(Record {
        id: r.get(0)?,
        name: r.get(1)?,
        image: r.get(2)?,
        image_id: r.get(3)?,
        command: serde_json::from_str(&command).unwrap_or_default(),
        created: r.get(5)?,
        state: State::parse(&state),
        pid: r.get(7)?,
        pid_start: r.get(8)?,
        exit_code: r.get(9)?,
        started: r.get(10)?,
        finished: r.get(11)?,
        auto_remove: r.get(12)?,
        config: r.get(13)?,
    })
}

impl Store {
    /// Logs a container event with the container's name and image.
    fn container_event(&self, action: &str, id: &str, extra: &[(&str, &str)]) {
        let Some(root) = self.path.parent() else {
            return;
        };
        let (name, image) = self
            .db
            .query_row(
                "SELECT name, image FROM containers WHERE id = ?1",
                params![id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .unwrap_or_default();
        let mut attrs: Vec<(&str, &str)> = vec![("name", &name), ("image", &image)];
        attrs.extend_from_slice(extra);
        crate::events::record(root, "container", action, id, &attrs);
    }

    /// Opens (creating on first use) `<root>/engine.db`. Processes that
    /// open a new store at once can find it busy without SQLite waiting
    /// (its switch to WAL, a lock upgrade it refuses to wait for): such an
    /// open is tried again, for as long as the busy timeout.
    pub fn open(root: &Path) -> Result<Store, EngineError> {
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match Self::open_once(root) {
                Err(EngineError::StoreBusy { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                other => return other,
            }
        }
    }

    fn open_once(root: &Path) -> Result<Store, EngineError> {
        let path = root.join("engine.db");
        let fresh = !path.exists();
        let db = Connection::open(&path).map_err(sql(&path))?;
        if fresh {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(
                |e| EngineError::Io {
                    op: "chmod",
                    path: path.clone(),
                    err: e,
                },
            )?;
        }
        db.busy_timeout(BUSY_TIMEOUT).map_err(sql(&path))?;
        db.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql(&path))?;
        // WAL with synchronous=NORMAL: a commit is not fsync'd, the WAL is
        // at each checkpoint; a power loss may lose the last commits but
        // never corrupts the database (what a crash leaves, `system check`
        // repairs). And no checkpoint each time a berth process closes the
        // database: SQLite checkpoints as the WAL grows (1000 pages).
        db.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql(&path))?;
        db.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(sql(&path))?;
        let version: i64 = db
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql(&path))?;
        if version > SCHEMA_VERSION {
            return Err(EngineError::ContainerStore {
                path,
                err: format!(
                    "schema version {version} is newer than this berth reads ({SCHEMA_VERSION})"
                ),
            });
        }
        crate::schema::upgrade(&db, &path, version)?;
        Ok(Store { db, path })
    }

    /// Adds a new container; a taken name is an error naming it.
    pub fn insert(&self, r: &Record) -> Result<(), EngineError> {
        let command = serde_json::to_string(&r.command).unwrap_or_default();
        self.db
            .execute(
                &format!("INSERT INTO containers ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
                params![
                    r.id, r.name, r.image, r.image_id, command, r.created, r.state.as_str(),
                    r.pid, r.pid_start, r.exit_code, r.started, r.finished, r.auto_remove, r.config
                ],
            )
            .map(|_| ())
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    EngineError::NameInUse(r.name.clone())
                }
                e => sql(&self.path)(e),
            })?;
        self.container_event("create", &r.id, &[]);
        Ok(())
    }

    /// Records that the container runs as `pid`, unless something already
    /// recorded a later state (a detached container that exited at once).
    pub fn set_running(
        &self,
        id: &str,
        pid: i64,
        pid_start: i64,
        now: i64,
    ) -> Result<(), EngineError> {
        self.db
            .execute(
                "UPDATE containers SET state = 'running', pid = ?2, pid_start = ?3, started = ?4, \
                 exit_code = 0, finished = 0 WHERE id = ?1 AND state = 'created'",
                params![id, pid, pid_start, now],
            )
            .map_err(sql(&self.path))?;
        self.container_event("start", id, &[]);
        Ok(())
    }

    /// Sets a container back to created (before it is started again).
    pub fn set_created(&self, id: &str) -> Result<(), EngineError> {
        self.db
            .execute(
                "UPDATE containers SET state = 'created', pid = 0, pid_start = 0 WHERE id = ?1",
                params![id],
            )
            .map(|_| ())
            .map_err(sql(&self.path))
    }

    /// Renames container `id`; a taken name is an error naming it.
    pub fn rename(&self, id: &str, name: &str) -> Result<(), EngineError> {
        self.db
            .execute(
                "UPDATE containers SET name = ?2 WHERE id = ?1",
                params![id, name],
            )
            .map(|_| ())
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    EngineError::NameInUse(name.to_string())
                }
                e => sql(&self.path)(e),
            })
    }

    /// Changes container `id`'s settings (restart policy and count, manual
    /// stop) in one transaction; returns them as changed.
    pub fn update_settings(
        &self,
        id: &str,
        change: impl FnOnce(&mut crate::restart::ContainerSettings),
    ) -> Result<crate::restart::ContainerSettings, EngineError> {
        // IMMEDIATE: read and write under the write lock.
        let tx = rusqlite::Transaction::new_unchecked(
            &self.db,
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(sql(&self.path))?;
        let json: String = tx
            .query_row(
                "SELECT config FROM containers WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(&self.path))?
            .ok_or_else(|| EngineError::NoSuchContainer(id.to_string()))?;
        let mut settings = crate::restart::ContainerSettings::parse(&json);
        change(&mut settings);
        tx.execute(
            "UPDATE containers SET config = ?2 WHERE id = ?1",
            params![id, settings.to_json()],
        )
        .map_err(sql(&self.path))?;
        tx.commit().map_err(sql(&self.path))?;
        Ok(settings)
    }

    /// Records that the container exited with `code`.
    /// The "die" event is logged before the exit is committed, so whoever
    /// waits for the exit (`stop`) logs after it, as Docker orders them.
    pub fn set_exited(&self, id: &str, code: i64, now: i64) -> Result<(), EngineError> {
        let tx = rusqlite::Transaction::new_unchecked(
            &self.db,
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(sql(&self.path))?;
        tx.execute(
            "UPDATE containers SET state = 'exited', pid = 0, pid_start = 0, exit_code = ?2, \
             finished = ?3 WHERE id = ?1",
            params![id, code, now],
        )
        .map_err(sql(&self.path))?;
        self.container_event("die", id, &[("exitCode", &code.to_string())]);
        tx.commit().map_err(sql(&self.path))
    }

    /// Records the exit of the run whose init was `pid`, if the record
    /// still says that run is running; false when it does not (a second
    /// cleanup got there first, or the container was started again).
    pub fn set_exited_run(
        &self,
        id: &str,
        pid: i64,
        code: i64,
        now: i64,
    ) -> Result<bool, EngineError> {
        // As set_exited: the event first, then the exit becomes visible.
        let tx = rusqlite::Transaction::new_unchecked(
            &self.db,
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(sql(&self.path))?;
        let n = tx
            .execute(
                "UPDATE containers SET state = 'exited', pid = 0, pid_start = 0, exit_code = ?3, \
                 finished = ?4 WHERE id = ?1 AND pid = ?2 AND state = 'running'",
                params![id, pid, code, now],
            )
            .map_err(sql(&self.path))?;
        if n > 0 {
            self.container_event("die", id, &[("exitCode", &code.to_string())]);
        }
        tx.commit().map_err(sql(&self.path))?;
        Ok(n > 0)
    }

    /// Removes the record and its volume links (none: nothing to do).
    /// Returns the anonymous volumes it mounted, which `rm -v` and `--rm`
    /// remove once nothing else uses them.
    pub fn remove(&self, id: &str) -> Result<Vec<String>, EngineError> {
        // IMMEDIATE: the write lock is taken (or waited for) at the start, so
        // the read below cannot fail to upgrade under a concurrent writer.
        let tx = rusqlite::Transaction::new_unchecked(
            &self.db,
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(sql(&self.path))?;
        let anonymous = {
            let mut st = tx
                .prepare(
                    "SELECT v.name FROM container_volumes cv JOIN volumes v ON v.name = cv.volume \
                     WHERE cv.container = ?1 AND v.anonymous = 1",
                )
                .map_err(sql(&self.path))?;
            let rows = st
                .query_map(params![id], |r| r.get::<_, String>(0))
                .map_err(sql(&self.path))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(sql(&self.path))?
        };
        tx.execute(
            "DELETE FROM container_volumes WHERE container = ?1",
            params![id],
        )
        .map_err(sql(&self.path))?;
        tx.execute("DELETE FROM endpoints WHERE container = ?1", params![id])
            .map_err(sql(&self.path))?;
        let (name, image) = tx
            .query_row(
                "SELECT name, image FROM containers WHERE id = ?1",
                params![id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(sql(&self.path))?
            .unwrap_or_default();
        let gone = tx
            .execute("DELETE FROM containers WHERE id = ?1", params![id])
            .map_err(sql(&self.path))?;
        tx.commit().map_err(sql(&self.path))?;
        if gone > 0 {
            if let Some(root) = self.path.parent() {
                let attrs = [("name", name.as_str()), ("image", image.as_str())];
                crate::events::record(root, "container", "destroy", id, &attrs);
            }
        }
        Ok(anonymous)
    }

    /// Every container, newest first.
    pub fn list(&self) -> Result<Vec<Record>, EngineError> {
        let mut st = self
            .db
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM containers ORDER BY created DESC, rowid DESC"
            ))
            .map_err(sql(&self.path))?;
        let rows = st.query_map([], row).map_err(sql(&self.path))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql(&self.path))
    }

    /// The container `key` names: its full id, its name, or a unique id
    /// prefix, as Docker resolves them.
    pub fn find(&self, key: &str) -> Result<Record, EngineError> {
        // Cached statements: a server asks this for every request that
        // names a container, and parsing the SQL cost more than the lookup.
        let exact = self
            .db
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM containers WHERE id = ?1 OR name = ?1"
            ))
            .and_then(|mut st| st.query_row(params![key], row).optional())
            .map_err(sql(&self.path))?;
        if let Some(r) = exact {
            return Ok(r);
        }
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(EngineError::NoSuchContainer(key.to_string()));
        }
        // Ids are lowercase hex, so every id with the prefix sorts between
        // it and the prefix followed by 'g': a range of the id's index,
        // not a scan of the table.
        let mut st = self
            .db
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM containers \
                 WHERE id >= ?1 AND id < ?3 AND substr(id, 1, ?2) = ?1"
            ))
            .map_err(sql(&self.path))?;
        let found: Vec<Record> = st
            .query_map(params![key, key.len() as i64, format!("{key}g")], row)
            .map_err(sql(&self.path))?
            .collect::<Result<_, _>>()
            .map_err(sql(&self.path))?;
        match found.len() {
            1 => Ok(found.into_iter().next().expect("one")),
            0 => Err(EngineError::NoSuchContainer(key.to_string())),
            _ => Err(EngineError::Ambiguous(key.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, name: &str) -> Record {
        Record {
            id: id.into(),
            name: name.into(),
            image: "busybox".into(),
            image_id: "sha256:x".into(),
            command: vec!["sh".into()],
            created: 1,
            state: State::Created,
            pid: 0,
            pid_start: 0,
            exit_code: 0,
            started: 0,
            finished: 0,
            auto_remove: false,
            config: "{}".into(),
        }
    }

    #[test]
    fn records_round_trip_and_names_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.insert(&rec("abcdef01", "one")).unwrap();
        s.insert(&rec("abcdef02", "two")).unwrap();
        assert!(matches!(
            s.insert(&rec("ffff", "one")),
            Err(EngineError::NameInUse(_))
        ));
        assert_eq!(s.find("one").unwrap().id, "abcdef01");
        assert_eq!(s.find("abcdef02").unwrap().name, "two");
        assert!(matches!(s.find("abcdef"), Err(EngineError::Ambiguous(_))));
        // Prefixes: unique ones find theirs, at either end of the range.
        s.insert(&rec("abcdf000", "three")).unwrap();
        s.insert(&rec("abcdefff", "four")).unwrap();
        assert_eq!(s.find("abcdf").unwrap().name, "three");
        assert_eq!(s.find("abcdeff").unwrap().name, "four");
        assert!(matches!(s.find("abcdef0"), Err(EngineError::Ambiguous(_))));
        assert!(matches!(
            s.find("abcdefa"),
            Err(EngineError::NoSuchContainer(_))
        ));
        assert!(matches!(s.find("abcde"), Err(EngineError::Ambiguous(_))));
        assert!(matches!(
            s.find("abcd0"),
            Err(EngineError::NoSuchContainer(_))
        ));
        s.remove("abcdf000").unwrap();
        s.remove("abcdefff").unwrap();
        assert_eq!(s.find("abcdef01").unwrap().name, "one");
        assert!(matches!(
            s.find("nope"),
            Err(EngineError::NoSuchContainer(_))
        ));
        s.set_running("abcdef01", std::process::id() as i64, 0, 5)
            .unwrap();
        let r = s.find("one").unwrap();
        assert_eq!((r.state, r.started), (State::Running, 5));
        // A wrong start time: not this process, so not running.
        assert!(!r.is_running());
        s.set_exited("abcdef01", 3, 9).unwrap();
        let r = s.find("one").unwrap();
        assert_eq!((r.state, r.exit_code, r.finished), (State::Exited, 3, 9));
        s.remove("abcdef01").unwrap();
        assert_eq!(s.list().unwrap().len(), 1);
        // Reopening keeps everything; the file is the owner's only.
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.list().unwrap()[0].name, "two");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("engine.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_new_store_opened_at_once_by_many_is_migrated_once() {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let opened: Vec<_> = (0..8)
                .map(|_| {
                    let d = dir.path().to_path_buf();
                    std::thread::spawn(move || Store::open(&d).map(drop).map_err(|e| e.to_string()))
                })
                .collect();
            for t in opened {
                t.join().unwrap().unwrap();
            }
            let db = Connection::open(dir.path().join("engine.db")).unwrap();
            let v: i64 = db
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(v, SCHEMA_VERSION);
        }
        // A store whose version was set back (as an older berth's
        // concurrent open could) while its columns are there opens.
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let db = Connection::open(dir.path().join("engine.db")).unwrap();
        db.pragma_update(None, "user_version", 1).unwrap();
        drop(db);
        Store::open(dir.path()).unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let db = Connection::open(dir.path().join("engine.db")).unwrap();
        db.pragma_update(None, "user_version", 99).unwrap();
        drop(db);
        let e = Store::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("schema version 99"), "{e}");
    }
}
