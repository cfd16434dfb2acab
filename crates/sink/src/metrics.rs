//! OTLP metrics read from a sink's database: what `beacon-meter sink
//! metrics` prints. One [`Series`] per metric name, instance and attribute
//! set: its latest point, and per period (hour or day, UTC) the count of
//! points, the smallest, largest and last value.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use rusqlite::{Connection, params};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

use super::store::StoreError;
use super::usage::{Period, open_existing};

/// One period of a [`Series`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodStats {
    /// The hour (`2025-01-06T09`) or day (`2025-01-06`), UTC, of the points'
    /// times.
    pub period: String,
    /// Points in it.
    pub points: u64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// The value of the latest point.
    pub last: f64,
}

/// One metric of one instance with one set of attributes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// The metric's name.
    pub name: String,
    /// `sum`, `gauge`, `histogram`, `exponential_histogram` or `summary`.
    pub kind: String,
    /// Its unit.
    pub unit: String,
    /// The resource's `service.name`.
    pub service: String,
    /// The `instance_id` (`""` when none was sent).
    pub instance: String,
    /// Its other attributes (a JSON object).
    pub attributes: serde_json::Value,
    /// The latest point's value (a histogram's sum).
    pub latest: f64,
    /// The latest point's time.
    pub latest_at: DateTime<Utc>,
    /// A histogram's count at the latest point.
    pub latest_count: Option<u64>,
    /// Per period, oldest first.
    pub periods: Vec<PeriodStats>,
}

type Key = (String, String, String, String);

/// The series stored in the sink database at `db` whose points are at or
/// after `since`, of the metric `name` if given, grouped `by` period. The
/// file must exist (it is never created here). Memory is bounded by the
/// number of series and periods, not of points.
pub fn metrics(
    db: &Path,
    name: Option<&str>,
    since: Option<DateTime<Utc>>,
    by: Period,
) -> Result<Vec<Series>, StoreError> {
    let conn = open_existing(db)?;
    let since_ns = since.and_then(|t| t.timestamp_nanos_opt()).unwrap_or(0);
    read(&conn, name, since_ns, by).map_err(StoreError::sqlite(db))
}

fn read(
    conn: &Connection,
    name: Option<&str>,
    since_ns: i64,
    by: Period,
) -> rusqlite::Result<Vec<Series>> {
    let mut stmt = conn.prepare(
        "SELECT name, instance, attributes, service, kind, unit, time_ns, value, count
         FROM metric_points WHERE time_ns >= ?1 AND (?2 IS NULL OR name = ?2)
         ORDER BY name, instance, attributes, time_ns, id",
    )?;
    let mut rows = stmt.query(params![since_ns, name])?;
    let mut out: BTreeMap<Key, Series> = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let key: Key = (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        let at = Utc.timestamp_nanos(row.get::<_, i64>(6)?);
        let value: f64 = row.get(7)?;
        let count = row.get::<_, Option<i64>>(8)?.map(|c| c as u64);
        let series = out.entry(key.clone()).or_insert_with(|| Series {
            name: key.0.clone(),
            kind: row.get(4).unwrap_or_default(),
            unit: row.get(5).unwrap_or_default(),
            service: key.3.clone(),
            instance: key.1.clone(),
            attributes: serde_json::from_str(&key.2).unwrap_or(serde_json::Value::Null),
            latest: value,
            latest_at: at,
            latest_count: count,
            periods: Vec::new(),
        });
        (series.latest, series.latest_at, series.latest_count) = (value, at, count);
        let period = period_of(at, by);
        match series.periods.last_mut() {
            Some(p) if p.period == period => {
                p.points += 1;
                p.min = p.min.min(value);
                p.max = p.max.max(value);
                p.last = value;
            }
            _ => series.periods.push(PeriodStats {
                period,
                points: 1,
                min: value,
                max: value,
                last: value,
            }),
        }
    }
    Ok(out.into_values().collect())
}

fn period_of(at: DateTime<Utc>, by: Period) -> String {
    let text = at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let len = match by {
        Period::Hour => "2025-01-06T09".len(),
        Period::Day => "2025-01-06".len(),
    };
    text[..len].to_owned()
}
