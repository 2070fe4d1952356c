//! `licvault keys init DIR`: a platform root CA, a seal key and certificate per department, the
//! log's checkpoint key and the commitment secret. Every private key file is written mode 0600.
//!
//! Layout (spec/formats.md §5):
//! `root.crt.pem root.key.pem departments/<USCC>.crt.pem departments/<USCC>.key.pem
//!  log.key.pem log.vkey commitment.key`

use std::io::Write;
use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::{Signer as _, SigningKey};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyUsagePurpose, PublicKeyData,
    SignatureAlgorithm, PKCS_ED25519,
};
use time::{Duration, OffsetDateTime};

use super::CryptoError;
use crate::log::note::verifier_key;

/// Lets rcgen sign certificates with an ed25519-dalek key.
struct RcgenKey {
    key: SigningKey,
    public: [u8; 32],
}

impl RcgenKey {
    fn generate() -> Result<Self, CryptoError> {
        let key = SigningKey::from_bytes(&random32()?);
        let public = key.verifying_key().to_bytes();
        Ok(Self { key, public })
    }
}

impl PublicKeyData for RcgenKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ED25519
    }
}

impl rcgen::SigningKey for RcgenKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

pub fn random32() -> Result<[u8; 32], CryptoError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| CryptoError::KeyFile { path: "(random)".into(), why: e.to_string() })?;
    Ok(b)
}

/// A department to certify.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct DepartmentSpec {
    pub uscc: String,
    pub name: String,
    pub area_code: String,
}

fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), CryptoError> {
    let io = |source| CryptoError::Io { path: path.display().to_string(), source };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(contents).map_err(io)?;
    f.sync_all().map_err(io)
}

fn private_pem(key: &SigningKey, path: &Path) -> Result<String, CryptoError> {
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|z| z.to_string())
        .map_err(|e| CryptoError::KeyFile { path: path.display().to_string(), why: e.to_string() })
}

fn cert_err(e: rcgen::Error) -> CryptoError {
    CryptoError::CertGen(e.to_string())
}

/// Creates the whole development key set in `dir`. Refuses to overwrite an existing root.
pub fn init(
    dir: &Path,
    platform_name: &str,
    log_origin: &str,
    departments: &[DepartmentSpec],
) -> Result<String, CryptoError> {
    let dept_dir = dir.join("departments");
    std::fs::create_dir_all(&dept_dir)
        .map_err(|source| CryptoError::Io { path: dept_dir.display().to_string(), source })?;
    if dir.join("root.key.pem").exists() {
        return Err(CryptoError::KeyFile {
            path: dir.join("root.key.pem").display().to_string(),
            why: "exists already; keys init never overwrites keys".into(),
        });
    }
    let now = OffsetDateTime::now_utc();

    let root_key = RcgenKey::generate()?;
    let mut root = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "CN");
    dn.push(DnType::OrganizationName, platform_name);
    dn.push(DnType::CommonName, format!("{platform_name} 根证书"));
    root.distinguished_name = dn;
    root.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    root.not_before = now - Duration::days(1);
    root.not_after = now + Duration::days(365 * 20);
    let root_cert = root.self_signed(&root_key).map_err(cert_err)?;
    write_file(&dir.join("root.crt.pem"), root_cert.pem().as_bytes(), false)?;
    let root_key_path = dir.join("root.key.pem");
    write_file(&root_key_path, private_pem(&root_key.key, &root_key_path)?.as_bytes(), true)?;
    let issuer = Issuer::from_params(&root, &root_key);

    for d in departments {
        let key = RcgenKey::generate()?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "CN");
        dn.push(DnType::OrganizationName, d.name.as_str());
        dn.push(DnType::CustomDnType(super::trust::OID_ORGANIZATION_IDENTIFIER.to_vec()), d.uscc.as_str());
        dn.push(DnType::CommonName, d.name.as_str());
        p.distinguished_name = dn;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment];
        p.not_before = now - Duration::days(1);
        p.not_after = now + Duration::days(365 * 10);
        let cert = p.signed_by(&key, &issuer).map_err(cert_err)?;
        write_file(&dept_dir.join(format!("{}.crt.pem", d.uscc)), cert.pem().as_bytes(), false)?;
        let kp = dept_dir.join(format!("{}.key.pem", d.uscc));
        write_file(&kp, private_pem(&key.key, &kp)?.as_bytes(), true)?;
    }

    let log_key = SigningKey::from_bytes(&random32()?);
    let lp = dir.join("log.key.pem");
    write_file(&lp, private_pem(&log_key, &lp)?.as_bytes(), true)?;
    let vkey = verifier_key(log_origin, &log_key.verifying_key().to_bytes());
    write_file(&dir.join("log.vkey"), format!("{vkey}\n").as_bytes(), false)?;
    write_file(&dir.join("commitment.key"), format!("{}\n", hex::encode(random32()?)).as_bytes(), true)?;
    Ok(vkey)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::TrustList;

    #[test]
    fn init_creates_a_chain_that_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let depts = vec![DepartmentSpec {
            uscc: "11440300MB2000100X".into(),
            name: "示例市市场监督管理局".into(),
            area_code: "440300".into(),
        }];
        let vkey = init(dir.path(), "示例平台", "example/log", &depts).unwrap();
        assert!(vkey.starts_with("example/log+"));
        let trust = TrustList::load(dir.path()).unwrap();
        let certs = trust.certs_of("11440300MB2000100X");
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].name, "示例市市场监督管理局");
        let key = crate::crypto::signer::load_private_key(&dir.path().join("departments/11440300MB2000100X.key.pem"))
            .unwrap();
        assert_eq!(key.verifying_key(), certs[0].key);
        assert!(init(dir.path(), "示例平台", "example/log", &depts).is_err(), "never overwrites");

        // A certificate from another root is refused.
        let other = tempfile::tempdir().unwrap();
        init(other.path(), "另一个平台", "other/log", &depts).unwrap();
        let root = std::fs::read(dir.path().join("root.crt.pem")).unwrap();
        let foreign = std::fs::read(other.path().join("departments/11440300MB2000100X.crt.pem")).unwrap();
        let der = |pem: &[u8]| x509_parser::pem::parse_x509_pem(pem).unwrap().1.contents;
        let err = TrustList::from_der(der(&root), vec![der(&foreign)]).unwrap_err().to_string();
        assert!(err.contains("does not verify") || err.contains("not issued by"), "{err}");
    }
}
