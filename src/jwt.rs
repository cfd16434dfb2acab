//! License tokens as the client reads them: a JWT's claims and `exp`, and,
//! given a PEM public key, its RS256 / ES256 signature. Signatures are
//! checked by `jsonwebtoken` on `ring` (the provider rustls already uses),
//! PEM is read by `rustls-pki-types`. (The local Beacon's HS256 tokens are
//! its own crate's business.)
//!
//! The key's DER (SubjectPublicKeyInfo or PKCS#1) is read by hand, in the 100
//! lines under "just enough DER": jsonwebtoken 9 reads keys from PEM only
//! with its default `use_pem` feature (two more crates, `pem` and
//! `simple_asn1`), its `from_*_components` still need the modulus or point
//! taken out of the DER, and rustls-pki-types frames PEM but parses no DER.
//! Reading it here also refuses at configuration what `ring` would refuse on
//! every token: RSA under 2048 bits, a curve other than P-256, a compressed
//! or malformed EC point, trailing bytes.
//!
//! Errors are `String`s, and that is the point: each says what is wrong
//! with a token or a key in words an operator can act on, without quoting
//! the token; the base64, JSON and DER failures behind them carry only
//! offsets, so nothing is lost by not keeping them as sources.
//!
//! May import: jsonwebtoken, rustls-pki-types, ring, base64, serde_json,
//! chrono. Must not import: the rest of the crate.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey};
use rustls_pki_types::pem::{PemObject, SectionKind};
use serde_json::{Map, Value};

/// base64url, with or without padding.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The latest `exp` accepted: 9999-12-31T23:59:59Z.
const MAX_EXP: f64 = 253_402_300_799.0;

// ---- license tokens (client) ----

/// A public key that license tokens must be signed with: RSA (RS256) or
/// EC P-256 (ES256).
pub(crate) struct PublicKey {
    alg: Algorithm,
    key: DecodingKey,
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
    let &[header_b64, payload_b64, signature_b64] = parts.as_slice() else {
        return Err(format!(
            "the token is not a JWT: it has {} dot-separated parts instead of 3",
            parts.len()
        ));
    };
    let header = json_object(header_b64, "header")?;
    let claims = json_object(payload_b64, "payload")?;
    if let Some(key) = key {
        let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
        key.check(&header, signed, signature_b64)?;
    }
    let exp = exp_claim(&claims)?;
    Ok(Decoded {
        claims: Value::Object(claims),
        exp,
    })
}

/// The `exp` claim as an instant: absent or `null` is `None`; a number of
/// seconds (fractions kept) in `(0, MAX_EXP]` is that instant; anything else
/// is an error.
fn exp_claim(claims: &Map<String, Value>) -> Result<Option<DateTime<Utc>>, String> {
    match claims.get("exp") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let out_of_range = || format!("the token's exp claim {n} is out of range");
            let secs = n
                .as_f64()
                .filter(|s| s.is_finite() && *s > 0.0 && *s <= MAX_EXP)
                .ok_or_else(out_of_range)?;
            let whole = secs.trunc();
            let nanos = ((secs - whole) * 1e9) as u32;
            DateTime::from_timestamp(whole as i64, nanos.min(999_999_999))
                .map(Some)
                .ok_or_else(out_of_range)
        }
        Some(other) => Err(format!(
            "the token's exp claim is a {}, not a number of seconds",
            json_kind(other)
        )),
    }
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

