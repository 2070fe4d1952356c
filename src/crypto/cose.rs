//! The signed licence document: COSE_Sign1 (RFC 9052 §4.2, CBOR tag 18) with Ed25519.
//!
//! We emit alg -8 (EdDSA) and accept -8 and -19 (Ed25519, RFC 9864). The protected header holds
//! alg and kid; the unprotected header is empty. Verification runs over the protected-header bytes
//! and payload exactly as received (coset keeps the original protected bytes) with
//! `verify_strict`, never over a re-encoding.

use coset::{iana, AsCborValue, CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable};
use ed25519_dalek::{Signature, VerifyingKey};

use super::Ed25519Signer;
use crate::cbor::MAX_INPUT;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoseError {
    #[error("document of {0} bytes is over the {MAX_INPUT}-byte limit")]
    TooLarge(usize),
    #[error("not a COSE_Sign1 document: {0}")]
    Malformed(String),
    #[error("unsupported algorithm: only EdDSA (-8) and Ed25519 (-19) are accepted")]
    Algorithm,
    #[error("the protected header carries no 8-byte kid")]
    Kid,
    #[error("the document has no payload")]
    Payload,
    #[error("signature does not verify")]
    Signature,
    #[error("the protected header marks parameter {0} critical, which this verifier does not understand")]
    Critical(String),
}

/// A COSE_Sign1 taken apart but not yet verified.
#[derive(Debug, Clone)]
pub struct Envelope {
    sign1: CoseSign1,
    kid: [u8; 8],
    /// The disclosures presented with the document (`DISCLOSURES`), each as received.
    disclosures: Vec<Vec<u8>>,
}

/// Unprotected-header label under which a presented document carries the salted disclosures the
/// holder chose (spec/formats.md §1.2): an array of byte strings, each one disclosure. The
/// unprotected header is outside the signature, as SD-CWT's `sd_claims` is; each disclosure is
/// bound by its digest in the signed payload instead. A private-use label (RFC 9052 §16.3).
pub const DISCLOSURES: i64 = -65537;

/// Most disclosures one presented document may carry (a licence has a few dozen values at most).
pub const MAX_DISCLOSURES: usize = 64;

/// The COSE header parameter `typ` (RFC 9596): the media type of the payload.
pub const HEADER_TYP: i64 = 16;

/// Signs `payload` (deterministic CBOR of the CWT claims) into tagged COSE_Sign1 bytes.
pub fn sign(signer: &Ed25519Signer, payload: Vec<u8>) -> Vec<u8> {
    sign_with(signer, HeaderBuilder::new(), payload)
}

/// Like [`sign`], with the media type `typ` (header label 16, RFC 9596) in the protected header.
pub fn sign_typed(signer: &Ed25519Signer, typ: &str, payload: Vec<u8>) -> Vec<u8> {
    sign_with(signer, HeaderBuilder::new().value(HEADER_TYP, ciborium::Value::Text(typ.into())), payload)
}

fn sign_with(signer: &Ed25519Signer, header: HeaderBuilder, payload: Vec<u8>) -> Vec<u8> {
    let protected = header.algorithm(iana::Algorithm::EdDSA).key_id(signer.kid().to_vec()).build();
    let sign1 = CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .create_signature(b"", |tbs| signer.sign(tbs).to_vec())
        .build();
    // Encoding a structure we just built only allocates: it cannot fail.
    sign1.to_tagged_vec().expect("encoding a fresh COSE_Sign1 does not fail")
}

/// `document` (a COSE_Sign1 as issued) with `disclosures` in its unprotected header: what a
/// holder presents. The signature is untouched.
pub fn with_disclosures(document: &[u8], disclosures: &[&[u8]]) -> Result<Vec<u8>, CoseError> {
    let mut sign1 = CoseSign1::from_tagged_slice(document)
        .or_else(|_| CoseSign1::from_slice(document))
        .map_err(|e| CoseError::Malformed(e.to_string()))?;
    put_disclosures(&mut sign1.unprotected, disclosures.iter().map(|d| d.to_vec()));
    sign1.to_tagged_vec().map_err(|e| CoseError::Malformed(e.to_string()))
}

