//! HTTPS for the sink: a rustls acceptor from PEM files.

use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::SinkError;
use super::config::TlsFiles;

fn read(what: &str, path: &Path) -> Result<Vec<u8>, SinkError> {
    std::fs::read(path).map_err(|e| {
        SinkError::Tls(format!(
            "cannot read the TLS {what} {}: {e}; check the path and its permissions",
            path.display()
        ))
    })
}

/// An acceptor serving the chain in `files.cert` with the key in
/// `files.key` (HTTP/1.1 only, TLS 1.2 and 1.3).
pub(crate) fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, SinkError> {
    let pem = read("certificate", &files.cert)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            SinkError::Tls(format!(
                "{} is not a PEM certificate chain ({e})",
                files.cert.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(SinkError::Tls(format!(
            "{} holds no CERTIFICATE block; pass the PEM certificate chain, leaf first",
            files.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(&read("key", &files.key)?).map_err(|e| {
        SinkError::Tls(format!(
            "{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1) ({e})",
            files.key.display()
        ))
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| {
            SinkError::Tls(format!(
                "the certificate {} and key {} do not make a TLS server: {e}",
                files.cert.display(),
                files.key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
