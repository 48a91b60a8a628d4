//! TLS for TCP listeners (`--tls`, `--tlsverify`, `--tlscacert`,
//! `--tlscert`, `--tlskey`, as dockerd takes them): the server's
//! certificate and key, and with `--tlsverify` the CA whose certificates
//! clients must present (mutual TLS). rustls with the ring provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::server::ServeError;

/// The TLS flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `--tlsverify`: clients must present a certificate the CA signed.
    pub verify: bool,
    /// `--tlscacert`.
    pub ca: Option<PathBuf>,
    /// `--tlscert`.
    pub cert: PathBuf,
    /// `--tlskey`.
    pub key: PathBuf,
}

fn bad(path: &Path, what: impl std::fmt::Display) -> ServeError {
    ServeError::Tls(format!("{}: {what}", path.display()))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, e))?;
    if certs.is_empty() {
        return Err(bad(path, "no certificate in it"));
    }
    Ok(certs)
}

/// The acceptor for `opts`.
pub fn acceptor(opts: &TlsOptions) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&opts.cert)?;
    let key = PrivateKeyDer::from_pem_file(&opts.key).map_err(|e| bad(&opts.key, e))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    let builder = if opts.verify {
        let ca = opts
            .ca
            .as_deref()
            .ok_or_else(|| ServeError::Tls("--tlsverify needs --tlscacert".into()))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in certificates(ca)? {
            roots.add(c).map_err(|e| bad(ca, e))?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| bad(ca, e))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| bad(&opts.cert, e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
