//! OTLP/HTTP metrics intake: what `POST /v1/metrics` takes and stores.
//!
//! The second channel of the protocol (docs/protocol.md): operational
//! metrics, as the platform's `self_hosted_metrics` and beacon-meter's own
//! exporter push them. The rules, in the order they are checked:
//!
//! 1. A body of at most [`MAX_OTLP_BODY`] (`413` past it, read no further).
//! 2. `Content-Type: application/x-protobuf`, no `Content-Encoding` (`415`
//!    otherwise: OTLP's JSON encoding and gzip are not taken).
//! 3. `X-Langchain-License-Key`: missing, `401`; not a license this sink
//!    accepts (the same rule as `/v1/beacon/verify`), `403`.
//! 4. A protobuf `ExportMetricsServiceRequest` of at most
//!    [`MAX_POINTS_PER_EXPORT`] points (`400` otherwise, saying which).
//! 5. Stored, all points of one export in one transaction; then `200` with
//!    an empty `ExportMetricsServiceResponse` (zero bytes of protobuf).
//!
//! Each point is one row: the resource's `service.name`, the instance (the
//! point's `instance_id` attribute, else the resource's
//! `service.instance.id`, else `""`), the metric's name, kind and unit,
//! its times, its value (a histogram's sum, with its count and buckets),
//! and its other attributes as JSON. Retention: rows older than
//! [`RETENTION`] and rows past the newest [`MAX_POINTS_STORED`] are
//! deleted with each export, so the file stays bounded.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message;
use serde_json::{Map, Value};

/// The largest OTLP body taken (4 MiB, the OpenTelemetry Collector's
/// default limit of a request).
pub const MAX_OTLP_BODY: usize = 4 * 1024 * 1024;
/// The most points one export may carry.
pub const MAX_POINTS_PER_EXPORT: usize = 10_000;
/// How long stored points are kept (7 days).
pub const RETENTION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// The most points kept (the newest); about 200 bytes each on disk.
pub const MAX_POINTS_STORED: i64 = 2_000_000;

/// One point as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Point {
    pub service: String,
    pub instance: String,
    pub name: String,
    /// `sum`, `gauge`, `histogram`, `exponential_histogram` or `summary`.
    pub kind: &'static str,
    pub unit: String,
    pub start_ns: u64,
    pub time_ns: u64,
    /// The number, or a histogram's (summary's) sum.
    pub value: f64,
    /// A histogram's (summary's) count.
    pub count: Option<u64>,
    /// A histogram's `{"bounds": [...], "counts": [...]}`.
    pub buckets: Option<String>,
    /// The point's attributes but `instance_id`, as a JSON object.
    pub attributes: String,
}

/// The points of an OTLP protobuf metrics export, or why it is not one.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<Point>, String> {
    let request = ExportMetricsServiceRequest::decode(bytes).map_err(|e| {
        format!("the body is not an OTLP ExportMetricsServiceRequest in protobuf: {e}")
    })?;
    let mut out = Vec::new();
    for rm in &request.resource_metrics {
        let resource = rm
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or(&[]);
        let service = string_attr(resource, "service.name").unwrap_or_default();
        let default_instance = string_attr(resource, "service.instance.id").unwrap_or_default();
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let base = Base {
                    service: &service,
                    default_instance: &default_instance,
                    name: &m.name,
                    unit: &m.unit,
                };
                points_of(&base, m.data.as_ref(), &mut out);
                if out.len() > MAX_POINTS_PER_EXPORT {
                    return Err(format!(
                        "the export has more than {MAX_POINTS_PER_EXPORT} points; send fewer per request"
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// What every point of one metric shares.
struct Base<'a> {
    service: &'a str,
    default_instance: &'a str,
    name: &'a str,
    unit: &'a str,
}

impl Base<'_> {
    fn point(
        &self,
        kind: &'static str,
        attrs: &[KeyValue],
        times: (u64, u64),
        value: f64,
    ) -> Point {
        let instance =
            string_attr(attrs, "instance_id").unwrap_or_else(|| self.default_instance.to_owned());
        let attributes: Map<String, Value> = attrs
            .iter()
            .filter(|kv| kv.key != "instance_id")
            .map(|kv| (kv.key.clone(), json_of(kv.value.as_ref())))
            .collect();
        Point {
            service: self.service.to_owned(),
            instance,
            name: self.name.to_owned(),
            kind,
            unit: self.unit.to_owned(),
            start_ns: times.0,
            time_ns: times.1,
            value,
            count: None,
            buckets: None,
            attributes: Value::Object(attributes).to_string(),
        }
    }
}

fn points_of(base: &Base, data: Option<&metric::Data>, out: &mut Vec<Point>) {
    let number = |p: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint| match p.value {
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        Some(number_data_point::Value::AsDouble(d)) => d,
        None => 0.0,
    };
    match data {
        Some(metric::Data::Sum(s)) => out.extend(s.data_points.iter().map(|p| {
            base.point(
                "sum",
                &p.attributes,
                (p.start_time_unix_nano, p.time_unix_nano),
                number(p),
            )
        })),
        Some(metric::Data::Gauge(g)) => out.extend(g.data_points.iter().map(|p| {
            base.point(
                "gauge",
                &p.attributes,
                (p.start_time_unix_nano, p.time_unix_nano),
                number(p),
            )
        })),
        Some(metric::Data::Histogram(h)) => out.extend(h.data_points.iter().map(|p| {
            let times = (p.start_time_unix_nano, p.time_unix_nano);
            let mut point = base.point("histogram", &p.attributes, times, p.sum.unwrap_or(0.0));
            point.count = Some(p.count);
            let buckets =
                serde_json::json!({"bounds": p.explicit_bounds, "counts": p.bucket_counts});
            point.buckets = Some(buckets.to_string());
            point
        })),
        Some(metric::Data::ExponentialHistogram(h)) => out.extend(h.data_points.iter().map(|p| {
            let times = (p.start_time_unix_nano, p.time_unix_nano);
            let mut point = base.point(
                "exponential_histogram",
                &p.attributes,
                times,
                p.sum.unwrap_or(0.0),
            );
            point.count = Some(p.count);
            point
        })),
        Some(metric::Data::Summary(s)) => out.extend(s.data_points.iter().map(|p| {
            let times = (p.start_time_unix_nano, p.time_unix_nano);
            let mut point = base.point("summary", &p.attributes, times, p.sum);
            point.count = Some(p.count);
            point
        })),
        None => {}
    }
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| match json_of(kv.value.as_ref()) {
            Value::String(s) => s,
            other => other.to_string(),
        })
}

fn json_of(value: Option<&AnyValue>) -> Value {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::from(*d),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|v| json_of(Some(v))).collect())
        }
        Some(any_value::Value::KvlistValue(l)) => Value::Object(
            l.values
                .iter()
                .map(|kv| (kv.key.clone(), json_of(kv.value.as_ref())))
                .collect(),
        ),
        Some(any_value::Value::BytesValue(b)) => Value::String(format!("({} bytes)", b.len())),
        Some(any_value::Value::StringValueStrindex(_)) | None => Value::Null,
    }
}
