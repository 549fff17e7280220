//! The broker's certificate. Without a configured one, the first start
//! generates a development CA and a server certificate signed by it into
//! `<data_dir>/tls/`: clients on this machine trust `ca.pem` (the CLI finds
//! it through `--data-dir`), so nobody handles certificates by hand and
//! nobody skips verification.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::config::ServerConfig;

/// The development CA's certificate, relative to the data dir.
pub const DEV_CA: &str = "tls/ca.pem";

fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn write_public(path: &Path, contents: &str) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
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
    let rcgen_error = |e: rcgen::Error| format!("generating the development certificates: {e}");

    let ca_key = KeyPair::generate().map_err(rcgen_error)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Switchyard development CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(rcgen_error)?;

    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    for name in hostnames {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let server_key = KeyPair::generate().map_err(rcgen_error)?;
    let mut server = CertificateParams::new(names).map_err(rcgen_error)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "Switchyard broker");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let issuer = Issuer::new(ca, ca_key);
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .map_err(rcgen_error)?;

    let _ = std::fs::remove_file(dir.join("ca.pem"));
    write_public(&dir.join("ca.pem"), &ca_cert.pem())?;
    // The CA key is not needed again (a new CA is made if the server
    // certificate is removed); keeping it would only widen the exposure.
    let _ = std::fs::remove_file(&key_path);
    write_private(&key_path, &server_key.serialize_pem())?;
    write_public(&cert_path, &server_cert.pem())?;
    tracing::info!(ca = %dir.join("ca.pem").display(), "generated a development CA and server certificate");
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
    server.transport_config(Arc::new(transport));
    Ok(server)
}
