//! Reads by holder: the one-number lookup (一号查询) and the one-window check (一窗受理) for
//! verifying departments, and the wallet for the holder's own channel. Verifiers see what the
//! sharing class of each type allows them, and only after the usage record is durable
//! (`usage.rs`); nothing in an answer tells a verifier that a licence it may not see exists.

use std::collections::HashMap;
use std::sync::Arc;

use super::usage::{Disclosed, UseAction, UseContext};
use super::{unix_now, Client, Decoded, LicenceRecord, Role, Vault, VaultError};
use crate::domain::catalogue::{Requirement, APPLICANT};
use crate::domain::{Catalogue, HolderId, LicenceId, ServiceItem, Sharing, Status};
use crate::log::merkle::Hash;
use crate::log::sequencer::Head;
use crate::store::Cf;

/// Largest page of a lookup, wallet or usage read.
pub const MAX_PAGE: usize = 100;
/// Most entries in a lookup's or wallet's `types` or `status` filter.
pub const MAX_FILTER: usize = 50;
/// Page size when the caller gives none.
pub const DEFAULT_PAGE: usize = 20;
/// Holder index rows read per scan while filling a page (most holders have a handful).
const SCAN: usize = 32;

/// A licence found for a holder, as read (checked against the log).
pub struct Found {
    /// The licence, its signed document and its salted disclosures (the holder channel's wallet
    /// hands them on; verifiers never see them), shared with the vault's cache: `found.licence`,
    /// `found.document` and `found.disclosures` read through it.
    pub decoded: Arc<Decoded>,
    pub record: LicenceRecord,
    /// The effective status now.
    pub status: Status,
    /// Index of its usage record (verifier reads only).
    pub usage_index: Option<u64>,
}

impl std::ops::Deref for Found {
    type Target = Decoded;

    fn deref(&self) -> &Decoded {
        &self.decoded
    }
}

/// What a lookup returns: the licences, the cursor of the next page, the head covering the
/// usage records.
pub struct LookupPage {
    pub found: Vec<Found>,
    pub next_after: Option<String>,
    pub head: Arc<Head>,
}

/// What a lookup or wallet read selects.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Licence type codes; empty = every type.
    pub types: Vec<String>,
    /// Effective statuses; empty = every status but `superseded`.
    pub statuses: Vec<Status>,
}

impl Filter {
    fn wants_type(&self, type_code: &str) -> bool {
        self.types.is_empty() || self.types.iter().any(|t| t == type_code)
    }

    fn wants_status(&self, s: Status) -> bool {
        if self.statuses.is_empty() {
            s != Status::Superseded
        } else {
            self.statuses.contains(&s)
        }
    }
}

/// Outcome of one requirement, or of one way to meet it, in a one-window check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Present,
    Missing,
    NotShared,
    Suspended,
    Expired,
    NotYetValid,
    Withdrawn,
    Annulled,
    Revoked,
    Cancelled,
}

impl Outcome {
    fn of(s: Status) -> Self {
        match s {
            Status::Valid => Self::Present,
            Status::Suspended => Self::Suspended,
            Status::Expired => Self::Expired,
            Status::NotYetValid => Self::NotYetValid,
            Status::Withdrawn => Self::Withdrawn,
            Status::Annulled => Self::Annulled,
            Status::Revoked => Self::Revoked,
            Status::Cancelled => Self::Cancelled,
            // Superseded versions are never candidates.
            Status::Superseded => Self::Missing,
        }
    }

    /// Which outcome of several alternatives the requirement takes: a present licence first,
    /// then a licence that exists but cannot be used (the clerk can tell the applicant why),
    /// then not_shared, then missing.
    fn rank(self) -> u8 {
        match self {
            Self::Present => 0,
            Self::Suspended => 1,
            Self::Expired => 2,
            Self::NotYetValid => 3,
            Self::Withdrawn => 4,
            Self::Annulled => 5,
            Self::Revoked => 6,
            Self::Cancelled => 7,
            Self::NotShared => 8,
            Self::Missing => 9,
        }
    }
}

