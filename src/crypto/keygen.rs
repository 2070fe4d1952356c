//! `licvault keys init DIR`: a platform root CA, a seal key and certificate per department, the
//! log's checkpoint key and the commitment secret; `licvault keys seal`: a new seal certificate
//! and key for one department (rotation). Every private key file is written mode 0600, and no
//! existing key file is overwritten without `--force`.
//!
//! Layout (spec/formats.md §5). The serving directory, which the server reads:
//! `root.crt.pem departments/<name>.crt.pem departments/<name>.key.pem log.key.pem log.vkey
//!  commitment.key`. The root CA's private key goes to a separate directory (`root.key.pem`,
//! `root.crt.pem`): the server never needs it, and it belongs offline.

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

/// Refuses, before anything is written, when one of `paths` exists (unless `force`): a key set
/// is written whole or not at all.
fn refuse_existing<P: AsRef<Path>>(paths: &[P], force: bool) -> Result<(), CryptoError> {
    match paths.iter().map(AsRef::as_ref).find(|p| !force && p.exists()) {
        Some(p) => Err(CryptoError::KeyFile {
            path: p.display().to_string(),
            why: "exists already; licvault never overwrites a key file without --force".into(),
        }),
        None => Ok(()),
    }
}

fn write_file(path: &Path, contents: &[u8], private: bool, force: bool) -> Result<(), CryptoError> {
    let io = |source| CryptoError::Io { path: path.display().to_string(), source };
    refuse_existing(&[path], force)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(path).map_err(io)?;
    // The mode given to `open` applies only to a new file: an overwritten one gets it here.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(if private { 0o600 } else { 0o644 })).map_err(io)?;
    }
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

fn mkdir(dir: &Path) -> Result<(), CryptoError> {
    std::fs::create_dir_all(dir).map_err(|source| CryptoError::Io { path: dir.display().to_string(), source })
}

fn root_params(platform_name: &str, not_before: OffsetDateTime, not_after: OffsetDateTime) -> CertificateParams {
    let mut root = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "CN");
    dn.push(DnType::OrganizationName, platform_name);
    dn.push(DnType::CommonName, format!("{platform_name} 根证书"));
    root.distinguished_name = dn;
    root.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    root.not_before = not_before;
    root.not_after = not_after;
    root
}

/// Signs a seal certificate for `d` valid `not_before..not_after` and writes it with its new key
/// as `departments/<stem>.crt.pem` and `.key.pem` under `dir`.
fn write_seal(
    dir: &Path,
    issuer: &Issuer<'_, &RcgenKey>,
    d: &DepartmentSpec,
    stem: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    force: bool,
) -> Result<(), CryptoError> {
    let dept_dir = dir.join("departments");
    mkdir(&dept_dir)?;
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
    p.not_before = not_before;
    p.not_after = not_after;
    let cert = p.signed_by(&key, issuer).map_err(cert_err)?;
    let kp = dept_dir.join(format!("{stem}.key.pem"));
    let cp = dept_dir.join(format!("{stem}.crt.pem"));
    refuse_existing(&[&kp, &cp], force)?;
    write_file(&kp, private_pem(&key.key, &kp)?.as_bytes(), true, force)?;
    write_file(&cp, cert.pem().as_bytes(), false, force)
}

