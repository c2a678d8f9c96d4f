//! TLS files the service config names (`[sip] tls_cert`, `tls_key`, `[sip.trunk] ca_file`): PEM
//! certificate chains, private keys and CA bundles. Validation reads them so that `check-config`
//! and startup report an unreadable file, a file with no certificate, or a key that does not
//! belong to its certificate at the key's own line:column; the shell reads them again with the
//! same functions when it builds its TLS configs.
//!
//! Must not: open sockets or read clocks. Reading the named files is its whole job.

use std::path::Path;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// The certificates in a PEM file, in order (the server's own first, then its chain).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, &e))?;
    if certs.is_empty() {
        return Err(format!(
            "no certificate in {}: expected PEM \"-----BEGIN CERTIFICATE-----\" blocks",
            path.display()
        ));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => format!(
            "no private key in {}: expected a PEM \"-----BEGIN PRIVATE KEY-----\" block",
            path.display()
        ),
        e => pem_error(path, &e),
    })
}

/// The server identity: the chain in `cert` and the key in `key`, checked to belong together
/// (the key's public half is the certificate's).
pub fn load_identity(cert: &Path, key: &Path) -> Result<CertifiedKey, IdentityError> {
    let certs = load_certs(cert).map_err(IdentityError::Cert)?;
    let key = load_key(key).map_err(IdentityError::Key)?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => IdentityError::Key(format!(
            "the key does not match the certificate in {}",
            cert.display()
        )),
        e => IdentityError::Key(format!("unusable key: {e}")),
    })
}

/// Which file of an identity is at fault, so the error points at its key in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    Cert(String),
    Key(String),
}

/// The trust anchors in a CA bundle (`ca_file`): every certificate in it must be usable.
pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The one crypto provider Hammond builds with (ring).
pub fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn pem_error(path: &Path, e: &pem::Error) -> String {
    match e {
        pem::Error::Io(io) => format!("cannot read {}: {io}", path.display()),
        e => format!("{} is not valid PEM: {e}", path.display()),
    }
}

/// A test CA and a server certificate made at test time (rcgen), written as PEM files.
#[cfg(test)]
pub(crate) mod test_pki {
    use std::path::PathBuf;

    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    /// PEM files in a temporary directory.
    pub(crate) struct Pki {
        /// Holds the files; they go when it is dropped.
        pub _dir: tempfile::TempDir,
        /// The CA's certificate (a `ca_file`).
        pub ca: PathBuf,
        /// The server's certificate, for `names`, issued by the CA.
        pub cert: PathBuf,
        /// The server certificate's key.
        pub key: PathBuf,
        /// A key that belongs to no certificate here.
        pub other_key: PathBuf,
    }

    /// A CA and a certificate it issued for `names` (DNS names or IP addresses).
    pub(crate) fn make(names: &[&str]) -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Hammond test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("server key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let cert = CertificateParams::new(names)
            .expect("server params")
            .signed_by(&key, &issuer)
            .expect("server cert");
        let other = KeyPair::generate().expect("other key");
        let write = |name: &str, text: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write PEM");
            p
        };
        Pki {
            ca: write("ca.pem", ca_cert.pem()),
            cert: write("cert.pem", cert.pem()),
            key: write("key.pem", key.serialize_pem()),
            other_key: write("other.pem", other.serialize_pem()),
            _dir: dir,
        }
    }
}
