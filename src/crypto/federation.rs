//! Trust across platforms (the three levels: city, province, nation). The national root is the one
//! trust anchor; it certifies each province's CA, and a province's CA cross-certifies the root of
//! each city platform in it (a certificate with the city root's own name and key, so that every
//! seal certificate the city root signed chains on unchanged). Every CA publishes a revocation
//! list (X.509 CRL, RFC 5280 §5) of the certificates it issued; revoking a province's certificate
//! at the national root cuts off every platform below it.
//!
//! [`Federation::path_to_anchor`] is RFC 5280 §6 path validation cut to this hierarchy and to
//! what long-lived signed licences need: every signature on the path checked with
//! `verify_strict`; names chained byte for byte; every CA a CA with keyCertSign, within the path
//! length its issuers allow and valid now (the platform root also when the document was signed:
//! the CAs above it may be younger than the licences it vouches for); and for each
//! certificate on the path, a current CRL from its issuer (missing or out of date: fail closed)
//! that does not list it. A revoked certificate vouches for nothing, whatever the reason and
//! whenever the document says it was signed: the signing time is the signer's own claim, so no
//! grace before a revocation date is given without a trusted time. A key revoked for compromise
//! (or for no stated reason) in any certificate is refused in every certificate that carries it.

use std::collections::HashMap;

use ed25519_dalek::{Signature, VerifyingKey};
use x509_parser::oid_registry::Oid;
use x509_parser::prelude::*;
use x509_parser::revocation_list::CertificateRevocationList;

use super::trust::TrustError;

/// Longest chain of CA certificates looked at above a platform root (the hierarchy has two).
const MAX_DEPTH: usize = 6;

/// Extensions of a CRL this verifier processes; a CRL with any other critical extension is
/// refused rather than misread, and so is one that is not a complete list of its issuer
/// (`NOT_COMPLETE`).
const CRL_UNDERSTOOD: [&[u64]; 2] = [
    &[2, 5, 29, 20], // cRLNumber
    &[2, 5, 29, 35], // authorityKeyIdentifier
];

/// A delta CRL (deltaCRLIndicator) or a partitioned or indirect one (issuingDistributionPoint),
/// critical or not.
const NOT_COMPLETE: [&[u64]; 2] = [&[2, 5, 29, 27], &[2, 5, 29, 28]];

/// Entry extensions of a CRL this verifier processes (the certificateIssuer of an indirect CRL
/// is not among them).
const ENTRY_UNDERSTOOD: [&[u64]; 2] = [
    &[2, 5, 29, 21], // reasonCode
    &[2, 5, 29, 24], // invalidityDate
];

/// A CA certificate of the federation, parsed.
#[derive(Debug, Clone)]
struct Ca {
    name: String,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    key: VerifyingKey,
    serial: Vec<u8>,
    /// (notBefore, notAfter), unix seconds.
    validity: (i64, i64),
    path_len: Option<u32>,
    tbs: Vec<u8>,
    signature: Signature,
    crl_sign: bool,
}

/// One revoked certificate of a CRL.
#[derive(Debug, Clone)]
struct Revoked {
    serial: Vec<u8>,
    reason: Option<u8>,
}

/// A CRL whose signature has been checked against the CA (name and key) that issued it.
#[derive(Debug, Clone)]
struct Crl {
    number: Vec<u8>,
    this_update: i64,
    next_update: i64,
    revoked: Vec<Revoked>,
}

/// A CA by its subject name (raw DER) and key: several certificates may certify one CA.
type CaId = (Vec<u8>, [u8; 32]);

/// The national anchor, the CA certificates below it, and their issuers' revocation lists.
#[derive(Debug, Clone)]
pub struct Federation {
    anchor: Ca,
    cas: Vec<Ca>,
    /// By issuer (subject name, key).
    crls: HashMap<CaId, Crl>,
}

fn cert_err(name: &str, why: impl Into<String>) -> TrustError {
    TrustError::Cert { name: name.into(), why: why.into() }
}

