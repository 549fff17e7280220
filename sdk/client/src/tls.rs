//! The client's TLS trust. A client verifies the broker's certificate
//! against the CA certificates it is given (the broker's development CA,
//! `<data-dir>/tls/ca.pem`, or an operator's CA). There is no way to turn
//! verification off.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::Error;

/// CA certificates a client trusts.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    roots: Vec<CertificateDer<'static>>,
}

impl Trust {
    /// Trusts the CA certificates in a PEM file.
    pub fn ca_file(path: &Path) -> Result<Self, Error> {
        let pem = std::fs::read(path).map_err(|e| {
            Error::Tls(format!(
                "cannot read CA certificate {}: {e}",
                path.display()
            ))
        })?;
        Self::ca_pem(&pem).map_err(|e| Error::Tls(format!("{}: {e}", path.display())))
    }

    /// Trusts the CA certificates in PEM text.
    pub fn ca_pem(pem: &[u8]) -> Result<Self, Error> {
        let roots = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Tls(format!("bad PEM: {e}")))?;
        if roots.is_empty() {
            return Err(Error::Tls("no certificate in the PEM data".into()));
        }
        Ok(Trust { roots })
    }

    /// A quinn client configuration trusting these CAs (TLS 1.3, ALPN `switchyard/1`).
    pub fn client_config(&self) -> Result<quinn::ClientConfig, Error> {
        let mut store = rustls::RootCertStore::empty();
        for root in &self.roots {
            store
                .add(root.clone())
                .map_err(|e| Error::Tls(format!("unusable CA certificate: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_root_certificates(store)
            .with_no_client_auth();
        tls.alpn_protocols = vec![switchyard_protocol::ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| Error::Tls(e.to_string()))?;
        Ok(quinn::ClientConfig::new(Arc::new(quic)))
    }
}
