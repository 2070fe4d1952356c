//! What a holder shows: the QR documents of a licence (the full document with the disclosures
//! the holder chose, the compact document) and its link for phone cameras (`/v/<ref>`, a random,
//! revocable reference that is never the licence id; spec/formats.md §1.4).

use serde::{Deserialize, Serialize};

use super::issue::json;
use super::{Client, Role, Stored, Vault, VaultError};
use crate::domain::{HolderId, LicenceId};
use crate::log::leaf::Event;
use crate::store::Cf;

/// A link reference's row (`docs` `r/` ‖ ref).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Link {
    pub licence: String,
    /// Unix seconds.
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn_at: Option<i64>,
}

/// Characters of a link reference: 20 random bytes in Crockford-free base32 (RFC 4648 upper
/// case), so the whole link fits the QR alphanumeric set.
const REF_LEN: usize = 32;

fn ref_key(reference: &str) -> Vec<u8> {
    [b"r/".as_slice(), reference.as_bytes()].concat()
}

fn current_key(id: &str) -> Vec<u8> {
    [b"R/".as_slice(), id.as_bytes()].concat()
}

/// Whether `s` has the shape of a link reference (checked before any read).
pub fn is_reference(s: &str) -> bool {
    s.len() == REF_LEN && s.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

fn new_reference() -> Result<String, VaultError> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| VaultError::Internal(format!("no randomness for a link: {e}")))?;
    // 160 bits, five at a time.
    let mut out = String::with_capacity(REF_LEN);
    let (mut acc, mut bits) = (0u32, 0);
    for b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    Ok(out)
}

impl Vault {
    /// The licence for its QR images and links: its issuing department's issuer client, or the
    /// holder channel acting for one of its holders (403 for a holder who does not hold it, as
    /// for anyone else).
    pub fn presentable(
        &self,
        client: &Client,
        holder: Option<&HolderId>,
        id: &LicenceId,
    ) -> Result<Stored, VaultError> {
        match client.role {
            Role::Issuer => self.check_manager(client, id)?,
            Role::HolderChannel => {
                if holder.is_none() {
                    return Err(VaultError::HolderRequired);
                }
            }
            r => return Err(VaultError::Forbidden(format!("role {} may not present licences", r.as_str()))),
        }
        let stored = match self.stored(id) {
            // The holder channel learns nothing of licences its holder does not hold.
            Err(VaultError::NotFound(_)) if client.role == Role::HolderChannel => {
                return Err(VaultError::Forbidden("the holder does not hold this licence".into()))
            }
            r => r?,
        };
        if let Some(h) = holder.filter(|_| client.role == Role::HolderChannel) {
            if !stored.licence.holders().any(|x| x == h) {
                return Err(VaultError::Forbidden("the holder does not hold this licence".into()));
            }
        }
        Ok(stored)
    }

    /// The compact document of `id` (spec/formats.md §1.3); a licence issued before compact
    /// documents has none (409 `no_compact_document`).
    pub fn compact_document(&self, id: &LicenceId) -> Result<Vec<u8>, VaultError> {
        self.store
            .get(Cf::Docs, &crate::store::keys::compact(&id.to_string()))?
            .ok_or_else(|| VaultError::NoCompact(id.to_string()))
    }

    /// The licence's current link reference, made (and logged) on first use.
    pub async fn link_for(&self, client: &Client, id: &LicenceId) -> Result<String, VaultError> {
        let key = id.to_string();
        if let Some(r) = self.store.get(Cf::Docs, &current_key(&key))?.filter(|r| !r.is_empty()) {
            return String::from_utf8(r).map_err(|_| super::issue::inconsistent(format!("the link of {id}")));
        }
        let reference = new_reference()?;
        let actor = client.id.clone();
        let now = super::unix_now();
        let (out, _) = self
            .seq
            .submit(move |tx| {
                // Made by another request in the meantime: that one stands.
                if let Some(r) = tx.get(Cf::Docs, &current_key(&key))?.filter(|r| !r.is_empty()) {
                    return Ok(String::from_utf8_lossy(&r).into_owned());
                }
                let ev = Event::new("licence.link")
                    .text("licence", key.as_str())
                    .text("action", "created")
                    .bytes("ref_sha256", &crate::crypto::sha256(reference.as_bytes()))
                    .text("actor", actor.as_str());
                tx.append(ev);
                tx.put(
                    Cf::Docs,
                    ref_key(&reference),
                    json(&Link { licence: key.clone(), created_at: now, withdrawn_at: None })?,
                );
                tx.put(Cf::Docs, current_key(&key), reference.clone().into_bytes());
                Ok::<_, VaultError>(reference)
            })
            .await?;
        out
    }

    /// Withdraws the licence's current link: its page says so from now on, and the next link QR
    /// gets a new reference. 404 `no_link` when it has none.
    pub async fn withdraw_link(&self, client: &Client, id: &LicenceId, reason: &str) -> Result<(), VaultError> {
        let reason = super::issue::check_reason(reason)?;
        let key = id.to_string();
        let actor = client.id.clone();
        let now = super::unix_now();
        let (out, _) = self
            .seq
            .submit(move |tx| {
                let Some(r) = tx.get(Cf::Docs, &current_key(&key))?.filter(|r| !r.is_empty()) else {
                    return Err(VaultError::NoLink(key.clone()));
                };
                let reference = String::from_utf8_lossy(&r).into_owned();
                let row = tx.get(Cf::Docs, &ref_key(&reference))?.ok_or_else(|| VaultError::NoLink(key.clone()))?;
                let mut link: Link = serde_json::from_slice(&row).map_err(|e| VaultError::Internal(e.to_string()))?;
                link.withdrawn_at = Some(now);
                let ev = Event::new("licence.link")
                    .text("licence", key.as_str())
                    .text("action", "withdrawn")
                    .bytes("ref_sha256", &crate::crypto::sha256(reference.as_bytes()))
                    .text("reason", reason.as_str())
                    .text("actor", actor.as_str());
                tx.append(ev);
                tx.put(Cf::Docs, ref_key(&reference), json(&link)?);
                tx.put(Cf::Docs, current_key(&key), Vec::new());
                Ok::<_, VaultError>(())
            })
            .await?;
        out
    }

    /// The link of `reference`, if it was ever made.
    pub fn link(&self, reference: &str) -> Result<Option<Link>, VaultError> {
        if !is_reference(reference) {
            return Ok(None);
        }
        match self.store.get(Cf::Docs, &ref_key(reference))? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| super::issue::inconsistent(format!("link row {reference}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_random_base32() {
        let a = new_reference().unwrap();
        assert!(is_reference(&a), "{a}");
        assert_ne!(a, new_reference().unwrap());
        assert!(!is_reference("1.2.156.3005.2.11100000MB00001073001"));
        assert!(!is_reference(&a.to_lowercase()));
    }
}
