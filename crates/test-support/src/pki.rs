//! A throwaway certificate authority for TLS tests: a CA, a server
//! certificate for 127.0.0.1 and a client certificate, written as PEM
//! files into a directory of the test's.

use std::path::{Path, PathBuf};

/// The PEM files one [`Pki::generate`] wrote.
pub struct Pki {
    /// The CA's certificate.
    pub ca: PathBuf,
    /// The server's certificate (for 127.0.0.1 and localhost) and key.
    pub server_cert: PathBuf,
    /// The server's key.
    pub server_key: PathBuf,
    /// A client certificate the CA signed, and its key.
    pub client_cert: PathBuf,
    /// The client's key.
    pub client_key: PathBuf,
    /// A client certificate nobody trusts (self-signed), and its key.
    pub stranger_cert: PathBuf,
    /// The stranger's key.
    pub stranger_key: PathBuf,
}

impl Pki {
    /// Makes the CA and certificates in `dir`.
    pub fn generate(dir: &Path) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
        let write = |name: &str, text: String| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(vec![]).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "berth test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let mut sp = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = sp.signed_by(&server_key, &ca, &ca_key).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut cp = CertificateParams::new(vec![]).unwrap();
        cp.distinguished_name
            .push(rcgen::DnType::CommonName, "berth test client");
        cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = cp.signed_by(&client_key, &ca, &ca_key).unwrap();

        let stranger_key = KeyPair::generate().unwrap();
        let mut xp = CertificateParams::new(vec![]).unwrap();
        xp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let stranger = xp.self_signed(&stranger_key).unwrap();

        Pki {
            ca: write("ca.pem", ca.pem()),
            server_cert: write("server-cert.pem", server.pem()),
            server_key: write("server-key.pem", server_key.serialize_pem()),
            client_cert: write("cert.pem", client.pem()),
            client_key: write("key.pem", client_key.serialize_pem()),
            stranger_cert: write("stranger-cert.pem", stranger.pem()),
            stranger_key: write("stranger-key.pem", stranger_key.serialize_pem()),
        }
    }
}