/// Creates a whole key set: serving keys in `dir`, the root CA's private key in `root_dir`.
/// Refuses to overwrite any existing key file unless `force`.
pub fn init(
    dir: &Path,
    root_dir: &Path,
    platform_name: &str,
    log_origin: &str,
    departments: &[DepartmentSpec],
    force: bool,
) -> Result<String, CryptoError> {
    let mut planned = vec![
        dir.join("root.crt.pem"),
        dir.join("log.key.pem"),
        dir.join("log.vkey"),
        dir.join("commitment.key"),
        dir.join("annotation.key.pem"),
        root_dir.join("root.key.pem"),
        root_dir.join("root.crt.pem"),
    ];
    for d in departments {
        for ext in ["key.pem", "crt.pem"] {
            planned.push(dir.join("departments").join(format!("{}.{ext}", d.uscc)));
        }
    }
    refuse_existing(&planned, force)?;
    mkdir(dir)?;
    mkdir(root_dir)?;
    let now = OffsetDateTime::now_utc();
    let root_key = RcgenKey::generate()?;
    let root = root_params(platform_name, now - Duration::days(1), now + Duration::days(365 * 20));
    let root_cert = root.self_signed(&root_key).map_err(cert_err)?;
    write_file(&dir.join("root.crt.pem"), root_cert.pem().as_bytes(), false, force)?;
    write_file(&root_dir.join("root.crt.pem"), root_cert.pem().as_bytes(), false, force)?;
    let root_key_path = root_dir.join("root.key.pem");
    write_file(&root_key_path, private_pem(&root_key.key, &root_key_path)?.as_bytes(), true, force)?;
    let issuer = Issuer::from_params(&root, &root_key);
    for d in departments {
        write_seal(dir, &issuer, d, &d.uscc, now - Duration::days(1), now + Duration::days(365 * 10), force)?;
    }
    let log_key = SigningKey::from_bytes(&random32()?);
    let lp = dir.join("log.key.pem");
    write_file(&lp, private_pem(&log_key, &lp)?.as_bytes(), true, force)?;
    let vkey = verifier_key(log_origin, &log_key.verifying_key().to_bytes());
    write_file(&dir.join("log.vkey"), format!("{vkey}\n").as_bytes(), false, force)?;
    write_file(&dir.join("commitment.key"), format!("{}\n", hex::encode(random32()?)).as_bytes(), true, force)?;
    let annotation_key = SigningKey::from_bytes(&random32()?);
    let ap = dir.join("annotation.key.pem");
    write_file(&ap, private_pem(&annotation_key, &ap)?.as_bytes(), true, force)?;
    Ok(vkey)
}

/// A new seal certificate and key for department `d`, signed by the root CA in `root_dir`,
/// written to `dir/departments/<stem>.{crt,key}.pem` and valid from `not_before` for `days`.
/// The server loads it on `POST /v1/admin/keys/reload` or SIGHUP; the old certificate stays in
/// the trust list, so what it signed keeps verifying.
pub fn new_seal(
    dir: &Path,
    root_dir: &Path,
    d: &DepartmentSpec,
    stem: &str,
    not_before: OffsetDateTime,
    days: i64,
    force: bool,
) -> Result<(), CryptoError> {
    let ca = read_ca(&root_dir.join("root.key.pem"), &root_dir.join("root.crt.pem"))?;
    // The issuer name must be byte-for-byte the root's subject: rebuild it as `init` made it.
    let now = OffsetDateTime::now_utc();
    let root = root_params(&ca.organisation, now, now);
    let issuer = Issuer::from_params(&root, &ca.key);
    write_seal(dir, &issuer, d, stem, not_before, not_before + Duration::days(days), force)
}

/// The DER of the certificate in the PEM file `path`.
pub fn read_cert_der(path: &Path) -> Result<Vec<u8>, CryptoError> {
    let text = std::fs::read(path).map_err(|source| CryptoError::Io { path: path.display().to_string(), source })?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&text)
        .map_err(|e| CryptoError::KeyFile { path: path.display().to_string(), why: e.to_string() })?;
    Ok(pem.contents)
}

/// A CA's key and certificate as read from their files.
struct CaFiles {
    key: RcgenKey,
    der: Vec<u8>,
    /// The certificate's organisation, from which `root_params` rebuilds its subject.
    organisation: String,
    /// Its path length when it is a CA (none given: 0), else `None`.
    path_len: Option<u32>,
}

/// Reads a CA's private key and certificate and checks that they are a pair.
fn read_ca(key_path: &Path, cert_path: &Path) -> Result<CaFiles, CryptoError> {
    let key = super::signer::load_private_key(key_path)?;
    let der = read_cert_der(cert_path)?;
    let bad = |why: String| CryptoError::KeyFile { path: cert_path.display().to_string(), why };
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| bad(e.to_string()))?;
    let organisation = cert
        .subject()
        .iter_organization()
        .next()
        .and_then(|o| o.as_str().ok())
        .ok_or_else(|| bad("the certificate names no organisation".into()))?
        .to_string();
    let path_len = match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => Some(bc.value.path_len_constraint.unwrap_or(0)),
        _ => None,
    };
    let key = RcgenKey { public: key.verifying_key().to_bytes(), key };
    if key.public.as_slice() != cert.public_key().subject_public_key.data.as_ref() {
        return Err(bad(format!("{} is not the key of this certificate", key_path.display())));
    }
    Ok(CaFiles { key, der, organisation, path_len })
}