fn understood(list: &[&[u64]], oid: &Oid<'_>) -> bool {
    list.iter().any(|o| Oid::from(o).is_ok_and(|o| o == *oid))
}

/// How a certificate is named in errors: its common name, else its organisation.
fn display_name(cert: &X509Certificate<'_>) -> String {
    let cn = cert.subject().iter_common_name().next().and_then(|a| a.as_str().ok());
    let o = cert.subject().iter_organization().next().and_then(|a| a.as_str().ok());
    cn.or(o).unwrap_or("(unnamed CA)").to_string()
}

impl Ca {
    fn parse(der: &[u8]) -> Result<Self, TrustError> {
        let (rest, cert) = X509Certificate::from_der(der).map_err(|e| cert_err("federation CA", e.to_string()))?;
        let name = display_name(&cert);
        if !rest.is_empty() {
            return Err(cert_err(&name, "trailing bytes after the certificate"));
        }
        super::trust::check_critical(&cert, &name)?;
        let bc = cert.basic_constraints().map_err(|e| cert_err(&name, e.to_string()))?;
        let Some(bc) = bc.filter(|bc| bc.value.ca) else {
            return Err(cert_err(&name, "is not a CA certificate"));
        };
        let ku = cert.key_usage().map_err(|e| cert_err(&name, e.to_string()))?;
        let Some(ku) = ku else { return Err(cert_err(&name, "has no key usage")) };
        if !ku.value.key_cert_sign() {
            return Err(cert_err(&name, "key usage does not include keyCertSign"));
        }
        Ok(Self {
            subject: cert.subject().as_raw().to_vec(),
            issuer: cert.issuer().as_raw().to_vec(),
            key: super::trust::ed25519_key(&cert, &name)?,
            serial: cert.serial.to_bytes_be(),
            validity: (cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp()),
            path_len: bc.value.path_len_constraint,
            tbs: cert.tbs_certificate.as_ref().to_vec(),
            signature: super::trust::ed25519_signature(
                &cert.signature_algorithm.algorithm,
                &cert.signature_value.data,
                &name,
            )?,
            crl_sign: ku.value.crl_sign(),
            name,
        })
    }

    fn valid_at(&self, t: i64) -> bool {
        self.validity.0 <= t && t <= self.validity.1
    }

    fn signed_by(&self, key: &VerifyingKey) -> bool {
        key.verify_strict(&self.tbs, &self.signature).is_ok()
    }
}

impl Federation {
    /// Parses and checks the national anchor (self-signed, a CA with keyCertSign, valid at
    /// `now`), the CA certificates below it and the CRLs (DER). A CRL must be signed by a CA
    /// given here, with cRLSign; of several from one CA, the one with the highest CRL number
    /// counts; a CRL from a CA not given here is left aside. Certificates are tied into paths
    /// only when one is asked for.
    pub fn from_der(anchor: &[u8], cas: &[Vec<u8>], crls: &[Vec<u8>], now: i64) -> Result<Self, TrustError> {
        let anchor = Ca::parse(anchor)?;
        if anchor.subject != anchor.issuer || !anchor.signed_by(&anchor.key) {
            return Err(cert_err(&anchor.name, "the national anchor is not self-signed"));
        }
        if !anchor.valid_at(now) {
            return Err(cert_err(&anchor.name, "the national anchor is not valid now"));
        }
        let cas = cas.iter().map(|der| Ca::parse(der)).collect::<Result<Vec<_>, _>>()?;
        let mut fed = Self { anchor, cas, crls: HashMap::new() };
        // Every list seen, by its CA and number: two different ones under one number are refused.
        let mut seen: HashMap<(CaId, Vec<u8>), &[u8]> = HashMap::new();
        for der in crls {
            let Some((issuer, crl)) = fed.parse_crl(der)? else { continue };
            match seen.insert((issuer.clone(), crl.number.clone()), der.as_slice()) {
                Some(other) if other != der.as_slice() => {
                    return Err(cert_err("revocation list", "two different lists of one CA carry the same CRL number"));
                }
                _ => {}
            }
            if fed.crls.get(&issuer).is_none_or(|old| greater(&crl.number, &old.number)) {
                fed.crls.insert(issuer, crl);
            }
        }
        Ok(fed)
    }

