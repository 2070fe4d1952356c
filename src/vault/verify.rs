//! Verification of a presented document: the offline part (format, trust chain, signature,
//! claims, validity period) is [`verify_offline`], shared with `licvault verify --trust`; the
//! vault adds what only the log knows (is it in the log, what is its status now).

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use serde::Serialize;

use super::rfc3339_s;
use super::{unix_now, Vault, VaultError};
use crate::crypto::cose::Envelope;
use crate::crypto::{sha256, DepartmentCert, TrustList};
use crate::domain::presentation::Presentation;
use crate::domain::{Disclosure, Presented, Status};
use crate::log::sequencer::Head;
use crate::qr;
use crate::store::Cf;

/// The verdict words of `POST /v1/verify` (spec/openapi.yaml `Verdict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    Valid,
    Suspended,
    Withdrawn,
    Annulled,
    Revoked,
    Cancelled,
    Superseded,
    Expired,
    NotYetValid,
    InvalidSignature,
    UnknownIssuer,
    NotInLog,
    Malformed,
    /// An annotated copy (加注件) within its validity, recorded in the log; the original's status
    /// now is beside it (the answer's `valid` needs that to be `valid` too).
    AnnotatedCopy,
    /// Signed by another platform's department that the federation vouches for, but in no log
    /// this node mirrors: its status is not known here.
    NotMirrored,
}

impl VerdictKind {
    /// The words shown to people (DOMAIN.md "Status words on screen").
    pub fn words_zh(self) -> &'static str {
        match self {
            Self::Valid => Status::Valid.words_zh(),
            Self::Suspended => Status::Suspended.words_zh(),
            Self::Withdrawn => Status::Withdrawn.words_zh(),
            Self::Annulled => Status::Annulled.words_zh(),
            Self::Revoked => Status::Revoked.words_zh(),
            Self::Cancelled => Status::Cancelled.words_zh(),
            Self::Superseded => Status::Superseded.words_zh(),
            Self::Expired => Status::Expired.words_zh(),
            Self::NotYetValid => Status::NotYetValid.words_zh(),
            Self::InvalidSignature => "无效（签名不符）",
            Self::UnknownIssuer => "无效（签发机关不在信任列表）",
            Self::NotInLog => "无效（证照库无此证照）",
            Self::Malformed => "无效（无法识读）",
            Self::AnnotatedCopy => "加注件",
            Self::NotMirrored => "无法核验状态（其他平台签发，本节点未镜像其日志）",
        }
    }
}

