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

use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString, UniversalString};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
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

    /// The CA of a certificate and key in PEM files.
    pub(crate) fn load(cert_path: &Path, key_path: &Path) -> Result<Authority, String> {
        let cert_pem = std::fs::read_to_string(cert_path)
            .map_err(|e| format!("cannot read {}: {e}", cert_path.display()))?;
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| format!("{}: not a PEM certificate: {e}", cert_path.display()))?;
        let ca = ca_certificate(&der)
            .map_err(|problem| format!("{}: {problem}", cert_path.display()))?;
        let key_text = std::fs::read_to_string(key_path)
            .map_err(|e| format!("cannot read {}: {e}", key_path.display()))?;
        let key = KeyPair::from_pem(&key_text)
            .map_err(|e| format!("{}: not a PEM private key: {e}", key_path.display()))?;
        if key.public_key_raw() != ca.public_key {
            return Err(format!(
                "{} is not the key of {}",
                key_path.display(),
                cert_path.display()
            ));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = ca.subject;
        Ok(Authority {
            cert_pem,
            issuer: Issuer::new(params, key),
        })
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
        // The issuer name is rebuilt from the CA's subject; a client finds
        // the CA only if the two are the same bytes.
        let ca_der = CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .map_err(|e| format!("the CA certificate: {e}"))?;
        let issuer = tbs_fields(cert.der()).map(|leaf| leaf.issuer);
        if issuer.is_none() || issuer != tbs_fields(&ca_der).map(|ca| ca.subject) {
            return Err(
                "the CA's subject name uses a form this tool cannot reproduce; \
                        issue the certificate with the tool that made the CA"
                    .into(),
            );
        }
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

/// What signing with a CA certificate needs from it.
struct CaCertificate {
    subject: DistinguishedName,
    public_key: Vec<u8>,
}

/// The subject and public key of a CA certificate (one marked as a CA by
/// its basic constraints).
fn ca_certificate(der: &[u8]) -> Result<CaCertificate, &'static str> {
    let fields = tbs_fields(der).ok_or("not an X.509 certificate")?;
    if !fields.is_ca {
        return Err("not a CA certificate (its basic constraints do not say CA)");
    }
    let subject = distinguished_name(fields.subject)
        .ok_or("the CA's subject name uses a form this tool cannot reproduce")?;
    Ok(CaCertificate {
        subject,
        public_key: fields.public_key.to_vec(),
    })
}

// A few DER tags (X.690).
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const BOOLEAN: u8 = 0x01;
const VERSION: u8 = 0xa0;
const EXTENSIONS: u8 = 0xa3;
/// id-ce-basicConstraints, 2.5.29.19, encoded.
const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];

/// One DER element of `input`: its tag, its contents and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        (bytes.iter().fold(0, |n, &b| n << 8 | usize::from(b)), rest)
    };
    (rest.len() >= length).then(|| (tag, &rest[..length], &rest[length..]))
}

/// The contents of the element of `input`, if it has tag `tag`.
fn contents(input: &[u8], tag: u8) -> Option<&[u8]> {
    element(input)
        .filter(|(t, _, _)| *t == tag)
        .map(|(_, c, _)| c)
}

/// The elements of a constructed element's contents.
fn elements(mut input: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, contents, rest) = element(input)?;
        input = rest;
        Some((tag, contents))
    })
}

/// Parts of a certificate's TBSCertificate (RFC 5280 §4.1), DER.
struct TbsFields<'a> {
    /// The issuer's Name, as a SEQUENCE element (tag and length included).
    issuer: &'a [u8],
    /// The subject's Name, likewise.
    subject: &'a [u8],
    /// The subjectPublicKey bits.
    public_key: &'a [u8],
    is_ca: bool,
}

fn tbs_fields(der: &[u8]) -> Option<TbsFields<'_>> {
    let tbs = contents(contents(der, SEQUENCE)?, SEQUENCE)?;
    let mut rest = tbs;
    let mut next = || {
        let start = rest;
        let (tag, contents, after) = element(rest)?;
        rest = after;
        Some((tag, contents, &start[..start.len() - after.len()]))
    };
    let (mut tag, _, _) = next()?;
    if tag == VERSION {
        (tag, _, _) = next()?;
    }
    (tag == 0x02).then_some(())?; // serialNumber
    next()?; // signature
    let (_, _, issuer) = next()?;
    next()?; // validity
    let (_, _, subject) = next()?;
    let (_, spki, _) = next()?;
    let (_, _, after_algorithm) = element(spki)?;
    let bits = contents(after_algorithm, BIT_STRING)?;
    let (&0, public_key) = bits.split_first()? else {
        return None;
    };
    let mut is_ca = false;
    while let Some((tag, contents, _)) = next() {
        if tag == EXTENSIONS {
            is_ca = basic_constraints_ca(contents)?;
        }
    }
    Some(TbsFields {
        issuer,
        subject,
        public_key,
        is_ca,
    })
}

