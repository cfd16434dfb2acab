//! The JWTs issued by `POST /v1/beacon/verify`: HS256 (HMAC-SHA256) with a
//! key drawn at random when the sink starts, so a token is only good for the
//! sink that issued it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde_json::{Value, json};
use std::time::Duration;

/// The `iss` claim of every token a sink issues.
pub(crate) const ISSUER: &str = "beacon-meter-sink";

/// A fresh random signing key.
pub(crate) fn new_key() -> Result<hmac::Key, ring::error::Unspecified> {
    hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
}

/// A signed token with claims `sub: "license"`, `iat: now`,
/// `exp: now + lifetime` (whole seconds), `iss` and a random `jti`.
pub(crate) fn issue(key: &hmac::Key, now: i64, lifetime: Duration) -> String {
    let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let claims = json!({
        "sub": "license",
        "iss": ISSUER,
        "iat": now,
        "exp": now.saturating_add(lifetime),
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let tag = hmac::sign(key, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// The claims of `token` if it is an HS256 token signed with `key`
/// (expiry is not checked: that is the caller's business).
pub(crate) fn verify(key: &hmac::Key, token: &str) -> Option<Value> {
    let (signing_input, signature) = token.rsplit_once('.')?;
    let (header, claims) = signing_input.split_once('.')?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    hmac::verify(key, signing_input.as_bytes(), &signature).ok()?;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if header.get("alg")? != "HS256" {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_only_with_their_key() {
        let key = new_key().unwrap();
        let token = issue(&key, 1_000, Duration::from_secs(3600));
        assert_eq!(token.split('.').count(), 3);
        let claims = verify(&key, &token).unwrap();
        assert_eq!(claims["sub"], "license");
        assert_eq!(claims["iat"], 1_000);
        assert_eq!(claims["exp"], 4_600);
        assert_eq!(claims["iss"], ISSUER);

        assert!(verify(&new_key().unwrap(), &token).is_none());
        let mut tampered = token.clone().into_bytes();
        let i = token.find('.').unwrap() + 3;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        assert!(verify(&key, std::str::from_utf8(&tampered).unwrap()).is_none());
        for garbage in ["", ".", "..", "a.b.c", "a.b", "é.é.é"] {
            assert!(verify(&key, garbage).is_none());
        }
    }

    #[test]
    fn huge_lifetime_saturates() {
        let key = new_key().unwrap();
        let token = issue(&key, 5, Duration::MAX);
        assert_eq!(verify(&key, &token).unwrap()["exp"], i64::MAX);
    }
}