    /// The revocation list that goes stale first: its CA's name and its nextUpdate (unix
    /// seconds). Past it, nothing that CA vouches for is vouched for until a new list is loaded.
    pub fn first_crl_expiry(&self) -> Option<(String, i64)> {
        self.crls
            .iter()
            .map(|((subject, key), crl)| {
                let name =
                    self.all().find(|c| &c.subject == subject && c.key.as_bytes() == key).map(|c| c.name.clone());
                (name.unwrap_or_default(), crl.next_update)
            })
            .min_by_key(|(_, t)| *t)
    }

    /// Every CA known here (the anchor first).
    fn all(&self) -> impl Iterator<Item = &Ca> {
        std::iter::once(&self.anchor).chain(&self.cas)
    }

    /// The CRL `der` with its issuer, `None` when no CA of the federation has its issuer's name
    /// (a list about certificates this federation does not hold). A CRL under a known CA's name
    /// that no such CA signed is refused.
    fn parse_crl(&self, der: &[u8]) -> Result<Option<(CaId, Crl)>, TrustError> {
        let name = "revocation list";
        let (rest, crl) = CertificateRevocationList::from_der(der).map_err(|e| cert_err(name, e.to_string()))?;
        if !rest.is_empty() {
            return Err(cert_err(name, "trailing bytes after the CRL"));
        }
        let signature =
            super::trust::ed25519_signature(&crl.signature_algorithm.algorithm, &crl.signature_value.data, name)?;
        let issuer = crl.issuer().as_raw();
        if !self.all().any(|ca| ca.subject == issuer) {
            return Ok(None);
        }
        let tbs = crl.tbs_cert_list.as_ref();
        let ca = self
            .all()
            .find(|ca| ca.subject == issuer && ca.key.verify_strict(tbs, &signature).is_ok())
            .ok_or_else(|| cert_err(name, format!("is not signed by any CA of the federation ({})", crl.issuer())))?;
        if !ca.crl_sign {
            return Err(cert_err(&ca.name, "signed a revocation list without cRLSign in its key usage"));
        }
        if let Some(ext) = crl.extensions().iter().find(|e| understood(&NOT_COMPLETE, &e.oid)) {
            return Err(cert_err(name, format!("of {} is not a complete list (extension {})", ca.name, ext.oid)));
        }
        if let Some(ext) = crl.extensions().iter().find(|e| e.critical && !understood(&CRL_UNDERSTOOD, &e.oid)) {
            return Err(cert_err(name, format!("of {} carries the critical extension {}", ca.name, ext.oid)));
        }
        let number = crl.crl_number().map(|n| n.to_bytes_be()).ok_or_else(|| {
            cert_err(name, format!("of {} has no CRL number (RFC 5280 §5.2.3 requires one)", ca.name))
        })?;
        let next_update = crl
            .next_update()
            .map(|t| t.timestamp())
            .ok_or_else(|| cert_err(name, format!("of {} has no nextUpdate", ca.name)))?;
        let mut revoked = Vec::new();
        for entry in crl.iter_revoked_certificates() {
            if let Some(ext) = entry.extensions().iter().find(|e| e.critical && !understood(&ENTRY_UNDERSTOOD, &e.oid))
            {
                return Err(cert_err(
                    name,
                    format!("of {}: an entry carries the critical extension {}", ca.name, ext.oid),
                ));
            }
            revoked
                .push(Revoked { serial: entry.serial().to_bytes_be(), reason: entry.reason_code().map(|(_, r)| r.0) });
        }
        let parsed = Crl { number, this_update: crl.last_update().timestamp(), next_update, revoked };
        Ok(Some(((ca.subject.clone(), ca.key.to_bytes()), parsed)))
    }

