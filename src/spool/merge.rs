//! Merging two adjacent windows into one wider window, without losing a
//! count. Pure functions; the spool decides when to merge and how to make
//! it crash-safe.

use super::{FORMAT_VERSION, SpooledWindow};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use uuid::Uuid;

/// At most this many log records are kept in a merged window.
pub const MAX_MERGED_LOGS: usize = 100;
/// At most this many bytes of (serialized) log records are kept in a merged
/// window.
pub const MAX_MERGED_LOG_BYTES: usize = 64 * 1024;

/// Merges `a` (older) and `b` (newer) into a new window with id `id`, or
/// `None` if they must not be merged:
///
/// * either is `in_doubt` (the server may already have counted it under its
///   own id; counting it again under a new id would double count);
/// * they go to different destinations, or have different tags (tags
///   describe the platform, e.g. its version, and must stay exact);
/// * a measure is a gauge in one and a counter in the other;
/// * a counter sum would overflow `u64` (refusing keeps every count exact
///   instead of saturating).
///
/// Counters are summed, a gauge takes the newer window's value (the older
/// one's if the newer lacks it), the span is `[min from, max to)`, logs are
/// concatenated up to [`MAX_MERGED_LOGS`] / [`MAX_MERGED_LOG_BYTES`] (the
/// rest replaced by one record saying how many were left out), `merged` is
/// summed, `attempts` is 0 and `closed_at` the later close.
pub fn merge(a: &SpooledWindow, b: &SpooledWindow, id: Uuid) -> Option<SpooledWindow> {
    if a.in_doubt
        || b.in_doubt
        || a.destination != b.destination
        || a.report.tags != b.report.tags
        || a.version != FORMAT_VERSION
        || b.version != FORMAT_VERSION
    {
        return None;
    }
    let mut measures = a.report.measures.clone();
    for (name, &bv) in &b.report.measures {
        let (ga, gb) = (a.is_gauge(name), b.is_gauge(name));
        match measures.get_mut(name) {
            Some(_) if ga != gb => return None,
            Some(av) if gb => *av = bv,
            Some(av) => *av = av.checked_add(bv)?,
            None => {
                measures.insert(name.clone(), bv);
            }
        }
    }
    let gauges: BTreeSet<&String> = a.gauges.iter().chain(&b.gauges).collect();
    let mut report = a.report.clone();
    report.from_timestamp = a.report.from_timestamp.min(b.report.from_timestamp);
    report.to_timestamp = a.report.to_timestamp.max(b.report.to_timestamp);
    report.measures = measures;
    report.logs = merge_logs(&a.report.logs, &b.report.logs);
    Some(SpooledWindow {
        version: FORMAT_VERSION,
        id,
        destination: a.destination,
        closed_at: a.closed_at.max(b.closed_at),
        attempts: 0,
        in_doubt: false,
        gauges: gauges.into_iter().cloned().collect(),
        merged: a.merged.saturating_add(b.merged),
        report,
    })
}

type Log = Map<String, Value>;

