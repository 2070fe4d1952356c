//! Verifiers' reads: the one-number lookup and one-window check by holder number, and annotated
//! copies by licence id; the holder channel's wallet and usage view. Holder numbers travel in
//! bodies, never in URLs.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Json;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::licences::{licence_json, read_view, status_view, Audience, LicenceView, ReadView, StatusView};
use super::{ApiError, ApiJson, AppState, HolderChannelCaller, VerifierCaller};
use crate::domain::{Catalogue, HolderId, Status};
use crate::vault::lookup::{Filter, Found, Outcome, DEFAULT_PAGE, MAX_PAGE};
use crate::vault::usage::{Officer, OnBehalfOf, UseAction, UseInput};
use crate::vault::{rfc3339_ms, rfc3339_s, Vault, VaultError};

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("POST", "/v1/holders/licences", post(lookup)),
        ("POST", "/v1/service-items/{code}/check", post(check)),
        ("POST", "/v1/holders/wallet", post(wallet)),
        ("POST", "/v1/holders/usage", post(usage)),
        ("POST", "/v1/licences/{id}/annotated-copies", post(annotated_copy)),
    ]
}

/// A holder named by number (spec/openapi.yaml `HolderKey`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderKey {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

impl HolderKey {
    pub fn parse(&self, vault: &Vault) -> Result<HolderId, ApiError> {
        Ok(vault.parse_holder(&self.kind, &self.id)?)
    }
}

#[derive(Serialize)]
struct HolderEcho {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
}

impl From<&HolderId> for HolderEcho {
    fn from(h: &HolderId) -> Self {
        Self { kind: h.kind().code(), id: h.number().to_string() }
    }
}

fn page_size(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request("invalid_limit", format!("limit is 1–{MAX_PAGE}, not {n}"))),
    }
}

fn cursor_out(s: &str) -> String {
    B64URL.encode(s)
}

fn cursor_in(c: Option<&str>) -> Result<Option<String>, ApiError> {
    c.map(|c| {
        B64URL
            .decode(c.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or_else(|| VaultError::InvalidCursor("not a cursor this API gave out".into()).into())
    })
    .transpose()
}

/// The licence as a verifier sees it (spec/openapi.yaml `SharedLicence`).
#[derive(Serialize)]
struct SharedView<'a> {
    doc_sha256: &'a str,
    licence: LicenceView<'a>,
    log: SharedLog,
    #[serde(flatten)]
    status: StatusView<'a>,
}

#[derive(Serialize)]
struct SharedLog {
    /// The licence's `licence.issued` leaf.
    index: u64,
    /// The `licence.used` leaf recording this disclosure.
    usage_index: Option<u64>,
}

fn shared_view<'a>(catalogue: &Catalogue, f: &'a Found, typed: &[HolderId]) -> SharedView<'a> {
    let ty = catalogue.licence_type(f.licence.id.type_code().as_str());
    SharedView {
        doc_sha256: &f.record.doc_sha256,
        licence: licence_json(&f.licence, Audience::Verifier(typed, ty)),
        log: SharedLog { index: f.record.issued_index, usage_index: f.usage_index },
        status: status_view(&f.record, &f.licence),
    }
}

/// How many licences the answer disclosed (one `licence.used` leaf each; a typed holder of whom
/// nothing was disclosed got a `holder.queried` leaf, not counted here), and the log size whose
/// signed checkpoint covers them.
#[derive(Serialize)]
struct UsageRecorded {
    log_size: u64,
    records: usize,
}

verifier_request! {
    struct LookupRequest {
        holder: HolderKey,
        #[serde(default)]
        types: Vec<String>,
        #[serde(default)]
        status: Vec<Status>,
        #[serde(default)]
        cursor: Option<String>,
        #[serde(default)]
        limit: Option<usize>,
        /// Ask the other nodes too (`--peers`), on a first page (default: yes).
        #[serde(default)]
        other_platforms: Option<bool>,
        /// A page of one other node's answer only: its name, with that node's `cursor`.
        #[serde(default)]
        platform: Option<String>,
    }
}