/// One way to meet a requirement, as checked.
pub struct AlternativeResult {
    pub type_code: String,
    pub type_name: String,
    pub holder_role: String,
    pub outcome: Outcome,
    /// Why it is missing when the role's holder was not given.
    pub detail: Option<String>,
    /// Index into [`CheckResult::licences`].
    pub licence: Option<usize>,
}

pub struct RequirementResult {
    pub required: bool,
    pub note: String,
    pub outcome: Outcome,
    /// Index into [`CheckResult::licences`] of the licence that decided the outcome.
    pub licence: Option<usize>,
    pub alternatives: Vec<AlternativeResult>,
}

pub struct CheckResult {
    pub item: ServiceItem,
    pub satisfied: bool,
    pub requirements: Vec<RequirementResult>,
    /// Every licence the answer discloses, once each.
    pub licences: Vec<Found>,
    /// The holder numbers the clerk typed (shown in clear; others masked).
    pub typed: Vec<HolderId>,
    pub head: Arc<Head>,
}

/// A verifier's scope entry that lists every licence type.
pub const ALL_TYPES: &str = "*";

/// What one check has read: each holder's licence ids (one index scan per holder), the best
/// licence per holder and type, and every licence the answer discloses, once each.
#[derive(Default)]
struct CheckReads<'h> {
    ids: HashMap<&'h HolderId, Vec<LicenceId>>,
    best: HashMap<(&'h HolderId, String), Option<usize>>,
    licences: Vec<Found>,
}

/// Whether `client`, a verifier, may see a licence of `type_code` issued by `issuer` (DESIGN
/// §5): the type's sharing class decides, then the verifier's scope. Fails closed: a verifier
/// whose scope lists nothing sees only unconditionally shared types (and its own department's
/// unshared ones); `*` lists every type.
/// With `issuer` unknown (`None`), a type shared with nobody but its issuer is not seen.
pub fn may_see(catalogue: &Catalogue, client: &Client, type_code: &str, issuer: Option<&str>) -> bool {
    let Some(ty) = catalogue.licence_type(type_code) else { return false };
    match ty.sharing {
        Sharing::Unconditional => true,
        Sharing::Conditional => client.sees_every_type() || client.types.iter().any(|t| t == type_code),
        Sharing::None => issuer.is_some() && client.uscc.as_deref() == issuer,
    }
}

fn require_role(client: &Client, role: Role, what: &str) -> Result<(), VaultError> {
    if client.role == role {
        Ok(())
    } else {
        Err(VaultError::Forbidden(format!(
            "{what} needs the {} role; client {} has {}",
            role.as_str(),
            client.id,
            client.role.as_str()
        )))
    }
}

impl Vault {
    /// The ids of `holder`'s licences (every version), in id order, after `after`, read from the
    /// holder index a scan at a time, handed to `visit` until it returns false.
    fn holder_licences(
        &self,
        holder: &HolderId,
        after: Option<&str>,
        mut visit: impl FnMut(LicenceId) -> Result<bool, VaultError>,
    ) -> Result<(), VaultError> {
        let commitment = self.committer.commit(holder);
        let mut start = match after {
            Some(id) => [commitment.as_slice(), id.as_bytes(), &[0]].concat(),
            None => commitment.to_vec(),
        };
        loop {
            let rows = self.store.scan_prefix_from(Cf::Holders, &commitment, &start, SCAN)?;
            let n = rows.len();
            for (key, _) in rows {
                let raw = std::str::from_utf8(&key[32..])
                    .map_err(|_| super::issue::inconsistent("a holder index row names no licence".into()))?;
                let id = LicenceId::parse(raw)
                    .map_err(|e| super::issue::inconsistent(format!("holder index row {raw}: {e}")))?;
                if !visit(id)? {
                    return Ok(());
                }
                start = [key.as_slice(), &[0]].concat();
            }
            if n < SCAN {
                return Ok(());
            }
        }
    }