/// Whether the extensions (the contents of `[3]`) mark a CA.
fn basic_constraints_ca(extensions: &[u8]) -> Option<bool> {
    for (_, extension) in elements(contents(extensions, SEQUENCE)?) {
        let mut parts = elements(extension);
        let (_, oid) = parts.next()?;
        if oid != BASIC_CONSTRAINTS {
            continue;
        }
        let value = parts.find(|(tag, _)| *tag == OCTET_STRING)?.1;
        let constraints = contents(value, SEQUENCE)?;
        return Some(contents(constraints, BOOLEAN).is_some_and(|b| b == [0xff]));
    }
    Some(false)
}

/// A Name (SEQUENCE element) as rcgen's `DistinguishedName`, when rcgen
/// can write it back the same: one attribute per RDN, none repeated.
fn distinguished_name(name: &[u8]) -> Option<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    let mut seen = Vec::new();
    for (tag, rdn) in elements(contents(name, SEQUENCE)?) {
        let mut attributes = elements(rdn);
        let (SET, Some((SEQUENCE, attribute)), None) = (tag, attributes.next(), attributes.next())
        else {
            return None;
        };
        let mut parts = elements(attribute);
        let (Some((OID, oid)), Some((string_tag, bytes)), None) =
            (parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if seen.contains(&oid) {
            return None;
        }
        seen.push(oid);
        dn.push(
            DnType::CustomDnType(oid_arcs(oid)?),
            dn_value(string_tag, bytes)?,
        );
    }
    Some(dn)
}

/// The arcs of an encoded OBJECT IDENTIFIER.
fn oid_arcs(encoded: &[u8]) -> Option<Vec<u64>> {
    let mut numbers = Vec::new();
    let mut number: u64 = 0;
    for &byte in encoded {
        number = number.checked_mul(128)? | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            numbers.push(number);
            number = 0;
        }
    }
    let (&first, rest) = numbers.split_first()?;
    let (a, b) = match first {
        0..40 => (0, first),
        40..80 => (1, first - 40),
        _ => (2, first - 80),
    };
    Some([a, b].into_iter().chain(rest.iter().copied()).collect())
}

/// A directory string (X.520) as rcgen's `DnValue`.
fn dn_value(tag: u8, bytes: &[u8]) -> Option<DnValue> {
    let text = || String::from_utf8(bytes.to_vec()).ok();
    Some(match tag {
        0x0c => DnValue::Utf8String(text()?),
        0x13 => DnValue::PrintableString(PrintableString::try_from(text()?).ok()?),
        0x14 => DnValue::TeletexString(TeletexString::try_from(text()?).ok()?),
        0x16 => DnValue::Ia5String(Ia5String::try_from(text()?).ok()?),
        0x1c => DnValue::UniversalString(UniversalString::from_utf32be(bytes.to_vec()).ok()?),
        0x1e => DnValue::BmpString(BmpString::from_utf16be(bytes.to_vec()).ok()?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loaded_ca_signs_certificates_that_name_it_as_issuer() {
        let dir = tempfile_dir("load");
        let (ca_cert, ca_key) = create_ca(&dir, "Test CA").unwrap();
        let hosts = ["127.0.0.1".to_string(), "broker-a.example".into()];
        let (cert, key) = issue(&ca_cert, &ca_key, "broker-a", &hosts, &dir).unwrap();
        let leaf = CertificateDer::from_pem_file(&cert).unwrap();
        let ca = CertificateDer::from_pem_file(&ca_cert).unwrap();
        assert_eq!(
            tbs_fields(&leaf).unwrap().issuer,
            tbs_fields(&ca).unwrap().subject
        );
        assert!(tbs_fields(&ca).unwrap().is_ca);
        assert!(!tbs_fields(&leaf).unwrap().is_ca);
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

    #[test]
    fn names_of_other_tools_are_rebuilt_byte_for_byte() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let dn = &mut params.distinguished_name;
        dn.push(
            DnType::CountryName,
            DnValue::PrintableString("DE".try_into().unwrap()),
        );
        dn.push(DnType::OrganizationName, "Example GmbH");
        dn.push(DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]), {
            DnValue::Ia5String("ca@example.com".try_into().unwrap())
        });
        dn.push(DnType::CommonName, "Example Root");
        let cert = params.self_signed(&key).unwrap();
        let fields = tbs_fields(cert.der()).unwrap();
        let rebuilt = distinguished_name(fields.subject).unwrap();
        let mut again = CertificateParams::default();
        again.distinguished_name = rebuilt;
        let issuer = Issuer::new(again, key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["x.example".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        assert_eq!(tbs_fields(leaf.der()).unwrap().issuer, fields.subject);
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
