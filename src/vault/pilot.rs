//! Pre-2015 pilot codes (DESIGN §2): holder numbers from before GB 32100 / GB 11643 were enforced
//! whose check character is wrong. They enter only through an explicit override by an
//! administrator, which is a log leaf (`holder.override`); never silently.

use serde::{Deserialize, Serialize};

use super::issue::json;
use super::{Vault, VaultError};
use crate::domain::HolderId;
use crate::log::leaf::Event;
use crate::store::Cf;

/// `pilot/` ‖ holder commitment → [`PilotOverride`] (`Cf::Meta`).
const PILOT: &[u8] = b"pilot/";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PilotOverride {
    pub reason: String,
    pub actor: String,
    pub log_index: u64,
}

impl Vault {
    fn pilot_key(&self, holder: &HolderId) -> Vec<u8> {
        [PILOT, self.committer.commit(holder).as_slice()].concat()
    }

    /// Records an administrator's override for a holder number whose only fault is its check
    /// character. Returns the log index of the `holder.override` leaf.
    pub async fn allow_pilot(
        &self,
        type_code: &str,
        number: &str,
        reason: &str,
        actor: &str,
    ) -> Result<u64, VaultError> {
        let reason = super::issue::check_reason(reason)?;
        if HolderId::parse(type_code, number).is_ok() {
            return Err(VaultError::Invalid("this number passes every check: it needs no override".into()));
        }
        let holder = HolderId::parse_pilot(type_code, number)?;
        let key = self.pilot_key(&holder);
        let commitment = self.committer.commit(&holder);
        let actor = crate::domain::text::clean("admin", actor, 100)?;
        let (r, _) = self
            .seq
            .submit(move |tx| {
                if tx.get(Cf::Meta, &key)?.is_some() {
                    return Err(VaultError::Conflict("an override for this number exists already".into()));
                }
                let mut ev = Event::new("holder.override")
                    .text("type", holder.kind().code())
                    .bytes("holder", &commitment)
                    .text("reason", reason.as_str())
                    .text("actor", actor.as_str());
                // USCCs are public; citizen ID numbers appear only as their commitment.
                if !holder.kind().is_person() {
                    ev = ev.text("number", holder.number());
                }
                let index = tx.append(ev);
                tx.put(Cf::Meta, key, json(&PilotOverride { reason, actor, log_index: index })?);
                Ok(index)
            })
            .await?;
        r
    }

    /// Parses a holder number from a request: every rule, unless an administrator has allowed
    /// this exact number as a pilot code, in which case a wrong check character is excused.
    pub fn parse_holder(&self, type_code: &str, number: &str) -> Result<HolderId, VaultError> {
        match HolderId::parse(type_code, number) {
            Ok(h) => Ok(h),
            Err(e) if e.is_check_failure() => {
                let pilot = HolderId::parse_pilot(type_code, number)?;
                if self.store.get(Cf::Meta, &self.pilot_key(&pilot))?.is_some() {
                    Ok(pilot)
                } else {
                    Err(VaultError::HolderCheck(e))
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}