impl PublicKey {
    /// Checks that `header` names this key's algorithm and that
    /// `signature_b64` signs `signed` (`header.payload`) under this key.
    fn check(
        &self,
        header: &Map<String, Value>,
        signed: &str,
        signature_b64: &str,
    ) -> Result<(), String> {
        let expected = format!("{:?}", self.alg); // RS256 or ES256
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        if alg != expected {
            return Err(format!(
                "the token's algorithm is {alg:?}, but the configured public key needs {expected}"
            ));
        }
        // jsonwebtoken reads the signature as unpadded base64url; padding is
        // accepted here as in the header and payload.
        let signature = signature_b64.trim_end_matches('=');
        match jsonwebtoken::crypto::verify(signature, signed.as_bytes(), &self.key, self.alg) {
            Ok(true) => Ok(()),
            Ok(false) => {
                Err("the token's signature does not match the configured public key".to_owned())
            }
            Err(_) => Err("the token's signature is not base64url".to_owned()),
        }
    }

    /// Reads the first PEM `PUBLIC KEY` block (SubjectPublicKeyInfo: RSA of
    /// at least 2048 bits, or EC P-256) or `RSA PUBLIC KEY` block (PKCS#1).
    pub(crate) fn from_pem(pem: &[u8]) -> Result<PublicKey, String> {
        let text = std::str::from_utf8(pem).map_err(|_| "the PEM is not text".to_owned())?;
        // rustls-pki-types skips labels it does not know, PKCS#1's among
        // them: read those blocks as `PUBLIC KEY`; `public_key` tells the
        // two DER shapes apart.
        let text = text
            .replace(
                "-----BEGIN RSA PUBLIC KEY-----",
                "-----BEGIN PUBLIC KEY-----",
            )
            .replace("-----END RSA PUBLIC KEY-----", "-----END PUBLIC KEY-----");
        let mut other = None;
        for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(text.as_bytes()) {
            match section.map_err(|e| format!("the PEM cannot be read: {e}"))? {
                (SectionKind::PublicKey, der) => return public_key(&der),
                (kind, _) => other = other.or(Some(kind)),
            }
        }
        Err(match other {
            Some(SectionKind::Certificate) => {
                "found a \"CERTIFICATE\" PEM block, expected \"PUBLIC KEY\"".to_owned()
            }
            Some(kind) => format!("found a {kind:?} PEM block, expected \"PUBLIC KEY\""),
            None => "no -----BEGIN PUBLIC KEY----- block found".to_owned(),
        })
    }
}

// ---- just enough DER for a SubjectPublicKeyInfo ----

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

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

/// DER tags.
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;

/// The contents of the one element, of tag `tag`, that is all of `input`.
fn only<'a>(tag: u8, input: &'a [u8], bad: &dyn Fn() -> String) -> Result<&'a [u8], String> {
    match der(input)? {
        (t, contents, []) if t == tag => Ok(contents),
        _ => Err(bad()),
    }
}

/// A SubjectPublicKeyInfo, `SEQUENCE { SEQUENCE { OID algorithm, params },
/// BIT STRING key }`, or a PKCS#1 `RSAPublicKey`, `SEQUENCE { INTEGER n,
/// INTEGER e }` (told apart by the first inner tag), with the key handed to
/// jsonwebtoken in the form `ring` verifies with: the PKCS#1 DER, or the
/// uncompressed P-256 point.
fn public_key(input: &[u8]) -> Result<PublicKey, String> {
    let bad = || "the key is not a SubjectPublicKeyInfo".to_owned();
    let (tag, algorithm, rest) = der(only(SEQUENCE, input, &bad)?)?;
    match tag {
        INTEGER => return rsa_public_key(input),
        SEQUENCE => {}
        _ => return Err(bad()),
    }
    let Some((0, key)) = only(BIT_STRING, rest, &bad)?.split_first() else {
        return Err(bad());
    };
    match der(algorithm)? {
        (OID, OID_RSA, _) => rsa_public_key(key),
        (OID, OID_EC_PUBLIC_KEY, params) => {
            if !matches!(der(params)?, (OID, OID_P256, _)) {
                return Err("only the EC curve P-256 (ES256) is supported".to_owned());
            }
            if key.len() != 65 || key[0] != 0x04 {
                return Err("the EC key is not an uncompressed P-256 point".to_owned());
            }
            Ok(PublicKey {
                alg: Algorithm::ES256,
                key: DecodingKey::from_ec_der(key),
            })
        }
        (OID, _, _) => {
            Err("unsupported key algorithm: only RSA (RS256) and EC P-256 (ES256) keys".to_owned())
        }
        _ => Err(bad()),
    }
}

