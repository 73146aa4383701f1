//! Certificate tooling (rcgen): a CA, server certificates and per-user client
//! certificates. The user's identity is the client certificate's common name.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::wire::UserId;
use crate::Error;

fn cert_err(e: impl std::fmt::Display) -> Error {
    Error::Certificate(e.to_string().into())
}

/// File name of the CA certificate written by [`CertificateAuthority::save`].
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name of the CA private key written by [`CertificateAuthority::save`].
pub const CA_KEY_FILE: &str = "ca.key";

/// A certificate and its private key, PEM encoded.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate.
    pub cert_pem: String,
    /// The PKCS#8 private key (keep secret, mode 0600 on disk).
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert").finish_non_exhaustive()
    }
}

/// Validity of an issued certificate.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    /// Start.
    pub not_before: OffsetDateTime,
    /// End.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From one hour ago to `days` days from now.
    pub fn days_from_now(days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(days),
        }
    }
}

/// A certificate authority that issues server and client certificates.
pub struct CertificateAuthority {
    issuer: rcgen::Certificate,
    key: KeyPair,
    cert_pem: String,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Creates a new CA (ECDSA P-256) valid for ten years.
    pub fn create(common_name: &str) -> Result<Self, Error> {
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, "Cryptic Call");
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let v = Validity::days_from_now(3650);
        p.not_before = v.not_before;
        p.not_after = v.not_after;
        let issuer = p.self_signed(&key).map_err(cert_err)?;
        let cert_pem = issuer.pem();
        Ok(Self {
            issuer,
            key,
            cert_pem,
        })
    }

    /// Loads a CA written by [`CertificateAuthority::cert_pem`] and [`CertificateAuthority::key_pem`].
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, Error> {
        let key = KeyPair::from_pem(key_pem).map_err(cert_err)?;
        let params = CertificateParams::from_ca_cert_pem(cert_pem).map_err(cert_err)?;
        // Re-signing the same name and key gives an issuer whose signatures
        // verify under the original certificate.
        let issuer = params.self_signed(&key).map_err(cert_err)?;
        Ok(Self {
            issuer,
            key,
            cert_pem: cert_pem.to_owned(),
        })
    }

    /// Writes `ca.crt` and `ca.key` (mode 0600) into `dir` (created, mode 0700).
    pub fn save(&self, dir: &std::path::Path) -> Result<(), Error> {
        use std::os::unix::fs::PermissionsExt as _;
        let io =
            |e: std::io::Error| Error::Storage(crate::Cause::because(dir.display().to_string(), e));
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        std::fs::write(dir.join(CA_CERT_FILE), &self.cert_pem).map_err(io)?;
        crate::e2e::write_private(&dir.join(CA_KEY_FILE), self.key_pem().as_bytes())
    }

    /// Loads a CA saved by [`CertificateAuthority::save`].
    pub fn load(dir: &std::path::Path) -> Result<Self, Error> {
        let read = |n: &str| {
            let p = dir.join(n);
            std::fs::read_to_string(&p)
                .map_err(|e| Error::Storage(crate::Cause::because(p.display().to_string(), e)))
        };
        Self::from_pem(&read(CA_CERT_FILE)?, &read(CA_KEY_FILE)?)
    }

    /// The CA certificate (give it to servers and clients).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key (keep it offline).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Issues a server certificate for DNS names and IP addresses (given as text).
    pub fn issue_server(&self, names: &[String], validity: Validity) -> Result<IssuedCert, Error> {
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut p = CertificateParams::new(names.to_vec()).map_err(cert_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().map_or("cryptic-server", String::as_str),
        );
        p.distinguished_name = dn;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.not_before = validity.not_before;
        p.not_after = validity.not_after;
        let c = p
            .signed_by(&key, &self.issuer, &self.key)
            .map_err(cert_err)?;
        Ok(IssuedCert {
            cert_pem: c.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues a client certificate whose common name is the user name.
    pub fn issue_client(&self, user: &UserId, validity: Validity) -> Result<IssuedCert, Error> {
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, user.as_str());
        p.distinguished_name = dn;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.not_before = validity.not_before;
        p.not_after = validity.not_after;
        let c = p
            .signed_by(&key, &self.issuer, &self.key)
            .map_err(cert_err)?;
        Ok(IssuedCert {
            cert_pem: c.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// File name of a server's certificate written by [`ServerTls::save`].
pub const SERVER_CERT_FILE: &str = "server.crt";
/// File name of a server's private key written by [`ServerTls::save`].
pub const SERVER_KEY_FILE: &str = "server.key";

/// What a server host needs for TLS, and nothing more: its certificate and
/// key, and the CA certificate its clients' certificates chain to (not the
/// CA's private key). Made once by `cryptic-call ca issue-server`.
#[derive(Clone)]
pub struct ServerTls {
    /// The server's certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
    /// The CA certificate (clients are verified against it).
    pub ca_pem: String,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Writes `server.crt`, `server.key` (0600) and `ca.crt` into `dir`
    /// (created, mode 0700). Refuses to replace an existing key unless
    /// `replace`.
    pub fn save(&self, dir: &std::path::Path, replace: bool) -> Result<(), Error> {
        use std::os::unix::fs::PermissionsExt as _;
        let io =
            |e: std::io::Error| Error::Storage(crate::Cause::because(dir.display().to_string(), e));
        let key = dir.join(SERVER_KEY_FILE);
        if key.exists() && !replace {
            return Err(Error::Storage(crate::Cause::new(format!(
                "{} already exists: not replaced (--force replaces it)",
                key.display()
            ))));
        }
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        std::fs::write(dir.join(SERVER_CERT_FILE), &self.cert_pem).map_err(io)?;
        std::fs::write(dir.join(CA_CERT_FILE), &self.ca_pem).map_err(io)?;
        crate::e2e::write_private(&key, self.key_pem.as_bytes())
    }

    /// Loads what [`ServerTls::save`] wrote, checking that each file holds
    /// what it should.
    pub fn load(dir: &std::path::Path) -> Result<ServerTls, Error> {
        let read = |n: &str| {
            let p = dir.join(n);
            std::fs::read_to_string(&p)
                .map_err(|e| Error::Storage(crate::Cause::because(p.display().to_string(), e)))
        };
        let tls = ServerTls {
            cert_pem: read(SERVER_CERT_FILE)?,
            key_pem: read(SERVER_KEY_FILE)?,
            ca_pem: read(CA_CERT_FILE)?,
        };
        certs_from_pem(&tls.cert_pem)?;
        key_from_pem(&tls.key_pem)?;
        root_store(&tls.ca_pem)?;
        Ok(tls)
    }
}

/// The DER of the first certificate in `pem`.
pub fn first_cert_der(pem: &str) -> Result<Vec<u8>, Error> {
    let certs = certs_from_pem(pem)?;
    certs
        .first()
        .map(|c| c.as_ref().to_vec())
        .ok_or_else(|| Error::Certificate("no certificate in PEM".into()))
}

/// The user named by a (verified) client certificate: its common name.
pub fn user_from_cert_der(der: &[u8]) -> Result<UserId, Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(cert_err)?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .ok_or_else(|| Error::Certificate("client certificate has no common name".into()))?;
    UserId::new(cn).map_err(cert_err)
}

pub(crate) fn certs_from_pem(
    pem: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, Error> {
    use rustls::pki_types::pem::PemObject as _;
    let v: Result<Vec<_>, _> =
        rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    let v = v.map_err(cert_err)?;
    if v.is_empty() {
        return Err(Error::Certificate("no certificate in PEM".into()));
    }
    Ok(v)
}

pub(crate) fn key_from_pem(pem: &str) -> Result<rustls::pki_types::PrivateKeyDer<'static>, Error> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(cert_err)
}

pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn root_store(ca_pem: &str) -> Result<rustls::RootCertStore, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs_from_pem(ca_pem)? {
        roots.add(c).map_err(cert_err)?;
    }
    Ok(roots)
}
