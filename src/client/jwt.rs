//! Just enough JWT: split, base64url-decode, read the claims, and optionally
//! check an RS256 / ES256 signature against a PEM public key (with `ring`,
//! which rustls already brings in).

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, Utc};
use ring::signature::{ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::{Map, Value};

/// base64url, with or without padding.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The latest `exp` accepted: 9999-12-31T23:59:59Z.
const MAX_EXP: f64 = 253_402_300_799.0;

/// A public key that license tokens must be signed with.
#[derive(Debug, Clone)]
pub(crate) enum PublicKey {
    /// RSA, for RS256: the PKCS#1 `RSAPublicKey` DER.
    Rsa(Vec<u8>),
    /// EC P-256, for ES256: the uncompressed point.
    EcP256(Vec<u8>),
}

/// A decoded token.
#[derive(Debug, Clone)]
pub(crate) struct Decoded {
    /// The payload, a JSON object.
    pub claims: Value,
    /// The `exp` claim, if present.
    pub exp: Option<DateTime<Utc>>,
}

/// Decodes `token`, and checks its signature when `key` is given. The error
/// says what is wrong, without quoting the token.
pub(crate) fn decode(token: &str, key: Option<&PublicKey>) -> Result<Decoded, String> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(format!(
            "the token is not a JWT: it has {} dot-separated parts instead of 3",
            parts.len()
        ));
    }
    let (header_b64, payload_b64, signature_b64) = (parts[0], parts[1], parts[2]);
    let header = json_object(header_b64, "header")?;
    let claims = json_object(payload_b64, "payload")?;

    if let Some(key) = key {
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        let (expected, algorithm): (&str, &dyn ring::signature::VerificationAlgorithm) = match key {
            PublicKey::Rsa(_) => ("RS256", &RSA_PKCS1_2048_8192_SHA256),
            PublicKey::EcP256(_) => ("ES256", &ECDSA_P256_SHA256_FIXED),
        };
        if alg != expected {
            return Err(format!(
                "the token's algorithm is {alg:?}, but the configured public key needs {expected}"
            ));
        }
        let signature = B64URL
            .decode(signature_b64)
            .map_err(|_| "the token's signature is not base64url".to_owned())?;
        let key_bytes = match key {
            PublicKey::Rsa(k) | PublicKey::EcP256(k) => k,
        };
        let signed = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        UnparsedPublicKey::new(algorithm, key_bytes)
            .verify(signed, &signature)
            .map_err(|_| {
                "the token's signature does not match the configured public key".to_owned()
            })?;
    }

    let exp = match claims.get("exp") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            let secs = n
                .as_f64()
                .filter(|s| s.is_finite() && *s > 0.0 && *s <= MAX_EXP)
                .ok_or_else(|| format!("the token's exp claim {n} is out of range"))?;
            let whole = secs.trunc();
            let nanos = ((secs - whole) * 1e9) as u32;
            Some(
                DateTime::from_timestamp(whole as i64, nanos.min(999_999_999))
                    .ok_or_else(|| format!("the token's exp claim {n} is out of range"))?,
            )
        }
        Some(other) => {
            return Err(format!(
                "the token's exp claim is a {}, not a number of seconds",
                json_kind(other)
            ));
        }
    };
    Ok(Decoded {
        claims: Value::Object(claims),
        exp,
    })
}

fn json_object(part: &str, name: &str) -> Result<Map<String, Value>, String> {
    let bytes = B64URL
        .decode(part)
        .map_err(|_| format!("the token's {name} is not base64url"))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!(
            "the token's {name} is a JSON {}, not an object",
            json_kind(&other)
        )),
        Err(_) => Err(format!("the token's {name} is not JSON")),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

// ---- PEM and just enough DER for SubjectPublicKeyInfo ----

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo: RSA or EC P-256) or
    /// `RSA PUBLIC KEY` (PKCS#1) block.
    pub(crate) fn from_pem(pem: &[u8]) -> Result<PublicKey, String> {
        let text = std::str::from_utf8(pem).map_err(|_| "the PEM is not text".to_owned())?;
        let (label, der) = pem_block(text)?;
        match label {
            "PUBLIC KEY" => spki(&der),
            "RSA PUBLIC KEY" => {
                rsa_public_key(&der)?;
                Ok(PublicKey::Rsa(der))
            }
            other => Err(format!(
                "found a {other:?} PEM block, expected \"PUBLIC KEY\""
            )),
        }
    }
}

fn pem_block(text: &str) -> Result<(&str, Vec<u8>), String> {
    const BEGIN: &str = "-----BEGIN ";
    let start = text
        .find(BEGIN)
        .ok_or_else(|| "no -----BEGIN ...----- line found".to_owned())?;
    let rest = &text[start + BEGIN.len()..];
    let label_end = rest
        .find("-----")
        .ok_or_else(|| "the BEGIN line is not closed by -----".to_owned())?;
    let label = &rest[..label_end];
    let body = &rest[label_end + 5..];
    let end_line = format!("-----END {label}-----");
    let body_end = body
        .find(&end_line)
        .ok_or_else(|| format!("no {end_line} line found"))?;
    let b64: String = body[..body_end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| format!("the {label} block is not valid base64"))?;
    Ok((label, der))
}