    /// The path from the CA named `subject` (raw DER name) with `key` — the root of a city
    /// platform, which signed a seal certificate — up to the national anchor: the names of its
    /// CAs from the anchor down. The platform root's certificate must cover `signed_at`; every
    /// CA must be valid and not revoked as of `now` (unix seconds).
    pub fn path_to_anchor(
        &self,
        subject: &[u8],
        key: &VerifyingKey,
        signed_at: i64,
        now: i64,
    ) -> Result<Vec<String>, TrustError> {
        self.walk(subject, key, 0, signed_at, now, 0)
    }

    /// `below` is the number of CA certificates between this CA and the seal certificate.
    fn walk(
        &self,
        subject: &[u8],
        key: &VerifyingKey,
        below: u32,
        signed_at: i64,
        now: i64,
        depth: usize,
    ) -> Result<Vec<String>, TrustError> {
        let a = &self.anchor;
        if a.subject == subject && a.key == *key {
            if a.path_len.is_some_and(|n| below > n) {
                return Err(cert_err(&a.name, "the path is longer than the anchor's path length allows"));
            }
            if !a.valid_at(now) {
                return Err(cert_err(&a.name, "the national anchor is not valid now"));
            }
            return Ok(vec![a.name.clone()]);
        }
        if depth >= MAX_DEPTH {
            return Err(cert_err("federation", "no path to the national anchor within the depth allowed"));
        }
        let mut why = cert_err("federation", "no certificate of this CA chains to the national anchor");
        for ca in self.cas.iter().filter(|ca| ca.subject == subject && ca.key == *key && ca.subject != ca.issuer) {
            match self.extend(ca, below, signed_at, now, depth) {
                Ok(mut path) => {
                    path.push(ca.name.clone());
                    return Ok(path);
                }
                Err(e) => why = e,
            }
        }
        Err(why)
    }

    /// The path above `ca` (a certificate of the CA being walked), through each issuer whose key
    /// verifies it.
    fn extend(&self, ca: &Ca, below: u32, signed_at: i64, now: i64, depth: usize) -> Result<Vec<String>, TrustError> {
        if ca.path_len.is_some_and(|n| below > n) {
            return Err(cert_err(
                &ca.name,
                format!("path length {} allows fewer CAs below it", ca.path_len.unwrap_or(0)),
            ));
        }
        // The platform root signed the seal that signed the document: its certificate must cover
        // that time. The CAs above it vouch for it now (they may be younger than the licences).
        if below == 0 && !ca.valid_at(signed_at) {
            return Err(cert_err(&ca.name, "was not valid when the document was signed"));
        }
        if !ca.valid_at(now) {
            return Err(cert_err(&ca.name, "is not valid now (expired, or not yet valid)"));
        }
        if let Some(by) = self.key_compromised(ca) {
            return Err(cert_err(
                &ca.name,
                format!("is revoked by {by}: its key is compromised, in every certificate"),
            ));
        }
        let mut why = cert_err(&ca.name, "is not signed by any CA of the federation");
        for issuer in self.issuers_of(ca) {
            if let Err(e) = self.not_revoked(ca, issuer, now) {
                why = e;
                continue;
            }
            match self.walk(&issuer.subject, &issuer.key, below + 1, signed_at, now, depth + 1) {
                Ok(path) => return Ok(path),
                Err(e) => why = e,
            }
        }
        Err(why)
    }

    /// Whether `issuer`'s current CRL leaves `ca` standing.
    fn not_revoked(&self, ca: &Ca, issuer: &Ca, now: i64) -> Result<(), TrustError> {
        if !issuer.valid_at(now) {
            return Err(cert_err(
                &ca.name,
                format!("its issuer {} is not valid now: its status is unknown", issuer.name),
            ));
        }
        let crl = self.crl_of(issuer).ok_or_else(|| {
            cert_err(&ca.name, format!("no revocation list of {} is at hand: its status is unknown", issuer.name))
        })?;
        if now > crl.next_update || now < crl.this_update {
            return Err(cert_err(
                &ca.name,
                format!(
                    "the revocation list of {} is not current (thisUpdate {}, nextUpdate {}): its status is unknown",
                    issuer.name, crl.this_update, crl.next_update
                ),
            ));
        }
        match crl.revoked.iter().any(|r| r.serial == ca.serial) {
            true => Err(cert_err(&ca.name, format!("is revoked by {}", issuer.name))),
            false => Ok(()),
        }
    }

