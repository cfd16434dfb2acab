//! The sink's store: accepted reports, their idempotency keys and running
//! totals in one SQLite database (a file, or memory for a throwaway sink).
//!
//! # Why a report is counted exactly once
//!
//! Every accepted report is one `BEGIN IMMEDIATE` transaction that (1)
//! looks its idempotency key up, (2) inserts the report row, its measures
//! and the new totals, (3) commits. `BEGIN IMMEDIATE` takes SQLite's write
//! lock before the lookup, so no other writer (another connection, another
//! sink process on the same file) can insert the same key between the
//! lookup and the insert; `idempotency_key` is also `UNIQUE`, so even a
//! writer that skipped the lookup could not store a key twice. Within one
//! sink, all calls go through one connection behind a mutex, so they are
//! serialised anyway. The totals are updated in the same transaction as
//! the row, so they always equal the sum over the rows.
//!
//! # Why a `204` means the report survives a crash
//!
//! The sink answers `204` only after `COMMIT` returned. The database is in
//! WAL mode with `synchronous = FULL`: a commit returns only after the WAL
//! (with the commit record) has been fsynced, so the transaction survives
//! a killed process *and* a power loss or OS crash. (`NORMAL` would be
//! faster but may lose the last commits on power loss, after their `204`
//! was sent, and the reporter would then have deleted its spooled window:
//! usage lost. One fsync per report is cheap next to a report interval.)
//! A transaction that did not commit leaves nothing: the reporter got no
//! `204` and retries, under the same key.
//!
//! # Why the JSONL export holds each stored report once, whole
//!
//! The export is a line per committed row, and nothing else. Its line is
//! appended *before* the commit and cut off again (truncated back to the
//! file's length before it) if the write was short or the commit then
//! failed: a disk that fills up can fail either, and a commit cannot be
//! undone once a later write fails, where a write can. So a report that
//! got `204` has its line, one that did not has none, and the retry of a
//! failed one is written once, not glued to a torn line. (A kill -9
//! between the write and the commit is the one gap: that line's report
//! was not answered, so its client retries and it appears once more.)

use chrono::{DateTime, SecondsFormat, Utc};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::Summary;
use super::otlp::{MAX_POINTS_STORED, Point, RETENTION};
use super::validate::Submission;
use beacon_meter::secret::Secret;

/// The schema version this code writes (`PRAGMA user_version`). Version 2
/// added `tenant_measures`; a version-1 file is upgraded at open (see
/// [`UPGRADE_FROM_1`]). Version 3 added `metric_points` (OTLP metrics,
/// [`crate::otlp`]), which [`SCHEMA`] creates in an older file.
const SCHEMA_VERSION: i64 = 3;

/// The most distinct measure names one tenant (the `tenant_id` tag, `""`
/// for reports without one) may have in the store. Each report may carry
/// [`MAX_MEASURES_PER_REPORT`](super::validate::MAX_MEASURES_PER_REPORT)
/// names; without a bound across reports, forty reports of new names each
/// would grow every summary and the exit listing without end. A report
/// that would pass it is refused with `422`, naming the bound.
pub const MAX_MEASURES_PER_TENANT: u64 = 1024;

/// Fills `tenant_measures` from the rows of a version-1 file.
const UPGRADE_FROM_1: &str = "
INSERT OR IGNORE INTO tenant_measures (tenant, name)
    SELECT DISTINCT r.tenant, m.name FROM measures m JOIN reports r ON r.id = m.report_id;
