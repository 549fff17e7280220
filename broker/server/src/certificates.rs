//! Certificate minting: a CA, and broker certificates signed by it. The
//! development CA of a first start (`tls`) and the operator's
//! `switchyard tls ca` / `tls cert` share this code.
//!
//! A broker certificate names the broker by the DNS names and IP
//! addresses it is reached at and may serve as a TLS server and as a TLS
//! client (brokers of one deployment also connect to each other). Its PEM
//! file holds the leaf certificate only: clients and brokers trust the CA
//! itself (`ca.pem`), so sending it in every handshake adds bytes and
//! nothing else (RFC 8446 §4.4.2), and rustls's `with_single_cert` takes
//! the one-certificate chain as it is.
//!
//! Keys are written with mode 0600, certificates with 0644 (both less
//! the umask); no file is ever overwritten.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The CA's certificate in a CA directory.
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key in a CA directory.
pub const CA_KEY: &str = "ca.key";

/// Mode of private keys.
pub(crate) const PRIVATE: u32 = 0o600;
/// Mode of certificates.
pub(crate) const PUBLIC: u32 = 0o644;

/// Creates a CA in `dir` (created if missing): `ca.pem`, its self-signed
/// certificate with common name `common_name`, and `ca.key`, its private
/// key. Refuses if either file exists. Returns their paths.
pub fn create_ca(dir: &Path, common_name: &str) -> Result<(PathBuf, PathBuf), String> {
    let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    refuse_existing(&[&cert_path, &key_path])?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let ca = Authority::generate(common_name)?;
    write_pair(&cert_path, ca.cert_pem(), &key_path, &ca.key_pem())?;
    Ok((cert_path, key_path))
}

/// Issues a broker certificate signed by the CA whose certificate and key
/// are the PEM files given: `<out_dir>/<name>.pem` (the leaf certificate
/// alone) and `<out_dir>/<name>.key`. `name` is also the certificate's
/// common name; `hostnames` (at least one) are its subject alternative
/// names, IP addresses as IP entries. Refuses if either file exists.
/// Returns their paths.
pub fn issue(
    ca_cert_pem: &Path,
    ca_key_pem: &Path,
    name: &str,
    hostnames: &[String],
    out_dir: &Path,
) -> Result<(PathBuf, PathBuf), String> {
    check_file_name(name)?;
    if hostnames.is_empty() {
        return Err("a certificate needs at least one host name or IP address".into());
    }
    for host in hostnames {
        check_host(host)?;
    }
    let (cert_path, key_path) = (
        out_dir.join(format!("{name}.pem")),
        out_dir.join(format!("{name}.key")),
    );
    refuse_existing(&[&cert_path, &key_path])?;
    let ca = Authority::load(ca_cert_pem, ca_key_pem)?;
    let (cert, key) = ca.sign(name, hostnames)?;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    write_pair(&cert_path, &cert, &key_path, &key)?;
    Ok((cert_path, key_path))
}

/// A CA that can sign: its certificate and its issuer (subject name and
/// key).
pub(crate) struct Authority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    /// A new CA with a fresh key.
    pub(crate) fn generate(common_name: &str) -> Result<Authority, String> {
        let rcgen_error = |e: rcgen::Error| format!("creating the CA certificate: {e}");
        let key = KeyPair::generate().map_err(rcgen_error)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).map_err(rcgen_error)?;
        Ok(Authority {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA of a certificate and key in PEM files: the certificate must
    /// be a CA's (basic constraints) and the key its own.
    pub(crate) fn load(cert_path: &Path, key_path: &Path) -> Result<Authority, String> {
        let cert_pem = std::fs::read_to_string(cert_path)
            .map_err(|e| format!("cannot read {}: {e}", cert_path.display()))?;
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| format!("{}: not a PEM certificate: {e}", cert_path.display()))?;
        let (_, certificate) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| format!("{}: not an X.509 certificate: {e}", cert_path.display()))?;
        if !certificate.is_ca() {
            return Err(format!(
                "{}: not a CA certificate (its basic constraints do not say CA)",
                cert_path.display()
            ));
        }
        let key_text = std::fs::read_to_string(key_path)
            .map_err(|e| format!("cannot read {}: {e}", key_path.display()))?;
        let key = KeyPair::from_pem(&key_text)
            .map_err(|e| format!("{}: not a PEM private key: {e}", key_path.display()))?;
        if key.public_key_raw() != certificate.public_key().subject_public_key.data.as_ref() {
            return Err(format!(
                "{} is not the key of {}",
                key_path.display(),
                cert_path.display()
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&der, key)
            .map_err(|e| format!("{}: {e}", cert_path.display()))?;
        Ok(Authority { cert_pem, issuer })
    }

    /// The CA's certificate, PEM.
    pub(crate) fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key, PEM.
    pub(crate) fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A broker certificate with a fresh key, signed by this CA: the
    /// certificate and the key, PEM.
    pub(crate) fn sign(
        &self,
        common_name: &str,
        hostnames: &[String],
    ) -> Result<(String, String), String> {
        let rcgen_error = |e: rcgen::Error| format!("signing a certificate for {common_name}: {e}");
        let mut names: Vec<String> = Vec::new();
        for name in hostnames {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let key = KeyPair::generate().map_err(rcgen_error)?;
        let mut params = CertificateParams::new(names).map_err(rcgen_error)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).map_err(rcgen_error)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Writes `contents` to a new file `path` with `mode`; an existing file is
/// an error (and left alone).
pub(crate) fn write_new(path: &Path, contents: &str, mode: u32) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => already_exists(path),
            _ => format!("cannot write {}: {e}", path.display()),
        })
}

