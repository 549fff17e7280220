//! The broker's certificate. Without a configured one, the first start
//! generates a development CA and a server certificate signed by it into
//! `<data_dir>/tls/`: clients on this machine trust `ca.pem` (the CLI finds
//! it through `--data-dir`), so nobody handles certificates by hand and
//! nobody skips verification.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::certificates::{Authority, CA_CERT, PRIVATE, PUBLIC, write_new};
use super::config::ServerConfig;

/// The development CA's certificate, relative to the data dir.
pub const DEV_CA: &str = "tls/ca.pem";

/// Writes `contents` to `path`, replacing the file if there is one.
fn replace(path: &Path, contents: &str, mode: u32) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    write_new(path, contents, mode)
}

/// Creates the development CA and server certificate if missing; returns
/// the paths of the server's certificate and key.
fn ensure_development_certificates(
    data_dir: &Path,
    hostnames: &[String],
) -> Result<(PathBuf, PathBuf), String> {
    let dir = data_dir.join("tls");
    let (cert_path, key_path) = (dir.join("server.pem"), dir.join("server.key"));
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    names.extend(hostnames.iter().cloned());
    let ca = Authority::generate("Switchyard development CA")?;
    let (server_cert, server_key) = ca.sign("Switchyard broker", &names)?;

    let ca_path = dir.join(CA_CERT);
    replace(&ca_path, ca.cert_pem(), PUBLIC)?;
    // The CA key is not needed again (a new CA is made if the server
    // certificate is removed); keeping it would only widen the exposure.
    replace(&key_path, &server_key, PRIVATE)?;
    replace(&cert_path, &server_cert, PUBLIC)?;
    tracing::info!(ca = %ca_path.display(), "generated a development CA and server certificate");
    Ok((cert_path, key_path))
}

/// The broker's certificate chain and key: the configured ones, or the
/// development ones (created on first use).
fn certificate(config: &ServerConfig) -> Result<(PathBuf, PathBuf), String> {
    match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => Ok((cert.clone(), key.clone())),
        _ => {
            let mut names = config.tls.hostnames.clone();
            for ip in [config.listen.ip(), config.http.listen.ip()] {
                if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
                    names.push(ip.to_string());
                }
            }
            ensure_development_certificates(&config.data_dir, &names)
        }
    }
}

/// A rustls server configuration with the broker's certificate, for
/// `versions`.
fn rustls_config(
    config: &ServerConfig,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<rustls::ServerConfig, String> {
    let (cert_path, key_path) = certificate(config)?;
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("TLS certificate {}: {e}", cert_path.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "TLS certificate {}: no certificate in the file",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("TLS key {}: {e}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            format!(
                "TLS certificate {} and key {}: {e}",
                cert_path.display(),
                key_path.display()
            )
        })
}

/// The HTTPS configuration of the HTTP listener: the same certificate as
/// the QUIC endpoint, TLS 1.2 or 1.3, HTTP/1.1.
pub fn https_config(config: &ServerConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut tls = rustls_config(config, rustls::DEFAULT_VERSIONS)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

/// The QUIC server configuration: TLS 1.3, ALPN `switchyard/1`.
pub fn server_config(config: &ServerConfig) -> Result<quinn::ServerConfig, String> {
    let mut tls = rustls_config(config, &[&rustls::version::TLS13])?;
    tls.alpn_protocols = vec![switchyard_protocol::ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(std::time::Duration::from_millis(config.idle_timeout_ms))
                .map_err(|e| format!("idle_timeout_ms: {e}"))?,
        ))
        .keep_alive_interval(Some(config.keep_alive_interval()));
    switchyard_transport::tune_transport(&mut transport);
    transport.send_window(config.send_buffer_bytes);
    // Every connection starts unauthenticated; the login opens it up.
    super::admission::restrict_before_login(&mut transport);
    server.transport_config(Arc::new(transport));
    Ok(server)
}