/// The answer of a one-number lookup (spec/openapi.yaml `LookupAnswer`).
#[derive(Serialize)]
struct LookupAnswer<'a> {
    holder: HolderEcho,
    licences: Vec<SharedView<'a>>,
    next_cursor: Option<String>,
    usage: UsageRecorded,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    other_platforms: Vec<crate::peers::PeerAnswer>,
}

/// A lookup as sent on to another node: the clerk's request, never asked further.
#[derive(Serialize)]
struct ForwardedLookup<'a> {
    holder: HolderOut<'a>,
    types: &'a [String],
    status: &'a [Status],
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<usize>,
    #[serde(flatten)]
    statement: UseInput<'a>,
    other_platforms: bool,
}

/// A holder as sent on (the number as the request gave it: the peer reads it by its own rules).
#[derive(Serialize)]
struct HolderOut<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
}

/// The licence types a request sent on to other nodes may ask for: those the clerk's client may
/// see (a node's client at a peer is granted a scope for the whole node, often wider than one
/// clerk's). `None`: none of those asked for, so no peer is asked.
fn forwarded_types(client: &crate::vault::Client, asked: &[String]) -> Option<Vec<String>> {
    let all = client.sees_every_type();
    let types: Vec<String> = match (all, asked.is_empty()) {
        (true, _) => asked.to_vec(),
        (false, true) => client.types.clone(),
        (false, false) => asked.iter().filter(|t| client.types.contains(t)).cloned().collect(),
    };
    (all || !types.is_empty()).then_some(types)
}

/// Whom this node acts for at the other nodes: the clerk's client here, under this node's log
/// origin. The peer records it with each use, beside this node's own client there.
fn relayed_for(s: &AppState, client: &crate::vault::Client) -> OnBehalfOf {
    OnBehalfOf {
        platform: s.vault.log_origin().to_string(),
        client_id: client.id.clone(),
        client_name: client.name.clone(),
        department: client.uscc.clone(),
    }
}

/// Which other nodes a request asks: none without `--peers`, on a later page of this node's
/// own answer, or with `other_platforms: false`; `platform` alone asks that one (400 for a name
/// not configured).
fn peers_to_ask<'a>(
    s: &'a AppState,
    other_platforms: Option<bool>,
    platform: Option<&'a str>,
    cursor: Option<&str>,
) -> Result<Option<(&'a crate::peers::Peers, Option<&'a str>)>, ApiError> {
    let Some(peers) = s.peers.as_deref() else {
        return match platform {
            Some(_) => Err(ApiError::bad_request("unknown_platform", "this node asks no other platform")),
            None => Ok(None),
        };
    };
    match platform {
        Some(name) if peers.list.iter().any(|p| p.name == name) => Ok(Some((peers, Some(name)))),
        Some(name) => {
            Err(ApiError::bad_request("unknown_platform", format!("this node asks no platform named {name:?}")))
        }
        None if other_platforms == Some(false) || cursor.is_some() => Ok(None),
        None => Ok(Some((peers, None))),
    }
}