impl From<Status> for VerdictKind {
    fn from(s: Status) -> Self {
        match s {
            Status::Valid => Self::Valid,
            Status::Suspended => Self::Suspended,
            Status::Withdrawn => Self::Withdrawn,
            Status::Annulled => Self::Annulled,
            Status::Revoked => Self::Revoked,
            Status::Cancelled => Self::Cancelled,
            Status::Superseded => Self::Superseded,
            Status::Expired => Self::Expired,
            Status::NotYetValid => Self::NotYetValid,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Verdict {
    pub kind: VerdictKind,
    pub reasons: Vec<String>,
    /// The licence as the document (and the disclosures presented with it) shows it; shared
    /// with [`Vault`]'s memo of payloads recognised before.
    pub licence: Option<Arc<Presented>>,
    pub issuer_cert: Option<String>,
    /// Log index of the issuance leaf.
    pub log_index: Option<u64>,
    /// The status holds as of this log size (the signed head covering it).
    pub log_size: Option<u64>,
    /// For an annotated copy: what it says, and its original's status now.
    pub copy: Option<CopyVerdict>,
    /// For a one-time presentation: what it says.
    pub presentation: Option<Presentation>,
    /// For a superseded licence: its successor's id and the kind of new version it is.
    pub successor: Option<(String, Option<crate::domain::VersionKind>)>,
    /// For a document not in this vault's log: the federation's path to its platform, and the
    /// mirrored log that holds it.
    pub elsewhere: Option<Elsewhere>,
}

/// Where a document from outside this vault's log was found.
#[derive(Debug, Clone)]
pub struct Elsewhere {
    /// The CAs from the national anchor down to the platform root that vouch for its seal
    /// (empty for this platform's own seals).
    pub platform: Vec<String>,
    /// The mirror holding it: the source's name, its log's origin, and the size of that log
    /// the status holds as of.
    pub mirror: Option<(String, String, u64)>,
    /// Why the mirror's state may be out of date (it forked, or lags more than its limit): the
    /// status is then the one as of its size, and not taken as valid.
    pub stale: Option<String>,
}

/// What `POST /v1/verify` says about an annotated copy.
#[derive(Debug, Clone)]
pub struct CopyVerdict {
    pub annotation: crate::domain::annotation::Annotation,
    /// The `licence.used` leaf that recorded the copy.
    pub log_index: u64,
    /// The original's status now; `None` once the copy has expired.
    pub original_status: Option<Status>,
}

/// Counters of `POST /v1/verify` (`GET /metrics`).
#[derive(Debug, Clone, Copy)]
pub struct VerifyStats {
    /// Documents recognised by their hash in the log.
    pub by_hash: u64,
    /// Of those, payloads found in the memo of recognised payloads.
    pub memo_hits: u64,
    /// What the memo holds, by its estimate.
    pub memo_bytes: u64,
}

/// Why a document failed the offline checks.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub kind: VerdictKind,
    pub reason: String,
}

impl Refusal {
    fn new(kind: VerdictKind, reason: impl Into<String>) -> Self {
        Self { kind, reason: reason.into() }
    }
}

impl Verdict {
    fn refused(kind: VerdictKind, reason: impl Into<String>) -> Self {
        Self::with_reasons(kind, vec![reason.into()])
    }

    /// A verdict of `kind` for `reasons`, saying nothing else yet.
    fn with_reasons(kind: VerdictKind, reasons: Vec<String>) -> Self {
        Self {
            kind,
            reasons,
            licence: None,
            issuer_cert: None,
            log_index: None,
            log_size: None,
            copy: None,
            presentation: None,
            successor: None,
            elsewhere: None,
        }
    }
}

impl From<Refusal> for Verdict {
    fn from(r: Refusal) -> Self {
        Self::refused(r.kind, r.reason)
    }
}

/// Turns a presented payload into COSE bytes: an `LV1:` or `LV2:` QR payload, or base64 (standard
/// or URL-safe, padded or not) of the COSE_Sign1 bytes.
pub fn decode_presented(payload: &str) -> Result<Vec<u8>, String> {
    let p = payload.trim();
    if p.starts_with(qr::PREFIX) || p.starts_with(qr::PREFIX_DICT) {
        return qr::decode(p).map_err(|e| e.to_string());
    }
    if p.len() > crate::cbor::MAX_INPUT * 2 {
        return Err("payload too long".into());
    }
    STANDARD
        .decode(p)
        .or_else(|_| URL_SAFE.decode(p))
        .or_else(|_| URL_SAFE_NO_PAD.decode(p))
        .map_err(|_| "payload is neither an LV1:/LV2: QR payload nor base64 of a COSE_Sign1 document".to_string())
}

/// What the offline checks establish about a presented document.
pub struct Checked<'t> {
    /// The licence as the document and its presented disclosures show it.
    pub licence: Presented,
    pub cert: &'t DepartmentCert,
    /// The validity-derived status at the time of the check.
    pub status: Status,
    pub envelope: Envelope,
    /// Another platform's seal: the CAs from the national anchor down to its platform root that
    /// vouch for it (empty for this platform's own).
    pub platform: Vec<String>,
}

/// Everything that can be checked with the trust list alone: the signature, the claims, each
/// presented disclosure against its digest, the validity period at `now`.
pub fn verify_offline<'t>(trust: &'t TrustList, document: &[u8], now: i64) -> Result<Checked<'t>, Refusal> {
    verify_offline_with(trust, document, now, |_, _| false)
}

/// [`verify_offline`], except that the signature is not checked when `signed_already` says the
/// vault holds these very bytes in its log (it signed them itself at issuance). Every other
/// check runs, in the same order, so the verdict is the same (`verify::tests` and the property
/// test `by_hash::same_verdicts_by_hash_and_by_signature_before_and_after_trust_changes`
/// compare them).
pub fn verify_offline_with<'t>(
    trust: &'t TrustList,
    document: &[u8],
    now: i64,
    signed_already: impl FnOnce(&Envelope, &Presented) -> bool,
) -> Result<Checked<'t>, Refusal> {
    let env = Envelope::parse(document).map_err(|e| Refusal::new(VerdictKind::Malformed, e.to_string()))?;
    let cert = trust.department(&env.kid()).ok_or_else(|| {
        Refusal::new(
            VerdictKind::UnknownIssuer,
            format!("no department certificate with kid {}", hex::encode(env.kid())),
        )
    })?;
    let parsed = env
        .disclosures()
        .iter()
        .map(|d| Disclosure::parse(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Refusal::new(VerdictKind::Malformed, format!("a presented disclosure is malformed: {e}")))
        .and_then(|disclosures| {
            Presented::parse(env.payload(), &disclosures)
                .map_err(|e| Refusal::new(VerdictKind::Malformed, format!("signed payload is not a licence: {e}")))
        });
    // A signature that does not verify is reported before anything the payload says.
    if !matches!(&parsed, Ok(l) if signed_already(&env, l)) {
        env.verify(&cert.key).map_err(|_| {
            Refusal::new(
                VerdictKind::InvalidSignature,
                format!("signature does not verify under {}'s seal key", cert.name),
            )
        })?;
    }
    let mut licence = parsed?;
    let platform = check_claims(trust, cert, &licence, now)?;
    if licence.compact_of.is_some() {
        // A compact document names no issuer: the certificate that signed it does.
        licence.issuer_name = cert.name.clone();
    }
    let status = Status::Valid.effective(now, licence.valid_from, licence.valid_until, None);
    Ok(Checked { licence, cert, status, envelope: env, platform })
}

