//! The verification of each credential: the license's token expiry, the
//! API key's organization.

use super::{CredentialCheck, CredentialKind, CredentialOutcome, Progress, from_now};
use beacon_meter::client::{
    ApiKeyError, ApiKeyVerifier, HttpClient, LicenseError, LicenseSettings, LicenseVerifier,
};
use beacon_meter::config::{API_KEY_VARS, Config, ENV_BEACON_URL, ENV_LICENSE_KEY, Endpoint};
use beacon_meter::secret::Secret;
use beacon_meter::wire::Credential;

/// Verifies `d`'s credential, unless its host is not `reachable`.
pub(super) async fn verify(
    d: &Endpoint,
    config: &Config,
    http: &HttpClient,
    reachable: bool,
    progress: Progress<'_>,
) -> CredentialCheck {
    let variable = match d.credential {
        Credential::License(_) => ENV_LICENSE_KEY,
        Credential::ApiKey(_) => config.sources().api_key.var().unwrap_or(API_KEY_VARS[0]),
    };
    let mut check = CredentialCheck {
        kind: CredentialKind::of(&d.credential),
        variable,
        key: d.credential.secret().redacted(),
        url: d.verify_url.to_string(),
        outcome: CredentialOutcome::Skipped,
        detail: String::new(),
        expires_at: None,
        org_id: None,
    };
    if !reachable {
        let host = d.verify_url.host_str().unwrap_or("its host");
        check.detail = format!("not verified: {host} is unreachable");
        return check;
    }
    progress(format!("verifying {variable} at {}", d.verify_url));
    match &d.credential {
        Credential::License(key) => verify_license(check, d, http, key).await,
        Credential::ApiKey(key) => verify_api_key(check, d, http, key).await,
    }
}

async fn verify_license(
    mut check: CredentialCheck,
    d: &Endpoint,
    http: &HttpClient,
    key: &Secret,
) -> CredentialCheck {
    let settings = LicenseSettings::default();
    let verifier = match LicenseVerifier::new(http.clone(), &d.verify_url, key.clone(), settings) {
        Ok(v) => v,
        Err(e) => return invalid(check, &e),
    };
    (check.outcome, check.detail) = match verifier.verify().await {
        Ok(token) => {
            let expires_at = token.expires_at();
            check.expires_at = Some(expires_at);
            let when = beacon_meter::wire::format_timestamp(&expires_at);
            let detail = format!(
                "valid; the token is used until {when} ({})",
                from_now(expires_at)
            );
            (CredentialOutcome::Valid, detail)
        }
        Err(LicenseError::Rejected { status, message }) => (
            CredentialOutcome::Rejected,
            format!(
                "the Beacon rejected the license key (HTTP {status}): {message}; check \
                 {ENV_LICENSE_KEY} (and {ENV_BEACON_URL})"
            ),
        ),
        Err(LicenseError::Unreachable { reason, .. }) => (
            CredentialOutcome::Unreachable,
            format!("the license could not be verified: {reason}"),
        ),
        Err(LicenseError::Malformed { reason }) => (
            CredentialOutcome::Unexpected,
            format!(
                "{} does not answer like a Beacon: {reason}; check {ENV_BEACON_URL}",
                d.verify_url
            ),
        ),
        // A kind of failure added later: said as the error says it.
        Err(e) => (CredentialOutcome::Unexpected, e.to_string()),
    };
    check
}

async fn verify_api_key(
    mut check: CredentialCheck,
    d: &Endpoint,
    http: &HttpClient,
    key: &Secret,
) -> CredentialCheck {
    let verifier = match ApiKeyVerifier::new(http.clone(), &d.verify_url, key.clone()) {
        Ok(v) => v,
        Err(e) => return invalid(check, &e),
    };
    match verifier.verify().await {
        Ok(org) => {
            check.outcome = CredentialOutcome::Valid;
            check.org_id = Some(org.org_id);
            check.detail = format!("valid; organization {}", org.org_id);
        }
        Err(e) => {
            check.outcome = match e {
                ApiKeyError::Rejected { .. } => CredentialOutcome::Rejected,
                ApiKeyError::Unreachable { .. } => CredentialOutcome::Unreachable,
                ApiKeyError::UnexpectedStatus { .. } | ApiKeyError::Malformed { .. } => {
                    CredentialOutcome::Unexpected
                }
                ApiKeyError::InvalidKey => CredentialOutcome::Invalid,
                _ => CredentialOutcome::Unexpected,
            };
            check.detail = e.to_string();
        }
    }
    check
}

/// A key that cannot be sent at all.
fn invalid(mut check: CredentialCheck, e: &dyn std::fmt::Display) -> CredentialCheck {
    check.outcome = CredentialOutcome::Invalid;
    check.detail = e.to_string();
    check
}
