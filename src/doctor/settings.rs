//! The effective configuration, each value with the variable it came from.
//!
//! May import the configuration and the spool's default directory.

use super::{Origin, Setting};
use crate::config::{
    API_KEY_VARS, AUTH_ENDPOINT_VARS, Config, ENV_BEACON_URL, ENV_CA_CERT, ENV_CHECKPOINT,
    ENV_INTERVAL, ENV_LICENSE_KEY, ENV_OFFLINE, ENV_SPOOL_DIR, ENV_TIMEOUT, ENV_WIRE, Source,
};
use crate::secret::Secret;
use crate::spool::Spool;
use std::time::Duration;

/// The effective configuration, each value with the variable it came from
/// ([`Config::sources`]); secrets redacted.
pub fn settings(config: &Config) -> Vec<Setting> {
    let src = &config.sources;
    let secs = |d: Duration| Some(d.as_secs().to_string());
    let spool = config.spool_dir.clone().unwrap_or_else(Spool::default_dir);
    let ca_cert = config
        .ca_cert
        .as_ref()
        .map(|c| c.path.display().to_string());
    let license = license_row(config);
    let mut wire = row(
        "wire",
        &[ENV_WIRE],
        src.wire,
        Some(config.wire.name().to_owned()),
    );
    wire.note = Some(format!(
        "license reports go to {{beacon}}/{} with \"{}\"",
        config.wire.license_report_path().join("/"),
        config.wire.license_field()
    ));
    let mut spool = row(
        "spool_dir",
        &[ENV_SPOOL_DIR],
        src.spool_dir,
        Some(spool.display().to_string()),
    );
    if spool.origin == Origin::Unset {
        spool.origin = Origin::Default;
    }
    let api_key = config.api_key.as_ref().map(Secret::redacted);
    vec![
        license,
        row("api_key", &API_KEY_VARS, src.api_key, api_key),
        row(
            "beacon_url",
            &[ENV_BEACON_URL],
            src.beacon_url,
            Some(config.beacon_url.to_string()),
        ),
        row(
            "auth_endpoint",
            &AUTH_ENDPOINT_VARS,
            src.auth_endpoint,
            Some(config.auth_endpoint.to_string()),
        ),
        wire,
        row(
            "interval",
            &[ENV_INTERVAL],
            src.interval,
            secs(config.interval),
        ),
        row("timeout", &[ENV_TIMEOUT], src.timeout, secs(config.timeout)),
        row(
            "offline",
            &[ENV_OFFLINE],
            src.offline,
            Some(config.offline.to_string()),
        ),
        spool,
        row("ca_cert", &[ENV_CA_CERT], src.ca_cert, ca_cert),
        row(
            "checkpoint_interval",
            &[ENV_CHECKPOINT],
            src.checkpoint_interval,
            secs(config.checkpoint_interval),
        ),
    ]
}

/// The license's row, with a note on where (if anywhere) it is sent.
fn license_row(config: &Config) -> Setting {
    let src = &config.sources;
    let mut license = row(
        "license_key",
        &[ENV_LICENSE_KEY],
        src.license_key,
        config.license_key.as_ref().map(Secret::redacted),
    );
    license.note = config.license_key.as_ref().map(|k| {
        if k.is_online_license() {
            "online license"
        } else if config.api_key.is_some() {
            "offline (air-gapped) license: never sent; the API key reports alone"
        } else {
            "offline (air-gapped) license: nothing is sent"
        }
        .to_owned()
    });
    license
}

/// One row of [`settings`]: `setting`, whose variables are `vars` (first
/// set wins), came `from` there and has `value`.
fn row(
    setting: &'static str,
    vars: &[&'static str],
    from: Source,
    value: Option<String>,
) -> Setting {
    let (variable, origin) = match from {
        Source::Var(v) => (v, Origin::Environment),
        Source::Default => (vars[0], Origin::Default),
        Source::Unset => (vars[0], Origin::Unset),
    };
    let note = (vars.len() > 1).then(|| match from {
        Source::Var(v) => {
            let before: Vec<&str> = vars.iter().take_while(|x| **x != v).copied().collect();
            if before.is_empty() {
                format!("first of {}", vars.join(", "))
            } else {
                format!("{} unset, so read from {v}", before.join(" and "))
            }
        }
        Source::Default | Source::Unset => format!("none of {} is set", vars.join(", ")),
    });
    Setting {
        setting,
        variable,
        value,
        origin,
        note,
    }
}