/// The checks after the signature: the licence names the department whose seal signed it, was
/// issued within the validity of that seal (and of this platform's root), and, for another
/// platform's seal, the federation vouches for that platform at `now`: the CAs that do.
fn check_claims(
    trust: &TrustList,
    cert: &DepartmentCert,
    licence: &Presented,
    now: i64,
) -> Result<Vec<String>, Refusal> {
    if licence.issuer().as_str() != cert.uscc.as_str() {
        return Err(Refusal::new(
            VerdictKind::InvalidSignature,
            format!("signed by {} ({}) but claims issuer {}", cert.name, cert.uscc, licence.issuer()),
        ));
    }
    let foreign = trust.is_foreign(&cert.kid);
    if !cert.valid_at(licence.issued_at) || !foreign && !trust.root_valid_at(licence.issued_at) {
        return Err(Refusal::new(
            VerdictKind::InvalidSignature,
            "issued at a time outside the validity of the signing certificate".to_string(),
        ));
    }
    // Another platform's department: its root must chain to the national anchor, unrevoked.
    trust.federation_vouches(&cert.kid, licence.issued_at, now).map_err(|why| {
        Refusal::new(VerdictKind::UnknownIssuer, format!("the federation does not vouch for its platform: {why}"))
    })
}

/// A presented payload the vault recognised by its hash, kept by its text ([`Vault`]'s memo):
/// what decoding and parsing it gave, which depends on the text alone. Trust, the record and
/// the time are checked again each time it is presented.
struct Recognised {
    kid: [u8; 8],
    licence: Arc<Presented>,
    /// The SHA-256 of the document as issued ([`issued_sha256`]).
    issued: [u8; 32],
}

/// What a memo entry holds in memory, near enough: its key, and the licence it decoded (the
/// text of its face again, with the strings and maps around it).
#[derive(Clone)]
struct RecognisedWeight;

impl quick_cache::Weighter<Box<str>, Arc<Recognised>> for RecognisedWeight {
    fn weight(&self, key: &Box<str>, r: &Arc<Recognised>) -> u64 {
        let l = &r.licence;
        let holders: usize = std::iter::once(&l.holder).chain(&l.co_holders).map(|h| h.name.len() + 96).sum();
        let fields: usize = l.fields.iter().map(|(k, v)| k.len() + v.len() + 64).sum();
        let strings = l.type_name.len() + l.number.len() + l.issuer_name.len() + l.area_code.len();
        (key.len() + holders + fields + strings + l.disclosed.len() * 48 + 512) as u64
    }
}

/// Payloads recognised once, by a fingerprint of their text in a slot it chooses: a payload
/// goes into the memo the second time it is recognised (if no other has taken its slot
/// meanwhile), so that one shown only once pays a hash of its text, not [`made_here`]'s
/// compression of its document (~29 µs, as much as the rest of its verification).
struct SeenOnce {
    slots: Box<[std::sync::atomic::AtomicU64]>,
    keys: std::hash::RandomState,
}

/// 2 MiB of fingerprints: at 40,000 new payloads a second, one seen a second ago is still
/// remembered as seen with a chance of 86 %.
const SEEN_ONCE_SLOTS: usize = 1 << 18;

impl SeenOnce {
    fn new() -> Self {
        let slots = (0..SEEN_ONCE_SLOTS).map(|_| std::sync::atomic::AtomicU64::new(0)).collect();
        Self { slots, keys: std::hash::RandomState::new() }
    }

    /// The fingerprint of `text` (odd, so never 0, the empty slot's value; the keys are
    /// random, so no sender chooses slots) and its slot.
    fn slot(&self, text: &str) -> (u64, &std::sync::atomic::AtomicU64) {
        use std::hash::BuildHasher;
        let print = self.keys.hash_one(text) | 1;
        (print, &self.slots[(print >> 32) as usize % SEEN_ONCE_SLOTS])
    }