    /// The licence `id` as found through a holder's index: checked against the log, and it must
    /// really name `holder` (the index is a derived view and is not trusted alone).
    fn found(&self, id: &LicenceId, holder: &HolderId, now: i64) -> Result<Found, VaultError> {
        // Index rows and records are written in the same batch: a row without its record is
        // an inconsistency, not a licence that does not exist.
        let (decoded, record) = self.shared(id).map_err(|e| match e {
            VaultError::NotFound(_) => {
                super::issue::inconsistent(format!("the holder index lists {id}, which has no record"))
            }
            e => e,
        })?;
        if !decoded.licence.holders().any(|h| h == holder) {
            return Err(super::issue::inconsistent(format!(
                "the holder index lists {id} under a holder it does not name"
            )));
        }
        let status = record.effective(now, decoded.licence.valid_from, decoded.licence.valid_until);
        Ok(Found { decoded, record, status, usage_index: None })
    }

    /// The record of a lookup answered from another node only (a page of a peer's answer,
    /// spec/formats.md §16): this node discloses none of its own licences, but records that the
    /// clerk asked about the holder (`holder.queried`), before the peer is asked.
    pub async fn record_relayed_lookup(
        &self,
        client: &Client,
        ctx: &UseContext,
        holder: &HolderId,
    ) -> Result<Arc<Head>, VaultError> {
        require_role(client, Role::Verifier, "a one-number lookup")?;
        let typed = [self.committer.commit(holder)];
        Ok(self.record_uses(ctx, UseAction::Lookup, Vec::new(), &typed).await?.0)
    }