    /// The CA whose CRL revokes a certificate of `ca`'s key for key or CA compromise, or for no
    /// stated reason: then no certificate of that key vouches (a renewal or a second
    /// cross-certificate does not keep a compromised key alive).
    fn key_compromised(&self, ca: &Ca) -> Option<&str> {
        self.cas.iter().filter(|c| c.key == ca.key).find_map(|c| {
            self.issuers_of(c).find_map(|i| {
                let crl = self.crl_of(i)?;
                let compromised =
                    crl.revoked.iter().any(|r| r.serial == c.serial && matches!(r.reason, None | Some(0 | 1 | 2 | 10)));
                compromised.then_some(i.name.as_str())
            })
        })
    }

    /// The keys of the platform roots named `subject` (raw DER name): the CAs of path length 0
    /// that a province cross-certified (never the anchor or a province: they do not seal). A
    /// seal certificate naming `subject` as its issuer must be signed by one of them.
    pub fn platform_root_keys(&self, subject: &[u8]) -> Vec<VerifyingKey> {
        let mut keys: Vec<VerifyingKey> = self
            .cas
            .iter()
            .filter(|ca| ca.subject == subject && ca.path_len == Some(0) && ca.subject != self.anchor.subject)
            .map(|ca| ca.key)
            .collect();
        keys.dedup();
        keys
    }

    /// The CAs (the anchor among them) named as `ca`'s issuer whose key verifies it.
    fn issuers_of<'a>(&'a self, ca: &'a Ca) -> impl Iterator<Item = &'a Ca> {
        self.all().filter(move |i| i.subject == ca.issuer && ca.signed_by(&i.key))
    }

    /// The CRL that counts of the CA `ca` (by its name and key).
    fn crl_of(&self, ca: &Ca) -> Option<&Crl> {
        self.crls.get(&(ca.subject.clone(), ca.key.to_bytes()))
    }
}