/// POST /v1/holders/licences — a verifier's one-number lookup (一号查询).
async fn lookup(
    State(s): State<AppState>,
    VerifierCaller(client): VerifierCaller,
    ApiJson(req): ApiJson<LookupRequest>,
) -> Result<Response, ApiError> {
    let ctx = s.vault.use_context(&client, req.use_input())?;
    let holder = req.holder.parse(&s.vault)?;
    let limit = page_size(req.limit)?;
    let forward_types = forwarded_types(&client, &req.types);
    let ask = match forward_types {
        Some(_) => peers_to_ask(&s, req.other_platforms, req.platform.as_deref(), req.cursor.as_deref())?,
        None => None,
    };
    // A page of another node's answer only: this node's own part is not read; that the clerk
    // asked is recorded all the same.
    let after = if req.platform.is_some() { None } else { cursor_in(req.cursor.as_deref())? };
    let filter = Filter { types: req.types.clone(), statuses: req.status.clone() };
    let page = if req.platform.is_some() {
        let head = s.vault.record_relayed_lookup(&client, &ctx, &holder).await?;
        crate::vault::lookup::LookupPage { found: Vec::new(), next_after: None, head }
    } else {
        s.vault.lookup(&client, &ctx, &holder, &filter, after.as_deref(), limit).await?
    };
    // The other nodes are asked after this node's own records are durable; each records its
    // own before it answers.
    let other_platforms = match ask {
        Some((peers, only)) => {
            let me = relayed_for(&s, &client);
            let forwarded = ForwardedLookup {
                holder: HolderOut { kind: &req.holder.kind, id: &req.holder.id },
                types: forward_types.as_deref().unwrap_or_default(),
                status: &req.status,
                cursor: req.platform.as_ref().and(req.cursor.as_deref()),
                limit: req.limit,
                statement: UseInput { on_behalf_of: Some(&me), ..req.use_input() },
                other_platforms: false,
            };
            peers.ask("/v1/holders/licences", &forwarded, crate::peers::As::Verifier, only).await
        }
        None => Vec::new(),
    };
    let catalogue = s.vault.catalogue();
    let typed = [holder.clone()];
    Ok(Json(LookupAnswer {
        holder: (&holder).into(),
        licences: page.found.iter().map(|f| shared_view(&catalogue, f, &typed)).collect(),
        next_cursor: page.next_after.as_deref().map(cursor_out),
        usage: UsageRecorded { log_size: page.head.size, records: page.found.len() },
        other_platforms,
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    applicant: HolderKey,
    /// Holders other than the applicant, by the roles the service item names.
    #[serde(default)]
    other_holders: std::collections::BTreeMap<String, HolderKey>,
    #[serde(default)]
    use_reason: Option<String>,
    #[serde(default)]
    biz_num: Option<String>,
    #[serde(default)]
    officer: Option<Officer>,
    #[serde(default)]
    on_behalf_of: Option<OnBehalfOf>,
    /// Ask the other nodes too (`--peers`; default: yes).
    #[serde(default)]
    other_platforms: Option<bool>,
}

/// A check as sent on to another node: the clerk's request, never asked further.
#[derive(Serialize)]
struct ForwardedCheck<'a> {
    applicant: HolderOut<'a>,
    other_holders: std::collections::BTreeMap<&'a str, HolderOut<'a>>,
    #[serde(flatten)]
    statement: UseInput<'a>,
    other_platforms: bool,
}

/// The answer of a one-window check (spec/openapi.yaml `CheckAnswer`).
#[derive(Serialize)]
struct CheckAnswer<'a> {
    licences: Vec<SharedView<'a>>,
    #[serde(skip_serializing_if = "str::is_empty")]
    note: &'a str,
    requirements: Vec<RequirementView<'a>>,
    satisfied: bool,
    service_item: ItemRef<'a>,
    usage: UsageRecorded,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    other_platforms: Vec<crate::peers::PeerAnswer>,
    /// With other nodes asked: whether every required requirement is `present` here or at one of
    /// them (the same requirement: the same licence types, in the same place in the item).
    #[serde(skip_serializing_if = "Option::is_none")]
    satisfied_across_platforms: Option<bool>,
}

/// Whether requirement `i` (of the licence types `types`) is `present` in a peer's answer.
fn present_at(answer: &serde_json::Value, i: usize, types: &[&str]) -> bool {
    let q = &answer["requirements"][i];
    let theirs: Vec<&str> = q["alternatives"]
        .as_array()
        .map_or(Vec::new(), |a| a.iter().filter_map(|alt| alt["type_code"].as_str()).collect());
    q["outcome"] == "present" && theirs == types
}

#[derive(Serialize)]
struct ItemRef<'a> {
    code: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct RequirementView<'a> {
    alternatives: Vec<AlternativeView<'a>>,
    licence_id: Option<String>,
    #[serde(skip_serializing_if = "str::is_empty")]
    note: &'a str,
    outcome: Outcome,
    required: bool,
}