    /// `POST /v1/holders/licences`: the holder's licences this verifier may see, `limit` at a
    /// time after the cursor `after`; their usage records are durable before this returns.
    pub async fn lookup(
        &self,
        client: &Client,
        ctx: &UseContext,
        holder: &HolderId,
        filter: &Filter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<LookupPage, VaultError> {
        require_role(client, Role::Verifier, "a one-number lookup")?;
        self.known_types(filter)?;
        let catalogue = self.catalogue();
        // Type and sharing are read from the identifier: nothing is read for a licence the
        // verifier may not see.
        let (mut found, next_after) = self.page(holder, filter, after, limit, |id| {
            may_see(&catalogue, client, id.type_code().as_str(), Some(id.issuer().as_str()))
        })?;
        let typed = [self.committer.commit(holder)];
        let (head, indices) = self.record_uses(ctx, UseAction::Lookup, self.disclosures(&found)?, &typed).await?;
        for (f, i) in found.iter_mut().zip(indices) {
            f.usage_index = Some(i);
        }
        Ok(LookupPage { found, next_after, head })
    }

    /// One page of `holder`'s licences after `after` that `visible` allows (judged from the
    /// identifier alone, before anything is read) and `filter` selects, and the cursor of the
    /// next page (given when one more visible licence of a wanted type follows).
    fn page(
        &self,
        holder: &HolderId,
        filter: &Filter,
        after: Option<&str>,
        limit: usize,
        visible: impl Fn(&LicenceId) -> bool,
    ) -> Result<(Vec<Found>, Option<String>), VaultError> {
        let now = unix_now();
        let mut found = Vec::new();
        let mut more = false;
        self.holder_licences(holder, after, |id| {
            if !filter.wants_type(id.type_code().as_str()) || !visible(&id) {
                return Ok(true);
            }
            // Whether there is a next page is judged from the identifier alone: reading one more
            // licence's status to decide would tell something about it without a usage record.
            // (The next page can then be empty.)
            if found.len() == limit {
                more = true;
                return Ok(false);
            }
            let f = self.found(&id, holder, now)?;
            if filter.wants_status(f.status) {
                found.push(f);
            }
            Ok(true)
        })?;
        let next_after = if more { found.last().map(|f| f.licence.id.to_string()) } else { None };
        Ok((found, next_after))
    }

    /// A filter naming a type the catalogue does not have is a mistake: 400, not an empty list.
    fn known_types(&self, filter: &Filter) -> Result<(), VaultError> {
        if filter.types.len() > MAX_FILTER || filter.statuses.len() > MAX_FILTER {
            return Err(VaultError::Invalid(format!("types and status list at most {MAX_FILTER} entries each")));
        }
        let catalogue = self.catalogue();
        match filter.types.iter().find(|t| catalogue.licence_type(t).is_none()) {
            Some(t) => Err(VaultError::UnknownType(t.clone())),
            None => Ok(()),
        }
    }

    fn disclosures(&self, found: &[Found]) -> Result<Vec<Disclosed>, VaultError> {
        found.iter().map(|f| Ok(Disclosed::new(self, &f.licence, doc_hash(&f.record)?))).collect()
    }

    /// `POST /v1/service-items/{code}/check`: each requirement of the item met or not, for the
    /// applicant and the other holders the clerk names; usage records (naming the item) are
    /// durable before this returns.
    pub async fn check(
        &self,
        client: &Client,
        ctx: &UseContext,
        item_code: &str,
        applicant: HolderId,
        others: Vec<(String, HolderId)>,
    ) -> Result<CheckResult, VaultError> {
        require_role(client, Role::Verifier, "a one-window check")?;
        let catalogue = self.catalogue();
        let item = catalogue
            .service_item(item_code.trim())
            .cloned()
            .ok_or_else(|| VaultError::UnknownServiceItem(item_code.trim().to_string()))?;
        if !item.applicant.contains(&applicant.kind()) {
            return Err(VaultError::ApplicantType(format!(
                "{} is applied for by holders of type {}, not {}",
                item.name,
                item.applicant.iter().map(|t| t.code()).collect::<Vec<_>>().join("/"),
                applicant.kind().code()
            )));
        }
        for (role, h) in &others {
            let types = item.role_types(role).filter(|_| role != APPLICANT).ok_or_else(|| {
                VaultError::UnknownHolderRole(format!(
                    "{} names no other holder {role:?}; it names {}",
                    item.name,
                    if item.other_holders.is_empty() {
                        "none".to_string()
                    } else {
                        item.other_holders.iter().map(|h| h.role.as_str()).collect::<Vec<_>>().join(", ")
                    }
                ))
            })?;
            if !types.contains(&h.kind()) {
                return Err(VaultError::ApplicantType(format!(
                    "{role} must be a holder of type {}",
                    types.iter().map(|t| t.code()).collect::<Vec<_>>().join("/")
                )));
            }
        }
        let mut ctx = ctx.clone();
        ctx.service_item = Some(item.code.clone());
        let now = unix_now();
        let holder_of = |role: &str| -> Option<&HolderId> {
            if role == APPLICANT {
                Some(&applicant)
            } else {
                others.iter().find(|(r, _)| r == role).map(|(_, h)| h)
            }
        };
        let mut reads = CheckReads::default();
        let mut requirements = Vec::new();
        for req in &item.requirements {
            requirements.push(self.check_requirement(&catalogue, client, req, &holder_of, now, &mut reads)?);
        }
        let mut licences = reads.licences;
        let satisfied = requirements.iter().all(|r| !r.required || r.outcome == Outcome::Present);
        let typed: Vec<Hash> = std::iter::once(&applicant)
            .chain(others.iter().map(|(_, h)| h))
            .map(|h| self.committer.commit(h))
            .collect();
        let (head, indices) = self.record_uses(&ctx, UseAction::Check, self.disclosures(&licences)?, &typed).await?;
        for (f, i) in licences.iter_mut().zip(indices) {
            f.usage_index = Some(i);
        }
        let mut typed = vec![applicant];
        typed.extend(others.into_iter().map(|(_, h)| h));
        Ok(CheckResult { item, satisfied, requirements, licences, typed, head })
    }

    fn check_requirement<'h>(
        &self,
        catalogue: &Catalogue,
        client: &Client,
        req: &Requirement,
        holder_of: &impl Fn(&str) -> Option<&'h HolderId>,
        now: i64,
        reads: &mut CheckReads<'h>,
    ) -> Result<RequirementResult, VaultError> {
        let mut alternatives = Vec::new();
        for alt in &req.alternatives {
            let type_name = catalogue.licence_type(&alt.type_code).map(|t| t.name.clone()).unwrap_or_default();
            let mut result = AlternativeResult {
                type_code: alt.type_code.clone(),
                type_name,
                holder_role: alt.holder.clone(),
                outcome: Outcome::Missing,
                detail: None,
                licence: None,
            };
            // The catalogue never requires a type that is not shared at all, so the issuer does
            // not matter here: the sharing class and the verifier's scope decide.
            let shared = may_see(catalogue, client, &alt.type_code, None);
            match holder_of(&alt.holder) {
                _ if !shared => result.outcome = Outcome::NotShared,
                None => result.detail = Some(format!("no {} was given with the check", alt.holder)),
                Some(holder) => {
                    if let Some(at) = self.best_for(reads, holder, &alt.type_code, now)? {
                        result.outcome = Outcome::of(reads.licences[at].status);
                        result.licence = Some(at);
                    }
                }
            }
            alternatives.push(result);
        }
        let decided = alternatives.iter().min_by_key(|a| a.outcome.rank());
        Ok(RequirementResult {
            required: req.required,
            note: req.note.clone(),
            outcome: decided.map(|a| a.outcome).unwrap_or(Outcome::Missing),
            licence: decided.and_then(|a| a.licence),
            alternatives,
        })
    }

