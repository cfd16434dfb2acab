//! [`ReporterStats`] as an OTLP `ExportMetricsServiceRequest`. Pure: no
//! I/O and no clock (the time is an argument), so a test can compare a
//! decoded export with the stats it was made from, field for field.
//!
//! The metrics (`destination` is `beacon` or `auth`; sums are cumulative
//! and monotonic, from [`ReporterStats::started_at`]):
//!
//! | metric | kind | unit | attributes | from |
//! | --- | --- | --- | --- | --- |
//! | `beacon_meter_windows_closed_total` | sum | 1 | | `windows_closed` |
//! | `beacon_meter_windows_unspooled` | gauge | 1 | | `unspooled` |
//! | `beacon_meter_windows_recovered_on_start` | gauge | 1 | | `recovered_on_start` |
//! | `beacon_meter_offline` | gauge | 1 | | `offline` (0 or 1) |
//! | `beacon_meter_license_expires_in_seconds` | gauge | s | | `license_expires_at` − now, when known |
//! | `beacon_meter_windows_sent_total` | sum | 1 | destination | `sent` |
//! | `beacon_meter_windows_rejected_total` | sum | 1 | destination | `rejected` |
//! | `beacon_meter_bytes_sent_total` | sum | By | destination | `bytes_sent` |
//! | `beacon_meter_retries_total` | sum | 1 | destination | `retries` |
//! | `beacon_meter_failures_total` | sum | 1 | destination, reason | `failures`, every reason (0 if none) |
//! | `beacon_meter_windows_pending` | gauge | 1 | destination | `pending` |
//! | `beacon_meter_spool_bytes` | gauge | By | destination | `pending_bytes` |
//! | `beacon_meter_credential_refused` | gauge | 1 | destination | `credential_refused` (0 or 1) |
//! | `beacon_meter_seconds_since_last_success` | gauge | s | destination | now − `last_success`, once there was one |
//! | each counter of the meter, by its name (`langgraph.platform.runs`, ...) | sum | 1 | | `measures` |
//! | each gauge of the meter, by its name | gauge | 1 | | `gauges` |
//!
//! Every point also carries `instance_id` when one is configured.

use crate::client::FailureKind;
use crate::reporter::{DestinationStats, ReporterStats};
use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// The `service.name` of every export.
pub const SERVICE_NAME: &str = "beacon-meter";

/// One point's value and attributes, before timestamps.
type Point = (Vec<KeyValue>, number_data_point::Value);

