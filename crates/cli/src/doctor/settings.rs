//! The effective configuration, each value with the variable it came from.

use super::{Origin, Setting};
use beacon_meter::config::{
    API_KEY_VARS, AUTH_ENDPOINT_VARS, Config, ENV_BEACON_URL, ENV_CA_CERT, ENV_CHECKPOINT,
    ENV_INTERVAL, ENV_LICENSE_KEY, ENV_OFFLINE, ENV_SPOOL_DIR, ENV_TIMEOUT, ENV_WIRE, Source,
};
use beacon_meter::secret::Secret;
use beacon_meter::spool::Spool;
use std::time::Duration;

/// The effective configuration, each value with the variable it came from
/// ([`Config::sources`]); secrets redacted.
pub fn settings(config: &Config) -> Vec<Setting> {
    let (s, c) = (config.sources(), config);
    let secs = |d: Duration| Some(d.as_secs().to_string());
    let text = |v: &dyn ToString| Some(v.to_string());
    let spool = c
        .spool_dir()
        .map_or_else(Spool::default_dir, ToOwned::to_owned);
    let (beacon, auth) = (text(c.beacon_url()), text(c.auth_endpoint()));
    let (wire, spool) = (text(&c.wire().name()), text(&spool.display()));
    let ca = c.ca_cert().map(|c| c.path.display().to_string());
    let license = c.license_key().map(Secret::redacted);
    let api_key = c.api_key().map(Secret::redacted);
    let (cp, cp_var) = (secs(c.checkpoint_interval()), [ENV_CHECKPOINT]);
    let table: [Row; 11] = [
        ("license_key", &[ENV_LICENSE_KEY], s.license_key, license),
        ("api_key", &API_KEY_VARS, s.api_key, api_key),
        ("beacon_url", &[ENV_BEACON_URL], s.beacon_url, beacon),
        ("auth_endpoint", &AUTH_ENDPOINT_VARS, s.auth_endpoint, auth),
        ("wire", &[ENV_WIRE], s.wire, wire),
        ("interval", &[ENV_INTERVAL], s.interval, secs(c.interval())),
        ("timeout", &[ENV_TIMEOUT], s.timeout, secs(c.timeout())),
        (
            "offline",
            &[ENV_OFFLINE],
            s.offline,
            text(&c.offline_flag()),
        ),
        ("spool_dir", &[ENV_SPOOL_DIR], s.spool_dir, spool),
        ("ca_cert", &[ENV_CA_CERT], s.ca_cert, ca),
        ("checkpoint_interval", &cp_var, s.checkpoint_interval, cp),
    ];
    let mut rows: Vec<Setting> = table.into_iter().map(row).collect();
    for r in &mut rows {
        match r.setting {
            "license_key" => r.note = license_note(config),
            "wire" => {
                r.note = Some(format!(
                    "license reports go to {{beacon}}/{} with \"{}\"",
                    c.wire().license_report_path().join("/"),
                    c.wire().license_field()
                ))
            }
            // The spool always has a directory: unset means the default.
            "spool_dir" if r.origin == Origin::Unset => r.origin = Origin::Default,
            _ => {}
        }
    }
    rows
}

/// The note on the license: where (if anywhere) it is sent.
fn license_note(config: &Config) -> Option<String> {
    let note = if config.license_key()?.is_online_license() {
        "online license"
    } else if config.api_key().is_some() {
        "offline (air-gapped) license: never sent; the API key reports alone"
    } else {
        "offline (air-gapped) license: nothing is sent"
    };
    Some(note.to_owned())
}

/// A setting, its variables (first set wins), where its value came from
/// and the value.
type Row<'a> = (&'static str, &'a [&'static str], Source, Option<String>);

/// One row of [`settings`].
fn row((setting, vars, from, value): Row<'_>) -> Setting {
    let (variable, origin) = match (from, from.var()) {
        (_, Some(v)) => (v, Origin::Environment),
        (Source::Default, _) => (vars[0], Origin::Default),
        (Source::Unset, _) => (vars[0], Origin::Unset),
        _ => (vars[0], Origin::Code),
    };
    let note = (vars.len() > 1).then(|| match from.var() {
        Some(v) => {
            let before: Vec<&str> = vars.iter().take_while(|x| **x != v).copied().collect();
            if before.is_empty() {
                format!("first of {}", vars.join(", "))
            } else {
                format!("{} unset, so read from {v}", before.join(" and "))
            }
        }
        None => format!("none of {} is set", vars.join(", ")),
    });
    Setting {
        setting,
        variable,
        value,
        origin,
        note,
    }
}