/// A serial number for a new certificate: 16 random bytes, positive and of full length. (rcgen's
/// default is derived from the subject key, so two certificates for one key, a city root's own and
/// its cross-certificate, would share it, and revoking one would revoke both.)
fn random_serial() -> Result<rcgen::SerialNumber, CryptoError> {
    let mut b = random32()?;
    b[0] = (b[0] & 0x3f) | 0x40;
    Ok(rcgen::SerialNumber::from_slice(&b[..16]))
}

/// A certification authority of the federation (crypto::federation): the national root or a
/// province's CA, with its key and the parameters its certificate was made from (what it signs
/// names it byte for byte).
pub struct FederationCa {
    key: RcgenKey,
    params: CertificateParams,
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
}

impl FederationCa {
    /// The national root: self-signed, a CA for two levels below it (provinces, then cities).
    pub fn national(name: &str, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Result<Self, CryptoError> {
        let key = RcgenKey::generate()?;
        let params = federation_ca_params(name, 2, not_before, not_after)?;
        let cert = params.self_signed(&key).map_err(cert_err)?;
        Ok(Self { cert_der: cert.der().to_vec(), cert_pem: cert.pem(), key, params })
    }

    /// A province's CA certified by `nation`: a CA for one level below it (city platforms).
    pub fn provincial(
        nation: &FederationCa,
        name: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Self, CryptoError> {
        let key = RcgenKey::generate()?;
        let params = federation_ca_params(name, 1, not_before, not_after)?;
        let cert = params.signed_by(&key, &Issuer::from_params(&nation.params, &nation.key)).map_err(cert_err)?;
        let (_, made) =
            x509_parser::parse_x509_certificate(cert.der()).map_err(|e| CryptoError::CertGen(e.to_string()))?;
        nation.names_me(made.issuer().as_raw())?;
        Ok(Self { cert_der: cert.der().to_vec(), cert_pem: cert.pem(), key, params })
    }
}

impl FederationCa {
    /// Writes the CA to `dir` as `ca.crt.pem` and `ca.key.pem` (0600); never over existing files
    /// unless `force`.
    pub fn write(&self, dir: &Path, force: bool) -> Result<(), CryptoError> {
        let (cp, kp) = (dir.join("ca.crt.pem"), dir.join("ca.key.pem"));
        refuse_existing(&[&cp, &kp], force)?;
        mkdir(dir)?;
        write_file(&kp, private_pem(&self.key.key, &kp)?.as_bytes(), true, force)?;
        write_file(&cp, self.cert_pem.as_bytes(), false, force)
    }

    /// The CA `write` wrote to `dir`. What it signs names it as its certificate does, byte for
    /// byte (checked on every certificate and CRL it makes).
    pub fn read(dir: &Path) -> Result<Self, CryptoError> {
        let (cp, kp) = (dir.join("ca.crt.pem"), dir.join("ca.key.pem"));
        let ca = read_ca(&kp, &cp)?;
        let Some(path_len) = ca.path_len else {
            return Err(CryptoError::KeyFile { path: cp.display().to_string(), why: "is not a CA certificate".into() });
        };
        let now = OffsetDateTime::now_utc();
        let params = federation_ca_params(&ca.organisation, u8::try_from(path_len).unwrap_or(u8::MAX), now, now)?;
        let cert_pem = super::pem("CERTIFICATE", &ca.der);
        Ok(Self { key: ca.key, params, cert_der: ca.der, cert_pem })
    }

    /// Whether `issuer`, the raw issuer name of something this CA signed, is this CA's name.
    fn names_me(&self, issuer: &[u8]) -> Result<(), CryptoError> {
        let (_, me) =
            x509_parser::parse_x509_certificate(&self.cert_der).map_err(|e| CryptoError::CertGen(e.to_string()))?;
        if me.subject().as_raw() == issuer {
            Ok(())
        } else {
            Err(CryptoError::CertGen(
                "the CA's certificate names it otherwise than `licvault federation ca` does: what it signs would not chain".into(),
            ))
        }
    }
}

fn federation_ca_params(
    name: &str,
    path_len: u8,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, CryptoError> {
    let mut p = root_params(name, not_before, not_after);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    p.serial_number = Some(random_serial()?);
    Ok(p)
}

/// A subject key without its private half: the city root's, in its cross-certificate.
struct PublicOnly([u8; 32]);

impl PublicKeyData for PublicOnly {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ED25519
    }
}

/// The cross-certificate (DER) by which `province` certifies the city platform root
/// `city_root_der` (as `keys init` made it): the city root's own name and key, a CA for no level
/// below it, so every seal certificate the city root signed chains on unchanged. It is valid from
/// the city root's own notBefore (the licences it already vouches for are older than this
/// certificate) to `not_after` or the city root's notAfter, whichever comes first.
pub fn cross_certify(
    province: &FederationCa,
    city_root_der: &[u8],
    not_after: OffsetDateTime,
) -> Result<Vec<u8>, CryptoError> {
    let bad = |why: String| CryptoError::CertGen(format!("city root: {why}"));
    let (_, city) = x509_parser::parse_x509_certificate(city_root_der).map_err(|e| bad(e.to_string()))?;
    let platform = city
        .subject()
        .iter_organization()
        .next()
        .and_then(|o| o.as_str().ok())
        .ok_or_else(|| bad("names no organisation".into()))?
        .to_string();
    let public: [u8; 32] =
        city.public_key().subject_public_key.data.as_ref().try_into().map_err(|_| bad("key is not Ed25519".into()))?;
    let at = |t: i64| OffsetDateTime::from_unix_timestamp(t).map_err(|e| bad(e.to_string()));
    let not_before = at(city.validity().not_before.timestamp())?;
    let not_after = not_after.min(at(city.validity().not_after.timestamp())?);
    let mut params = root_params(&platform, not_before, not_after);
    params.serial_number = Some(random_serial()?);
    let cert = params
        .signed_by(&PublicOnly(public), &Issuer::from_params(&province.params, &province.key))
        .map_err(cert_err)?;
    let (_, made) = x509_parser::parse_x509_certificate(cert.der()).map_err(|e| bad(e.to_string()))?;
    province.names_me(made.issuer().as_raw())?;
    if made.subject().as_raw() != city.subject().as_raw() {
        return Err(bad(
            "its name is not the one `licvault keys init` writes, so a cross-certificate would not match it".into(),
        ));
    }
    Ok(cert.der().to_vec())
}

/// A certificate to revoke: its serial number (big-endian), when, and why (RFC 5280 §5.3.1).
#[derive(Debug, Clone)]
pub struct Revocation {
    pub serial: Vec<u8>,
    pub at: OffsetDateTime,
    pub reason: Option<rcgen::RevocationReason>,
}

/// A CRL (DER) of `ca`, numbered `number`, listing `revoked`.
pub fn revocation_list(
    ca: &FederationCa,
    number: u64,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    revoked: &[Revocation],
) -> Result<Vec<u8>, CryptoError> {
    let params = rcgen::CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: rcgen::SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|r| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(&r.serial),
                revocation_time: r.at,
                reason_code: r.reason,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&Issuer::from_params(&ca.params, &ca.key)).map_err(cert_err)?;
    let (_, made) = x509_parser::parse_x509_crl(crl.der()).map_err(|e| CryptoError::CertGen(e.to_string()))?;
    ca.names_me(made.issuer().as_raw())?;
    Ok(crl.der().to_vec())
}

/// A witness's cosigning key: `DIR/witness.key.pem` (0600) and `DIR/witness.vkey` (its
/// `cosignature/v1` verifier key, which logs are configured with). Returns the verifier key.
pub fn witness(dir: &Path, name: &str, force: bool) -> Result<String, CryptoError> {
    std::fs::create_dir_all(dir).map_err(|source| CryptoError::Io { path: dir.display().to_string(), source })?;
    let (key_path, vkey_path) = (dir.join("witness.key.pem"), dir.join("witness.vkey"));
    refuse_existing(&[&key_path, &vkey_path], force)?;
    let key = SigningKey::from_bytes(&random32()?);
    let vkey = crate::log::cosign::witness_vkey(name, &key.verifying_key().to_bytes());
    write_file(&key_path, private_pem(&key, &key_path)?.as_bytes(), true, force)?;
    write_file(&vkey_path, format!("{vkey}\n").as_bytes(), false, force)?;
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
        let root_dir = tempfile::tempdir().unwrap();
        let vkey = init(dir.path(), root_dir.path(), "示例平台", "example/log", &depts, false).unwrap();
        assert!(!dir.path().join("root.key.pem").exists(), "the root key stays apart from the serving keys");
        assert!(root_dir.path().join("root.key.pem").exists());
        assert!(vkey.starts_with("example/log+"));
        let trust = TrustList::load(dir.path()).unwrap();
        let certs = trust.certs_of("11440300MB2000100X");
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].name, "示例市市场监督管理局");
        let key = crate::crypto::signer::load_private_key(&dir.path().join("departments/11440300MB2000100X.key.pem"))
            .unwrap();
        assert_eq!(key.verifying_key(), certs[0].key);
        let err = init(dir.path(), root_dir.path(), "示例平台", "example/log", &depts, false).unwrap_err().to_string();
        assert!(err.contains("never overwrites"), "{err}");
        // A rotated seal chains to the same root; the old one stays in the trust list.
        let t0 = OffsetDateTime::now_utc() - Duration::days(1);
        new_seal(dir.path(), root_dir.path(), &depts[0], "11440300MB2000100X.2", t0, 30, false).unwrap();
        assert!(new_seal(dir.path(), root_dir.path(), &depts[0], "11440300MB2000100X.2", t0, 30, false).is_err());
        let trust = TrustList::load(dir.path()).unwrap();
        assert_eq!(trust.certs_of("11440300MB2000100X").len(), 2);

        // A certificate from another root is refused.
        let other = tempfile::tempdir().unwrap();
        init(other.path(), &other.path().join("ca"), "另一个平台", "other/log", &depts, false).unwrap();
        let root = std::fs::read(dir.path().join("root.crt.pem")).unwrap();
        let foreign = std::fs::read(other.path().join("departments/11440300MB2000100X.crt.pem")).unwrap();
        let der = |pem: &[u8]| x509_parser::pem::parse_x509_pem(pem).unwrap().1.contents;
        let err = TrustList::from_der(der(&root), vec![der(&foreign)]).unwrap_err().to_string();
        assert!(err.contains("does not verify") || err.contains("not issued by"), "{err}");
    }

    fn der(pem: &str) -> Vec<u8> {
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap().1.contents
    }

    /// The root's validity and unknown critical extensions are checked (RFC 5280 §4.2).
    #[test]
    fn expired_roots_and_unknown_critical_extensions_are_refused() {
        let now = OffsetDateTime::now_utc();
        let key = RcgenKey::generate().unwrap();
        let expired =
            root_params("过期平台", now - Duration::days(30), now - Duration::days(1)).self_signed(&key).unwrap();
        let e = TrustList::from_der(der(&expired.pem()), vec![]).unwrap_err().to_string();
        assert!(e.contains("not valid now"), "{e}");

        let root = root_params("示例平台", now - Duration::days(1), now + Duration::days(30));
        let root_cert = root.self_signed(&key).unwrap();
        let issuer = Issuer::from_params(&root, &key);
        let seal_key = RcgenKey::generate().unwrap();
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "示例市市场监督管理局");
        dn.push(DnType::CustomDnType(super::super::trust::OID_ORGANIZATION_IDENTIFIER.to_vec()), "11440300MB2000100X");
        p.distinguished_name = dn;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let mut ext = rcgen::CustomExtension::from_oid_content(&[1, 2, 156, 9999, 1], vec![0x05, 0x00]);
        ext.set_criticality(true);
        p.custom_extensions = vec![ext];
        let cert = p.signed_by(&seal_key, &issuer).unwrap();
        let e = TrustList::from_der(der(&root_cert.pem()), vec![der(&cert.pem())]).unwrap_err().to_string();
        assert!(e.contains("critical extension 1.2.156.9999.1"), "{e}");
        // The same extension, not critical, is fine.
        p.custom_extensions[0].set_criticality(false);
        let cert = p.signed_by(&seal_key, &issuer).unwrap();
        TrustList::from_der(der(&root_cert.pem()), vec![der(&cert.pem())]).unwrap();
    }
}
