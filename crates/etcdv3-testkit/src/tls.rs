//! Certificates for TLS clusters: a throw-away CA, a server certificate for 127.0.0.1 and
//! localhost, a client certificate, and a second ("foreign") CA with its own client
//! certificate for negative tests. Everything is written as PEM into the cluster directory.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::TestkitError;

/// The PEM files of a TLS cluster, from [`Cluster::tls_files`](crate::Cluster::tls_files).
///
/// All files live in the cluster's directory and are deleted with it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFiles {
    /// The CA certificate that signed the server and client certificates; etcd trusts it
    /// for client certificates, clients should trust it for the server.
    pub ca: PathBuf,
    /// A client certificate signed by [`TlsFiles::ca`] (for `--client-cert-auth`).
    pub client_cert: PathBuf,
    /// The private key (PKCS#8) of [`TlsFiles::client_cert`].
    pub client_key: PathBuf,
    /// The server certificate every member presents (SANs `127.0.0.1` and `localhost`).
    pub server_cert: PathBuf,
    /// The private key (PKCS#8) of [`TlsFiles::server_cert`].
    pub server_key: PathBuf,
    /// A CA certificate that signed nothing the cluster uses: a client trusting only this
    /// one must reject the server.
    pub foreign_ca: PathBuf,
    /// A client certificate signed by [`TlsFiles::foreign_ca`]: a member with
    /// `--client-cert-auth` must reject it.
    pub foreign_client_cert: PathBuf,
    /// The private key (PKCS#8) of [`TlsFiles::foreign_client_cert`].
    pub foreign_client_key: PathBuf,
}

fn cert_err(what: &str) -> impl Fn(rcgen::Error) -> TestkitError + '_ {
    move |e| TestkitError::Certificate(format!("{what}: {e}"))
}

/// A self-signed CA named `cn`.
fn make_ca(cn: &str) -> Result<(String, Issuer<'static, KeyPair>), TestkitError> {
    let err = cert_err("generating the test CA");
    let key = KeyPair::generate().map_err(&err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(&err)?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).map_err(&err)?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

/// A leaf certificate signed by `issuer`: (certificate PEM, key PEM).
fn make_leaf(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    sans: &[&str],
    usages: Vec<ExtendedKeyUsagePurpose>,
) -> Result<(String, String), TestkitError> {
    let err = cert_err("generating a test certificate");
    let key = KeyPair::generate().map_err(&err)?;
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).map_err(&err)?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usages;
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, issuer).map_err(&err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write(dir: &Path, name: &str, pem: &str) -> Result<PathBuf, TestkitError> {
    let path = dir.join(name);
    fs::write(&path, pem)?;
    Ok(path)
}

/// Generates all certificates into `dir` (created if missing).
pub(crate) fn generate(dir: &Path) -> Result<TlsFiles, TestkitError> {
    use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    fs::create_dir_all(dir)?;
    let (ca_pem, ca) = make_ca("etcdv3-testkit CA")?;
    // etcd's JSON gateway dials its own gRPC listener with the server certificate as the
    // client certificate, so the server certificate must also be good for client auth.
    let (server_pem, server_key) = make_leaf(
        &ca,
        "etcdv3-testkit server",
        &["127.0.0.1", "localhost"],
        vec![ServerAuth, ClientAuth],
    )?;
    let (client_pem, client_key) = make_leaf(&ca, "etcdv3-testkit client", &[], vec![ClientAuth])?;
    let (foreign_ca_pem, foreign_ca) = make_ca("etcdv3-testkit foreign CA")?;
    let (foreign_pem, foreign_key) = make_leaf(
        &foreign_ca,
        "etcdv3-testkit foreign client",
        &[],
        vec![ClientAuth],
    )?;
    Ok(TlsFiles {
        ca: write(dir, "ca.pem", &ca_pem)?,
        client_cert: write(dir, "client.pem", &client_pem)?,
        client_key: write(dir, "client-key.pem", &client_key)?,
        server_cert: write(dir, "server.pem", &server_pem)?,
        server_key: write(dir, "server-key.pem", &server_key)?,
        foreign_ca: write(dir, "foreign-ca.pem", &foreign_ca_pem)?,
        foreign_client_cert: write(dir, "foreign-client.pem", &foreign_pem)?,
        foreign_client_key: write(dir, "foreign-client-key.pem", &foreign_key)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pem_files() {
        let dir = std::env::temp_dir().join(format!(
            "etcdv3-testkit-tls-unit-{}-{:x}",
            std::process::id(),
            crate::ports::random_u64()
        ));
        let files = generate(&dir).unwrap();
        for (path, tag) in [
            (&files.ca, "CERTIFICATE"),
            (&files.client_cert, "CERTIFICATE"),
            (&files.client_key, "PRIVATE KEY"),
            (&files.server_cert, "CERTIFICATE"),
            (&files.server_key, "PRIVATE KEY"),
            (&files.foreign_ca, "CERTIFICATE"),
            (&files.foreign_client_cert, "CERTIFICATE"),
            (&files.foreign_client_key, "PRIVATE KEY"),
        ] {
            let text = fs::read_to_string(path).unwrap();
            assert!(
                text.starts_with(&format!("-----BEGIN {tag}-----")),
                "{}: {text}",
                path.display()
            );
        }
        assert_ne!(
            fs::read(&files.ca).unwrap(),
            fs::read(&files.foreign_ca).unwrap()
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