/// One DER element: (tag, contents, the bytes after it).
fn der(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let bad = || "the key is not valid DER".to_owned();
    let (&tag, rest) = input.split_first().ok_or_else(bad)?;
    let (&first, mut rest) = rest.split_first().ok_or_else(bad)?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 3 || rest.len() < n {
            return Err(bad());
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err(bad());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn spki(input: &[u8]) -> Result<PublicKey, String> {
    let bad = || "the key is not a SubjectPublicKeyInfo".to_owned();
    let (tag, seq, trailing) = der(input)?;
    if tag != 0x30 || !trailing.is_empty() {
        return Err(bad());
    }
    let (tag, algorithm, rest) = der(seq)?;
    if tag != 0x30 {
        return Err(bad());
    }
    let (tag, bits, trailing) = der(rest)?;
    if tag != 0x03 || !trailing.is_empty() {
        return Err(bad());
    }
    let key = match bits.split_first() {
        Some((0, key)) => key,
        _ => return Err(bad()),
    };
    let (tag, oid, params) = der(algorithm)?;
    if tag != 0x06 {
        return Err(bad());
    }
    if oid == OID_RSA {
        rsa_public_key(key)?;
        Ok(PublicKey::Rsa(key.to_vec()))
    } else if oid == OID_EC_PUBLIC_KEY {
        let (tag, curve, _) = der(params)?;
        if tag != 0x06 || curve != OID_P256 {
            return Err("only the EC curve P-256 (ES256) is supported".to_owned());
        }
        if key.len() != 65 || key[0] != 0x04 {
            return Err("the EC key is not an uncompressed P-256 point".to_owned());
        }
        Ok(PublicKey::EcP256(key.to_vec()))
    } else {
        Err("unsupported key algorithm: only RSA (RS256) and EC P-256 (ES256) keys".to_owned())
    }
}

/// Checks the PKCS#1 shape: SEQUENCE { INTEGER n, INTEGER e }.
fn rsa_public_key(key: &[u8]) -> Result<(), String> {
    let bad = || "the RSA key is not a PKCS#1 RSAPublicKey".to_owned();
    let (tag, seq, trailing) = der(key)?;
    if tag != 0x30 || !trailing.is_empty() {
        return Err(bad());
    }
    let (tag, n, rest) = der(seq)?;
    let (tag2, _e, trailing) = der(rest)?;
    if tag != 0x02 || tag2 != 0x02 || !trailing.is_empty() {
        return Err(bad());
    }
    let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
    if bits < 2048 {
        return Err(format!(
            "the RSA key has about {bits} bits; at least 2048 are needed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.sig", b64(header), b64(payload))
    }

    #[test]
    fn decodes_claims_and_exp() {
        let d = decode(
            &token(r#"{"alg":"none"}"#, r#"{"exp":1700000000,"sub":"x"}"#),
            None,
        )
        .unwrap();
        assert_eq!(d.exp.unwrap().timestamp(), 1_700_000_000);
        assert_eq!(d.claims["sub"], "x");
        let d = decode(&token("{}", r#"{"exp":1700000000.5}"#), None).unwrap();
        assert_eq!(d.exp.unwrap().timestamp_millis(), 1_700_000_000_500);
        assert!(decode(&token("{}", "{}"), None).unwrap().exp.is_none());
    }

    #[test]
    fn rejects_what_is_not_a_jwt() {
        for (t, why) in [
            ("abc".to_owned(), "parts"),
            ("a.b".to_owned(), "parts"),
            ("a.b.c.d".to_owned(), "parts"),
            (format!("{}.!!!.x", b64("{}")), "payload is not base64url"),
            (
                format!("{}.{}.x", b64("{}"), b64("not json")),
                "payload is not JSON",
            ),
            (token("{}", "[1]"), "payload is a JSON array"),
            (token("[]", "{}"), "header is a JSON array"),
            (token("{}", r#"{"exp":-1}"#), "out of range"),
            (token("{}", r#"{"exp":0}"#), "out of range"),
            (token("{}", r#"{"exp":1e300}"#), "out of range"),
            (token("{}", r#"{"exp":"1700000000"}"#), "is a string"),
        ] {
            let err = decode(&t, None).unwrap_err();
            assert!(err.contains(why), "{t}: {err}");
        }
    }

    #[test]
    fn pem_errors_are_clear() {
        assert!(
            PublicKey::from_pem(b"nothing")
                .unwrap_err()
                .contains("BEGIN")
        );
        let e =
            PublicKey::from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")
                .unwrap_err();
        assert!(e.contains("CERTIFICATE"), "{e}");
        let e = PublicKey::from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
            .unwrap_err();
        assert!(
            e.contains("DER") || e.contains("SubjectPublicKeyInfo"),
            "{e}"
        );
    }
}