/// An RS256 key from a PKCS#1 `RSAPublicKey`, SEQUENCE { INTEGER n,
/// INTEGER e }, whose n has at least 2048 bits (what `ring` verifies RS256
/// with), so a short key is refused when it is configured, not on every token.
fn rsa_public_key(key: &[u8]) -> Result<PublicKey, String> {
    let bad = || "the RSA key is not a PKCS#1 RSAPublicKey".to_owned();
    let (INTEGER, n, e) = der(only(SEQUENCE, key, &bad)?)? else {
        return Err(bad());
    };
    only(INTEGER, e, &bad)?;
    let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
    if bits < 2048 {
        return Err(format!(
            "the RSA key has about {bits} bits; at least 2048 are needed"
        ));
    }
    Ok(PublicKey {
        alg: Algorithm::RS256,
        key: DecodingKey::from_rsa_der(key),
    })
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
        for (pem, why) in [
            (&b"nothing"[..], "BEGIN"),
            (
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
                "CERTIFICATE",
            ),
            (
                b"-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----",
                "SubjectPublicKeyInfo",
            ),
            (b"\xff-----BEGIN PUBLIC KEY-----", "not text"),
            (
                b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
                "SubjectPublicKeyInfo",
            ),
            (
                b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----",
                "PEM",
            ),
            (b"-----BEGIN PUBLIC KEY-----\nAAAA\n", "PEM"),
        ] {
            let Err(e) = PublicKey::from_pem(pem) else {
                panic!("{why}: accepted")
            };
            assert!(e.contains(why), "{why}: {e}");
        }
    }

    /// `der` as a PEM block with label `label`.
    fn pem(label: &str, der: &[u8]) -> Vec<u8> {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n").into_bytes()
    }

    #[test]
    fn rs256_keys_read_as_spki_or_pkcs1_verify_alike() {
        let spki_pem = include_bytes!("../tests/fixtures/rsa_jwt_pub.pem");
        let spki_der = rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(spki_pem).unwrap();
        let (_, seq, _) = der(&spki_der).unwrap();
        let (_, _algorithm, rest) = der(seq).unwrap();
        let (_, bits, _) = der(rest).unwrap();
        let pkcs1_pem = pem("RSA PUBLIC KEY", &bits[1..]);

        let private = rustls_pki_types::PrivateKeyDer::from_pem_slice(include_bytes!(
            "../tests/fixtures/rsa_jwt_key.pem"
        ))
        .unwrap();
        let pair = ring::signature::RsaKeyPair::from_pkcs8(private.secret_der()).unwrap();
        let signed = format!(
            "{}.{}",
            b64(r#"{"alg":"RS256"}"#),
            b64(r#"{"exp":2000000000}"#)
        );
        let mut sig = vec![0; pair.public().modulus_len()];
        let rng = ring::rand::SystemRandom::new();
        pair.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &rng,
            signed.as_bytes(),
            &mut sig,
        )
        .unwrap();
        let good = format!(
            "{signed}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&sig)
        );
        let bad = format!("{signed}.{}", b64("not the signature"));
        for key in [&spki_pem[..], &pkcs1_pem] {
            let key = PublicKey::from_pem(key).unwrap();
            assert_eq!(key.alg, Algorithm::RS256);
            let exp = decode(&good, Some(&key)).unwrap().exp.unwrap();
            assert_eq!(exp.timestamp(), 2_000_000_000);
            let err = decode(&bad, Some(&key)).unwrap_err();
            assert!(err.contains("does not match"), "{err}");
        }
    }
}