/// Puts `disclosures` in `header` under [`DISCLOSURES`], in place of any there; none leaves the
/// label out.
fn put_disclosures(header: &mut coset::Header, disclosures: impl Iterator<Item = Vec<u8>>) {
    header.rest.retain(|(label, _)| *label != coset::Label::Int(DISCLOSURES));
    let items: Vec<ciborium::Value> = disclosures.map(ciborium::Value::Bytes).collect();
    if !items.is_empty() {
        header.rest.push((coset::Label::Int(DISCLOSURES), ciborium::Value::Array(items)));
    }
}

/// A COSE_Sign1, tagged or not, decoded once by `cbor::decode` (one pass for deterministic input,
/// ciborium's decoder otherwise: the same value either way). What that refuses goes through
/// coset's own decoding, which says why.
fn decode_sign1(bytes: &[u8]) -> Result<CoseSign1, CoseError> {
    let decoded = crate::cbor::decode(bytes).ok().and_then(|v| match v {
        ciborium::Value::Tag(CoseSign1::TAG, inner) => CoseSign1::from_cbor_value(*inner).ok(),
        v @ ciborium::Value::Array(_) => CoseSign1::from_cbor_value(v).ok(),
        _ => None,
    });
    match decoded {
        Some(s) => Ok(s),
        None => CoseSign1::from_tagged_slice(bytes).or_else(|tagged_err| {
            CoseSign1::from_slice(bytes).map_err(|_| CoseError::Malformed(tagged_err.to_string()))
        }),
    }
}

impl Envelope {
    /// Parses tagged COSE_Sign1 bytes (an untagged COSE_Sign1 is accepted too, as RFC 9052 §2
    /// allows when the context says what it is).
    pub fn parse(bytes: &[u8]) -> Result<Self, CoseError> {
        if bytes.len() > MAX_INPUT {
            return Err(CoseError::TooLarge(bytes.len()));
        }
        let sign1 = decode_sign1(bytes)?;
        let alg_ok = matches!(
            sign1.protected.header.alg,
            Some(coset::RegisteredLabelWithPrivate::Assigned(iana::Algorithm::EdDSA))
                | Some(coset::RegisteredLabelWithPrivate::Assigned(iana::Algorithm::Ed25519))
        );
        if !alg_ok {
            return Err(CoseError::Algorithm);
        }
        let kid: [u8; 8] = sign1.protected.header.key_id.as_slice().try_into().map_err(|_| CoseError::Kid)?;
        if sign1.payload.is_none() {
            return Err(CoseError::Payload);
        }
        // RFC 9052 §3.1: `crit` belongs in the protected header; a recipient that does not
        // understand a parameter listed in it must refuse the message. We understand alg (1)
        // and kid (4) only.
        if !sign1.unprotected.crit.is_empty() {
            return Err(CoseError::Critical("crit in the unprotected header".into()));
        }
        for label in &sign1.protected.header.crit {
            let known = matches!(
                label,
                coset::RegisteredLabelWithPrivate::Assigned(iana::HeaderParameter::Alg | iana::HeaderParameter::Kid)
            );
            if !known {
                return Err(CoseError::Critical(format!("{label:?}")));
            }
        }
        let mut disclosures = Vec::new();
        for (label, value) in &sign1.unprotected.rest {
            match (label, value) {
                (coset::Label::Int(DISCLOSURES), ciborium::Value::Array(items))
                    if (1..=MAX_DISCLOSURES).contains(&items.len()) =>
                {
                    for item in items {
                        match item {
                            ciborium::Value::Bytes(b) => disclosures.push(b.clone()),
                            _ => return Err(CoseError::Malformed("a disclosure must be a byte string".into())),
                        }
                    }
                }
                (coset::Label::Int(DISCLOSURES), _) => {
                    return Err(CoseError::Malformed(format!(
                        "disclosures must be an array of 1 to {MAX_DISCLOSURES} byte strings"
                    )))
                }
                // Other unprotected parameters are unsigned hints; none is acted on.
                _ => {}
            }
        }
        Ok(Self { sign1, kid, disclosures })
    }

