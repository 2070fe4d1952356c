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
use crate::domain::{Disclosure, DisclosureKey, HolderId, LicenceId, Presented, Status};
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

/// A presentation made: its `LV1:` payload and what it says.
pub struct Made {
    pub payload: String,
    pub presentation: Presentation,
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
        let mut chosen: Vec<&Disclosure> = Vec::new();
        for key in disclose {
            let d = p
                .disclosures
                .iter()
                .find(|d| d.key == DisclosureKey::from_label(key))
                .ok_or_else(|| VaultError::UnknownDisclosure(format!("{id} has no disclosure {key:?}")))?;
            if !chosen.contains(&d) {
                chosen.push(d);
            }
        }
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
            status: p.record.status.effective(now, p.licence.valid_from, p.licence.valid_until),
            log_size: self.size_covering(&head, p.record.last_index)?,
        };
        let signed = cose::sign_typed(signer, TYP, presentation.to_payload());
        let ctx = UseContext {
            client_id: client.id.clone(),
            client_name: client.name.clone(),
            department: client.uscc.clone().unwrap_or_default(),
            reason: "持证人出示用证码 (the holder made a one-time presentation)".into(),
            service_item: None,
            biz_num: None,
            officer: None,
        };
        let d = Disclosed::new(self, &p.licence, crate::crypto::sha256(&p.document));
        let keys: Vec<String> = chosen.iter().map(|d| d.key.label()).collect();
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
        Ok(Made { payload: crate::qr::encode(&signed), presentation, log_index: index? })
    }

    /// A presentation's platform signature, shape and `typ`; `None` when the document is not
    /// signed by a platform key (it is then something else).
    pub fn open_presentation(&self, env: &Envelope) -> Option<Result<Presentation, String>> {
        if env.protected_text(crate::status_list::HEADER_TYP) != Some(TYP) {
            return None;
        }
        // Only the key signing now: a presentation lives minutes, and a retired key makes none.
        let (keys, current) = self.platform_keys();
        let key = keys.iter().find(|(kid, _)| *kid == env.kid() && current == Some(*kid)).map(|(_, k)| *k)?;
        Some(
            env.verify(&key)
                .map_err(|_| "the platform's signature on the presentation does not verify".to_string())
                .and_then(|_| Presentation::from_payload(env.payload()).map_err(|e| e.to_string())),
        )
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
        if crate::crypto::sha256(&document) != crate::crypto::sha256(&presentation.document) {
            return Err(bad("the presented document is not the one in the vault's log".into()));
        }
        let status = record.status.effective(now, full.valid_from, full.valid_until);
        let mut d = Disclosed::new(self, &full, crate::crypto::sha256(&document));
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

/// The licence document of a presentation with its disclosures in the unprotected header: what
/// the holder would have presented directly.
pub fn presented_bytes(p: &Presentation) -> Result<Vec<u8>, String> {
    let refs: Vec<&[u8]> = p.disclosures.iter().map(Vec::as_slice).collect();
    cose::with_disclosures(&p.document, &refs).map_err(|e| e.to_string())
}
