//! Usage totals read from a sink's database: what `beacon-meter sink usage`
//! prints.

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags, params};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

use super::store::StoreError;

/// How [`usage`] groups reports in time: by the hour or the day (UTC) in
/// which their window starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// `2025-01-06T09`: one row per hour.
    Hour,
    /// `2025-01-06`: one row per day.
    Day,
}

impl Period {
    /// Characters of a stored `from_ts` that name the period.
    fn prefix_len(self) -> i64 {
        match self {
            Period::Hour => "2025-01-06T09".len() as i64,
            Period::Day => "2025-01-06".len() as i64,
        }
    }
}

/// Totals for one period, host, tenant and destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// The hour (`2025-01-06T09`) or day (`2025-01-06`), UTC, in which the
    /// reports' windows start.
    pub period: String,
    /// The `langgraph.platform.host` tag (`""` when absent).
    pub host: String,
    /// The `langgraph.platform.tenant_id` tag (`""` when absent).
    pub tenant: String,
    /// The kind of credential the reports came with, `license` or
    /// `api_key` (the name is kept for the stored column and the JSON
    /// output; it is not the reporter's spool destination, beacon or auth).
    pub destination: String,
    /// Accepted reports (each counted once, however often retried).
    pub reports: u64,
    /// Per measure, the sum of its values (saturating at `u64::MAX`).
    pub measures: BTreeMap<String, u64>,
}

type Group = (String, String, String, String);

/// The totals in the sink database at `db`, per period, host, tenant and
/// destination, in that order, over the reports whose window starts at or
/// after `since`. A report is attributed whole to the period its window
/// starts in. The file must exist (it is never created here).
pub fn usage(
    db: &Path,
    by: Period,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<UsageRow>, StoreError> {
    let conn = open_existing(db)?;
    let err = StoreError::sqlite(db);
    let since = since.map_or_else(String::new, |t| {
        t.to_rfc3339_opts(SecondsFormat::Nanos, true)
    });
    group(&conn, by, &since).map_err(err)
}

/// A connection to the existing sink database `db` (never created here),
/// waiting up to 10 s for a running sink's write lock.
pub(crate) fn open_existing(db: &Path) -> Result<Connection, StoreError> {
    let err = StoreError::sqlite(db);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(db, flags).map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(err)?;
    Ok(conn)
}

/// Streams the (report, measure) rows and sums them per group: memory is
/// bounded by the number of groups, not of reports.
fn group(conn: &Connection, by: Period, since: &str) -> rusqlite::Result<Vec<UsageRow>> {
    let mut stmt = conn.prepare(
        "SELECT r.id, substr(r.from_ts, 1, ?1), r.host, r.tenant, r.destination, m.name, m.value
         FROM reports r LEFT JOIN measures m ON m.report_id = r.id
         WHERE r.from_ts >= ?2 ORDER BY r.id",
    )?;
    let mut rows = stmt.query(params![by.prefix_len(), since])?;
    let mut groups: BTreeMap<Group, (u64, BTreeMap<String, u64>)> = BTreeMap::new();
    let mut last_id = None;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let key: Group = (row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?);
        let entry = groups.entry(key).or_default();
        if last_id != Some(id) {
            entry.0 += 1;
            last_id = Some(id);
        }
        if let Some(name) = row.get::<_, Option<String>>(5)? {
            let value = row.get::<_, i64>(6)? as u64; // stored as its i64 bit pattern
            let total = entry.1.entry(name).or_default();
            *total = total.saturating_add(value);
        }
    }
    Ok(groups
        .into_iter()
        .map(
            |((period, host, tenant, destination), (reports, measures))| UsageRow {
                period,
                host,
                tenant,
                destination,
                reports,
                measures,
            },
        )
        .collect())
}