    /// The index in `reads.licences` of the holder's licence of `type_code` that best answers a
    /// requirement: a valid one, else the one whose state tells the clerk most; the newest among
    /// equals; never a superseded version. Each holder's index is scanned once per check and
    /// each (holder, type) decided once, however many requirements name it.
    fn best_for<'h>(
        &self,
        reads: &mut CheckReads<'h>,
        holder: &'h HolderId,
        type_code: &str,
        now: i64,
    ) -> Result<Option<usize>, VaultError> {
        if let Some(at) = reads.best.get(&(holder, type_code.to_string())) {
            return Ok(*at);
        }
        if !reads.ids.contains_key(holder) {
            let mut ids = Vec::new();
            self.holder_licences(holder, None, |id| {
                ids.push(id);
                Ok(true)
            })?;
            reads.ids.insert(holder, ids);
        }
        let mut best: Option<Found> = None;
        for id in reads.ids[holder].iter().filter(|id| id.type_code().as_str() == type_code) {
            let f = self.found(id, holder, now)?;
            if f.status == Status::Superseded {
                continue;
            }
            let better = match &best {
                None => true,
                Some(b) => {
                    let (rf, rb) = (Outcome::of(f.status).rank(), Outcome::of(b.status).rank());
                    rf < rb || (rf == rb && f.record.issued_index > b.record.issued_index)
                }
            };
            if better {
                best = Some(f);
            }
        }
        // A licence found again (a co-owned one, through another holder) is disclosed once.
        let at = best.map(|b| match reads.licences.iter().position(|f| f.licence.id == b.licence.id) {
            Some(at) => at,
            None => {
                reads.licences.push(b);
                reads.licences.len() - 1
            }
        });
        reads.best.insert((holder, type_code.to_string()), at);
        Ok(at)
    }

    /// `POST /v1/holders/wallet`: the holder's own licences (every type, whatever its sharing
    /// class), for the holder channel, which has authenticated the citizen.
    pub fn wallet(
        &self,
        client: &Client,
        holder: &HolderId,
        filter: &Filter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<LookupPage, VaultError> {
        require_role(client, Role::HolderChannel, "the wallet")?;
        self.known_types(filter)?;
        let (found, next_after) = self.page(holder, filter, after, limit, |_| true)?;
        Ok(LookupPage { found, next_after, head: self.head() })
    }
}

pub(super) fn doc_hash(record: &LicenceRecord) -> Result<Hash, VaultError> {
    record
        .doc_hash()
        .ok_or_else(|| super::issue::inconsistent(format!("the record of {} has no document hash", record.id)))
}
