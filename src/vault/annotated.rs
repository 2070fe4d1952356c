//! Annotated copies (加注件): a verifier makes a copy of a licence it may see, for one purpose
//! and at most 90 days, signed by the platform's annotation key. Making one is a use of the
//! licence: its `licence.used` leaf (action `annotated_copy`) carries the copy's SHA-256 and is
//! durable before the copy is answered (a refusal because the licence is not valid tells its
//! status, so it is recorded too, as `annotated_copy_refused`); the copy carries the face as a
//! verifier may see it, not the signed original; `POST /v1/verify` recognises copies by the annotation
//! key's kid and accepts only those the log recorded.

use super::lookup::may_see;
use super::usage::{Disclosed, UseAction, UseContext};
use super::{unix_now, Client, Role, Vault, VaultError, VerdictKind};
use crate::crypto::cose::{self, Envelope};
use crate::crypto::sha256;
use crate::domain::annotation::{Annotation, Face, MAX_COPY_DAYS};
use crate::domain::{text, LicenceId, Status};
use crate::log::leaf::Event;
use crate::log::merkle::Hash;
use crate::store::keys::copy as copy_key;
use crate::store::Cf;

/// `meta` rows `annotation-keys/` ‖ kid → public key: every annotation key this log has recorded
/// (an `annotation.key` leaf each). Copies signed by an earlier key keep verifying after a
/// rotation.
const ANNOTATION_KEYS: &[u8] = b"annotation-keys/";

/// The annotation public keys the log has recorded, by kid.
pub(super) fn logged_annotation_keys(
    store: &dyn crate::store::Store,
) -> Result<std::collections::HashMap<[u8; 8], ed25519_dalek::VerifyingKey>, VaultError> {
    let mut keys = std::collections::HashMap::new();
    for (k, v) in store.scan_prefix(Cf::Meta, ANNOTATION_KEYS, usize::MAX)? {
        let kid: [u8; 8] = k[ANNOTATION_KEYS.len()..]
            .try_into()
            .map_err(|_| VaultError::KeysChanged("a stored annotation key row is malformed".into()))?;
        let public = <[u8; 32]>::try_from(v.as_slice())
            .ok()
            .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
            .ok_or_else(|| VaultError::KeysChanged("a stored annotation public key is malformed".into()))?;
        keys.insert(kid, public);
    }
    Ok(keys)
}

/// A copy just made.
pub struct AnnotatedCopy {
    pub document: Vec<u8>,
    pub annotation: Annotation,
    pub sha256: Hash,
    /// Index of the `licence.used` leaf that records it.
    pub log_index: u64,
}

impl Vault {
    /// Logs the annotation public key when it is new or changed (`annotation.key` leaf), so an
    /// auditor knows which key signed copies from when.
    pub(super) async fn log_annotation_key(&self) -> Result<(), VaultError> {
        let Some(signer) = &self.annotation else { return Ok(()) };
        let key = signer.verifying_key();
        let kid = signer.kid();
        if self.annotation_keys.read().unwrap_or_else(|p| p.into_inner()).get(&kid) == Some(&key) {
            return Ok(());
        }
        let public = key.to_bytes();
        let (r, _) = self
            .seq
            .submit(move |tx| {
                tx.append(Event::new("annotation.key").bytes("public_key", &public));
                tx.put(Cf::Meta, [ANNOTATION_KEYS, &kid].concat(), public.to_vec());
                Ok::<_, VaultError>(())
            })
            .await?;
        r?;
        self.annotation_keys.write().unwrap_or_else(|p| p.into_inner()).insert(kid, key);
        Ok(())
    }

    /// `POST /v1/licences/{id}/annotated-copies`.
    pub async fn annotated_copy(
        &self,
        client: &Client,
        ctx: &UseContext,
        id: &LicenceId,
        purpose: &str,
        days: u32,
    ) -> Result<AnnotatedCopy, VaultError> {
        if client.role != Role::Verifier {
            return Err(VaultError::Forbidden(format!(
                "annotated copies are made by verifiers; {} is not one",
                client.id
            )));
        }
        // A licence the verifier may not see answers exactly as one that does not exist.
        if !may_see(&self.catalogue(), client, id.type_code().as_str(), Some(id.issuer().as_str())) {
            return Err(VaultError::NotFound(id.to_string()));
        }
        let purpose = text::clean("purpose", purpose, 100)?;
        super::usage::no_citizen_number("purpose", &purpose)?;
        if !(1..=MAX_COPY_DAYS).contains(&days) {
            return Err(VaultError::Invalid(format!("valid_days is 1–{MAX_COPY_DAYS}, not {days}")));
        }
        let signer = self.annotation.as_ref().ok_or_else(|| {
            VaultError::NoAnnotationKey("this platform has no annotation key; ask its operator".into())
        })?;
        let (licence, record, document) = self.licence(id)?;
        let now = unix_now();
        let status = record.effective(now, licence.valid_from, licence.valid_until);
        let original_sha256 = sha256(&document);
        if status != Status::Valid {
            // The refusal tells the verifier the licence's status: that is a read of licence
            // data too, recorded like any other before it is answered.
            let d = Disclosed::new(self, &licence, original_sha256);
            self.record_uses(ctx, UseAction::AnnotatedCopyRefused, vec![d], &[]).await?;
            return Err(VaultError::NotValid(format!(
                "{id} is {} ({}): only a valid licence gets an annotated copy",
                status.as_str(),
                status.words_zh()
            )));
        }
        let annotation = Annotation {
            platform: self.origin.clone(),
            original_id: id.to_string(),
            original_sha256,
            face: self.copy_face(&licence),
            maker_uscc: ctx.department.clone(),
            maker_name: ctx.client_name.clone(),
            maker_client: ctx.client_id.clone(),
            purpose,
            service_item: ctx.service_item.clone(),
            biz_num: ctx.biz_num.clone(),
            issued_at: now,
            valid_until: now + i64::from(days) * 86_400,
        };
        let copy = cose::sign(signer, annotation.to_payload());
        let copy_sha = sha256(&copy);
        let mut d = Disclosed::new(self, &licence, original_sha256);
        d.copy = Some((copy_sha, annotation.valid_until as u64));
        let (_, indices) = self.record_uses(ctx, UseAction::AnnotatedCopy, vec![d], &[]).await?;
        let log_index = indices.first().copied().ok_or_else(|| VaultError::Internal("no usage leaf".into()))?;
        Ok(AnnotatedCopy { document: copy, annotation, sha256: copy_sha, log_index })
    }