    /// Whether `text` was seen before and may go into the memo: `false` the first time (it is
    /// remembered as seen), and `false` for a text [`SeenOnce::not_ours`] marked.
    fn again(&self, text: &str) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let (print, slot) = self.slot(text);
        match slot.load(Relaxed) {
            was if was == print => true,
            was if was == print ^ 2 => false,
            _ => {
                slot.store(print, Relaxed);
                false
            }
        }
    }

    /// `text` is not the vault's own ([`made_here`]): it is not checked again while its slot
    /// holds the mark, so sending it again and again costs no compression.
    fn not_ours(&self, text: &str) {
        let (print, slot) = self.slot(text);
        slot.store(print ^ 2, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Bytes of recognised payloads the memo keeps by default (`--verify-memo-mib`): some 10,000 QR
/// payloads with their licences.
pub const RECOGNISED_BYTES: u64 = 32 << 20;

/// The memo of recognised payloads (spec/formats.md §11): what a payload's text gave, by the
/// text, for the payloads the vault recognised by hash.
pub(super) struct Memo {
    entries: quick_cache::sync::Cache<Box<str>, Arc<Recognised>, RecognisedWeight>,
    seen_once: SeenOnce,
    /// `--verify-memo-mib` is not 0 (a flag: the cache's capacity is summed over its shards'
    /// locks).
    on: std::sync::atomic::AtomicBool,
    hits: AtomicU64,
}

impl Memo {
    pub(super) fn new() -> Self {
        Self {
            entries: quick_cache::sync::Cache::with_weighter(8_192, RECOGNISED_BYTES, RecognisedWeight),
            seen_once: SeenOnce::new(),
            on: std::sync::atomic::AtomicBool::new(true),
            hits: AtomicU64::new(0),
        }
    }

    fn on(&self) -> bool {
        self.on.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A payload recognised by hash, whose text is `text`: remembered the second time it comes,
    /// if `ours` says the text is the vault's own ([`made_here`]; asked once, then the answer
    /// is kept in its slot).
    fn offer(&self, text: &str, ours: impl FnOnce() -> bool, seen: impl FnOnce() -> Recognised) {
        if !self.seen_once.again(text) {
            return;
        }
        if ours() {
            self.entries.insert(text.into(), Arc::new(seen()));
        } else {
            self.seen_once.not_ours(text);
        }
    }
}

/// The SHA-256 the log holds for a presented document: of the bytes as issued (disclosures travel
/// outside the signed bytes, so the log's hash covers the document without them); for a compact
/// document, the full document's hash it carries (signed by the same seal: the log binds that
/// one). All zeros when the bytes around the signed content differ from what the vault wrote
/// (the re-encoding path decides then).
fn issued_sha256(env: &Envelope, compact_of: Option<[u8; 32]>, document: &[u8]) -> [u8; 32] {
    match (compact_of, env.disclosures()) {
        (Some(full), _) => full,
        (None, []) => sha256(document),
        (None, _) => env.issued_if_exact(document).map_or([0; 32], |issued| sha256(&issued)),
    }
}

/// Whether `text` is the payload the vault itself makes of `document` (`LV1:`/`LV2:` as
/// `qr::encode_as` makes it, or standard base64), with its disclosures in key order (as the
/// vault puts them, `Stored::choose`). Only such texts are remembered: the many other texts
/// of the same bytes (another zlib stream, URL-safe base64, the disclosures in another order)
/// verify alike but would each take a place in the memo.
fn made_here(text: &str, document: &[u8], envelope: &Envelope) -> bool {
    let keys: Option<Vec<_>> =
        envelope.disclosures().iter().map(|d| Disclosure::parse(d).ok().map(|d| d.key)).collect();
    if !keys.is_some_and(|k| k.windows(2).all(|w| w[0] < w[1])) {
        return false;
    }
    match (text.starts_with(qr::PREFIX), text.starts_with(qr::PREFIX_DICT)) {
        (true, _) => qr::encode_as(document, qr::Format::Lv1) == text,
        (_, true) => qr::encode_as(document, qr::Format::Lv2) == text,
        _ => STANDARD.encode(document) == text,
    }
}

fn signature_verifies(cert: &DepartmentCert) -> String {
    format!("signature verifies under {} ({})", cert.name, cert.uscc)
}

impl Vault {
    /// The logs this node mirrors (set once, at start).
    pub fn set_mirrors(&self, mirrors: Arc<crate::mirror::Mirrors>) {
        let _ = self.mirrors.set(mirrors);
    }

    pub fn mirrors(&self) -> Option<&Arc<crate::mirror::Mirrors>> {
        self.mirrors.get()
    }

    /// Whether `POST /v1/verify` may recognise a document whose exact bytes are in the log by
    /// their hash instead of checking its signature again (`--verify-by-hash`).
    pub fn set_verify_by_hash(&self, on: bool) {
        self.verify_by_hash.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes of recognised payloads to keep by their text (`--verify-memo-mib`); 0 keeps none,
    /// and forgets those kept.
    pub fn set_verify_memo(&self, bytes: u64) {
        self.memo.on.store(bytes > 0, std::sync::atomic::Ordering::Relaxed);
        if bytes == 0 {
            self.memo.entries.clear();
        } else {
            self.memo.entries.set_capacity(bytes);
        }
    }

    /// What `GET /metrics` says of `POST /v1/verify`.
    pub fn verify_stats(&self) -> VerifyStats {
        VerifyStats {
            by_hash: self.by_hash.load(std::sync::atomic::Ordering::Relaxed),
            memo_hits: self.memo.hits.load(std::sync::atomic::Ordering::Relaxed),
            memo_bytes: self.memo.entries.weight(),
        }
    }

    /// `POST /v1/verify`: never an error for bad input, always a verdict.
    pub fn verify_presented(&self, payload: &str) -> Result<Verdict, VaultError> {
        self.verify_presented_at(payload, unix_now())
    }

    /// [`Vault::verify_presented`] as of `now` (unix seconds): tests look past an expiry.
    pub fn verify_presented_at(&self, payload: &str, now: i64) -> Result<Verdict, VaultError> {
        let payload = payload.trim();
        let by_hash = self.verify_by_hash.load(std::sync::atomic::Ordering::Relaxed);
        let memo = by_hash && self.memo.on();
        if memo {
            if let Some(seen) = self.memo.entries.get(payload) {
                match self.verify_recognised(&seen, now)? {
                    Some(v) => return Ok(v),
                    // Not as it was: the full path decides, and remembers it again if it can.
                    None => drop(self.memo.entries.remove(payload)),
                }
            }
        }
        match decode_presented(payload) {
            Ok(document) => self.verify_document(&document, now, memo.then_some(payload)),
            Err(why) => Ok(Verdict::refused(VerdictKind::Malformed, why)),
        }
    }

    /// A payload recognised before: what its text gave then, with everything else checked as
    /// [`Vault::verify_document`] checks it, in the same order, so the verdict is the same
    /// (the property test `by_hash::same_verdicts…` compares them). `None` when the path taken
    /// then is not the one now (the trust list has no such seal, the record names other bytes,
    /// the claims fail): the full path decides.
    fn verify_recognised(&self, seen: &Recognised, now: i64) -> Result<Option<Verdict>, VaultError> {
        let keys = self.keyring();
        let head = self.head();
        let Some(cert) = keys.trust.department(&seen.kid) else { return Ok(None) };
        // A record that cannot be read is the full path's to report, after the checks it makes
        // first.
        let record = match self.record(&seen.licence.id) {
            Ok(Some(r)) if r.doc_hash() == Some(seen.issued) => r,
            _ => return Ok(None),
        };
        if check_claims(&keys.trust, cert, &seen.licence, now).is_err() {
            return Ok(None);
        }
        self.by_hash.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.memo.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.logged_verdict(seen.licence.clone(), cert, &record, &head, now, vec![signature_verifies(cert)]).map(Some)
    }

    /// `memo`: the payload's text when the vault may remember what it gave, should the log hold
    /// these very bytes (`--verify-by-hash`).
    fn verify_document(&self, document: &[u8], now: i64, memo: Option<&str>) -> Result<Verdict, VaultError> {
        let keys = self.keyring();
        // The head is read before the record: if the record's last leaf is below it, no later
        // leaf about the licence existed when the head was read, so the status holds as of it.
        let head = self.head();
        // One point read: the record of the licence the document names (checked against its
        // leaves), read while the document is checked. When its document hash is the hash of
        // these bytes as issued, the vault signed them itself: the signature is not checked
        // again (`--verify-by-hash`, on by default; spec/formats.md §11).
        let by_hash = self.verify_by_hash.load(std::sync::atomic::Ordering::Relaxed);
        let mut read: Option<Result<Option<super::LicenceRecord>, VaultError>> = None;
        let mut issued_hash = None;
        let mut recognised = false;
        let signed_already = |env: &Envelope, l: &Presented| {
            let r = self.record(&l.id);
            let issued = issued_sha256(env, l.compact_of, document);
            issued_hash = Some(issued);
            let hit = by_hash
                && l.compact_of.is_none()
                && issued != [0; 32]
                && matches!(&r, Ok(Some(rec)) if rec.doc_hash() == Some(issued));
            read = Some(r);
            if hit {
                self.by_hash.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            recognised = hit;
            hit
        };
        let Checked { licence, cert, envelope, platform, .. } =
            match verify_offline_with(&keys.trust, document, now, signed_already) {
                Ok(ok) => ok,
                // No department's kid: it may be a presentation or an annotated copy, signed by a
                // platform key.
                Err(r) if r.kind == VerdictKind::UnknownIssuer => match Envelope::parse(document) {
                    Ok(env) => match self.open_presentation(&env) {
                        Some(p) => return self.verify_presentation(p, now),
                        None if self.is_annotation_kid(&env.kid()) => return self.verify_copy(document, &env, now),
                        None => return Ok(r.into()),
                    },
                    _ => return Ok(r.into()),
                },
                Err(r) => return Ok(r.into()),
            };
        let licence = Arc::new(licence);
        let mut reasons = vec![signature_verifies(cert)];
        // The log holds this exact document only if the record's document hash is the presented
        // one's (as issued).
        let record = match read.take() {
            Some(r) => r?,
            None => self.record(&licence.id)?,
        };
        if licence.compact_of.is_some() {
            reasons.push(
                "a compact document: it names the licence, its holder and its validity; the full document has the face"
                    .into(),
            );
        }
        let issued = issued_hash.unwrap_or_else(|| issued_sha256(&envelope, licence.compact_of, document));
        let record = match record {
            Some(r) if r.doc_hash() == Some(issued) => {
                // Recognised by hash: its text need not be decoded and parsed again.
                if let Some(text) = memo.filter(|_| recognised && licence.compact_of.is_none()) {
                    self.memo.offer(
                        text,
                        || made_here(text, document, &envelope),
                        || Recognised { kid: envelope.kid(), licence: licence.clone(), issued },
                    );
                }
                r
            }
            Some(r) if licence.compact_of.is_none() && self.same_signed_content(&r, &envelope)? => {
                reasons.push(
                    "these bytes are a re-encoding of the issued document: the signed content and the signature are \
                     the same, the bytes around them differ (ask the holder for the document as issued)"
                        .into(),
                );
                r
            }
            _ => {
                if let Some(v) = self.verify_elsewhere(&licence, cert, &platform, issued, now, &mut reasons)? {
                    return Ok(Verdict { licence: Some(licence), ..v });
                }
                reasons.push("this exact document is not in the vault's log".into());
                return Ok(Verdict {
                    licence: Some(licence),
                    issuer_cert: Some(cert.name.clone()),
                    ..Verdict::with_reasons(VerdictKind::NotInLog, reasons)
                });
            }
        };
        self.logged_verdict(licence, cert, &record, &head, now, reasons)
    }

    /// The verdict on a document the log holds (`record` names it): its status now, as of a
    /// signed size that covers the record. `reasons`: what was noted after the signature.
    fn logged_verdict(
        &self,
        licence: Arc<Presented>,
        cert: &DepartmentCert,
        record: &super::LicenceRecord,
        head: &Head,
        now: i64,
        mut reasons: Vec<String>,
    ) -> Result<Verdict, VaultError> {
        let head_size = self.size_covering(head, record.last_index)?;
        // The validity period comes from the verified document (bound to the log by its hash),
        // never from the record.
        let status = record.effective(now, licence.valid_from, licence.valid_until);
        reasons.push(format!("in the log at index {}", record.issued_index));
        match status {
            Status::Valid => reasons.push("status valid".into()),
            Status::Superseded => {
                reasons.push(format!("superseded by {}", record.successor.clone().unwrap_or_default()));
            }
            s => reasons.push(format!("status {}", s.as_str())),
        }
        Ok(Verdict {
            kind: status.into(),
            reasons,
            licence: Some(licence),
            issuer_cert: Some(cert.name.clone()),
            log_index: Some(record.issued_index),
            log_size: Some(head_size),
            copy: None,
            presentation: None,
            successor: record.successor.clone().map(|s| (s, record.successor_kind)),
            elsewhere: None,
        })
    }

    /// A document that verified offline but is not in this vault's log: its status from the
    /// mirrored log of its platform that holds these very bytes (as of the size mirrored), or,
    /// for another platform's seal the federation vouches for, `NotMirrored`. `None`: neither
    /// (`NotInLog`). The licence is filled in by the caller.
    fn verify_elsewhere(
        &self,
        licence: &Presented,
        cert: &DepartmentCert,
        platform: &[String],
        issued: [u8; 32],
        now: i64,
        reasons: &mut Vec<String>,
    ) -> Result<Option<Verdict>, VaultError> {
        let verdict = |kind, reasons: Vec<String>| Verdict {
            issuer_cert: Some(cert.name.clone()),
            elsewhere: Some(Elsewhere { platform: platform.to_vec(), mirror: None, stale: None }),
            ..Verdict::with_reasons(kind, reasons)
        };
        let root = self.keyring().trust.platform_root_of(&cert.kid).map(|k| k.to_bytes());
        let mirrored = match (self.mirrors.get(), root) {
            (Some(m), Some(root)) => match m.licence(&root, &licence.id.to_string(), &issued) {
                Ok(found) => found,
                // A mirror that cannot be read tells no status; the vault's own log is fine.
                Err(why) => {
                    reasons.push(format!("{why}: its status is not known here"));
                    return Ok(Some(verdict(VerdictKind::NotMirrored, std::mem::take(reasons))));
                }
            },
            _ => None,
        };
        if !platform.is_empty() {
            reasons.push(format!("its platform is vouched for by {}", platform.join(" → ")));
        }
        match mirrored {
            Some(m) => {
                let elsewhere = Elsewhere {
                    platform: platform.to_vec(),
                    mirror: Some((m.source.clone(), m.origin.clone(), m.as_of_size)),
                    stale: m.stale.clone(),
                };
                // The source chose the words: one this node does not know tells no status.
                let Some(status) = m.state.status.as_deref().and_then(Status::parse) else {
                    reasons.push(format!(
                        "the log {} (mirrored from {}) records a status this node does not know: {:?}",
                        m.origin, m.source, m.state.status
                    ));
                    let mut v = verdict(VerdictKind::NotMirrored, std::mem::take(reasons));
                    v.elsewhere = Some(elsewhere);
                    return Ok(Some(v));
                };
                let status = status.effective(now, licence.valid_from, licence.valid_until, m.state.suspended_until);
                reasons.push(format!(
                    "in the log {} (mirrored from {}) at index {}; status {} as of its size {}",
                    m.origin,
                    m.source,
                    m.state.issued_index,
                    status.as_str(),
                    m.as_of_size
                ));
                if let Some(why) = &m.stale {
                    reasons.push(format!("{why}: this status may be out of date, so it is not taken as valid"));
                }
                let mut v = verdict(status.into(), std::mem::take(reasons));
                v.log_index = Some(m.state.issued_index);
                v.log_size = Some(m.as_of_size);
                v.successor = m
                    .state
                    .successor
                    .clone()
                    .map(|s| (s, m.state.successor_kind.as_deref().and_then(crate::domain::VersionKind::parse)));
                v.elsewhere = Some(elsewhere);
                Ok(Some(v))
            }
            _ if !platform.is_empty() => {
                reasons.push(
                    "no log this node mirrors holds this document: its status is known only to its platform".into(),
                );
                Ok(Some(verdict(VerdictKind::NotMirrored, std::mem::take(reasons))))
            }
            _ => Ok(None),
        }
    }

    /// A one-time presentation: the platform's signature and its expiry; within it, the
    /// licence document it carries, with its disclosures, verified as if presented directly
    /// (so the status is the vault's now), and what the presentation stated.
    fn verify_presentation(&self, opened: Result<Presentation, String>, now: i64) -> Result<Verdict, VaultError> {
        let p = match opened {
            Ok(p) => p,
            Err(why) => return Ok(Verdict::refused(VerdictKind::InvalidSignature, why)),
        };
        let made = format!(
            "a one-time presentation made {} that stated the licence {} (log size {})",
            rfc3339_s(p.issued_at),
            p.status.as_str(),
            p.log_size
        );
        if now >= p.expires_at {
            let mut v = Verdict::refused(VerdictKind::Expired, made);
            v.reasons.push(format!("it expired {}: it says nothing now", rfc3339_s(p.expires_at)));
            v.presentation = Some(p);
            return Ok(v);
        }
        let inner = match super::presentations::presented_bytes(&p) {
            Ok(b) => b,
            Err(why) => return Ok(Verdict::refused(VerdictKind::Malformed, why)),
        };
        let mut v = self.verify_document(&inner, now, None)?;
        v.reasons.insert(0, made);
        v.presentation = Some(p);
        Ok(v)
    }

    /// An annotated copy: its signature and the log's record of it; within its validity, the
    /// original it names (the vault's document of that id must have the hash the copy names) and
    /// its status now. An expired copy tells nothing more about the original.
    fn verify_copy(&self, document: &[u8], env: &Envelope, now: i64) -> Result<Verdict, VaultError> {
        let (annotation, copy_index) = match self.check_copy(document, env) {
            Ok(ok) => ok,
            Err((kind, why)) => return Ok(Verdict::refused(kind, why)),
        };
        let made = format!(
            "annotated copy made by {} ({}) for {:?}, recorded in the log at index {copy_index}",
            annotation.maker_name, annotation.maker_uscc, annotation.purpose
        );
        if now >= annotation.valid_until {
            return Ok(Verdict {
                kind: VerdictKind::Expired,
                reasons: vec![made, "the copy's validity has ended: it says nothing about the original now".into()],
                licence: None,
                issuer_cert: None,
                log_index: None,
                log_size: None,
                copy: Some(CopyVerdict { annotation, log_index: copy_index, original_status: None }),
                presentation: None,
                successor: None,
                elsewhere: None,
            });
        }
        let head = self.head();
        let id = match crate::domain::LicenceId::parse(&annotation.original_id) {
            Ok(id) => id,
            Err(e) => return Ok(Verdict::refused(VerdictKind::Malformed, format!("the copy names no licence: {e}"))),
        };
        // One read of the original: its record, checked against the log, and its document.
        let (licence, record) = match self.licence(&id) {
            Ok((licence, record, _)) if record.doc_sha256 == hex::encode(annotation.original_sha256) => {
                (licence, record)
            }
            Ok(_) | Err(VaultError::NotFound(_)) => {
                return Ok(Verdict::refused(
                    VerdictKind::NotInLog,
                    "the original the copy names is not in the vault's log",
                ))
            }
            Err(e) => return Err(e),
        };
        let head_size = self.size_covering(&head, record.last_index)?;
        let original_status = record.effective(now, licence.valid_from, licence.valid_until);
        let issuer = licence.issuer_name.clone();
        Ok(Verdict {
            kind: VerdictKind::AnnotatedCopy,
            reasons: vec![made, format!("the original, issued by {issuer}, is {}", original_status.as_str())],
            licence: Some(Arc::new(Presented::of(&licence))),
            issuer_cert: Some(issuer),
            log_index: Some(record.issued_index),
            log_size: Some(head_size),
            copy: Some(CopyVerdict { annotation, log_index: copy_index, original_status: Some(original_status) }),
            presentation: None,
            successor: None,
            elsewhere: None,
        })
    }

    /// Whether `presented` carries the same protected header, payload and signature as the stored
    /// document of `record` (a byte-level re-encoding of it).
    fn same_signed_content(&self, record: &super::LicenceRecord, presented: &Envelope) -> Result<bool, VaultError> {
        let id = &record.id;
        let inconsistent = |why: &str| super::issue::inconsistent(format!("the document of {id} {why}"));
        let stored = self.store.get(Cf::Docs, &super::doc_key(id))?.ok_or_else(|| inconsistent("is missing"))?;
        if record.doc_hash() != Some(sha256(&stored)) {
            return Err(inconsistent("is not the one in the log"));
        }
        let stored = Envelope::parse(&stored).map_err(|e| inconsistent(&format!("does not parse: {e}")))?;
        Ok(stored.signed_content_sha256() == presented.signed_content_sha256())
    }

    /// A log size whose signed checkpoint covers leaf `index`: `head` (read before the record)
    /// when it does, for then no later leaf about the licence existed when it was read. The head
    /// is published just after the batch is durable, so a record read in between can be newer
    /// than it: then the checkpoint stored in the same batch as the record answers.
    pub fn size_covering(&self, head: &Head, index: u64) -> Result<u64, VaultError> {
        if head.size > index {
            return Ok(head.size);
        }
        let stored =
            self.store.get(Cf::Meta, b"size")?.and_then(|v| v.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0);
        if stored > index {
            Ok(stored)
        } else {
            Err(super::issue::inconsistent(format!("leaf {index} is not under any stored checkpoint (size {stored})")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A text goes into the memo from its second sight on, unless it was found not to be the
    /// vault's own: then it is not checked again.
    #[test]
    fn a_text_is_taken_the_second_time_and_never_once_marked() {
        let seen = SeenOnce::new();
        assert!(!seen.again("LV2:A"));
        assert!(seen.again("LV2:A"));
        assert!(seen.again("LV2:A"));
        assert!(!seen.again("LV2:B"));
        seen.not_ours("LV2:B");
        for _ in 0..3 {
            assert!(!seen.again("LV2:B"));
        }
        // Slots are chosen by a keyed hash: of many texts, nearly all keep their own slot.
        let texts: Vec<String> = (0..10_000).map(|i| format!("LV2:{i}")).collect();
        texts.iter().for_each(|t| assert!(!seen.again(t) || t == "LV2:A"));
        let kept = texts.iter().filter(|t| seen.again(t)).count();
        // About 190 pairs share a slot among 2^18 (10,000² / 2 / 2^18): some 9,620 are kept.
        assert!(kept > 9_400, "{kept} of 10,000 remembered as seen");
    }
}
