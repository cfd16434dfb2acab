//! The exporter task: one export every interval (longer after failures),
//! and a last one when the reporter shuts down. See the [module docs](super).

use super::encode_metrics;
use crate::client::HttpClient;
use crate::client::http::{answer_text, scrub};
use crate::reporter::ReporterState;
use crate::secret::Secret;
use crate::urls;
use chrono::Utc;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use url::Url;

/// The most a final export at shutdown may take, on top of the shutdown's
/// own deadline (usage delivery comes first; this is best effort).
pub const FINAL_EXPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// After this many failures in a row, the wait stops doubling (8 intervals).
const MAX_DOUBLINGS: u32 = 3;

/// Characters of a collector's answer kept in an error.
const ANSWER_CHARS: usize = 200;

/// Exports the stats of one reporter to one collector.
pub(crate) struct Exporter {
    pub(crate) shared: Arc<ReporterState>,
    pub(crate) http: HttpClient,
    pub(crate) url: Url,
    pub(crate) license: Secret,
    pub(crate) interval: Duration,
    pub(crate) instance_id: Option<String>,
}

impl Exporter {
    /// Exports every interval until `last` fires (or its sender is
    /// dropped), then exports once more within [`FINAL_EXPORT_TIMEOUT`].
    pub(crate) async fn run(self, mut last: oneshot::Receiver<()>) {
        let mut failures = 0u32;
        loop {
            let wait = self.interval * 2u32.pow(failures.min(MAX_DOUBLINGS));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = &mut last => break,
            }
            failures = match self.export().await {
                true => 0,
                false => failures.saturating_add(1),
            };
        }
        if tokio::time::timeout(FINAL_EXPORT_TIMEOUT, self.export())
            .await
            .is_err()
        {
            self.record(Err(format!(
                "the final export to {} did not finish within {FINAL_EXPORT_TIMEOUT:?}",
                urls::display(&self.url)
            )));
        }
    }

    /// One export of the stats of now; whether the collector took it.
    async fn export(&self) -> bool {
        let body = encode_metrics(
            &self.shared.stats(),
            self.instance_id.as_deref(),
            Utc::now(),
        );
        let outcome = self.post(body).await;
        let ok = outcome.is_ok();
        self.record(outcome);
        ok
    }

    fn record(&self, outcome: Result<(), String>) {
        if let Err(e) = &outcome {
            tracing::info!(error = %e, "operational metrics export failed; the next one carries the totals");
        }
        let mut st = self.shared.stats.lock();
        let Some(m) = st.metrics_export.as_mut() else {
            return;
        };
        match outcome {
            Ok(()) => {
                m.exports += 1;
                m.last_success = Some(Utc::now());
            }
            Err(e) => {
                m.failures += 1;
                m.last_error = Some(e);
            }
        }
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), String> {
        let mut key = HeaderValue::from_str(self.license.expose())
            .map_err(|_| "the license key is not a valid HTTP header value".to_owned())?;
        key.set_sensitive(true);
        let request = self
            .http
            .post(&self.url)
            .map_err(|e| e.to_string())?
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            )
            .header(crate::wire::METRICS_LICENSE_HEADER, key)
            .body(body);
        let response = self
            .http
            .send(&self.url, request)
            .await
            .map_err(|e| scrub(&e.reason, &self.license, false))?;
        let status = response.status();
        let answer = self.http.read_capped(&self.url, response).await;
        if status.is_success() {
            return Ok(());
        }
        let text = answer.map_or_else(
            |e| e.reason,
            |a| answer_text(&a, &self.license, ANSWER_CHARS),
        );
        Err(format!(
            "{} answered HTTP {status}: {}",
            urls::display(&self.url),
            scrub(&text, &self.license, false)
        ))
    }
}