    /// The original's face as a copy carries it: numbers masked, no personal fields (less than a
    /// verifier is shown in a lookup: anyone the copy is handed to can verify it).
    fn copy_face(&self, l: &crate::domain::Licence) -> Face {
        let catalogue = self.catalogue();
        let ty = catalogue.licence_type(l.id.type_code().as_str());
        Face {
            type_name: l.type_name.clone(),
            number: l.number.clone(),
            holder_type: l.holder.kind().code().to_string(),
            holder_id: l.holder.masked(),
            holder_name: l.holder_name.clone(),
            issuer_name: l.issuer_name.clone(),
            fields: l
                .fields
                .iter()
                .filter(|(k, _)| ty.is_some_and(|t| t.personal(k).is_none()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            valid_from: crate::domain::cst_date(l.valid_from).to_string(),
            valid_until: l.valid_until.map(|e| crate::domain::cst_date(e - 1).to_string()),
        }
    }

    /// Every platform key the log has recorded (`annotation.key` leaves), by kid, and the kid of
    /// the one signing now: they sign annotated copies and status lists.
    pub fn platform_keys(&self) -> (Vec<PlatformKey>, Option<[u8; 8]>) {
        let mut keys: Vec<_> =
            self.annotation_keys.read().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (*k, *v)).collect();
        keys.sort_by_key(|(kid, _)| *kid);
        (keys, self.annotation.as_ref().map(|a| a.kid()))
    }

    /// Whether `kid` names an annotation key this log has recorded.
    pub fn is_annotation_kid(&self, kid: &[u8; 8]) -> bool {
        self.annotation_keys.read().unwrap_or_else(|p| p.into_inner()).contains_key(kid)
    }

    /// Checks a presented annotated copy: the annotation signature and the log's record of it
    /// (a `c/` row naming a proven `licence.used` leaf with this copy's hash and licence).
    /// Returns the annotation and the index of its usage leaf.
    pub(super) fn check_copy(
        &self,
        document: &[u8],
        env: &Envelope,
    ) -> Result<(Annotation, u64), (VerdictKind, String)> {
        let key = self
            .annotation_keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&env.kid())
            .copied()
            .ok_or((VerdictKind::UnknownIssuer, "no annotation key with this kid".to_string()))?;
        env.verify(&key)
            .map_err(|_| (VerdictKind::InvalidSignature, "the annotation signature does not verify".to_string()))?;
        let a = Annotation::from_payload(env.payload())
            .map_err(|e| (VerdictKind::Malformed, format!("not an annotated copy: {e}")))?;
        let not_in_log = |why: &str| (VerdictKind::NotInLog, why.to_string());
        let sha = sha256(document);
        let index = self
            .store
            .get(Cf::Docs, &copy_key(&sha))
            .ok()
            .flatten()
            .and_then(|v| v.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| not_in_log("this annotated copy is not in the vault's log"))?;
        let leaf = self
            .proven_leaf(index)
            .filter(|l| l.event.kind == "licence.used")
            .ok_or_else(|| not_in_log("this annotated copy's usage record is not in the signed log"))?;
        if leaf.event.get_bytes("copy_sha256") != Some(&sha[..])
            || leaf.event.get_text("licence") != Some(&a.original_id)
        {
            return Err(not_in_log("the log's record does not match this annotated copy"));
        }
        Ok((a, index))
    }
}

/// A platform key the log recorded: its kid and public key.
pub type PlatformKey = ([u8; 8], ed25519_dalek::VerifyingKey);

/// The `docs` row written with a copy's usage leaf.
pub(super) fn copy_row(sha: &Hash, index: u64) -> (Vec<u8>, Vec<u8>) {
    (copy_key(sha), index.to_be_bytes().to_vec())
}
