//! The trust chain: a platform root CA (Ed25519, X.509) certifies each department's seal key.
//! Certificates are parsed with x509-parser and checked here, at start-up and for `verify
//! --trust`: the root's signature (with `verify_strict`), key usage, basic constraints, and the
//! department's USCC in the subject (organizationIdentifier, 2.5.4.97).

use std::collections::HashMap;
use std::path::Path;

use ed25519_dalek::{Signature, VerifyingKey};
use x509_parser::oid_registry::{Oid, OID_SIG_ED25519};
use x509_parser::prelude::*;

use super::kid_of;
use crate::domain::Uscc;

/// organizationIdentifier (X.520 §6.4.4 / ETSI EN 319 412-1): carries the department's USCC.
pub const OID_ORGANIZATION_IDENTIFIER: &[u64] = &[2, 5, 4, 97];

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path}: {why}")]
    File { path: String, why: String },
    #[error("certificate {name}: {why}")]
    Cert { name: String, why: String },
}

/// A department certificate that chains to the root.
#[derive(Debug, Clone)]
pub struct DepartmentCert {
    pub kid: [u8; 8],
    pub uscc: Uscc,
    pub name: String,
    pub key: VerifyingKey,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub der: Vec<u8>,
}

impl DepartmentCert {
    pub fn valid_at(&self, t: i64) -> bool {
        self.not_before <= t && t <= self.not_after
    }
}

/// The root and every department certificate it certifies, by kid.
#[derive(Debug, Clone)]
pub struct TrustList {
    root_der: Vec<u8>,
    root_key: VerifyingKey,
    /// (notBefore, notAfter) of the root, unix seconds.
    root_validity: (i64, i64),
    by_kid: HashMap<[u8; 8], DepartmentCert>,
}

fn pem_to_der(pem_text: &[u8], name: &str) -> Result<Vec<u8>, TrustError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text)
        .map_err(|e| TrustError::Cert { name: name.into(), why: format!("not PEM: {e}") })?;
    Ok(pem.contents)
}

