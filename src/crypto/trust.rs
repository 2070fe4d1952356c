//! The trust chain: a platform root CA (Ed25519, X.509) certifies each department's seal key.
//! Certificates are parsed with x509-parser and checked here, at start-up and for `verify
//! --trust`: the root's signature (with `verify_strict`), key usage, basic constraints, and the
//! department's USCC in the subject (organizationIdentifier, 2.5.4.97).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, VerifyingKey};
use x509_parser::oid_registry::{Oid, OID_SIG_ED25519};
use x509_parser::prelude::*;

use super::federation::Federation;
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

/// The root and every department certificate it certifies, by kid; with a federation, also the
/// departments of other platforms and what vouches for their roots.
#[derive(Debug, Clone)]
pub struct TrustList {
    root_der: Vec<u8>,
    root_key: VerifyingKey,
    /// (notBefore, notAfter) of the root, unix seconds.
    root_validity: (i64, i64),
    by_kid: HashMap<[u8; 8], DepartmentCert>,
    federation: Option<Federation>,
    /// The federation's certificates and CRLs as loaded (DER), which `GET /v1/trust` publishes.
    federation_der: Option<FederationDer>,
    /// Seal certificates of other platforms' departments, by kid, with the name and key of the
    /// platform root that signed each.
    foreign: HashMap<[u8; 8], (DepartmentCert, Vec<u8>, VerifyingKey)>,
}

/// The files of a federation (spec/formats.md §9.1), DER, in the order they were read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FederationDer {
    pub anchor: Vec<u8>,
    pub cas: Vec<Vec<u8>>,
    pub crls: Vec<Vec<u8>>,
    pub peers: Vec<Vec<u8>>,
}

impl FederationDer {
    /// Each part the trust digest takes from it: the anchor; then for the CA certificates, the
    /// CRLs and the peers in turn their count (u32 big-endian) and each one.
    fn parts(&self, part: &mut impl FnMut(&[u8])) {
        part(&self.anchor);
        for list in [&self.cas, &self.crls, &self.peers] {
            part(&(list.len() as u32).to_be_bytes());
            for der in list {
                part(der);
            }
        }
    }
}

/// The Ed25519 key of the certificate in the PEM file `path` (a platform root a mirror pins).
pub fn certificate_key(path: &Path) -> Result<VerifyingKey, TrustError> {
    let name = path.display().to_string();
    let der = pem_to_der(&read_file(path)?, &name)?;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| TrustError::Cert { name: name.clone(), why: e.to_string() })?;
    ed25519_key(&cert, &name)
}

fn pem_to_der(pem_text: &[u8], name: &str) -> Result<Vec<u8>, TrustError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text)
        .map_err(|e| TrustError::Cert { name: name.into(), why: format!("not PEM: {e}") })?;
    Ok(pem.contents)
}