#[derive(Serialize)]
struct AlternativeView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    holder: &'a str,
    licence_id: Option<String>,
    outcome: Outcome,
    type_code: &'a str,
    type_name: &'a str,
}

/// POST /v1/service-items/{code}/check — a verifier's one-window check (一窗受理).
async fn check(
    State(s): State<AppState>,
    VerifierCaller(client): VerifierCaller,
    Path(code): Path<String>,
    ApiJson(req): ApiJson<CheckRequest>,
) -> Result<Response, ApiError> {
    if s.vault.catalogue().service_item(code.trim()).is_none() {
        return Err(VaultError::UnknownServiceItem(code.trim().to_string()).into());
    }
    let statement = UseInput {
        use_reason: req.use_reason.as_deref(),
        // The item is the path's, checked above; `Vault::check` names it in the context.
        service_item_code: None,
        biz_num: req.biz_num.as_deref(),
        officer: req.officer.as_ref(),
        on_behalf_of: req.on_behalf_of.as_ref(),
    };
    let ctx = s.vault.use_context(&client, statement.clone())?;
    let applicant = req.applicant.parse(&s.vault)?;
    let mut others = Vec::new();
    for (role, h) in &req.other_holders {
        others.push((role.clone(), h.parse(&s.vault)?));
    }
    // A check names no types to narrow: only a clerk who may see every type asks other nodes.
    let ask = match client.sees_every_type() {
        true => peers_to_ask(&s, req.other_platforms, None, None)?,
        false => None,
    };
    let r = s.vault.check(&client, &ctx, &code, applicant, others).await?;
    // As for a lookup: the other nodes after this node's own records are durable.
    let other_platforms = match ask {
        Some((peers, _)) => {
            let me = relayed_for(&s, &client);
            let forwarded = ForwardedCheck {
                applicant: HolderOut { kind: &req.applicant.kind, id: &req.applicant.id },
                other_holders: req
                    .other_holders
                    .iter()
                    .map(|(role, h)| (role.as_str(), HolderOut { kind: &h.kind, id: &h.id }))
                    .collect(),
                statement: UseInput { on_behalf_of: Some(&me), ..statement },
                other_platforms: false,
            };
            let path = format!("/v1/service-items/{}/check", r.item.code);
            peers.ask(&path, &forwarded, crate::peers::As::Verifier, None).await
        }
        None => Vec::new(),
    };
    let satisfied_across_platforms = (!other_platforms.is_empty()).then(|| {
        r.requirements.iter().enumerate().filter(|(_, q)| q.required).all(|(i, q)| {
            let types: Vec<&str> = q.alternatives.iter().map(|a| a.type_code.as_str()).collect();
            q.outcome == Outcome::Present
                || other_platforms.iter().filter_map(|p| p.answer.as_ref()).any(|a| present_at(a, i, &types))
        })
    });
    let catalogue = s.vault.catalogue();
    let id_of = |i: Option<usize>| i.map(|i| r.licences[i].licence.id.to_string());
    Ok(Json(CheckAnswer {
        licences: r.licences.iter().map(|f| shared_view(&catalogue, f, &r.typed)).collect(),
        note: &r.item.note,
        requirements: r
            .requirements
            .iter()
            .map(|q| RequirementView {
                alternatives: q
                    .alternatives
                    .iter()
                    .map(|a| AlternativeView {
                        detail: a.detail.as_deref(),
                        holder: &a.holder_role,
                        licence_id: id_of(a.licence),
                        outcome: a.outcome,
                        type_code: &a.type_code,
                        type_name: &a.type_name,
                    })
                    .collect(),
                licence_id: id_of(q.licence),
                note: &q.note,
                outcome: q.outcome,
                required: q.required,
            })
            .collect(),
        satisfied: r.satisfied,
        service_item: ItemRef { code: &r.item.code, name: &r.item.name },
        usage: UsageRecorded { log_size: r.head.size, records: r.licences.len() },
        other_platforms,
        satisfied_across_platforms,
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WalletRequest {
    holder: HolderKey,
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    status: Vec<Status>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// The answer of `POST /v1/holders/wallet` (spec/openapi.yaml `WalletAnswer`).
#[derive(Serialize)]
struct WalletAnswer<'a> {
    holder: HolderEcho,
    /// The same shape as `GET /v1/licences/{id}` answers (spec/openapi.yaml `WalletLicence`).
    licences: Vec<ReadView<'a>>,
    next_cursor: Option<String>,
}

/// POST /v1/holders/wallet — the holder channel reads the holder's own licences.
async fn wallet(
    State(s): State<AppState>,
    HolderChannelCaller(client): HolderChannelCaller,
    ApiJson(req): ApiJson<WalletRequest>,
) -> Result<Response, ApiError> {
    let holder = req.holder.parse(&s.vault)?;
    let limit = page_size(req.limit)?;
    let after = cursor_in(req.cursor.as_deref())?;
    let filter = Filter { types: req.types, statuses: req.status };
    let page = s.vault.wallet(&client, &holder, &filter, after.as_deref(), limit)?;
    Ok(Json(WalletAnswer {
        holder: (&holder).into(),
        licences: page
            .found
            .iter()
            .map(|f| read_view(&f.licence, &f.record, &f.document, &f.disclosures, s.vault.qr_payload(&f.document)))
            .collect(),
        next_cursor: page.next_after.as_deref().map(cursor_out),
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageRequest {
    holder: HolderKey,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    /// Ask the other nodes too (`--peers`), on a first page (default: yes).
    #[serde(default)]
    other_platforms: Option<bool>,
    /// A page of one other node's answer only: its name, with that node's `cursor`.
    #[serde(default)]
    platform: Option<String>,
}

/// A usage view as sent on to another node.
#[derive(Serialize)]
struct ForwardedUsage<'a> {
    holder: HolderOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<usize>,
    other_platforms: bool,
}

/// The answer of `POST /v1/holders/usage` (spec/openapi.yaml `UsageAnswer`).
#[derive(Serialize)]
struct UsageAnswer {
    holder: HolderEcho,
    next_cursor: Option<String>,
    uses: Vec<UseView>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    other_platforms: Vec<crate::peers::PeerAnswer>,
}

#[derive(Serialize)]
struct UseView {
    action: UseAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotated_copy: Option<CopyRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    biz_num: Option<String>,
    client: ClientRef,
    /// null for the holder channel's own entries (a presentation made).
    department: Option<DepartmentRef>,
    /// A presentation made: the values it disclosed.
    #[serde(skip_serializing_if = "Option::is_none")]
    disclosed: Option<Vec<String>>,
    /// null: the query disclosed none of the holder's licences.
    licence_id: Option<String>,
    log_index: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    officer: Option<Officer>,
    /// A use sent on by another node: the client there that asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    on_behalf_of: Option<OnBehalfOf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_item: Option<ItemOwned>,
    time: String,
    type_code: Option<String>,
    type_name: Option<String>,
    use_reason: String,
}

#[derive(Serialize)]
struct CopyRef {
    sha256: String,
    valid_until: String,
}

#[derive(Serialize)]
struct ClientRef {
    id: String,
    name: String,
}

#[derive(Serialize)]
struct DepartmentRef {
    uscc: String,
}

#[derive(Serialize)]
struct ItemOwned {
    code: String,
    name: String,
}

/// POST /v1/holders/usage — the holder channel reads who used the holder's licences.
async fn usage(
    State(s): State<AppState>,
    HolderChannelCaller(client): HolderChannelCaller,
    ApiJson(req): ApiJson<UsageRequest>,
) -> Result<Response, ApiError> {
    let holder = req.holder.parse(&s.vault)?;
    let limit = page_size(req.limit)?;
    let ask = peers_to_ask(&s, req.other_platforms, req.platform.as_deref(), req.cursor.as_deref())?;
    let own_cursor = if req.platform.is_some() { None } else { req.cursor.as_deref() };
    let before = cursor_in(own_cursor)?
        .map(|c| c.parse::<u64>().map_err(|_| VaultError::InvalidCursor("not a cursor this API gave out".into())))
        .transpose()?;
    let page = if req.platform.is_some() {
        crate::vault::usage::UsagePage::default()
    } else {
        s.vault.usage(&client, &holder, before, limit)?
    };
    let forwarded = ForwardedUsage {
        holder: HolderOut { kind: &req.holder.kind, id: &req.holder.id },
        cursor: req.platform.as_ref().and(req.cursor.as_deref()),
        limit: req.limit,
        other_platforms: false,
    };
    let other_platforms = match ask {
        Some((peers, only)) => peers.ask("/v1/holders/usage", &forwarded, crate::peers::As::HolderChannel, only).await,
        None => Vec::new(),
    };
    let catalogue = s.vault.catalogue();
    let uses = page
        .uses
        .into_iter()
        .map(|u| UseView {
            action: u.action,
            annotated_copy: u.copy.map(|(sha, until)| CopyRef {
                sha256: hex::encode(sha),
                valid_until: rfc3339_ms(until.saturating_mul(1000)),
            }),
            biz_num: u.biz_num,
            client: ClientRef { id: u.client_id, name: u.client_name },
            department: (!u.department.is_empty()).then_some(DepartmentRef { uscc: u.department }),
            disclosed: u.disclosed.map(|d| d.split(',').filter(|k| !k.is_empty()).map(str::to_string).collect()),
            licence_id: u.licence_id,
            log_index: u.log_index,
            officer: u.officer,
            on_behalf_of: u.on_behalf_of,
            service_item: u.service_item.map(|code| ItemOwned {
                name: catalogue.service_item(&code).map(|i| i.name.clone()).unwrap_or_default(),
                code,
            }),
            time: rfc3339_ms(u.time_ms),
            type_name: u
                .type_code
                .as_ref()
                .map(|c| catalogue.licence_type(c).map(|t| t.name.clone()).unwrap_or_default()),
            type_code: u.type_code,
            use_reason: u.use_reason,
        })
        .collect();
    Ok(Json(UsageAnswer {
        holder: (&holder).into(),
        next_cursor: page.next_before.map(|i| cursor_out(&i.to_string())),
        uses,
        other_platforms,
    })
    .into_response())
}

verifier_request! {
    struct CopyRequest {
        /// 用途 printed on the copy, e.g. "仅供办理食品经营许可使用".
        purpose: String,
        /// Days the copy is valid, 1–90 (default 30).
        #[serde(default)]
        valid_days: Option<u32>,
    }
}

/// The answer of `POST /v1/licences/{id}/annotated-copies` (spec/openapi.yaml `AnnotatedCopy`).
#[derive(Serialize)]
struct CopyAnswer {
    document: String,
    log: CopyLog,
    original_id: String,
    qr_payload: String,
    sha256: String,
    valid_until: String,
}

#[derive(Serialize)]
struct CopyLog {
    usage_index: u64,
}

/// POST /v1/licences/{id}/annotated-copies — a verifier's annotated copy (加注件).
async fn annotated_copy(
    State(s): State<AppState>,
    VerifierCaller(client): VerifierCaller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CopyRequest>,
) -> Result<Response, ApiError> {
    let id = super::licences::parse_id(&id)?;
    let ctx = s.vault.use_context(&client, req.use_input())?;
    let copy = s.vault.annotated_copy(&client, &ctx, &id, &req.purpose, req.valid_days.unwrap_or(30)).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(CopyAnswer {
            document: B64.encode(&copy.document),
            log: CopyLog { usage_index: copy.log_index },
            original_id: copy.annotation.original_id.clone(),
            qr_payload: s.vault.qr_payload(&copy.document),
            sha256: hex::encode(copy.sha256),
            valid_until: rfc3339_s(copy.annotation.valid_until),
        }),
    )
        .into_response())
}