";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reports (
    id              INTEGER PRIMARY KEY,  -- arrival order
    received_at     TEXT NOT NULL,        -- RFC 3339 UTC
    idempotency_key TEXT UNIQUE,          -- NULL when the report had none
    body_digest     BLOB NOT NULL,        -- SHA-256 of the body as received
    dialect         TEXT NOT NULL,        -- published | langgraph-api
    destination     TEXT NOT NULL,        -- credential kind: license | api_key
    credential      TEXT NOT NULL,        -- redacted
    from_ts         TEXT NOT NULL,        -- RFC 3339 UTC, Z, 9 fraction digits
    to_ts           TEXT NOT NULL,
    host            TEXT NOT NULL,        -- tag langgraph.platform.host
    tenant          TEXT NOT NULL,        -- tag langgraph.platform.tenant_id
    record          TEXT NOT NULL         -- the stored record (JSON)
);
CREATE INDEX IF NOT EXISTS reports_by_start ON reports(from_ts);
CREATE TABLE IF NOT EXISTS measures (
    report_id INTEGER NOT NULL REFERENCES reports(id),
    name      TEXT NOT NULL,
    value     INTEGER NOT NULL,           -- u64, stored as its i64 bit pattern
    PRIMARY KEY (report_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (
    kind  TEXT NOT NULL,                  -- count | measure | credential | dialect
    name  TEXT NOT NULL,
    value INTEGER NOT NULL,               -- u64, stored as its i64 bit pattern
    PRIMARY KEY (kind, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metric_points (
    id          INTEGER PRIMARY KEY,      -- arrival order
    received_ms INTEGER NOT NULL,         -- Unix milliseconds
    service     TEXT NOT NULL,            -- resource service.name
    instance    TEXT NOT NULL,            -- instance_id attribute, or ''
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,            -- sum | gauge | histogram | ...
    unit        TEXT NOT NULL,
    start_ns    INTEGER NOT NULL,         -- u64 nanoseconds, as i64 bits
    time_ns     INTEGER NOT NULL,
    value       REAL NOT NULL,            -- the number, or a histogram's sum
    count       INTEGER,                  -- a histogram's count
    buckets     TEXT,                     -- a histogram's bounds and counts (JSON)
    attributes  TEXT NOT NULL             -- the other point attributes (JSON)
);
CREATE INDEX IF NOT EXISTS metric_points_by_series ON metric_points(name, instance, time_ns);
CREATE INDEX IF NOT EXISTS metric_points_by_arrival ON metric_points(received_ms);
CREATE TABLE IF NOT EXISTS tenant_measures (
    tenant TEXT NOT NULL,                 -- as reports.tenant
    name   TEXT NOT NULL,                 -- a measure name it has reported
    PRIMARY KEY (tenant, name)
) WITHOUT ROWID;
";

/// The tag a report's host is read from for [`usage`](super::usage()).
pub const HOST_TAG: &str = beacon_meter::wire::tags::HOST;
/// The tag a report's tenant is read from for [`usage`](super::usage()).
pub const TENANT_TAG: &str = beacon_meter::wire::tags::TENANT_ID;

/// Why the store could not be opened or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite refused to open, read or write the database.
    #[error("the sink's database {}: {source}; check the path, its permissions and free disk space", path.display())]
    Sqlite {
        /// The database file (`:memory:` for a throwaway sink).
        path: PathBuf,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The database file is damaged, or empty (which SQLite would take for
    /// a new database, hiding that the old one is gone): the sink refuses
    /// to start on it rather than answer `204` now and fail later.
    #[error(
        "the sink's database {} is damaged: {finding}. The sink does not start on a damaged \
         database. Stop whatever else uses the file and keep a copy of it; then restore it from \
         a backup, or recover what it holds with `sqlite3 {} .recover | sqlite3 recovered.db` \
         and start with `--db recovered.db` (a JSONL export, if one was kept, holds every \
         stored report). To start over, move the file away.",
        path.display(),
        path.display()
    )]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it: SQLite's first findings, or "the file is
        /// empty".
        finding: String,
    },
    /// The database file could not be looked at or created.
    #[error("the sink could not create its database {}: {source}; check the directory and its permissions", path.display())]
    Create {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file was written by a newer beacon-meter.
    #[error("the sink's database {} has schema version {found}, newer than this beacon-meter's {SCHEMA_VERSION}; use a newer beacon-meter or another --db file", path.display())]
    Version {
        /// The database file.
        path: PathBuf,
        /// The version found in it.
        found: i64,
    },
}

impl StoreError {
    /// Wraps a SQLite error on the database at `path`: [`Damaged`] when
    /// SQLite says the file is corrupt or not a database.
    ///
    /// [`Damaged`]: StoreError::Damaged
    pub(crate) fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
        |source| match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                StoreError::Damaged {
                    path: path.to_path_buf(),
                    finding: source.to_string(),
                }
            }
            _ => StoreError::Sqlite {
                path: path.to_path_buf(),
                source,
            },
        }
    }
}

