//! One-time presentations (用证码, spec/formats.md §10): the holder channel asks for one, for
//! at most five minutes, with the disclosures the holder chose; the platform key signs the
//! licence's document, those disclosures and its status now. A scanner checks it offline; a
//! verifier redeems it once, with a use reason, and receives exactly the disclosed values.
//! Creation and redemption are leaves, in the holder's usage view.

use serde::{Deserialize, Serialize};

use super::issue::json;
use super::usage::{Disclosed, UseAction, UseContext, UseInput};
use super::verify::{verify_offline, Checked};
use super::{unix_now, Client, Vault, VaultError};
use crate::crypto::cose::{self, Envelope};
use crate::domain::presentation::{Presentation, MAX_TTL, TYP};
use crate::domain::{HolderId, LicenceId, Presented, Status};
use crate::log::leaf::Event;
use crate::log::sequencer::Tx;
use crate::store::Cf;

/// A presentation's row (`docs` `p/` ‖ nonce, hex): made with its `presentation.created` leaf,
/// marked when redeemed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    licence: String,
    expires_at: i64,
    created_index: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    redeemed_index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    redeemed_by: Option<String>,
}

fn row_key(nonce: &[u8; 16]) -> Vec<u8> {
    [b"p/".as_slice(), hex::encode(nonce).as_bytes()].concat()
}

/// In the batch of a redemption's usage leaf: refuses a presentation the vault never made or
/// one redeemed already (the whole job then writes nothing), else marks it.
pub(super) fn mark_redeemed(tx: &mut Tx<'_>, nonce: &[u8; 16], client: &str, index: u64) -> Result<(), VaultError> {
    let bytes = tx.get(Cf::Docs, &row_key(nonce))?.ok_or(VaultError::PresentationNotFound)?;
    let mut row: Row = serde_json::from_slice(&bytes).map_err(|e| VaultError::Internal(e.to_string()))?;
    // Checked again here: the request checked it before its job waited for the batch.
    if tx.time_ms() / 1000 >= row.expires_at as u64 {
        return Err(VaultError::PresentationExpired(super::rfc3339_s(row.expires_at)));
    }
    if let Some(i) = row.redeemed_index {
        return Err(VaultError::PresentationRedeemed(format!("redeemed already, recorded at log index {i}")));
    }
    row.redeemed_index = Some(index);
    row.redeemed_by = Some(client.to_string());
    tx.put(Cf::Docs, row_key(nonce), json(&row)?);
    Ok(())
}

/// A presentation made: its QR payload and what it says.
pub struct Made {
    pub payload: String,
    pub presentation: Presentation,
    /// The keys of what it discloses.
    pub disclosed: Vec<String>,
    pub log_index: u64,
}

/// A presentation redeemed: what the holder disclosed, and the licence's status now.
pub struct Redeemed {
    pub presentation: Presentation,
    /// The licence as the presented document and its disclosures show it.
    pub licence: Presented,
    pub signed_by: String,
    /// Its effective status now (the vault's record, not the presentation's statement).
    pub status: Status,
    pub usage_index: u64,
}