/// Whether big-endian unsigned `a` is greater than `b`.
fn greater(a: &[u8], b: &[u8]) -> bool {
    let strip = |x: &[u8]| x.iter().position(|b| *b != 0).map_or(Vec::new(), |i| x[i..].to_vec());
    let (a, b) = (strip(a), strip(b));
    (a.len(), a) > (b.len(), b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keygen::{self, FederationCa, Revocation};
    use ::time::{Duration, OffsetDateTime};

    fn ts(t: OffsetDateTime) -> i64 {
        t.unix_timestamp()
    }

    fn serial(der: &[u8]) -> Vec<u8> {
        X509Certificate::from_der(der).unwrap().1.serial.to_bytes_be()
    }

    fn name_and_key(der: &[u8]) -> (Vec<u8>, VerifyingKey) {
        let (_, c) = X509Certificate::from_der(der).unwrap();
        (c.subject().as_raw().to_vec(), super::super::trust::ed25519_key(&c, "test").unwrap())
    }

    fn department() -> keygen::DepartmentSpec {
        let f: serde_json::Value = serde_json::from_str(include_str!("../../fixtures/departments.json")).unwrap();
        serde_json::from_value(f["departments"][0].clone()).unwrap()
    }

    /// The nation, two provinces, a city platform in the first (made by `keys init`, then
    /// cross-certified by its province).
    struct World {
        now: OffsetDateTime,
        nation: FederationCa,
        provinces: Vec<FederationCa>,
        city_root: Vec<u8>,
        cross: Vec<u8>,
        /// `keys/` (the city's serving keys, one department) and `root-ca/`.
        dir: tempfile::TempDir,
    }

    impl World {
        fn new() -> Self {
            let now = OffsetDateTime::now_utc();
            let (from, to) = (now - Duration::days(30), now + Duration::days(3650));
            let nation = FederationCa::national("国家政务服务平台", from, to).unwrap();
            let provinces: Vec<FederationCa> = ["广东省政务服务平台", "浙江省政务服务平台"]
                .iter()
                .map(|p| FederationCa::provincial(&nation, p, from, to).unwrap())
                .collect();
            let dir = tempfile::tempdir().unwrap();
            let (keys, root) = (dir.path().join("keys"), dir.path().join("root-ca"));
            keygen::init(&keys, &root, "深圳市政务服务平台", "licvault.test/sz", &[department()], false).unwrap();
            let pem = std::fs::read(keys.join("root.crt.pem")).unwrap();
            let city_root = x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents;
            let cross = keygen::cross_certify(&provinces[0], &city_root, to).unwrap();
            Self { now, nation, provinces, city_root, cross, dir }
        }

        /// A CRL of `ca`, current for a week.
        fn crl(&self, ca: &FederationCa, number: u64, revoked: Vec<Revocation>) -> Vec<u8> {
            keygen::revocation_list(ca, number, self.now - Duration::hours(1), self.now + Duration::days(7), &revoked)
                .unwrap()
        }

        fn fresh_crls(&self) -> Vec<Vec<u8>> {
            let mut v = vec![self.crl(&self.nation, 1, vec![])];
            v.extend(self.provinces.iter().map(|p| self.crl(p, 1, vec![])));
            v
        }

        fn federation(&self, crls: &[Vec<u8>]) -> Federation {
            let cas = vec![self.provinces[0].cert_der.clone(), self.provinces[1].cert_der.clone(), self.cross.clone()];
            Federation::from_der(&self.nation.cert_der, &cas, crls, ts(self.now)).unwrap()
        }

        /// The city root's name and key, as a seal certificate names its issuer.
        fn city(&self) -> (Vec<u8>, VerifyingKey) {
            name_and_key(&self.city_root)
        }
    }

    #[test]
    fn a_city_root_chains_through_its_province_to_the_nation() {
        let w = World::new();
        let fed = w.federation(&w.fresh_crls());
        let (subject, key) = w.city();
        let path = fed.path_to_anchor(&subject, &key, ts(w.now), ts(w.now)).unwrap();
        assert_eq!(path, ["国家政务服务平台 根证书", "广东省政务服务平台 根证书", "深圳市政务服务平台 根证书"]);
        // A key the province never certified under that name does not chain.
        let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
        assert!(fed.path_to_anchor(&subject, &other, ts(w.now), ts(w.now)).is_err());
    }

    #[test]
    fn revoking_a_province_cuts_off_its_cities_and_only_them() {
        let w = World::new();
        let (subject, key) = w.city();
        let t = ts(w.now);
        let province = serial(&w.provinces[0].cert_der);
        let revoke = |reason| vec![Revocation { serial: province.clone(), at: w.now - Duration::minutes(10), reason }];
        // Key compromise: nothing below it is vouched for any more, whenever it was signed.
        let mut crls = w.fresh_crls();
        crls.push(w.crl(&w.nation, 2, revoke(Some(rcgen::RevocationReason::KeyCompromise))));
        let fed = w.federation(&crls);
        let err = fed.path_to_anchor(&subject, &key, t - 86_400, t).unwrap_err().to_string();
        assert!(err.contains("is revoked by 国家政务服务平台"), "{err}");
        // The other province is untouched.
        let (other, other_key) = name_and_key(&w.provinces[1].cert_der);
        assert!(fed.path_to_anchor(&other, &other_key, t, t).is_ok());
        // Superseded, or any other reason: the signing time is the signer's claim, so a document
        // dated before the revocation is refused too.
        let mut crls = w.fresh_crls();
        crls.push(w.crl(&w.nation, 2, revoke(Some(rcgen::RevocationReason::Superseded))));
        let fed = w.federation(&crls);
        assert!(fed.path_to_anchor(&subject, &key, t - 86_400, t).is_err());
        assert!(fed.path_to_anchor(&subject, &key, t, t).is_err());
        // An older CRL given beside the newer one does not bring the province back.
        let mut crls = vec![w.crl(&w.nation, 2, revoke(None)), w.crl(&w.nation, 1, vec![])];
        crls.extend(w.provinces.iter().map(|p| w.crl(p, 1, vec![])));
        assert!(w.federation(&crls).path_to_anchor(&subject, &key, t - 86_400, t).is_err());
    }

    #[test]
    fn revoking_the_cross_certificate_cuts_off_the_city() {
        let w = World::new();
        let (subject, key) = w.city();
        let revoked = vec![Revocation { serial: serial(&w.cross), at: w.now - Duration::minutes(1), reason: None }];
        let crls =
            vec![w.crl(&w.nation, 1, vec![]), w.crl(&w.provinces[1], 1, vec![]), w.crl(&w.provinces[0], 5, revoked)];
        let err = w.federation(&crls).path_to_anchor(&subject, &key, ts(w.now), ts(w.now)).unwrap_err();
        assert!(err.to_string().contains("is revoked by 广东省政务服务平台"), "{err}");
    }

    /// Two provinces cross-certify one city root (one key, two certificates): one province
    /// revoking its certificate for key compromise cuts off the other path too; revoking it as
    /// superseded does not.
    #[test]
    fn a_compromised_key_is_refused_in_every_certificate() {
        let w = World::new();
        let (subject, key) = w.city();
        let t = ts(w.now);
        let to = w.now + Duration::days(3650);
        let second = keygen::cross_certify(&w.provinces[1], &w.city_root, to).unwrap();
        let cas = vec![w.provinces[0].cert_der.clone(), w.provinces[1].cert_der.clone(), w.cross.clone(), second];
        let federation = |reason| {
            let revoked = vec![Revocation { serial: serial(&w.cross), at: w.now - Duration::minutes(1), reason }];
            let crls = vec![
                w.crl(&w.nation, 1, vec![]),
                w.crl(&w.provinces[0], 2, revoked),
                w.crl(&w.provinces[1], 1, vec![]),
            ];
            Federation::from_der(&w.nation.cert_der, &cas, &crls, t).unwrap()
        };
        let path = federation(Some(rcgen::RevocationReason::Superseded)).path_to_anchor(&subject, &key, t, t).unwrap();
        assert_eq!(path[1], "浙江省政务服务平台 根证书");
        let err = federation(Some(rcgen::RevocationReason::KeyCompromise)).path_to_anchor(&subject, &key, t, t);
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("is revoked by 广东省政务服务平台 根证书: its key is compromised"));
    }

    /// Another platform's seal that names one of this platform's departments is refused when
    /// the federation is loaded (names are not constrained yet: at least no one else speaks for
    /// this platform's own departments).
    #[test]
    fn another_platforms_seal_for_one_of_ours_is_refused() {
        let w = World::new();
        let ours = tempfile::tempdir().unwrap();
        let keys = ours.path().join("keys");
        keygen::init(
            &keys,
            &ours.path().join("root-ca"),
            "另一市政务服务平台",
            "licvault.test/b",
            &[department()],
            false,
        )
        .unwrap();
        let theirs = std::fs::read_dir(w.dir.path().join("keys/departments"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".crt.pem"))
            .unwrap();
        let seal = x509_parser::pem::parse_x509_pem(&std::fs::read(theirs).unwrap()).unwrap().1.contents;
        let trust = super::super::trust::TrustList::load(&keys).unwrap();
        let err = trust.with_federation(w.federation(&w.fresh_crls()), vec![seal]).unwrap_err().to_string();
        assert!(err.contains("a department of this platform"), "{err}");
    }

    #[test]
    fn two_different_crls_with_one_number_are_refused() {
        let w = World::new();
        // Behind a higher number too: the two lists numbered 1 disagree.
        let mut crls = vec![w.crl(&w.nation, 2, vec![])];
        crls.extend(w.fresh_crls());
        crls.push(w.crl(&w.nation, 1, vec![Revocation { serial: vec![1], at: w.now, reason: None }]));
        let cas = vec![w.provinces[0].cert_der.clone()];
        let err = Federation::from_der(&w.nation.cert_der, &cas, &crls, ts(w.now)).unwrap_err();
        assert!(err.to_string().contains("same CRL number"), "{err}");
    }

    #[test]
    fn without_a_current_crl_the_status_is_unknown_and_nothing_chains() {
        let w = World::new();
        let (subject, key) = w.city();
        let t = ts(w.now);
        let crls = vec![w.crl(&w.nation, 1, vec![])];
        let err = w.federation(&crls).path_to_anchor(&subject, &key, t, t).unwrap_err().to_string();
        assert!(err.contains("no revocation list"), "{err}");
        let fed = w.federation(&w.fresh_crls());
        let err = fed.path_to_anchor(&subject, &key, t, t + 8 * 86_400).unwrap_err().to_string();
        assert!(err.contains("not current"), "{err}");
    }

    #[test]
    fn a_crl_or_certificate_signed_by_a_stranger_is_refused() {
        let w = World::new();
        let now = w.now;
        let (from, to) = (now - Duration::days(1), now + Duration::days(10));
        // The nation's name, another key: its CRL is signed by no CA of the federation.
        let stranger = FederationCa::national("国家政务服务平台", from, to).unwrap();
        let mut crls = w.fresh_crls();
        crls.push(w.crl(&stranger, 9, vec![]));
        let cas = vec![w.provinces[0].cert_der.clone(), w.cross.clone()];
        let err = Federation::from_der(&w.nation.cert_der, &cas, &crls, ts(now)).unwrap_err();
        assert!(err.to_string().contains("not signed by any CA"), "{err}");
        // A province certified by the stranger does not chain to the real anchor.
        let fake = FederationCa::provincial(&stranger, "广东省政务服务平台", from, to).unwrap();
        let cross = keygen::cross_certify(&fake, &w.city_root, to).unwrap();
        let crls = vec![w.crl(&w.nation, 1, vec![]), w.crl(&fake, 1, vec![])];
        let fed = Federation::from_der(&w.nation.cert_der, &[fake.cert_der.clone(), cross], &crls, ts(now)).unwrap();
        let (subject, key) = w.city();
        let err = fed.path_to_anchor(&subject, &key, ts(now), ts(now)).unwrap_err().to_string();
        assert!(err.contains("not signed by any CA"), "{err}");
    }

    #[test]
    fn path_length_and_validity_are_enforced() {
        let w = World::new();
        let (subject, key) = w.city();
        let fed = w.federation(&w.fresh_crls());
        // Signed before the city root (and so its cross-certificate) was valid.
        let before = ts(w.now - Duration::days(2));
        let err = fed.path_to_anchor(&subject, &key, before, ts(w.now)).unwrap_err().to_string();
        assert!(err.contains("was not valid when the document was signed"), "{err}");
        // A county CA under the province (path length 1), certifying the city: one CA more
        // below the province than its path length allows.
        let now = w.now;
        let (from, to) = (now - Duration::days(1), now + Duration::days(10));
        let county = FederationCa::provincial(&w.provinces[0], "某县平台", from, to).unwrap();
        let cross = keygen::cross_certify(&county, &w.city_root, to).unwrap();
        let cas = vec![w.provinces[0].cert_der.clone(), county.cert_der.clone(), cross];
        let mut crls = w.fresh_crls();
        crls.push(w.crl(&county, 1, vec![]));
        let fed = Federation::from_der(&w.nation.cert_der, &cas, &crls, ts(now)).unwrap();
        let err = fed.path_to_anchor(&subject, &key, ts(now), ts(now)).unwrap_err().to_string();
        assert!(err.contains("广东省政务服务平台 根证书: path length 1 allows fewer CAs"), "{err}");
    }

    #[test]
    fn crl_numbers_compare_as_numbers() {
        assert!(greater(&[2], &[1]));
        assert!(greater(&[1, 0], &[0xff]));
        assert!(!greater(&[0, 5], &[5]));
        assert!(greater(&[0, 6], &[5]));
    }
}
