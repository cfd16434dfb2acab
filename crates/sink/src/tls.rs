//! HTTPS for the sink: a rustls acceptor from PEM files.

use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::SinkError;
use super::sink_config::TlsFiles;

/// A [`SinkError::Tls`] saying `message`, caused by `source`.
fn tls_error(
    message: String,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> SinkError {
    SinkError::Tls {
        message,
        source: Some(source.into()),
    }
}

fn read(what: &str, path: &Path) -> Result<Vec<u8>, SinkError> {
    std::fs::read(path).map_err(|e| {
        let fix = "check the path and its permissions";
        tls_error(
            format!("cannot read the TLS {what} {} ({fix})", path.display()),
            e,
        )
    })
}

/// An acceptor serving the chain in `files.cert` with the key in
/// `files.key` (HTTP/1.1 only, TLS 1.2 and 1.3).
pub(crate) fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, SinkError> {
    let pem = read("certificate", &files.cert)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            let file = files.cert.display();
            tls_error(format!("{file} is not a PEM certificate chain"), e)
        })?;
    if chain.is_empty() {
        return Err(SinkError::Tls {
            message: format!(
                "{} holds no CERTIFICATE block; pass the PEM certificate chain, leaf first",
                files.cert.display()
            ),
            source: None,
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&read("key", &files.key)?).map_err(|e| {
        let file = files.key.display();
        tls_error(
            format!("{file} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"),
            e,
        )
    })?;
    // ring, as in the reporter's client: rustls 0.23.48 deprecates its
    // provider for lacking post-quantum key exchange, which the local
    // Beacon's clients (the reporter, on ring) could not use anyway; the
    // alternative, aws-lc-rs, is a C and CMake build for every user.
    #[allow(deprecated)]
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| {
            let (cert, key) = (files.cert.display(), files.key.display());
            tls_error(
                format!("the certificate {cert} and key {key} do not make a TLS server"),
                e,
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