pub(super) fn ed25519_key(cert: &X509Certificate<'_>, name: &str) -> Result<VerifyingKey, TrustError> {
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

pub(super) fn check_critical(cert: &X509Certificate<'_>, name: &str) -> Result<(), TrustError> {
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

/// The Ed25519 signature of a certificate or CRL signed with `alg` (`bits`: its signatureValue).
pub(super) fn ed25519_signature(alg: &Oid<'_>, bits: &[u8], name: &str) -> Result<Signature, TrustError> {
    let err = |why: &str| TrustError::Cert { name: name.into(), why: why.into() };
    if *alg != OID_SIG_ED25519 {
        return Err(err("not signed with Ed25519"));
    }
    let sig: [u8; 64] = bits.try_into().map_err(|_| err("signature is not 64 bytes"))?;
    Ok(Signature::from_bytes(&sig))
}

fn check_signed_by(cert: &X509Certificate<'_>, issuer: &VerifyingKey, name: &str) -> Result<(), TrustError> {
    let sig = ed25519_signature(&cert.signature_algorithm.algorithm, &cert.signature_value.data, name)?;
    issuer.verify_strict(cert.tbs_certificate.as_ref(), &sig).map_err(|_| TrustError::Cert {
        name: name.into(),
        why: "signature by the platform root does not verify".into(),
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, TrustError> {
    std::fs::read(path).map_err(|e| TrustError::File { path: path.display().to_string(), why: e.to_string() })
}

/// The entries of `dir`, sorted by path.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, TrustError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| TrustError::File { path: dir.display().to_string(), why: e.to_string() })?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    Ok(paths)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
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
        let now = unix_now();
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
        let root_name = root.subject().as_raw();
        for der in departments {
            let (dept, _, _) =
                Self::check_seal(der, |issuer| if issuer == root_name { vec![root_key] } else { vec![] })?;
            by_kid.insert(dept.kid, dept);
        }
        Ok(Self {
            root_der,
            root_key,
            root_validity,
            by_kid,
            federation: None,
            federation_der: None,
            foreign: HashMap::new(),
        })
    }

    /// Adds a federation and the seal certificates (DER) of other platforms' departments. Each must
    /// be signed by a platform root that a cross-certificate of the federation names, and name no
    /// department of this platform; whether that root chains to the national anchor, unrevoked,
    /// is asked for each signature ([`TrustList::federation_vouches`]). A certificate that is
    /// also one of this platform's stays this platform's.
    pub(crate) fn with_federation(mut self, federation: Federation, peers: Vec<Vec<u8>>) -> Result<Self, TrustError> {
        for der in peers {
            let (dept, issuer, key) = Self::check_seal(der, |issuer| federation.platform_root_keys(issuer))?;
            if self.by_kid.contains_key(&dept.kid) {
                continue;
            }
            // Names are not constrained yet (any certified platform root could seal for any
            // USCC): at least no other platform speaks for this platform's own departments.
            if !self.certs_of(dept.uscc.as_str()).is_empty() {
                return Err(TrustError::Cert {
                    name: dept.name.clone(),
                    why: format!("another platform's seal claims {}, a department of this platform", dept.uscc),
                });
            }
            self.foreign.insert(dept.kid, (dept, issuer, key));
        }
        self.federation = Some(federation);
        Ok(self)
    }

    /// [`TrustList::with_federation`] from the federation's files, checked as of `now`; kept to
    /// be published.
    pub fn federated(self, der: FederationDer, now: i64) -> Result<Self, TrustError> {
        let federation = Federation::from_der(&der.anchor, &der.cas, &der.crls, now)?;
        let mut list = self.with_federation(federation, der.peers.clone())?;
        list.federation_der = Some(der);
        Ok(list)
    }

    /// The federation's revocation list that goes stale first (its CA, its nextUpdate).
    pub fn first_crl_expiry(&self) -> Option<(String, i64)> {
        self.federation.as_ref()?.first_crl_expiry()
    }

    /// The federation's files, when there is one.
    pub fn federation_der(&self) -> Option<&FederationDer> {
        self.federation_der.as_ref()
    }

    /// Whether `kid` is another platform's department (known through the federation).
    pub fn is_foreign(&self, kid: &[u8; 8]) -> bool {
        !self.by_kid.contains_key(kid) && self.foreign.contains_key(kid)
    }

    /// For another platform's department, whether the federation vouches for the root that signed
    /// its certificate, for a signature made at `signed_at`, as of `now`: the root's path to the
    /// national anchor, every CA on it valid then and revoked by none. This platform's own
    /// departments are vouched for by its root (`root_valid_at`): `Ok`.
    /// The path is the CAs' names from the anchor down (empty for this platform's own).
    pub fn federation_vouches(&self, kid: &[u8; 8], signed_at: i64, now: i64) -> Result<Vec<String>, String> {
        if !self.is_foreign(kid) {
            return Ok(Vec::new());
        }
        match (self.foreign.get(kid), &self.federation) {
            (Some((_, issuer, key)), Some(fed)) => {
                fed.path_to_anchor(issuer, key, signed_at, now).map_err(|e| e.to_string())
            }
            _ => Err(format!("no department certificate with kid {}", hex::encode(kid))),
        }
    }

    /// A seal certificate (DER) signed by one of the keys `issuer_keys` gives for its issuer's
    /// name: the certificate, and the issuer's name and key.
    fn check_seal<K: std::borrow::Borrow<VerifyingKey>>(
        der: Vec<u8>,
        issuer_keys: impl Fn(&[u8]) -> Vec<K>,
    ) -> Result<(DepartmentCert, Vec<u8>, VerifyingKey), TrustError> {
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
        let issuer = cert.issuer().as_raw().to_vec();
        let keys = issuer_keys(&issuer);
        if keys.is_empty() {
            return Err(err("is not issued by the platform root".into()));
        }
        let signer = match keys.iter().find(|k| check_signed_by(&cert, (*k).borrow(), &name).is_ok()) {
            Some(k) => *k.borrow(),
            None => return Err(err("signature by the platform root does not verify".into())),
        };
        check_critical(&cert, &name)?;
        let key = ed25519_key(&cert, &name)?;
        let ku = cert.key_usage().map_err(|e| err(e.to_string()))?;
        if !ku.is_some_and(|ku| ku.value.digital_signature()) {
            return Err(err("key usage does not include digitalSignature".into()));
        }
        match cert.basic_constraints() {
            Err(e) => return Err(err(format!("basic constraints: {e}"))),
            Ok(Some(bc)) if bc.value.ca => return Err(err("a seal certificate must not be a CA".into())),
            Ok(_) => {}
        }
        let oid = Oid::from(OID_ORGANIZATION_IDENTIFIER).map_err(|_| err("bad OID".into()))?;
        let uscc_text = cert
            .subject()
            .iter_by_oid(&oid)
            .next()
            .and_then(|a| a.as_str().ok())
            .ok_or_else(|| err("subject carries no organizationIdentifier (USCC)".into()))?;
        let uscc = Uscc::parse(uscc_text).map_err(|e| err(format!("subject USCC: {e}")))?;
        let dept = DepartmentCert {
            kid: kid_of(&der),
            uscc,
            name: name.clone(),
            key,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            der,
        };
        Ok((dept, issuer, signer))
    }

    /// Loads `DIR/root.crt.pem` and every `DIR/departments/*.crt.pem`.
    pub fn load(dir: &Path) -> Result<Self, TrustError> {
        let root = pem_to_der(&read_file(&dir.join("root.crt.pem"))?, "root")?;
        let mut depts = Vec::new();
        for p in sorted_entries(&dir.join("departments"))? {
            if p.to_string_lossy().ends_with(".crt.pem") {
                depts.push(pem_to_der(&read_file(&p)?, &p.display().to_string())?);
            }
        }
        Self::from_der(root, depts)
    }

    /// [`TrustList::load`], and with `DIR/federation/anchor.crt.pem` the federation too: the CA
    /// certificates `federation/cas/*.crt.pem`, their CRLs `federation/crls/*.crl.pem` and other
    /// platforms' seal certificates `federation/peers/*.crt.pem` (`licvault verify --trust`, and
    /// the serving node's key directory). Any other file there, or a file of more than one
    /// PEM block, is refused: a list that is not read could hide a revocation.
    pub fn load_federated(dir: &Path) -> Result<Self, TrustError> {
        let trust = Self::load(dir)?;
        let fed_dir = dir.join("federation");
        if !fed_dir.exists() {
            return Ok(trust);
        }
        let refuse = |path: &Path, why: &str| TrustError::File { path: path.display().to_string(), why: why.into() };
        for path in sorted_entries(&fed_dir)? {
            if !path.file_name().is_some_and(|n| ["anchor.crt.pem", "cas", "crls", "peers"].iter().any(|k| n == *k)) {
                return Err(refuse(&path, "is not one of anchor.crt.pem, cas/, crls/, peers/"));
            }
        }
        let one_block = |path: &Path| -> Result<Vec<u8>, TrustError> {
            let text = read_file(path)?;
            if text.windows(11).filter(|w| w == b"-----BEGIN ").count() != 1 {
                return Err(refuse(path, "must hold exactly one PEM block"));
            }
            pem_to_der(&text, &path.display().to_string())
        };
        let anchor_path = fed_dir.join("anchor.crt.pem");
        if !anchor_path.exists() {
            return Err(refuse(&fed_dir, "has no anchor.crt.pem (the national root)"));
        }
        let anchor = one_block(&anchor_path)?;
        let all = |sub: &str, ext: &str| -> Result<Vec<Vec<u8>>, TrustError> {
            let d = fed_dir.join(sub);
            let paths = if d.exists() { sorted_entries(&d)? } else { Vec::new() };
            if let Some(odd) = paths.iter().find(|p| !p.to_string_lossy().ends_with(ext)) {
                return Err(refuse(odd, &format!("is not a {ext} file")));
            }
            paths.iter().map(|p| one_block(p)).collect()
        };
        let der = FederationDer {
            anchor,
            cas: all("cas", ".crt.pem")?,
            crls: all("crls", ".crl.pem")?,
            peers: all("peers", ".crt.pem")?,
        };
        trust.federated(der, unix_now())
    }

    /// The seal certificate of `kid`: this platform's, or another platform's of the federation
    /// (ask [`TrustList::federation_vouches`] whether it is vouched for).
    pub fn department(&self, kid: &[u8; 8]) -> Option<&DepartmentCert> {
        self.by_kid.get(kid).or_else(|| self.foreign.get(kid).map(|(d, _, _)| d))
    }

    /// The key of the platform root that certified the seal `kid`: this platform's root, or the
    /// root of the other platform whose department it is.
    pub fn platform_root_of(&self, kid: &[u8; 8]) -> Option<VerifyingKey> {
        if self.by_kid.contains_key(kid) {
            return Some(self.root_key);
        }
        self.foreign.get(kid).map(|(_, _, key)| *key)
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
    /// kids, each part preceded by its length as a u32 big-endian. With a federation,
    /// `"licvault-trust-v2"` instead, and then the anchor's DER, and for the CA certificates,
    /// the CRLs and the peers' seal certificates in turn their count (u32 big-endian, 4 bytes,
    /// as a part) and each one's DER, in the order published. `GET /v1/trust` and `licvault
    /// trust pull` compute it alike; any change of a key, certificate or CRL changes it.
    pub fn digest(&self, log_key: &str, platform: &[([u8; 8], VerifyingKey)]) -> [u8; 32] {
        let mut depts: Vec<_> = self.by_kid.values().collect();
        depts.sort_by_key(|d| d.kid);
        let mut keys = platform.to_vec();
        keys.sort_by_key(|(kid, _)| *kid);
        let mut buf = Vec::new();
        let mut part = |b: &[u8]| super::push_part(&mut buf, b);
        part(if self.federation_der.is_some() { b"licvault-trust-v2" } else { b"licvault-trust-v1" });
        part(&self.root_der);
        for d in &depts {
            part(&d.der);
        }
        part(log_key.as_bytes());
        for (_, key) in &keys {
            part(key.as_bytes());
        }
        if let Some(f) = &self.federation_der {
            f.parts(&mut part);
        }
        super::sha256(&buf)
    }

    /// SHA-256 over the federation's parts (as [`TrustList::digest`] takes them, each preceded
    /// by its length), when there is one.
    pub fn federation_digest(&self) -> Option<[u8; 32]> {
        let f = self.federation_der.as_ref()?;
        let mut buf = Vec::new();
        f.parts(&mut |b: &[u8]| super::push_part(&mut buf, b));
        Some(super::sha256(&buf))
    }
}
