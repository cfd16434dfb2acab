//! Operational metrics over OTLP/HTTP: the second channel.
//!
//! Usage reports carry what is billed. Beside them, the reference platform
//! (`langgraph-api` 0.16.7, `self_hosted_metrics.py`) pushes operational
//! metrics to an OpenTelemetry collector, so that the vendor can help
//! remotely, and operators can alert. beacon-meter does the same for
//! itself, under the platform's own rules:
//!
//! * **Opt-in**: [`crate::config::ENV_METRICS_ENABLED`] (or
//!   `ConfigBuilder::metrics_export`), with
//!   [`crate::config::ENV_METRICS_ENDPOINT`], the full URL (turned on
//!   without one, the configuration is refused, as the platform refuses to
//!   start), every [`crate::config::ENV_METRICS_INTERVAL`] (60 s by
//!   default).
//! * **Only with a license key**, sent as the `X-Langchain-License-Key`
//!   header; with none, the reporter warns once and exports nothing.
//!   Offline ([`crate::config::Config::is_offline`]), nothing at all.
//! * **What**: the reporter's health per destination and the meter's
//!   totals ([`encode`] lists every metric). Every value is a field of
//!   [`ReporterStats`] at export time, and nothing else: the usage report
//!   already reveals everything here. Points carry `instance_id` from
//!   [`crate::config::ENV_HOSTNAME`]; the resource says `service.name =
//!   beacon-meter` and the version.
//! * **Encoding**: OTLP/HTTP with protobuf bodies
//!   (`Content-Type: application/x-protobuf`), the OpenTelemetry
//!   project's generated types (`opentelemetry-proto`, without tonic) and
//!   `prost`. Sums are cumulative from the reporter's start, so a lost
//!   export loses nothing: the next one carries the totals.
//! * **Never in the way of usage delivery**: its own task, its own HTTP
//!   client and backoff (the interval doubled per failure in a row, up to
//!   8 intervals); nothing is queued (each export is made from the stats
//!   of its moment), so memory does not grow with an outage; a final
//!   export at shutdown, after the final window's delivery, bounded by
//!   [`FINAL_EXPORT_TIMEOUT`].
//!
//! Layer: shell. May import the reporter's stats, `config`, `client`,
//! `opentelemetry-proto`, `prost`, tokio. Must not import the sink or the CLI.

pub mod encode;
pub(crate) mod export;

pub use encode::{SERVICE_NAME, metrics_request};
pub use export::FINAL_EXPORT_TIMEOUT;

use crate::reporter::ReporterStats;

/// The protobuf body of one export of `stats` (what is posted), at `now`.
pub fn encode_metrics(
    stats: &ReporterStats,
    instance_id: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<u8> {
    use prost::Message;
    metrics_request(stats, instance_id, now).encode_to_vec()
}

/// What the first export of a reporter started with `config` sends at
/// `now` (every counter zero, no delivery yet), encoded: the sample
/// `beacon-meter preview` shows. `None` when `config` exports nothing
/// (off, offline, or no license key).
pub fn sample(
    config: &crate::config::Config,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Vec<u8>> {
    let export = config.metrics_export()?;
    if config.is_offline() || config.license_key().is_none() {
        return None;
    }
    let dests = crate::reporter::routes(config).into_iter().map(|r| r.dest);
    let mut stats = ReporterStats::new(false, dests, 0);
    stats.started_at = Some(now);
    Some(encode_metrics(&stats, export.instance_id.as_deref(), now))
}

/// One line per point of an encoded export: `name{attributes} = value
/// (kind, unit)`, in the order sent. An undecodable body is an error
/// naming prost's reason.
pub fn describe(body: &[u8]) -> Result<Vec<String>, prost::DecodeError> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
    use prost::Message;
    let request = ExportMetricsServiceRequest::decode(body)?;
    let mut lines = Vec::new();
    for m in request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        let (kind, points) = match &m.data {
            Some(metric::Data::Sum(s)) => ("sum", &s.data_points),
            Some(metric::Data::Gauge(g)) => ("gauge", &g.data_points),
            _ => continue,
        };
        for p in points {
            let attrs: Vec<String> = p
                .attributes
                .iter()
                .map(
                    |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(any_value::Value::StringValue(s)) => format!("{}={s}", kv.key),
                        other => format!("{}={other:?}", kv.key),
                    },
                )
                .collect();
            let value = match p.value {
                Some(number_data_point::Value::AsInt(i)) => i.to_string(),
                Some(number_data_point::Value::AsDouble(d)) => d.to_string(),
                None => "-".to_owned(),
            };
            let unit = if m.unit.is_empty() { "1" } else { &m.unit };
            lines.push(format!(
                "{}{{{}}} = {value} ({kind}, {unit})",
                m.name,
                attrs.join(", ")
            ));
        }
    }
    Ok(lines)
}