/// How many of `PRAGMA quick_check`'s findings a [`StoreError::Damaged`]
/// shows.
const FINDINGS_SHOWN: u32 = 5;

/// What became of a valid report.
#[derive(Debug)]
pub(crate) enum Stored {
    /// New: stored and counted.
    New,
    /// Same idempotency key, same body as a stored report.
    Duplicate,
    /// Same idempotency key as a stored report, different body.
    Conflict,
    /// Would take its tenant past [`MAX_MEASURES_PER_TENANT`] distinct
    /// measure names (nothing was stored); how many it would have.
    TooManyNames(u64),
    /// Could not be stored (nothing was: the transaction was rolled back).
    Failed(StoreFailure),
}

/// Why a valid report could not be stored.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreFailure {
    /// SQLite refused the transaction.
    #[error("the database refused it")]
    Db(#[from] rusqlite::Error),
    /// The JSONL export could not be written.
    #[error("the JSONL export failed")]
    Export(#[source] std::io::Error),
    /// The blocking task that stores it panicked or was cancelled.
    #[error("the storing task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// What [`Store::db`] guards.
struct Db {
    conn: Connection,
    jsonl: Option<File>,
}

/// One database connection, used by one sink.
pub(crate) struct Store {
    path: PathBuf,
    /// The connection and the JSONL export, under one lock: a report's
    /// row and its line are written together (see the module docs).
    db: Mutex<Db>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, or a fresh one in
    /// memory for `None`, and the JSONL export file if any.
    pub(crate) fn open(path: Option<&Path>, jsonl: Option<File>) -> Result<Store, StoreError> {
        let shown = path.map_or_else(|| PathBuf::from(":memory:"), Path::to_path_buf);
        let err = StoreError::sqlite(&shown);
        if let Some(p) = path {
            create_checked(p)?;
        }
        let conn = match path {
            Some(p) => Connection::open(p),
            None => Connection::open_in_memory(),
        }
        .map_err(err)?;
        quick_check(&conn, &shown)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::Version {
                path: shown.clone(),
                found,
            });
        }
        conn.execute_batch(SCHEMA).map_err(err)?;
        if found == 1 {
            conn.execute_batch(UPGRADE_FROM_1).map_err(err)?;
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(err)?;
        Ok(Store {
            path: shown,
            db: Mutex::new(Db { conn, jsonl }),
        })
    }

    /// Deduplicates and stores a valid report in one transaction, with its
    /// JSONL line (see the module docs).
    pub(crate) fn accept(&self, submission: &Submission) -> Stored {
        let Submission { key, report, .. } = submission;
        let digest =
            ring::digest::digest(&ring::digest::SHA256, report.value.to_string().as_bytes());
        let mut db = self.db.lock();
        let Db { conn, jsonl } = &mut *db;
        let result = (|| -> Result<Stored, StoreFailure> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(key) = key {
                let seen: Option<Vec<u8>> = tx
                    .query_row(
                        "SELECT body_digest FROM reports WHERE idempotency_key = ?1",
                        [key.to_string()],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(seen) = seen {
                    return Ok(if seen == digest.as_ref() {
                        Stored::Duplicate
                    } else {
                        Stored::Conflict
                    });
                }
            }
            insert(&tx, submission, digest.as_ref())?;
            let names = tenant_names(&tx, submission)?;
            if names > MAX_MEASURES_PER_TENANT {
                return Ok(Stored::TooManyNames(names));
            }
            let Some(file) = jsonl.as_mut() else {
                tx.commit()?;
                return Ok(Stored::New);
            };
            let before = append_line(file, &submission.record).map_err(StoreFailure::Export)?;
            tx.commit().inspect_err(|_| truncate_back(file, before))?;
            Ok(Stored::New)
        })();
        result.unwrap_or_else(|e| {
            let error = beacon_meter::error_chain(&e);
            tracing::error!(db = %self.path.display(), %error, "sink could not store a report");
            Stored::Failed(e)
        })
    }

    /// Stores the points of one OTLP export in one transaction, counts the
    /// export, and applies the retention (see [`crate::otlp`]).
    pub(crate) fn accept_points(&self, points: &[Point]) -> Result<(), StoreFailure> {
        let now_ms = Utc::now().timestamp_millis();
        let mut db = self.db.lock();
        let tx = db
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO metric_points (received_ms, service, instance, name, kind, unit,
                     start_ns, time_ns, value, count, buckets, attributes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            for p in points {
                stmt.execute(params![
                    now_ms,
                    p.service,
                    p.instance,
                    p.name,
                    p.kind,
                    p.unit,
                    p.start_ns as i64,
                    p.time_ns as i64,
                    p.value,
                    p.count.map(|c| c as i64),
                    p.buckets,
                    p.attributes,
                ])?;
            }
        }
        bump(&tx, "count", "metric_exports", 1)?;
        bump(&tx, "count", "metric_points", points.len() as u64)?;
        let oldest_ms = now_ms - RETENTION.as_millis() as i64;
        tx.execute(
            "DELETE FROM metric_points WHERE received_ms < ?1",
            [oldest_ms],
        )?;
        tx.execute(
            "DELETE FROM metric_points WHERE id <= (SELECT MAX(id) FROM metric_points) - ?1",
            [MAX_POINTS_STORED],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The totals over every stored report: the fields of a [`Summary`]
    /// read from the database (the others left at zero).
    pub(crate) fn totals(&self) -> Result<Summary, StoreError> {
        read_totals(&self.db.lock().conn).map_err(StoreError::sqlite(&self.path))
    }

    /// Up to `limit` stored records, in arrival order, skipping `offset`.
    pub(crate) fn records(&self, offset: u64, limit: u64) -> Result<Vec<Value>, StoreError> {
        let db = self.db.lock();
        let conn = &db.conn;
        let rows = (|| {
            let mut stmt =
                conn.prepare_cached("SELECT record FROM reports ORDER BY id LIMIT ?1 OFFSET ?2")?;
            let bound = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![bound(limit), bound(offset)], |r| {
                r.get::<_, String>(0)
            })?;
            rows.collect::<Result<Vec<String>, _>>()
        })()
        .map_err(StoreError::sqlite(&self.path))?;
        Ok(rows
            .iter()
            .map(|r| serde_json::from_str(r).unwrap_or(Value::Null))
            .collect())
    }
}

/// Creates the database file `path` with the sink's private mode if it is
/// missing, and refuses an existing empty one (see
/// [`StoreError::Damaged`]).
fn create_checked(path: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::Create {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() == 0 => {
            return Err(StoreError::Damaged {
                path: path.to_path_buf(),
                finding: "the file is empty (a database the sink made is never empty)".into(),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    super::files::create_private(path, "database").map_err(io)
}

/// `PRAGMA quick_check`: every page and b-tree of the file is read and
/// checked (not the indexes against their tables, which `integrity_check`
/// adds at several times the cost). Linear in the file's size: on the
/// order of a second per few hundred MB, once, at start.
fn quick_check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let findings: Vec<String> = (|| {
        let mut stmt = conn.prepare(&format!("PRAGMA quick_check({FINDINGS_SHOWN})"))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<Result<Vec<_>, _>>()
    })()
    .map_err(StoreError::sqlite(path))?;
    if findings.len() == 1 && findings[0] == "ok" {
        return Ok(());
    }
    Err(StoreError::Damaged {
        path: path.to_path_buf(),
        finding: findings.join("; "),
    })
}

/// Appends `record` to the JSONL export as one line, whole or not at all:
/// a short write is truncated back. Returns the file's length before it,
/// for [`truncate_back`] if the commit then fails.
fn append_line(file: &mut File, record: &Value) -> std::io::Result<u64> {
    let before = file.seek(SeekFrom::End(0))?;
    let mut line = record.to_string();
    line.push('\n');
    file.write_all(line.as_bytes())
        .and_then(|()| file.flush())
        .inspect_err(|_| truncate_back(file, before))?;
    Ok(before)
}

/// Cuts the JSONL export back to `len` bytes: the line of a report that was
/// not stored. If even that fails, the export now holds a line the database
/// does not, and the log says so.
fn truncate_back(file: &File, len: u64) {
    if let Err(e) = file.set_len(len) {
        tracing::error!(
            error = %e,
            "sink could not remove the JSONL line of a report it did not store; \
             the export now holds one line more than the database"
        );
    }
}

/// Inserts the report row and its measures and bumps the totals.
fn insert(
    tx: &rusqlite::Transaction<'_>,
    submission: &Submission,
    digest: &[u8],
) -> rusqlite::Result<()> {
    let Submission {
        key,
        report,
        dialect,
        record,
    } = submission;
    // From the record, whose keys are redacted (a key sent as the host tag
    // must not reach the `host` column either).
    let tag = |name: &str| record["tags"][name].as_str().unwrap_or("").to_owned();
    let credential = format!(
        "{}:{}",
        report.credential_field.kind(),
        Secret::new(report.credential.as_str()).redacted()
    );
    // Fixed width (always nine fractional digits), so that comparing the
    // text compares the instants (`usage --since`).
    let z = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    tx.execute(
        "INSERT INTO reports (received_at, idempotency_key, body_digest, dialect, destination,
             credential, from_ts, to_ts, host, tenant, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            key.map(|k| k.to_string()),
            digest,
            dialect.name(),
            report.credential_field.kind(),
            credential,
            z(&report.from),
            z(&report.to),
            tag(HOST_TAG),
            tag(TENANT_TAG),
            record.to_string(),
        ],
    )?;
    let id = tx.last_insert_rowid();
    let mut measure =
        tx.prepare_cached("INSERT INTO measures (report_id, name, value) VALUES (?1, ?2, ?3)")?;
    for (name, value) in &report.measures {
        measure.execute(params![id, name, *value as i64])?;
    }
    bump(tx, "count", "reports", 1)?;
    if key.is_none() {
        bump(tx, "count", "without_idempotency_key", 1)?;
    }
    for (name, value) in &report.measures {
        bump(tx, "measure", name, *value)?;
    }
    bump(tx, "credential", &credential, 1)?;
    bump(tx, "dialect", dialect.name(), 1)
}

/// Records the report's measure names under its tenant; returns how many
/// distinct names the tenant then has.
fn tenant_names(tx: &rusqlite::Transaction<'_>, submission: &Submission) -> rusqlite::Result<u64> {
    let tenant = submission.record["tags"][TENANT_TAG].as_str().unwrap_or("");
    let mut add =
        tx.prepare_cached("INSERT OR IGNORE INTO tenant_measures (tenant, name) VALUES (?1, ?2)")?;
    for name in submission.report.measures.keys() {
        add.execute(params![tenant, name])?;
    }
    tx.prepare_cached("SELECT COUNT(*) FROM tenant_measures WHERE tenant = ?1")?
        .query_row([tenant], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

/// Adds `by` to a total, saturating at `u64::MAX`.
fn bump(tx: &rusqlite::Transaction<'_>, kind: &str, name: &str, by: u64) -> rusqlite::Result<()> {
    let now: Option<i64> = tx
        .prepare_cached("SELECT value FROM totals WHERE kind = ?1 AND name = ?2")?
        .query_row(params![kind, name], |r| r.get(0))
        .optional()?;
    let next = now.map_or(0, |v| v as u64).saturating_add(by);
    tx.prepare_cached("INSERT OR REPLACE INTO totals (kind, name, value) VALUES (?1, ?2, ?3)")?
        .execute(params![kind, name, next as i64])?;
    Ok(())
}

fn read_totals(conn: &Connection) -> rusqlite::Result<Summary> {
    let mut totals = Summary::default();
    let mut stmt = conn.prepare_cached("SELECT kind, name, value FROM totals")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)? as u64,
        ))
    })?;
    for row in rows {
        let (kind, name, value) = row?;
        match (kind.as_str(), name.as_str()) {
            ("count", "reports") => totals.reports = value,
            ("count", "without_idempotency_key") => totals.without_idempotency_key = value,
            ("count", "metric_exports") => totals.metric_exports = value,
            ("count", "metric_points") => totals.metric_points = value,
            ("measure", _) => {
                totals.measures.insert(name, value);
            }
            ("credential", _) => {
                totals.by_credential.insert(name, value);
            }
            ("dialect", _) => {
                totals.by_dialect.insert(name, value);
            }
            _ => {}
        }
    }
    Ok(totals)
}
