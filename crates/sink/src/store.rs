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

use chrono::{DateTime, SecondsFormat, Utc};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Summary;
use super::validate::Submission;
use beacon_meter::secret::Secret;

/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

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
    /// Wraps a SQLite error on the database at `path`.
    pub(crate) fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
        |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What became of a valid report.
#[derive(Debug)]
pub(crate) enum Stored {
    /// New: stored and counted.
    New,
    /// Same idempotency key, same body as a stored report.
    Duplicate,
    /// Same idempotency key as a stored report, different body.
    Conflict,
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

/// One database connection, used by one sink.
pub(crate) struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
    jsonl: Mutex<Option<File>>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, or a fresh one in
    /// memory for `None`, and the JSONL export file if any.
    pub(crate) fn open(path: Option<&Path>, jsonl: Option<File>) -> Result<Store, StoreError> {
        let shown = path.map_or_else(|| PathBuf::from(":memory:"), Path::to_path_buf);
        let err = StoreError::sqlite(&shown);
        let conn = match path {
            Some(p) => Connection::open(p),
            None => Connection::open_in_memory(),
        }
        .map_err(err)?;
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
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(err)?;
        Ok(Store {
            path: shown,
            conn: Mutex::new(conn),
            jsonl: Mutex::new(jsonl),
        })
    }

    /// Deduplicates and stores a valid report in one transaction (see the
    /// module docs); the JSONL line is written before the commit, so the
    /// export never misses a committed report.
    pub(crate) fn accept(&self, submission: &Submission) -> Stored {
        let Submission { key, report, .. } = submission;
        let digest =
            ring::digest::digest(&ring::digest::SHA256, report.value.to_string().as_bytes());
        let mut conn = self.conn.lock();
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
            self.export(&submission.record)
                .map_err(StoreFailure::Export)?;
            tx.commit()?;
            Ok(Stored::New)
        })();
        result.unwrap_or_else(|e| {
            let error = beacon_meter::error_chain(&e);
            tracing::error!(db = %self.path.display(), %error, "sink could not store a report");
            Stored::Failed(e)
        })
    }

    fn export(&self, record: &Value) -> std::io::Result<()> {
        if let Some(file) = &mut *self.jsonl.lock() {
            let mut line = record.to_string();
            line.push('\n');
            file.write_all(line.as_bytes())?;
            file.flush()?;
        }
        Ok(())
    }

    /// The totals over every stored report: the fields of a [`Summary`]
    /// read from the database (the others left at zero).
    pub(crate) fn totals(&self) -> Result<Summary, StoreError> {
        let conn = self.conn.lock();
        read_totals(&conn).map_err(StoreError::sqlite(&self.path))
    }

    /// Up to `limit` stored records, in arrival order, skipping `offset`.
    pub(crate) fn records(&self, offset: u64, limit: u64) -> Result<Vec<Value>, StoreError> {
        let conn = self.conn.lock();
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
