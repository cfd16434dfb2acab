//! Test-only JWT building blocks shared by `tests/client.rs` and
//! `tests/hostile_client.rs`: base64url, PEM, and a throwaway ES256 key.

use base64::Engine as _;
use serde_json::{Value, json};

/// Unpadded base64url, as JWTs use it.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `der` wrapped as a PEM block with 64-character lines.
pub fn pem(label: &str, der: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
    .into_bytes()
}

/// `header.payload` of a JWT with algorithm `alg`.
pub fn signing_input(alg: &str, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(json!({ "alg": alg, "typ": "JWT" }).to_string()),
        b64(claims.to_string())
    )
}

/// A fresh P-256 key pair and its public key as PEM.
pub struct Es256 {
    key: ring::signature::EcdsaKeyPair,
    /// SubjectPublicKeyInfo, PEM.
    pub public_pem: Vec<u8>,
}

impl Es256 {
    /// A new random key.
    pub fn generate() -> Self {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // SubjectPublicKeyInfo for id-ecPublicKey / prime256v1.
        let mut spki = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        spki.extend_from_slice(key.public_key().as_ref());
        Es256 {
            public_pem: pem("PUBLIC KEY", &spki),
            key,
        }
    }

    /// The raw signature of `input`.
    pub fn sign_input(&self, input: &str) -> Vec<u8> {
        self.key
            .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    /// A complete ES256 JWT carrying `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        let input = signing_input("ES256", claims);
        format!("{input}.{}", b64(self.sign_input(&input)))
    }
}
