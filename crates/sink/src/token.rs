//! The sink's own license tokens: HS256 JWTs signed with a key drawn at
//! random when the sink starts, so a token is only good for the sink that
//! issued it. Signatures are made and checked by `jsonwebtoken` on `ring`
//! (the provider rustls already uses).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use std::time::Duration;

/// The `iss` claim of every token a sink issues.
pub(crate) const ISSUER: &str = "beacon-meter-sink";

/// A sink's HS256 key, drawn at random when the sink starts, so a token is
/// only good for the sink that issued it. It has no `Debug`: nothing shows it.
pub(crate) struct Key {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// A fresh random 256-bit HS256 key.
pub(crate) fn new_key() -> Result<Key, ring::error::Unspecified> {
    let mut secret = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)?;
    Ok(Key {
        encoding: EncodingKey::from_secret(&secret),
        decoding: DecodingKey::from_secret(&secret),
    })
}

/// A signed token with claims `sub: "license"`, `iat: now`,
/// `exp: now + lifetime` (whole seconds), `iss` and a random `jti`.
pub(crate) fn issue(key: &Key, now: i64, lifetime: Duration) -> String {
    let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    let claims = json!({
        "sub": "license",
        "iss": ISSUER,
        "iat": now,
        "exp": now.saturating_add(lifetime),
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    // Serializing a JSON object and HMAC-signing it cannot fail.
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key.encoding)
        .expect("an HS256 token of a JSON object")
}

/// The claims of `token` if it is an HS256 token signed with `key`
/// (expiry is not checked: that is the caller's business).
pub(crate) fn verify(key: &Key, token: &str) -> Option<Value> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(token, &key.decoding, &validation)
        .ok()
        .map(|data| data.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_tokens_verify_only_with_their_key() {
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