    /// The document as issued ([`Envelope::issued_bytes`]) when `presented` (the bytes this
    /// envelope was parsed from) is exactly it with the disclosures added as [`with_disclosures`]
    /// adds them: no other re-encoding, no other unprotected parameter. `None` otherwise.
    ///
    /// Read off the bytes rather than re-encoded: what coset would write for this envelope is
    /// its tag and array heads, the protected header as received, the unprotected header with the
    /// disclosures alone, and the payload and signature with their heads in shortest form; so
    /// `presented` must be those, and the document as issued is the same with an empty
    /// unprotected header (`issued_if_exact_re_encoding` in the tests is the former way).
    pub fn issued_if_exact(&self, presented: &[u8]) -> Option<Vec<u8>> {
        let items = presented.strip_prefix(&[0xd2, 0x84])?;
        let mut r = crate::cbor::Reader::new(items).ok()?;
        r.bytes("protected header").ok()?;
        let unprotected_at = r.position();
        r.skip().ok()?;
        let payload_at = r.position();
        r.bytes("payload").ok()?;
        r.bytes("signature").ok()?;
        r.finish().ok()?;
        let mut header = coset::Header::default();
        put_disclosures(&mut header, self.disclosures.iter().cloned());
        let mut unprotected = Vec::new();
        ciborium::into_writer(&header.to_cbor_value().ok()?, &mut unprotected).ok()?;
        if items[unprotected_at..payload_at] != unprotected[..] {
            return None;
        }
        Some([&presented[..2], &items[..unprotected_at], &[0xa0], &items[payload_at..]].concat())
    }

    /// The disclosures presented with the document, as received (not yet checked against the
    /// payload's digests).
    pub fn disclosures(&self) -> &[Vec<u8>] {
        &self.disclosures
    }

    /// The document as issued: tagged, with an empty unprotected header (what the log's document
    /// hash covers when the vault made it). Only [`Envelope::issued_if_exact`] says
    /// whether the presented bytes are exactly these plus the disclosures.
    pub fn issued_bytes(&self) -> Vec<u8> {
        let mut bare = self.sign1.clone();
        bare.unprotected = coset::Header::default();
        bare.to_tagged_vec().unwrap_or_default()
    }

    pub fn kid(&self) -> [u8; 8] {
        self.kid
    }

    /// A text parameter of the protected header (such as [`HEADER_TYP`]).
    pub fn protected_text(&self, label: i64) -> Option<&str> {
        self.sign1
            .protected
            .header
            .rest
            .iter()
            .find(|(l, _)| *l == coset::Label::Int(label))
            .and_then(|(_, v)| v.as_text())
    }

    /// Re-encodes the document (tagged). Verification never uses this; the golden test does, to
    /// show our encoding is stable.
    pub fn to_tagged_bytes(&self) -> Vec<u8> {
        self.sign1.clone().to_tagged_vec().unwrap_or_default()
    }

    /// SHA-256 over the protected-header bytes as received, the payload and the signature: the
    /// same for every byte-level re-encoding of one signed document (definite or indefinite
    /// lengths, tagged or not, unprotected header), different for any other signature.
    pub fn signed_content_sha256(&self) -> [u8; 32] {
        let protected = self.sign1.protected.original_data.clone().unwrap_or_default();
        let mut buf = Vec::with_capacity(protected.len() + self.payload().len() + 72);
        for part in [protected.as_slice(), self.payload(), self.sign1.signature.as_slice()] {
            buf.extend_from_slice(&(part.len() as u64).to_be_bytes());
            buf.extend_from_slice(part);
        }
        super::sha256(&buf)
    }

    pub fn payload(&self) -> &[u8] {
        self.sign1.payload.as_deref().unwrap_or_default()
    }