fn ed25519_key(cert: &X509Certificate<'_>, name: &str) -> Result<VerifyingKey, TrustError> {
    let spki = cert.public_key();
    let err = |why: &str| TrustError::Cert { name: name.into(), why: why.into() };
    if spki.algorithm.algorithm != OID_SIG_ED25519 {
        return Err(err("subject key is not Ed25519"));
    }
    let bytes: [u8; 32] =
        spki.subject_public_key.data.as_ref().try_into().map_err(|_| err("Ed25519 key is not 32 bytes"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| err("Ed25519 key is not a valid point"))
}

/// Extensions this verifier processes; any other extension marked critical makes the certificate
/// unusable (RFC 5280 §4.2: a verifier must reject a certificate with a critical extension it
/// does not recognise).
const UNDERSTOOD: [&[u64]; 4] = [
    &[2, 5, 29, 15], // keyUsage
    &[2, 5, 29, 19], // basicConstraints
    &[2, 5, 29, 14], // subjectKeyIdentifier
    &[2, 5, 29, 35], // authorityKeyIdentifier
];

fn check_critical(cert: &X509Certificate<'_>, name: &str) -> Result<(), TrustError> {
    for ext in cert.extensions() {
        let known = UNDERSTOOD.iter().any(|o| Oid::from(o).is_ok_and(|o| o == ext.oid));
        if ext.critical && !known {
            return Err(TrustError::Cert {
                name: name.into(),
                why: format!("carries the critical extension {} that this verifier does not process", ext.oid),
            });
        }
    }
    Ok(())
}

fn check_signed_by(cert: &X509Certificate<'_>, issuer: &VerifyingKey, name: &str) -> Result<(), TrustError> {
    let err = |why: &str| TrustError::Cert { name: name.into(), why: why.into() };
    if cert.signature_algorithm.algorithm != OID_SIG_ED25519 {
        return Err(err("not signed with Ed25519"));
    }
    let sig: [u8; 64] = cert.signature_value.data.as_ref().try_into().map_err(|_| err("signature is not 64 bytes"))?;
    issuer
        .verify_strict(cert.tbs_certificate.as_ref(), &Signature::from_bytes(&sig))
        .map_err(|_| err("signature by the platform root does not verify"))
}

impl TrustList {
    /// Parses and checks the root and department certificates (DER).
    pub fn from_der(root_der: Vec<u8>, departments: Vec<Vec<u8>>) -> Result<Self, TrustError> {
        let (_, root) = X509Certificate::from_der(&root_der)
            .map_err(|e| TrustError::Cert { name: "root".into(), why: e.to_string() })?;
        let root_key = ed25519_key(&root, "root")?;
        check_signed_by(&root, &root_key, "root")?;
        let root_is_ca = root.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca);
        let root_signs_certs = root.key_usage().ok().flatten().is_some_and(|ku| ku.value.key_cert_sign());
        if !root_is_ca || !root_signs_certs {
            return Err(TrustError::Cert { name: "root".into(), why: "is not a CA with keyCertSign".into() });
        }
        check_critical(&root, "root")?;
        let root_validity = (root.validity().not_before.timestamp(), root.validity().not_after.timestamp());
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        if now < root_validity.0 || now > root_validity.1 {
            return Err(TrustError::Cert {
                name: "root".into(),
                why: format!(
                    "is not valid now (valid from {} to {})",
                    root.validity().not_before,
                    root.validity().not_after
                ),
            });
        }
        let mut by_kid = HashMap::new();
        for der in departments {
            let dept = Self::check_department(&root, &root_key, der)?;
            by_kid.insert(dept.kid, dept);
        }
        Ok(Self { root_der, root_key, root_validity, by_kid })
    }

    fn check_department(
        root: &X509Certificate<'_>,
        root_key: &VerifyingKey,
        der: Vec<u8>,
    ) -> Result<DepartmentCert, TrustError> {
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|e| TrustError::Cert { name: "department".into(), why: e.to_string() })?;
        let name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or("(no common name)")
            .to_string();
        let err = |why: String| TrustError::Cert { name: name.clone(), why };
        if cert.issuer().as_raw() != root.subject().as_raw() {
            return Err(err("is not issued by the platform root".into()));
        }
        check_signed_by(&cert, root_key, &name)?;
        check_critical(&cert, &name)?;
        let key = ed25519_key(&cert, &name)?;
        let ku = cert.key_usage().map_err(|e| err(e.to_string()))?;
        if !ku.is_some_and(|ku| ku.value.digital_signature()) {
            return Err(err("key usage does not include digitalSignature".into()));
        }
        if cert.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca) {
            return Err(err("a seal certificate must not be a CA".into()));
        }
        let oid = Oid::from(OID_ORGANIZATION_IDENTIFIER).map_err(|_| err("bad OID".into()))?;
        let uscc_text = cert
            .subject()
            .iter_by_oid(&oid)
            .next()
            .and_then(|a| a.as_str().ok())
            .ok_or_else(|| err("subject carries no organizationIdentifier (USCC)".into()))?;
        let uscc = Uscc::parse(uscc_text).map_err(|e| err(format!("subject USCC: {e}")))?;
        Ok(DepartmentCert {
            kid: kid_of(&der),
            uscc,
            name: name.clone(),
            key,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            der,
        })
    }

    /// Loads `DIR/root.crt.pem` and every `DIR/departments/*.crt.pem`.
    pub fn load(dir: &Path) -> Result<Self, TrustError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| TrustError::File { path: p.display().to_string(), why: e.to_string() })
        };
        let root = pem_to_der(&read(&dir.join("root.crt.pem"))?, "root")?;
        let dept_dir = dir.join("departments");
        let mut paths: Vec<_> = std::fs::read_dir(&dept_dir)
            .map_err(|e| TrustError::File { path: dept_dir.display().to_string(), why: e.to_string() })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".crt.pem"))
            .collect();
        paths.sort();
        let mut depts = Vec::new();
        for p in paths {
            depts.push(pem_to_der(&read(&p)?, &p.display().to_string())?);
        }
        Self::from_der(root, depts)
    }

    pub fn department(&self, kid: &[u8; 8]) -> Option<&DepartmentCert> {
        self.by_kid.get(kid)
    }

    /// The certificates of `uscc`, newest first.
    pub fn certs_of(&self, uscc: &str) -> Vec<&DepartmentCert> {
        let mut v: Vec<_> = self.by_kid.values().filter(|d| d.uscc.as_str() == uscc).collect();
        v.sort_by_key(|d| std::cmp::Reverse(d.not_before));
        v
    }

    pub fn departments(&self) -> impl Iterator<Item = &DepartmentCert> {
        self.by_kid.values()
    }

    /// Whether the root certificate was valid at `t` (unix seconds): a document signed outside
    /// it does not chain.
    pub fn root_valid_at(&self, t: i64) -> bool {
        self.root_validity.0 <= t && t <= self.root_validity.1
    }

    pub fn root_key(&self) -> &VerifyingKey {
        &self.root_key
    }

    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// (notBefore, notAfter) of the root, unix seconds.
    pub fn root_validity(&self) -> (i64, i64) {
        self.root_validity
    }

    /// The digest a scanner pins (spec/formats.md §9): SHA-256 over `"licvault-trust-v1"`, the
    /// root certificate's DER, every department certificate's DER in the order of their kids,
    /// the log's verifier key (C2SP text) and every platform public key in the order of their
    /// kids, each part preceded by its length as a u32 big-endian. `GET /v1/trust` and `licvault
    /// trust pull` compute it alike; any change of a key or certificate changes it.
    pub fn digest(&self, log_key: &str, platform: &[([u8; 8], VerifyingKey)]) -> [u8; 32] {
        let mut depts: Vec<_> = self.by_kid.values().collect();
        depts.sort_by_key(|d| d.kid);
        let mut keys = platform.to_vec();
        keys.sort_by_key(|(kid, _)| *kid);
        let mut buf = Vec::new();
        let mut part = |b: &[u8]| {
            buf.extend_from_slice(&(b.len() as u32).to_be_bytes());
            buf.extend_from_slice(b);
        };
        part(b"licvault-trust-v1");
        part(&self.root_der);
        for d in &depts {
            part(&d.der);
        }
        part(log_key.as_bytes());
        for (_, key) in &keys {
            part(key.as_bytes());
        }
        super::sha256(&buf)
    }
}