/// Writes a certificate and its key, the key first; neither is left
/// behind alone if the other cannot be written.
fn write_pair(cert_path: &Path, cert: &str, key_path: &Path, key: &str) -> Result<(), String> {
    write_new(key_path, key, PRIVATE)?;
    write_new(cert_path, cert, PUBLIC).inspect_err(|_| {
        let _ = std::fs::remove_file(key_path);
    })
}

fn already_exists(path: &Path) -> String {
    format!(
        "{} already exists; not overwriting it (move it away first)",
        path.display()
    )
}

fn refuse_existing(paths: &[&Path]) -> Result<(), String> {
    match paths.iter().find(|path| path.symlink_metadata().is_ok()) {
        Some(path) => Err(already_exists(path)),
        None => Ok(()),
    }
}

/// A certificate's name becomes a file name: letters, digits, `-`, `_`
/// and `.`, not starting with `.`.
fn check_file_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.starts_with('.') || !name.chars().all(allowed) {
        return Err(format!(
            "certificate name '{name}': use letters, digits, '-', '_' and '.' \
             (not first); it names the files written"
        ));
    }
    Ok(())
}

/// A subject alternative name: an IP address, or a DNS name (labels of
/// letters, digits and `-`; a leading `*.` for a wildcard).
fn check_host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.len() > 253 || !name.trim_end_matches('.').split('.').all(label_ok) {
        return Err(format!(
            "host '{host}' is neither an IP address nor a DNS name"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(path: &Path) -> (Vec<u8>, Vec<u8>, bool) {
        let der = CertificateDer::from_pem_file(path).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        (
            cert.issuer().as_raw().to_vec(),
            cert.subject().as_raw().to_vec(),
            cert.is_ca(),
        )
    }

    #[test]
    fn a_loaded_ca_signs_certificates_that_name_it_as_issuer() {
        let dir = tempfile_dir("load");
        let (ca_cert, ca_key) = create_ca(&dir, "Test CA").unwrap();
        let hosts = ["127.0.0.1".to_string(), "broker-a.example".into()];
        let (cert, key) = issue(&ca_cert, &ca_key, "broker-a", &hosts, &dir).unwrap();
        let (leaf_issuer, _, leaf_is_ca) = parsed(&cert);
        let (_, ca_subject, ca_is_ca) = parsed(&ca_cert);
        assert_eq!(leaf_issuer, ca_subject);
        assert!(ca_is_ca && !leaf_is_ca);
        use std::os::unix::fs::PermissionsExt;
        for path in [&ca_key, &key] {
            let mode = std::fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        }

        // Nothing is overwritten; a leaf is not a CA; keys must match.
        let err = create_ca(&dir, "Again").unwrap_err();
        assert!(err.contains("ca.pem already exists"), "{err}");
        let err = issue(&ca_cert, &ca_key, "broker-a", &hosts, &dir).unwrap_err();
        assert!(err.contains("broker-a.pem already exists"), "{err}");
        let err = issue(&cert, &key, "broker-b", &hosts, &dir).unwrap_err();
        assert!(err.contains("not a CA certificate"), "{err}");
        let err = issue(&ca_cert, &key, "broker-b", &hosts, &dir).unwrap_err();
        assert!(err.contains("is not the key of"), "{err}");
        let err = issue(&ca_cert, &ca_key, "../x", &hosts, &dir).unwrap_err();
        assert!(err.contains("certificate name"), "{err}");
        let err = issue(&ca_cert, &ca_key, "b", &["a b".into()], &dir).unwrap_err();
        assert!(err.contains("host 'a b'"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "switchyard-certificates-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