/// The request exporting `stats` at `now`.
pub fn metrics_request(
    stats: &ReporterStats,
    instance_id: Option<&str>,
    now: DateTime<Utc>,
) -> ExportMetricsServiceRequest {
    let b = Builder {
        start: nanos(stats.started_at.unwrap_or(now)),
        now: nanos(now),
        instance: instance_id.map(|i| kv("instance_id", i)),
    };
    let mut metrics = reporter_metrics(&b, stats, now);
    metrics.extend(destination_metrics(&b, &stats.destinations, now));
    for (name, v) in &stats.measures {
        metrics.push(b.sum(name, "1", vec![(vec![], int(*v))]));
    }
    for (name, v) in &stats.gauges {
        metrics.push(b.gauge(name, "1", vec![(vec![], int(*v))]));
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", SERVICE_NAME),
                    kv("service.version", env!("CARGO_PKG_VERSION")),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "beacon_meter.reporter".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn reporter_metrics(b: &Builder, s: &ReporterStats, now: DateTime<Utc>) -> Vec<Metric> {
    let one = |v: u64| vec![(vec![], int(v))];
    let mut out = vec![
        b.sum(
            "beacon_meter_windows_closed_total",
            "1",
            one(s.windows_closed),
        ),
        b.gauge(
            "beacon_meter_windows_unspooled",
            "1",
            one(s.unspooled as u64),
        ),
        b.gauge(
            "beacon_meter_windows_recovered_on_start",
            "1",
            one(s.recovered_on_start as u64),
        ),
        b.gauge("beacon_meter_offline", "1", one(u64::from(s.offline))),
    ];
    if let Some(at) = s.license_expires_at {
        let left = (at - now).num_milliseconds() as f64 / 1000.0;
        let point = vec![(vec![], number_data_point::Value::AsDouble(left))];
        out.push(b.gauge("beacon_meter_license_expires_in_seconds", "s", point));
    }
    out
}

fn destination_metrics(b: &Builder, ds: &[DestinationStats], now: DateTime<Utc>) -> Vec<Metric> {
    let per = |f: &dyn Fn(&DestinationStats) -> u64| -> Vec<Point> {
        ds.iter().map(|d| (vec![dest(d)], int(f(d)))).collect()
    };
    let failures: Vec<Point> = ds
        .iter()
        .flat_map(|d| {
            FailureKind::ALL.iter().map(move |k| {
                let n = d.failures.get(k.as_str()).copied().unwrap_or(0);
                (vec![dest(d), kv("reason", k.as_str())], int(n))
            })
        })
        .collect();
    let since: Vec<Point> = ds
        .iter()
        .filter_map(|d| {
            let s = (now - d.last_success?).num_milliseconds() as f64 / 1000.0;
            Some((vec![dest(d)], number_data_point::Value::AsDouble(s)))
        })
        .collect();
    let mut out = vec![
        b.sum("beacon_meter_windows_sent_total", "1", per(&|d| d.sent)),
        b.sum(
            "beacon_meter_windows_rejected_total",
            "1",
            per(&|d| d.rejected),
        ),
        b.sum(
            "beacon_meter_bytes_sent_total",
            "By",
            per(&|d| d.bytes_sent),
        ),
        b.sum("beacon_meter_retries_total", "1", per(&|d| d.retries)),
        b.sum("beacon_meter_failures_total", "1", failures),
        b.gauge(
            "beacon_meter_windows_pending",
            "1",
            per(&|d| d.pending as u64),
        ),
        b.gauge("beacon_meter_spool_bytes", "By", per(&|d| d.pending_bytes)),
        b.gauge(
            "beacon_meter_credential_refused",
            "1",
            per(&|d| u64::from(d.credential_rejected)),
        ),
    ];
    if !since.is_empty() {
        out.push(b.gauge("beacon_meter_seconds_since_last_success", "s", since));
    }
    out
}

/// Timestamps and the attribute every point carries.
struct Builder {
    start: u64,
    now: u64,
    instance: Option<KeyValue>,
}

impl Builder {
    fn points(&self, points: Vec<Point>, cumulative: bool) -> Vec<NumberDataPoint> {
        points
            .into_iter()
            .map(|(mut attributes, value)| {
                attributes.extend(self.instance.clone());
                NumberDataPoint {
                    attributes,
                    start_time_unix_nano: if cumulative { self.start } else { 0 },
                    time_unix_nano: self.now,
                    value: Some(value),
                    ..Default::default()
                }
            })
            .collect()
    }

    fn sum(&self, name: &str, unit: &str, points: Vec<Point>) -> Metric {
        let data = metric::Data::Sum(Sum {
            data_points: self.points(points, true),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        });
        metric_of(name, unit, data)
    }

    fn gauge(&self, name: &str, unit: &str, points: Vec<Point>) -> Metric {
        let data = metric::Data::Gauge(Gauge {
            data_points: self.points(points, false),
        });
        metric_of(name, unit, data)
    }
}

fn metric_of(name: &str, unit: &str, data: metric::Data) -> Metric {
    Metric {
        name: name.to_owned(),
        unit: unit.to_owned(),
        data: Some(data),
        ..Default::default()
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn dest(d: &DestinationStats) -> KeyValue {
    kv("destination", d.destination.as_str())
}

/// A counter's value; OTLP integers are signed, so a total past `i64::MAX`
/// (never reached in practice) is held there.
fn int(v: u64) -> number_data_point::Value {
    number_data_point::Value::AsInt(i64::try_from(v).unwrap_or(i64::MAX))
}

fn nanos(t: DateTime<Utc>) -> u64 {
    t.timestamp_nanos_opt()
        .map_or(0, |n| u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::Destination;
    use prost::Message;

    fn value(m: &Metric, attrs: &[(&str, &str)]) -> Option<f64> {
        let points = match m.data.as_ref()? {
            metric::Data::Sum(s) => &s.data_points,
            metric::Data::Gauge(g) => &g.data_points,
            _ => return None,
        };
        let want: Vec<KeyValue> = attrs.iter().map(|(k, v)| kv(k, v)).collect();
        let p = points
            .iter()
            .find(|p| want.iter().all(|w| p.attributes.contains(w)))?;
        match p.value? {
            number_data_point::Value::AsInt(i) => Some(i as f64),
            number_data_point::Value::AsDouble(d) => Some(d),
        }
    }

    #[test]
    fn every_stat_is_a_point_with_the_stats_value() {
        let t0 = DateTime::parse_from_rfc3339("2026-12-08T10:00:00Z")
            .unwrap()
            .to_utc();
        let now = t0 + chrono::Duration::seconds(90);
        let mut stats = ReporterStats::new(false, [Destination::Beacon].into_iter(), 2);
        stats.started_at = Some(t0);
        stats.windows_closed = 7;
        stats.measures.insert("langgraph.platform.runs".into(), 41);
        stats
            .gauges
            .insert("langgraph.platform.py_graphs".into(), 3);
        stats.license_expires_at = Some(now + chrono::Duration::seconds(600));
        let d = stats.destination_mut(Destination::Beacon);
        (d.sent, d.pending, d.pending_bytes, d.retries) = (5, 2, 900, 3);
        d.failures.insert("5xx".into(), 2);
        d.failures.insert("network".into(), 1);
        d.last_success = Some(now - chrono::Duration::seconds(30));
        let bytes = metrics_request(&stats, Some("pod-7"), now).encode_to_vec();
        let req = ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap();
        let rm = &req.resource_metrics[0];
        let attrs = &rm.resource.as_ref().unwrap().attributes;
        assert!(attrs.contains(&kv("service.name", SERVICE_NAME)));
        let metrics = &rm.scope_metrics[0].metrics;
        let get = |name: &str, attrs: &[(&str, &str)]| {
            let m = metrics
                .iter()
                .find(|m| m.name == name)
                .unwrap_or_else(|| panic!("{name}"));
            value(m, attrs)
        };
        let beacon = [("destination", "beacon"), ("instance_id", "pod-7")];
        assert_eq!(
            get(
                "beacon_meter_windows_closed_total",
                &[("instance_id", "pod-7")]
            ),
            Some(7.0)
        );
        assert_eq!(get("beacon_meter_windows_sent_total", &beacon), Some(5.0));
        assert_eq!(get("beacon_meter_windows_pending", &beacon), Some(2.0));
        assert_eq!(get("beacon_meter_spool_bytes", &beacon), Some(900.0));
        assert_eq!(get("beacon_meter_retries_total", &beacon), Some(3.0));
        assert_eq!(
            get("beacon_meter_failures_total", &[("reason", "5xx")]),
            Some(2.0)
        );
        assert_eq!(
            get("beacon_meter_failures_total", &[("reason", "network")]),
            Some(1.0)
        );
        assert_eq!(
            get("beacon_meter_failures_total", &[("reason", "429")]),
            Some(0.0)
        );
        assert_eq!(
            get("beacon_meter_seconds_since_last_success", &beacon),
            Some(30.0)
        );
        assert_eq!(
            get("beacon_meter_license_expires_in_seconds", &[]),
            Some(600.0)
        );
        assert_eq!(
            get("beacon_meter_windows_recovered_on_start", &[]),
            Some(2.0)
        );
        assert_eq!(get("langgraph.platform.runs", &[]), Some(41.0));
        assert_eq!(get("langgraph.platform.py_graphs", &[]), Some(3.0));
        let sum = metrics
            .iter()
            .find(|m| m.name == "langgraph.platform.runs")
            .unwrap();
        let Some(metric::Data::Sum(s)) = &sum.data else {
            panic!("a sum")
        };
        assert!(s.is_monotonic);
        assert_eq!(
            s.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        assert_eq!(s.data_points[0].start_time_unix_nano, nanos(t0));
        assert_eq!(s.data_points[0].time_unix_nano, nanos(now));
        // Seven reasons, each one point per destination: stable series.
        let f = metrics
            .iter()
            .find(|m| m.name == "beacon_meter_failures_total")
            .unwrap();
        let Some(metric::Data::Sum(f)) = &f.data else {
            panic!("a sum")
        };
        assert_eq!(f.data_points.len(), FailureKind::ALL.len());
    }

    #[test]
    fn a_destination_never_delivered_has_no_since_last_success() {
        let stats = ReporterStats::new(false, [Destination::Auth].into_iter(), 0);
        let req = metrics_request(&stats, None, Utc::now());
        let names: Vec<&str> = req.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert!(!names.contains(&"beacon_meter_seconds_since_last_success"));
        assert!(!names.contains(&"beacon_meter_license_expires_in_seconds"));
    }
}