fn merge_logs(a: &[Log], b: &[Log]) -> Vec<Log> {
    let total = a.len() + b.len();
    let mut kept = Vec::new();
    let mut bytes = 0usize;
    for rec in a.iter().chain(b) {
        let size = serde_json::to_vec(rec).map_or(usize::MAX, |v| v.len());
        // Leave room for the "omitted" record if anything is left out.
        let room = if kept.len() + 1 < total {
            MAX_MERGED_LOGS - 1
        } else {
            MAX_MERGED_LOGS
        };
        if kept.len() >= room || bytes.saturating_add(size) > MAX_MERGED_LOG_BYTES {
            break;
        }
        bytes += size;
        kept.push(rec.clone());
    }
    let omitted = total - kept.len();
    if omitted > 0 {
        let note = serde_json::json!({
            "level": "warning",
            "source": "beacon-meter spool",
            "message": format!("{omitted} log records omitted while merging spooled windows"),
            "omitted": omitted,
        });
        kept.extend(note.as_object().cloned());
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::Destination;
    use crate::wire::ReportBody;
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn window(from: i64, to: i64, measures: &[(&str, u64)], gauges: &[&str]) -> SpooledWindow {
        SpooledWindow::new(
            Uuid::new_v4(),
            Destination::Beacon,
            Utc.timestamp_opt(to + 1, 0).unwrap(),
            gauges.iter().map(|g| g.to_string()).collect(),
            ReportBody {
                from_timestamp: Utc.timestamp_opt(from, 0).unwrap(),
                to_timestamp: Utc.timestamp_opt(to, 0).unwrap(),
                tags: BTreeMap::from([("v".to_owned(), "1".to_owned())]),
                measures: measures.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                logs: vec![],
            },
        )
    }

    #[test]
    fn counters_sum_gauges_take_the_later_value() {
        let a = window(
            0,
            300,
            &[("runs", 2), ("nodes", 5), ("graphs", 4)],
            &["graphs"],
        );
        let mut a = a;
        a.merged = 3;
        a.attempts = 7;
        let b = window(
            300,
            600,
            &[("runs", 1), ("graphs", 6), ("tokens", 9)],
            &["graphs"],
        );
        let id = Uuid::new_v4();
        let m = merge(&a, &b, id).unwrap();
        assert_eq!(m.id, id);
        assert_eq!(m.report.measures["runs"], 3);
        assert_eq!(m.report.measures["nodes"], 5);
        assert_eq!(m.report.measures["graphs"], 6);
        assert_eq!(m.report.measures["tokens"], 9);
        assert_eq!(m.report.from_timestamp, a.report.from_timestamp);
        assert_eq!(m.report.to_timestamp, b.report.to_timestamp);
        assert_eq!((m.merged, m.attempts, m.in_doubt), (4, 0, false));
        assert_eq!(m.closed_at, b.closed_at);
        assert_eq!(m.gauges, vec!["graphs".to_owned()]);
    }

    #[test]
    fn refuses_what_would_lose_or_double_a_count() {
        let a = window(0, 300, &[("runs", u64::MAX)], &[]);
        let b = window(300, 600, &[("runs", 1)], &[]);
        assert!(merge(&a, &b, Uuid::new_v4()).is_none(), "overflow");

        let a = window(0, 300, &[("runs", 1)], &[]);
        let mut b = window(300, 600, &[("runs", 1)], &[]);
        b.in_doubt = true;
        assert!(merge(&a, &b, Uuid::new_v4()).is_none(), "in doubt");
        assert!(merge(&b, &a, Uuid::new_v4()).is_none(), "in doubt");

        let mut b = window(300, 600, &[("runs", 1)], &[]);
        b.report.tags.insert("v".into(), "2".into());
        assert!(merge(&a, &b, Uuid::new_v4()).is_none(), "tags");

        let mut b = window(300, 600, &[("runs", 1)], &[]);
        b.destination = Destination::Auth;
        assert!(merge(&a, &b, Uuid::new_v4()).is_none(), "destination");

        let b = window(300, 600, &[("runs", 1)], &["runs"]);
        assert!(merge(&a, &b, Uuid::new_v4()).is_none(), "kind changed");
    }

    /// A log record of exactly `len` bytes when serialized.
    fn sized(i: usize, len: usize) -> Log {
        let mut m = Map::new();
        m.insert("i".into(), i.into());
        m.insert("p".into(), "".into());
        let base = serde_json::to_vec(&m).unwrap().len();
        m.insert("p".into(), "x".repeat(len - base).into());
        assert_eq!(serde_json::to_vec(&m).unwrap().len(), len);
        m
    }

    #[test]
    fn logs_are_concatenated_up_to_100_records_and_64_kib() {
        // Literal sizes, not the constants: a changed cap fails here.
        // (record sizes, records kept, records left out)
        let cases: [(Vec<usize>, usize, usize); 8] = [
            (vec![20; 5], 5, 0),
            (vec![20; 160], 99, 61),
            (vec![20, 70_000, 20], 1, 2),
            (vec![1024; 64], 64, 0), // 65 536 bytes fit
            ([vec![1024; 63], vec![1025]].concat(), 63, 1),
            (vec![40; 100], 100, 0), // no record gives way to a note
            (vec![40; 101], 99, 2),
            (vec![1000; 90], 65, 25), // 65 000 bytes fit, 66 000 do not
        ];
        for (sizes, kept, omitted) in cases {
            let logs: Vec<Log> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| sized(i, n))
                .collect();
            let (mut a, mut b) = (window(0, 300, &[], &[]), window(300, 600, &[], &[]));
            a.report.logs = logs[..logs.len() / 2].to_vec();
            b.report.logs = logs[logs.len() / 2..].to_vec();
            let merged = merge(&a, &b, Uuid::new_v4()).unwrap().report.logs;
            let case = format!("{} records: {kept} kept, {omitted} left out", sizes.len());
            assert_eq!(merged[..kept], logs[..kept], "{case}");
            assert_eq!(merged.len(), kept + usize::from(omitted > 0), "{case}");
            if omitted > 0 {
                assert_eq!(merged[kept]["omitted"], omitted, "{case}");
            }
        }
    }

    #[test]
    fn windows_of_another_version_are_never_merged() {
        let a = window(0, 300, &[("runs", 1)], &[]);
        let b = window(300, 600, &[("runs", 1)], &[]);
        let newer = FORMAT_VERSION + 1;
        for (va, vb) in [(newer, FORMAT_VERSION), (FORMAT_VERSION, newer)] {
            let (mut a, mut b) = (a.clone(), b.clone());
            (a.version, b.version) = (va, vb);
            assert!(
                merge(&a, &b, Uuid::new_v4()).is_none(),
                "versions {va}, {vb}"
            );
        }
        assert!(merge(&a, &b, Uuid::new_v4()).is_some());
    }

    proptest! {
        #[test]
        fn counter_totals_are_exact(
            xs in proptest::collection::vec((0u64..u64::MAX / 4, 0u64..1000, 0u64..50), 2..20)
        ) {
            let ws: Vec<SpooledWindow> = xs
                .iter()
                .enumerate()
                .map(|(i, &(runs, nodes, g))| {
                    let i = i as i64;
                    window(i * 300, (i + 1) * 300, &[("runs", runs % 1_000_000), ("nodes", nodes), ("g", g)], &["g"])
                })
                .collect();
            let mut acc = ws[0].clone();
            for w in &ws[1..] {
                acc = merge(&acc, w, Uuid::new_v4()).unwrap();
            }
            let runs: u64 = xs.iter().map(|x| x.0 % 1_000_000).sum();
            let nodes: u64 = xs.iter().map(|x| x.1).sum();
            prop_assert_eq!(acc.report.measures["runs"], runs);
            prop_assert_eq!(acc.report.measures["nodes"], nodes);
            prop_assert_eq!(acc.report.measures["g"], xs.last().unwrap().2);
            prop_assert_eq!(acc.merged as usize, xs.len());
            prop_assert_eq!(acc.report.from_timestamp, ws[0].report.from_timestamp);
            prop_assert_eq!(acc.report.to_timestamp, ws.last().unwrap().report.to_timestamp);
        }
    }
}