impl Vault {
    /// `POST /v1/licences/{id}/presentations`.
    pub async fn present(
        &self,
        client: &Client,
        holder: &HolderId,
        id: &LicenceId,
        disclose: &[String],
        ttl: u64,
    ) -> Result<Made, VaultError> {
        if !(1..=MAX_TTL).contains(&ttl) {
            return Err(VaultError::Invalid(format!("ttl is 1–{MAX_TTL} seconds, not {ttl}")));
        }
        // The head before the record: the status holds as of it (as for `POST /v1/verify`).
        let head = self.head();
        let p = self.presentable(client, Some(holder), id)?;
        let signer = self
            .annotation
            .as_ref()
            .ok_or_else(|| VaultError::NoAnnotationKey("presentations are signed by the platform key".into()))?;
        let chosen = p.choose(disclose.iter().map(String::as_str))?;
        let now = unix_now();
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| VaultError::Internal(format!("no randomness for a nonce: {e}")))?;
        let presentation = Presentation {
            platform: self.origin.clone(),
            issued_at: now,
            expires_at: now + ttl as i64,
            nonce,
            document: p.document.clone(),
            disclosures: chosen.iter().map(|d| d.bytes().to_vec()).collect(),
            status: p.record.effective(now, p.licence.valid_from, p.licence.valid_until),
            log_size: self.size_covering(&head, p.record.last_index)?,
        };
        let signed = cose::sign_typed(signer, TYP, presentation.to_payload());
        let ctx = UseContext::of(client, "持证人出示用证码 (the holder made a one-time presentation)".into());
        // The stored document's hash is the record's (checked when it was read).
        let d = Disclosed::new(self, &p.licence, super::lookup::doc_hash(&p.record)?);
        let keys: Vec<String> = chosen.iter().map(|d| d.key.label()).collect();
        let keys_made = keys.clone();
        let expires_at = presentation.expires_at;
        let licence_id = id.to_string();
        let (index, _) = self
            .seq
            .submit(move |tx| {
                let ev = Event::new("presentation.created")
                    .text("licence", d.licence_id.as_str())
                    .text("type", d.type_code.as_str())
                    .bytes("doc_sha256", &d.doc_sha256)
                    .bytes("holders", &d.holders.concat())
                    .bytes("nonce_sha256", &crate::crypto::sha256(&nonce))
                    .text("disclosed", keys.join(","))
                    .uint("expires_at", expires_at as u64);
                let ev = ctx.describe(ev, UseAction::PresentationCreated);
                let index = tx.append(ev);
                for h in &d.holders {
                    tx.put(Cf::Usage, crate::store::keys::usage(h, index), Vec::new());
                }
                let row = Row {
                    licence: licence_id,
                    expires_at,
                    created_index: index,
                    redeemed_index: None,
                    redeemed_by: None,
                };
                tx.put(Cf::Docs, row_key(&nonce), json(&row)?);
                Ok::<_, VaultError>(index)
            })
            .await?;
        Ok(Made { payload: self.qr_payload(&signed), presentation, disclosed: keys_made, log_index: index? })
    }

    /// A presentation's platform signature and shape; `None` when the document is not a
    /// presentation signed by the platform key signing now (it is then something else): a
    /// presentation lives minutes, and a retired key makes none.
    pub fn open_presentation(&self, env: &Envelope) -> Option<Result<Presentation, String>> {
        let key = self.annotation.as_ref().filter(|a| is_presentation(env) && a.kid() == env.kid())?;
        Some(open(env, &key.verifying_key()))
    }

    /// `POST /v1/presentations/redeem`.
    pub async fn redeem(&self, client: &Client, payload: &str, input: UseInput<'_>) -> Result<Redeemed, VaultError> {
        if client.role != super::Role::Verifier {
            return Err(VaultError::Forbidden(format!("role {} may not redeem presentations", client.role.as_str())));
        }
        let ctx = self.use_context(client, input)?;
        let bad = |why: String| VaultError::InvalidPresentation(why);
        let bytes = super::verify::decode_presented(payload).map_err(bad)?;
        let env = Envelope::parse(&bytes).map_err(|e| bad(e.to_string()))?;
        let presentation = self
            .open_presentation(&env)
            .ok_or_else(|| bad("not a presentation signed by this platform".into()))?
            .map_err(bad)?;
        let now = unix_now();
        if now >= presentation.expires_at {
            return Err(VaultError::PresentationExpired(super::rfc3339_s(presentation.expires_at)));
        }
        let (licence, signed_by) = self.check_presented_document(&presentation, now)?;
        let (full, record, document) = self.licence(&licence.id)?;
        if document != presentation.document {
            return Err(bad("the presented document is not the one in the vault's log".into()));
        }
        let status = record.effective(now, full.valid_from, full.valid_until);
        let mut d = Disclosed::new(self, &full, super::lookup::doc_hash(&record)?);
        d.redeems = Some(presentation.nonce);
        let (_, indices) = self.record_uses(&ctx, UseAction::PresentationRedeemed, vec![d], &[]).await?;
        let usage_index = indices.first().copied().ok_or_else(|| VaultError::Internal("no usage leaf".into()))?;
        Ok(Redeemed { presentation, licence, signed_by, status, usage_index })
    }

    /// The licence document inside a presentation, with its disclosures, checked as any
    /// presented document is (signature, trust, digests): the licence as it shows it, and the
    /// name of the department certificate that signed it.
    pub fn check_presented_document(&self, p: &Presentation, now: i64) -> Result<(Presented, String), VaultError> {
        let keys = self.keyring();
        let doc = presented_bytes(p).map_err(VaultError::InvalidPresentation)?;
        let Checked { licence, cert, .. } =
            verify_offline(&keys.trust, &doc, now).map_err(|r| VaultError::InvalidPresentation(r.reason))?;
        Ok((licence, cert.name.clone()))
    }
}

/// Whether `env` says it is a presentation (its protected `typ`).
pub fn is_presentation(env: &Envelope) -> bool {
    env.protected_text(cose::HEADER_TYP) == Some(TYP)
}

/// A presentation checked under `key`, the platform key it names: its signature, then its claims.
pub fn open(env: &Envelope, key: &ed25519_dalek::VerifyingKey) -> Result<Presentation, String> {
    env.verify(key).map_err(|_| "the platform's signature on the presentation does not verify".to_string())?;
    Presentation::from_payload(env.payload()).map_err(|e| e.to_string())
}

/// The licence document of a presentation with its disclosures in the unprotected header: what
/// the holder would have presented directly.
pub fn presented_bytes(p: &Presentation) -> Result<Vec<u8>, String> {
    let refs: Vec<&[u8]> = p.disclosures.iter().map(Vec::as_slice).collect();
    cose::with_disclosures(&p.document, &refs).map_err(|e| e.to_string())
}