    /// `verify_strict` over Sig_structure built from the received protected bytes.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), CoseError> {
        self.sign1.verify_signature(b"", |sig, tbs| {
            let sig: [u8; 64] = sig.try_into().map_err(|_| CoseError::Signature)?;
            key.verify_strict(tbs, &Signature::from_bytes(&sig)).map_err(|_| CoseError::Signature)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn signer() -> Ed25519Signer {
        Ed25519Signer::new(SigningKey::from_bytes(&[7u8; 32]), b"not really a certificate", "11440300MB2000100X")
    }

    #[test]
    fn unknown_critical_parameters_are_refused() {
        let s = signer();
        let protected = HeaderBuilder::new()
            .algorithm(iana::Algorithm::EdDSA)
            .key_id(s.kid().to_vec())
            .add_critical(iana::HeaderParameter::ContentType)
            .content_format(iana::CoapContentFormat::Cbor)
            .build();
        let signed = |protected: coset::Header| {
            CoseSign1Builder::new()
                .protected(protected)
                .payload(vec![0xa0])
                .create_signature(b"", |tbs| s.sign(tbs).to_vec())
                .build()
                .to_tagged_vec()
                .unwrap()
        };
        let doc = signed(protected);
        assert!(matches!(Envelope::parse(&doc), Err(CoseError::Critical(_))));
        // Listing only what we understand is fine.
        let protected = HeaderBuilder::new()
            .algorithm(iana::Algorithm::EdDSA)
            .key_id(s.kid().to_vec())
            .add_critical(iana::HeaderParameter::Alg)
            .build();
        let doc = signed(protected);
        Envelope::parse(&doc).unwrap().verify(&s.verifying_key()).unwrap();
        // `crit` outside the protected header is refused whatever it lists.
        let mut sign1 = CoseSign1::from_tagged_slice(&doc).unwrap();
        sign1.unprotected.crit = vec![coset::RegisteredLabelWithPrivate::Assigned(iana::HeaderParameter::Alg)];
        let moved = sign1.to_tagged_vec().unwrap();
        assert!(matches!(Envelope::parse(&moved), Err(CoseError::Critical(_))));
    }

    #[test]
    fn re_encodings_share_the_signed_content_hash() {
        let s = signer();
        let doc = sign(&s, vec![0xa0]);
        let untagged = doc[1..].to_vec();
        let a = Envelope::parse(&doc).unwrap();
        let b = Envelope::parse(&untagged).unwrap();
        assert_ne!(doc, untagged);
        assert_eq!(a.signed_content_sha256(), b.signed_content_sha256());
        let other = Envelope::parse(&sign(&s, vec![0xa1, 0x01, 0x02])).unwrap();
        assert_ne!(a.signed_content_sha256(), other.signed_content_sha256());
    }

    #[test]
    fn sign_then_verify() {
        let s = signer();
        let doc = sign(&s, vec![0xa0]);
        assert_eq!(doc[0], 0xd2, "tag 18");
        let env = Envelope::parse(&doc).unwrap();
        assert_eq!(env.kid(), s.kid());
        assert_eq!(env.payload(), &[0xa0]);
        env.verify(&s.verifying_key()).unwrap();
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert_eq!(env.verify(&other), Err(CoseError::Signature));
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let s = signer();
        let doc = sign(&s, vec![0xa1, 0x01, 0x02]);
        for i in 0..doc.len() {
            for bit in 0..8 {
                let mut bad = doc.clone();
                bad[i] ^= 1 << bit;
                let ok = Envelope::parse(&bad).and_then(|e| {
                    if e.kid() != s.kid() {
                        return Err(CoseError::Kid);
                    }
                    e.verify(&s.verifying_key())
                });
                assert!(ok.is_err(), "flip of bit {bit} in byte {i} went unnoticed");
            }
        }
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for input in [&b""[..], &[0xd2], &[0xd2, 0x84], &[0xff; 40], &[0x84, 0x40, 0xa0, 0x40, 0x40]] {
            assert!(Envelope::parse(input).is_err());
        }
    }

    /// [`Envelope::issued_if_exact`] as it was: re-encode and compare.
    fn issued_if_exact_re_encoding(env: &Envelope, presented: &[u8]) -> Option<Vec<u8>> {
        let mut sign1 = env.sign1.clone();
        sign1.unprotected = coset::Header::default();
        put_disclosures(&mut sign1.unprotected, env.disclosures.iter().cloned());
        if sign1.clone().to_tagged_vec().ok()? != presented {
            return None;
        }
        sign1.unprotected = coset::Header::default();
        sign1.to_tagged_vec().ok()
    }

    proptest::proptest! {
        /// The document as issued read off the bytes is the one re-encoding gave, on documents
        /// with and without disclosures, tagged or not, with a byte changed, dropped or added,
        /// and with other unprotected parameters.
        #[test]
        fn issued_bytes_are_read_off_as_re_encoding_made_them(at in proptest::prelude::any::<proptest::sample::Index>(), byte: u8, how in 0u8..4, untag: bool, with in 0usize..3, other: bool) {
            let s = signer();
            let doc = sign(&s, crate::domain::licence::tests::sample().to_payload());
            let disclosures: [&[u8]; 2] = [b"one", b"two"];
            let mut doc = if with > 0 { with_disclosures(&doc, &disclosures[..with]).unwrap() } else { doc };
            if other {
                let mut sign1 = CoseSign1::from_tagged_slice(&doc).unwrap();
                sign1.unprotected.rest.push((coset::Label::Int(7), ciborium::Value::Integer(1.into())));
                doc = sign1.to_tagged_vec().unwrap();
            }
            if untag {
                doc.remove(0);
            }
            crate::cbor::tests::mutate(&mut doc, at, byte, how);
            if let Ok(env) = Envelope::parse(&doc) {
                proptest::prop_assert_eq!(env.issued_if_exact(&doc), issued_if_exact_re_encoding(&env, &doc));
            }
        }
    }

    /// How `Envelope::parse` decoded before it decoded through `cbor::decode`: coset alone.
    fn coset_alone(bytes: &[u8]) -> Result<CoseSign1, String> {
        CoseSign1::from_tagged_slice(bytes)
            .or_else(|tagged| CoseSign1::from_slice(bytes).map_err(|_| CoseError::Malformed(tagged.to_string())))
            .map_err(|e| e.to_string())
    }

    /// Every first byte (the tag's head, another tag, an array's head, anything) before a
    /// document, with and without disclosures: decoded as coset decoded it.
    #[test]
    fn every_head_decodes_as_coset_decoded_it() {
        let s = signer();
        let doc = sign(&s, crate::domain::licence::tests::sample().to_payload());
        for doc in [with_disclosures(&doc, &[b"one"]).unwrap(), doc] {
            for first in 0..=255u8 {
                for bytes in [[&[first][..], &doc[1..]].concat(), [&[first][..], &doc[..]].concat()] {
                    assert_eq!(decode_sign1(&bytes).map_err(|e| e.to_string()), coset_alone(&bytes), "{first:02x}");
                }
            }
        }
    }

    proptest::proptest! {
        /// The COSE_Sign1 decoded through `cbor::decode` is coset's, and what coset refuses is
        /// refused with coset's words: documents with and without disclosures, tagged and not,
        /// with a byte changed, dropped or added.
        #[test]
        fn envelopes_decode_as_coset_decoded_them(at in proptest::prelude::any::<proptest::sample::Index>(), byte: u8, how in 0u8..4, untag: bool, with: bool) {
            let s = signer();
            let doc = sign(&s, crate::domain::licence::tests::sample().to_payload());
            let mut doc = if with { with_disclosures(&doc, &[b"one", b"two"]).unwrap() } else { doc };
            if untag {
                doc.remove(0);
            }
            crate::cbor::tests::mutate(&mut doc, at, byte, how);
            proptest::prop_assert_eq!(decode_sign1(&doc).map_err(|e| e.to_string()), coset_alone(&doc));
        }

        /// Untrusted bytes never panic: arbitrary input, and valid documents with bytes changed.
        #[test]
        fn parsing_never_panics(junk: Vec<u8>, at: usize, byte: u8) {
            let _ = Envelope::parse(&junk);
            let s = signer();
            let mut doc = sign(&s, crate::domain::licence::tests::sample().to_payload());
            let i = at % doc.len();
            doc[i] = byte;
            if let Ok(env) = Envelope::parse(&doc) {
                let _ = env.verify(&s.verifying_key());
                let _ = crate::domain::Licence::from_payload(env.payload());
            }
        }
    }
}
