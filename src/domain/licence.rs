//! The licence as signed: the CWT claims payload of the COSE_Sign1 document (DESIGN §3,
//! `spec/licence.cddl`). Conversion to and from deterministic CBOR lives here because it is pure.

use std::collections::BTreeMap;

use ciborium::Value;

use std::collections::BTreeSet;

use super::disclosure::{Disclosure, DisclosureKey, SALT_LEN};
use super::holder::{HolderError, HolderId, HolderType, Uscc};
use super::licence_id::{LicenceId, LicenceIdError};
use crate::cbor::{self, int, text, CborError, MapReader};

/// CWT claim keys (RFC 8392 §4).
pub const CLAIM_ISS: i64 = 1;
pub const CLAIM_EXP: i64 = 4;
pub const CLAIM_NBF: i64 = 5;
pub const CLAIM_IAT: i64 = 6;
/// The private claim that carries the licence (private-use range of the CWT claims registry).
pub const CLAIM_LICENCE: i64 = -65537;
/// The private claim of a compact document (spec/formats.md §1.3): who holds which licence, the
/// digest of its full document, nothing of the rest of the face. Integer keys keep it in a
/// version-14 QR code.
pub const CLAIM_COMPACT: i64 = -65539;

#[derive(Debug, thiserror::Error)]
pub enum LicenceError {
    #[error(transparent)]
    Cbor(#[from] CborError),
    #[error("licence identifier: {0}")]
    Id(#[from] LicenceIdError),
    #[error("holder: {0}")]
    Holder(#[from] HolderError),
    #[error("{0}")]
    Inconsistent(String),
    /// A presented disclosure does not belong to the document (spec/formats.md §1.2).
    #[error("disclosure: {0}")]
    Disclosure(String),
    /// A value the document holds only as a digest was needed and not disclosed.
    #[error("{0} is not disclosed")]
    Withheld(String),
}

/// The licence claim's `v` in documents with salted disclosures (spec/formats.md §1.2); the first
/// format has no `v` and carries every value in clear. Both verify.
pub const FORMAT_SD: u64 = 2;

/// CWT claim `status` (draft-ietf-oauth-status-list-18 §6.3): where the licence's status is
/// published.
pub const CLAIM_STATUS: i64 = 65535;

/// A licence's entry in a status list: the list's URI and the licence's index in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRef {
    pub uri: String,
    pub index: u32,
}

impl StatusRef {
    /// The list's number: the last segment of its URI (`…/v1/status-lists/<n>`).
    pub fn list(&self) -> Option<u32> {
        self.uri.rsplit('/').next()?.parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Licence {
    pub id: LicenceId,
    pub type_name: String,
    /// 证照编号: the number printed on the licence (issuer's own numbering).
    pub number: String,
    pub holder: HolderId,
    pub holder_name: String,
    /// Further holders of the same licence (不动产 co-owners, 共同共有/按份共有): each finds the
    /// licence by their own number. Empty for most licences.
    pub co_holders: Vec<CoHolder>,
    pub issuer_name: String,
    /// GB/T 2260 area code of the issuing department.
    pub area_code: String,
    /// 照面信息: face fields by name, in the order of their UTF-8 bytes.
    pub fields: BTreeMap<String, String>,
    pub predecessor: Option<LicenceId>,
    /// Unix seconds: when it was signed (`iat`).
    pub issued_at: i64,
    /// The 发证日期 printed on a licence issued before it came into the vault (a migrated
    /// licence), when it differs from the signing day; `None`: the signing day.
    pub issue_date: Option<time::Date>,
    pub valid_from: i64,
    /// `None`: long-term (长期有效).
    pub valid_until: Option<i64>,
    /// Its entry in a status list (documents with salted disclosures; `None` in the first format).
    pub status_ref: Option<StatusRef>,
}

/// A further holder of a licence (`co_holders` in `spec/licence.cddl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoHolder {
    pub id: HolderId,
    pub name: String,
}

/// A format-2 payload and the disclosures of every value it holds as a digest.
#[derive(Debug, Clone)]
pub struct SdPayload {
    pub payload: Vec<u8>,
    pub disclosures: Vec<Disclosure>,
}

/// A holder as a presented document shows it: the number only when it is in clear (a USCC, or
/// any number in the first format) or disclosed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownHolder {
    pub kind: HolderType,
    pub id: Option<HolderId>,
    pub name: String,
}

/// A licence as a signed document and the disclosures presented with it show it. Values held
/// only as digests are absent unless disclosed; each disclosed value has been checked against
/// its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// 1 (all in clear) or [`FORMAT_SD`].
    pub format: u64,
    pub id: LicenceId,
    pub type_name: String,
    pub number: String,
    pub holder: ShownHolder,
    pub co_holders: Vec<ShownHolder>,
    pub issuer_name: String,
    pub area_code: String,
    /// Face fields in clear and those disclosed.
    pub fields: BTreeMap<String, String>,
    /// The values that came from disclosures (the holder chose to show them).
    pub disclosed: BTreeSet<DisclosureKey>,
    /// Digests in the document that no presented disclosure matched.
    pub withheld: usize,
    /// A compact document (spec/formats.md §1.3): the SHA-256 of the full document it stands for.
    /// It carries no face fields, and no type or issuer name (the catalogue and the trust list
    /// name them): those are empty here.
    pub compact_of: Option<[u8; 32]>,
    pub predecessor: Option<LicenceId>,
    pub issued_at: i64,
    pub issue_date: Option<time::Date>,
    pub valid_from: i64,
    pub valid_until: Option<i64>,
    pub status_ref: Option<StatusRef>,
}

/// The `status` claim (draft-ietf-oauth-status-list-18 §6.3).
fn status_value(st: &StatusRef) -> Value {
    let list = Value::Map(vec![(text("idx"), Value::Integer(st.index.into())), (text("uri"), text(&st.uri))]);
    Value::Map(vec![(text("status_list"), list)])
}

fn parse_status(claims: &MapReader<'_>) -> Result<Option<StatusRef>, LicenceError> {
    let Some(st) = claims.int(CLAIM_STATUS) else { return Ok(None) };
    let st = MapReader::new(st, "status claim")?;
    let list = st.text("status_list").ok_or_else(|| CborError::Shape("status: status_list is required".into()))?;
    let list = MapReader::new(list, "status_list")?;
    let index = match list.text("idx") {
        Some(Value::Integer(i)) => u32::try_from(*i).ok(),
        _ => None,
    }
    .ok_or_else(|| CborError::Shape("status_list: idx must be an unsigned 32-bit integer".into()))?;
    Ok(Some(StatusRef { uri: list.req_text("uri")?.to_string(), index }))
}

fn holder_value(kind: HolderType, id: Option<&HolderId>, name: &str) -> Value {
    let mut m = vec![(text("type"), text(kind.code())), (text("name"), text(name))];
    if let Some(id) = id {
        m.push((text("id"), text(id.number())));
    }
    Value::Map(m)
}

impl Licence {
    pub fn issuer(&self) -> &Uscc {
        self.id.issuer()
    }

    /// Every holder: the holder, then the co-holders.
    pub fn holders(&self) -> impl Iterator<Item = &HolderId> {
        std::iter::once(&self.holder).chain(self.co_holders.iter().map(|c| &c.id))
    }

    /// The CWT claims in the first format (every value in clear) as deterministic CBOR. Documents
    /// in it keep verifying; the vault issues [`Licence::to_sd_payload`].
    pub fn to_payload(&self) -> Vec<u8> {
        self.encode(false, |_| false, &mut || [0; SALT_LEN]).payload
    }

    /// The CWT claims with salted disclosures ([`FORMAT_SD`]): a citizen holder's number and the
    /// fields `personal` names are in the payload only as digests; `salt` draws each disclosure's
    /// salt (16 random bytes).
    pub fn to_sd_payload(
        &self,
        personal: impl Fn(&str) -> bool,
        salt: &mut dyn FnMut() -> [u8; SALT_LEN],
    ) -> SdPayload {
        let mut hide = |k: &DisclosureKey| match k {
            DisclosureKey::Holder(_) => true,
            DisclosureKey::Field(name) => personal(name),
        };
        let mut out = self.encode(true, &mut hide, salt);
        out.disclosures.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Both formats: with `sd`, `hide` says which values become disclosures; the first format
    /// has none and no status reference.
    fn encode(
        &self,
        sd: bool,
        mut hide: impl FnMut(&DisclosureKey) -> bool,
        salt: &mut dyn FnMut() -> [u8; SALT_LEN],
    ) -> SdPayload {
        let mut disclosures = Vec::new();
        let mut holder = |n: usize, id: &HolderId, name: &str| {
            // An organisation's code is public: only a natural person's number is withheld.
            let key = DisclosureKey::Holder(n);
            if sd && id.kind().is_person() && hide(&key) {
                disclosures.push(Disclosure::new(salt(), key, id.number().to_string()));
                holder_value(id.kind(), None, name)
            } else {
                holder_value(id.kind(), Some(id), name)
            }
        };
        let holder_v = holder(0, &self.holder, &self.holder_name);
        let co: Vec<Value> = self.co_holders.iter().enumerate().map(|(i, c)| holder(i + 1, &c.id, &c.name)).collect();
        let mut fields = Vec::new();
        for (k, v) in &self.fields {
            let key = DisclosureKey::Field(k.clone());
            // An empty optional field tells nothing: it stays in clear.
            if sd && !v.is_empty() && hide(&key) {
                disclosures.push(Disclosure::new(salt(), key, v.clone()));
            } else {
                fields.push((text(k), text(v)));
            }
        }
        let mut lic = vec![
            (text("id"), text(self.id.to_string())),
            (text("type"), text(self.id.type_code().as_str())),
            (text("type_name"), text(&self.type_name)),
            (text("no"), text(&self.number)),
            (text("holder"), holder_v),
            (text("issuer_name"), text(&self.issuer_name)),
            (text("area"), text(&self.area_code)),
            (text("fields"), Value::Map(fields)),
        ];
        if let Some(p) = &self.predecessor {
            lic.push((text("prev"), text(p.to_string())));
        }
        if let Some(d) = self.issue_date {
            lic.push((text("issued"), text(d.to_string())));
        }
        if !co.is_empty() {
            lic.push((text("co_holders"), Value::Array(co)));
        }
        if sd {
            lic.push((text("v"), Value::Integer(FORMAT_SD.into())));
            if !disclosures.is_empty() {
                let mut digests: Vec<[u8; 32]> = disclosures.iter().map(Disclosure::digest).collect();
                // Sorted: the order tells nothing about which value a digest stands for.
                digests.sort();
                lic.push((text("sd"), Value::Array(digests.iter().map(|d| Value::Bytes(d.to_vec())).collect())));
            }
        }
        let mut claims = vec![
            (int(CLAIM_ISS), text(self.issuer().as_str())),
            (int(CLAIM_NBF), int(self.valid_from)),
            (int(CLAIM_IAT), int(self.issued_at)),
            (int(CLAIM_LICENCE), Value::Map(lic)),
        ];
        if let Some(exp) = self.valid_until {
            claims.push((int(CLAIM_EXP), int(exp)));
        }
        if let Some(st) = self.status_ref.as_ref().filter(|_| sd) {
            let list = Value::Map(vec![(text("idx"), Value::Integer(st.index.into())), (text("uri"), text(&st.uri))]);
            claims.push((int(CLAIM_STATUS), Value::Map(vec![(text("status_list"), list)])));
        }
        SdPayload { payload: cbor::encode(Value::Map(claims)), disclosures }
    }

    /// The CWT claims of the licence's compact document (spec/formats.md §1.3): `iss`, `nbf`,
    /// `iat`, `exp`, the status entry, and under [`CLAIM_COMPACT`] the identifier (1), the licence
    /// number (2), the holder (3: type, name, and the number only for a USCC) and the SHA-256 of
    /// the full document as issued (4), which binds the compact one to it and so to the log.
    pub fn to_compact_payload(&self, full_sha256: &[u8; 32]) -> Vec<u8> {
        let mut holder = vec![(int(1), text(self.holder.kind().code())), (int(2), text(&self.holder_name))];
        if !self.holder.kind().is_person() {
            holder.push((int(3), text(self.holder.number())));
        }
        let compact = vec![
            (int(1), text(self.id.to_string())),
            (int(2), text(&self.number)),
            (int(3), Value::Map(holder)),
            (int(4), Value::Bytes(full_sha256.to_vec())),
        ];
        let mut claims = vec![
            (int(CLAIM_ISS), text(self.issuer().as_str())),
            (int(CLAIM_NBF), int(self.valid_from)),
            (int(CLAIM_IAT), int(self.issued_at)),
            (int(CLAIM_COMPACT), Value::Map(compact)),
        ];
        if let Some(exp) = self.valid_until {
            claims.push((int(CLAIM_EXP), int(exp)));
        }
        if let Some(st) = &self.status_ref {
            claims.push((int(CLAIM_STATUS), status_value(st)));
        }
        cbor::encode(Value::Map(claims))
    }

    /// Parses a payload in which every value is in clear (the first format). The bytes must be
    /// deterministic CBOR: a document whose payload we would have encoded differently was not
    /// made by a conforming issuer.
    pub fn from_payload(bytes: &[u8]) -> Result<Self, LicenceError> {
        Presented::parse(bytes, &[])?.complete()
    }

    /// The whole licence from a payload and the disclosures of every value it withholds.
    pub fn from_signed(payload: &[u8], disclosures: &[Disclosure]) -> Result<Self, LicenceError> {
        Presented::parse(payload, disclosures)?.complete()
    }

    /// Like [`Licence::from_signed`] for a payload this process encoded (issuance decodes every
    /// document back with it before committing, and reads of stored documents, whose hash is the
    /// log's, use it): the same checks but the determinism check, which `cbor::encode`
    /// guarantees by construction (`own_payloads_are_deterministic` checks it).
    pub fn from_own(payload: &[u8], disclosures: &[Disclosure]) -> Result<Self, LicenceError> {
        Presented::from_value(&cbor::decode(payload)?, disclosures)?.complete()
    }
}

impl Presented {
    /// Parses a signed payload (deterministic CBOR) and checks each presented disclosure against
    /// its digests: each must match a digest, none twice, and disclose a value the document
    /// withholds.
    pub fn parse(payload: &[u8], disclosures: &[Disclosure]) -> Result<Self, LicenceError> {
        Self::from_value(&cbor::decode_deterministic(payload)?, disclosures)
    }

    /// The whole licence: every value in clear or disclosed.
    pub fn complete(self) -> Result<Licence, LicenceError> {
        if self.compact_of.is_some() {
            return Err(LicenceError::Withheld("the face of a licence shown by its compact document".into()));
        }
        if self.withheld > 0 {
            return Err(LicenceError::Withheld(format!("{} value(s) of the licence", self.withheld)));
        }
        let id_of =
            |h: ShownHolder, what: &str| h.id.ok_or_else(|| LicenceError::Withheld(format!("the {what}'s number")));
        let holder = id_of(self.holder.clone(), "holder")?;
        let co_holders = self
            .co_holders
            .into_iter()
            .map(|c| Ok(CoHolder { name: c.name.clone(), id: id_of(c, "co-holder")? }))
            .collect::<Result<_, LicenceError>>()?;
        Ok(Licence {
            id: self.id,
            type_name: self.type_name,
            number: self.number,
            holder,
            holder_name: self.holder.name,
            co_holders,
            issuer_name: self.issuer_name,
            area_code: self.area_code,
            fields: self.fields,
            predecessor: self.predecessor,
            issued_at: self.issued_at,
            issue_date: self.issue_date,
            valid_from: self.valid_from,
            valid_until: self.valid_until,
            status_ref: self.status_ref,
        })
    }

    /// A whole licence seen as if presented with nothing disclosed by choice: every value in
    /// clear, as in the first format (a public answer then hides the personal ones).
    pub fn of(l: &Licence) -> Self {
        let shown =
            |id: &HolderId, name: &str| ShownHolder { kind: id.kind(), id: Some(id.clone()), name: name.into() };
        Self {
            format: 1,
            id: l.id.clone(),
            type_name: l.type_name.clone(),
            number: l.number.clone(),
            holder: shown(&l.holder, &l.holder_name),
            co_holders: l.co_holders.iter().map(|c| shown(&c.id, &c.name)).collect(),
            issuer_name: l.issuer_name.clone(),
            area_code: l.area_code.clone(),
            fields: l.fields.clone(),
            disclosed: BTreeSet::new(),
            withheld: 0,
            compact_of: None,
            predecessor: l.predecessor.clone(),
            issued_at: l.issued_at,
            issue_date: l.issue_date,
            valid_from: l.valid_from,
            valid_until: l.valid_until,
            status_ref: l.status_ref.clone(),
        }
    }

    pub fn issuer(&self) -> &Uscc {
        self.id.issuer()
    }

    /// The value `key` names (a holder's number in full, or a face field), if the document shows it.
    pub fn disclosed_value(&self, key: &DisclosureKey) -> Option<String> {
        match key {
            DisclosureKey::Holder(0) => self.holder.id.as_ref().map(|h| h.number().to_string()),
            DisclosureKey::Holder(n) => {
                self.co_holders.get(n - 1).and_then(|c| c.id.as_ref()).map(|h| h.number().to_string())
            }
            DisclosureKey::Field(f) => self.fields.get(f).cloned(),
        }
    }

    /// A compact document's claim (spec/formats.md §1.3).
    fn compact(
        v: &Value,
        iss: &str,
        issued_at: i64,
        valid_from: i64,
        valid_until: Option<i64>,
        status_ref: Option<StatusRef>,
    ) -> Result<Self, LicenceError> {
        let c = MapReader::new(v, "compact claim")?;
        let req = |k: i64| {
            c.int(k).and_then(Value::as_text).ok_or_else(|| CborError::Shape(format!("compact: key {k} must be text")))
        };
        let id = LicenceId::parse(req(1)?)?;
        if iss != id.issuer().as_str() {
            return Err(LicenceError::Inconsistent("iss differs from the identifier's issuer".into()));
        }
        let h = MapReader::new(
            c.int(3).ok_or_else(|| CborError::Shape("compact: holder (3) is required".into()))?,
            "holder",
        )?;
        let text_at = |k: i64| {
            h.int(k).map(|v| v.as_text().ok_or_else(|| CborError::Shape(format!("holder: key {k} must be text"))))
        };
        let kind =
            HolderType::parse(text_at(1).ok_or_else(|| CborError::Shape("holder: type (1) is required".into()))??)?;
        let name = text_at(2).ok_or_else(|| CborError::Shape("holder: name (2) is required".into()))??.to_string();
        let holder_id = match (kind.is_person(), text_at(3).transpose()?) {
            (false, Some(n)) => Some(HolderId::parse_pilot(kind.code(), n)?),
            (true, None) => None,
            _ => {
                return Err(LicenceError::Inconsistent(
                    "a compact document names an organisation's code and never a natural person's number".into(),
                ))
            }
        };
        let full = match c.int(4) {
            Some(Value::Bytes(b)) => <[u8; 32]>::try_from(b.as_slice()).ok(),
            _ => None,
        }
        .ok_or_else(|| CborError::Shape("compact: full (4) must be a SHA-256 digest".into()))?;
        if valid_until.is_some_and(|exp| exp <= valid_from) {
            return Err(LicenceError::Inconsistent("exp is not after nbf".into()));
        }
        Ok(Self {
            format: FORMAT_SD,
            number: req(2)?.to_string(),
            id,
            type_name: String::new(),
            holder: ShownHolder { kind, id: holder_id, name },
            co_holders: Vec::new(),
            issuer_name: String::new(),
            area_code: String::new(),
            fields: BTreeMap::new(),
            disclosed: BTreeSet::new(),
            withheld: 0,
            compact_of: Some(full),
            predecessor: None,
            issued_at,
            issue_date: None,
            valid_from,
            valid_until,
            status_ref,
        })
    }

    fn from_value(v: &Value, disclosures: &[Disclosure]) -> Result<Self, LicenceError> {
        let claims = MapReader::new(v, "CWT claims")?;
        let iss = claims
            .int(CLAIM_ISS)
            .and_then(|v| v.as_text())
            .ok_or_else(|| CborError::Shape("claim iss (1) must be text".into()))?;
        let time = |key: i64, name: &str| -> Result<Option<i64>, LicenceError> {
            match claims.uint_at(key)? {
                None => Ok(None),
                Some(t) => i64::try_from(t)
                    .map(Some)
                    .map_err(|_| LicenceError::Inconsistent(format!("claim {name} out of range"))),
            }
        };
        let issued_at = time(CLAIM_IAT, "iat")?.ok_or_else(|| CborError::Shape("claim iat (6) is required".into()))?;
        let valid_from = time(CLAIM_NBF, "nbf")?.ok_or_else(|| CborError::Shape("claim nbf (5) is required".into()))?;
        let valid_until = time(CLAIM_EXP, "exp")?;
        let lic_v = match (claims.int(CLAIM_LICENCE), claims.int(CLAIM_COMPACT)) {
            (Some(v), None) => v,
            (None, Some(_)) if !disclosures.is_empty() => {
                return Err(LicenceError::Disclosure("a compact document has no digests to disclose".into()))
            }
            (None, Some(c)) => {
                return Self::compact(c, iss, issued_at, valid_from, valid_until, parse_status(&claims)?)
            }
            _ => {
                return Err(CborError::Shape(
                    "exactly one of the licence claim (-65537) and the compact claim (-65539) is required".into(),
                )
                .into())
            }
        };
        let lic = MapReader::new(lic_v, "licence claim")?;
        let format = match lic.text("v") {
            None => 1,
            Some(Value::Integer(i)) if u64::try_from(*i).ok() == Some(FORMAT_SD) => FORMAT_SD,
            Some(_) => {
                return Err(
                    CborError::Shape(format!("licence: v must be {FORMAT_SD} (absent: the first format)")).into()
                )
            }
        };
        let sd = format == FORMAT_SD;
        let id = LicenceId::parse(lic.req_text("id")?)?;
        if lic.req_text("type")? != id.type_code().as_str() {
            return Err(LicenceError::Inconsistent("type code differs from the identifier's".into()));
        }
        if iss != id.issuer().as_str() {
            return Err(LicenceError::Inconsistent("iss differs from the identifier's issuer".into()));
        }
        let parse_holder = |v: &Value| -> Result<ShownHolder, LicenceError> {
            let h = MapReader::new(v, "holder")?;
            let kind = HolderType::parse(h.req_text("type")?)?;
            let id = match h.opt_text("id")? {
                // A signed document may carry an administrator-approved pilot code (DESIGN §2):
                // the issuer checked the override when it signed, so only the shape is checked.
                Some(n) => Some(HolderId::parse_pilot(kind.code(), n)?),
                // Withheld: only a natural person's number, and only in the format with disclosures.
                None if sd && kind.is_person() => None,
                None => return Err(CborError::Shape("holder: \"id\" must be text".into()).into()),
            };
            if sd && kind.is_person() && id.is_some() {
                return Err(LicenceError::Inconsistent(
                    "a natural person's number is in clear in a document with disclosures".into(),
                ));
            }
            Ok(ShownHolder { kind, id, name: h.req_text("name")?.to_string() })
        };
        let holder_v = lic.text("holder").ok_or_else(|| CborError::Shape("licence: holder is required".into()))?;
        let mut holder = parse_holder(holder_v)?;
        let mut co_holders = match lic.text("co_holders") {
            None => Vec::new(),
            Some(Value::Array(list)) if !list.is_empty() => list.iter().map(parse_holder).collect::<Result<_, _>>()?,
            Some(_) => return Err(CborError::Shape("licence: co_holders must be a non-empty array".into()).into()),
        };
        let fields_v = lic.text("fields").ok_or_else(|| CborError::Shape("licence: fields is required".into()))?;
        let mut fields = BTreeMap::new();
        match fields_v {
            Value::Map(entries) => {
                for (k, v) in entries {
                    match (k.as_text(), v.as_text()) {
                        (Some(k), Some(v)) => {
                            fields.insert(k.to_string(), v.to_string());
                        }
                        _ => return Err(CborError::Shape("licence: fields must map text to text".into()).into()),
                    }
                }
            }
            _ => return Err(CborError::Shape("licence: fields must be a map".into()).into()),
        }
        let digests: Vec<[u8; 32]> = match lic.text("sd") {
            None => Vec::new(),
            Some(Value::Array(list)) if sd && !list.is_empty() => list
                .iter()
                .map(|d| match d {
                    Value::Bytes(b) => <[u8; 32]>::try_from(b.as_slice()).ok(),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .filter(|ds| ds.windows(2).all(|w| w[0] < w[1]))
                .ok_or_else(|| CborError::Shape("licence: sd must be SHA-256 digests in increasing order".into()))?,
            Some(_) => {
                return Err(CborError::Shape(
                    "licence: sd is a non-empty array, only in the format with disclosures".into(),
                )
                .into())
            }
        };
        let withheld_holders = std::iter::once(&holder).chain(&co_holders).filter(|h| h.id.is_none()).count();
        if withheld_holders > digests.len() {
            return Err(LicenceError::Inconsistent("a holder's number is neither in clear nor under a digest".into()));
        }
        let mut disclosed = BTreeSet::new();
        let mut used = BTreeSet::new();
        for d in disclosures {
            let digest = d.digest();
            if digests.binary_search(&digest).is_err() {
                return Err(LicenceError::Disclosure(format!("{} matches no digest of the document", d.key.label())));
            }
            if !used.insert(digest) || disclosed.contains(&d.key) {
                return Err(LicenceError::Disclosure(format!("{} is disclosed twice", d.key.label())));
            }
            match &d.key {
                DisclosureKey::Holder(n) => {
                    let h = match n {
                        0 => &mut holder,
                        n => co_holders.get_mut(n - 1).ok_or_else(|| {
                            LicenceError::Disclosure(format!("{} names no holder of the document", d.key.label()))
                        })?,
                    };
                    if h.id.is_some() {
                        return Err(LicenceError::Disclosure(format!("{} is in clear already", d.key.label())));
                    }
                    h.id = Some(d.holder_id(h.kind.code())?);
                }
                DisclosureKey::Field(name) => {
                    if fields.insert(name.clone(), d.value.clone()).is_some() {
                        return Err(LicenceError::Disclosure(format!("{name} is in clear already")));
                    }
                }
            }
            disclosed.insert(d.key.clone());
        }
        if !sd && claims.int(CLAIM_STATUS).is_some() {
            return Err(CborError::Shape("the status claim is only in the format with disclosures".into()).into());
        }
        let status_ref = parse_status(&claims)?;
        let predecessor = lic.opt_text("prev")?.map(LicenceId::parse).transpose()?;
        let issue_date = match lic.opt_text("issued")? {
            None => None,
            Some(d) => Some(
                crate::domain::parse_date(d)
                    .ok_or_else(|| CborError::Shape(format!("licence: issued must be a date YYYY-MM-DD, not {d:?}")))?,
            ),
        };
        if valid_until.is_some_and(|exp| exp <= valid_from) {
            return Err(LicenceError::Inconsistent("exp is not after nbf".into()));
        }
        Ok(Self {
            format,
            id,
            type_name: lic.req_text("type_name")?.to_string(),
            number: lic.req_text("no")?.to_string(),
            holder,
            co_holders,
            issuer_name: lic.req_text("issuer_name")?.to_string(),
            area_code: lic.req_text("area")?.to_string(),
            fields,
            withheld: digests.len() - used.len(),
            compact_of: None,
            disclosed,
            predecessor,
            issued_at,
            issue_date,
            valid_from,
            valid_until,
            status_ref,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Licence {
        Licence {
            id: LicenceId::parse("1.2.156.3005.2.12440305K12345677U001.91110108MA0ABCD1XL.2024000001.001.T").unwrap(),
            type_name: "营业执照".into(),
            number: "2024000001".into(),
            holder: HolderId::parse("001", "52310104MJ0123456M").unwrap(),
            holder_name: "示例科技有限公司".into(),
            co_holders: Vec::new(),
            issuer_name: "示例市市场监督管理局".into(),
            area_code: "440305".into(),
            fields: [("名称".to_string(), "示例科技有限公司".to_string())].into(),
            predecessor: None,
            issued_at: 1_700_000_000,
            issue_date: None,
            valid_from: 1_700_000_000,
            valid_until: None,
            status_ref: None,
        }
    }

    #[test]
    fn payload_round_trips() {
        let l = sample();
        let bytes = l.to_payload();
        assert_eq!(Licence::from_payload(&bytes).unwrap(), l);
        let mut l2 = l.clone();
        l2.valid_until = Some(1_800_000_000);
        l2.predecessor = Some(l.id.clone());
        assert_eq!(Licence::from_payload(&l2.to_payload()).unwrap(), l2);
        l2.co_holders =
            vec![CoHolder { id: HolderId::parse("111", "11010519491231002X").unwrap(), name: "共有人".into() }];
        assert_eq!(Licence::from_payload(&l2.to_payload()).unwrap(), l2);
    }

    proptest::proptest! {
        /// What `to_payload` writes always passes the verifier's determinism check and decodes
        /// to the same licence, whatever the text, dates and fields.
        #[test]
        fn own_payloads_are_deterministic(
            fields in proptest::collection::btree_map("\\PC{1,12}", "\\PC{0,40}", 0..12),
            name in "\\PC{1,20}",
            number in "[A-Z0-9]{1,20}",
            from in 0i64..32_503_680_000,
            len in proptest::option::of(1i64..2_000_000_000),
            issued in 0i64..32_503_680_000,
        ) {
            let mut l = sample();
            l.fields = fields;
            l.holder_name = name;
            l.number = number;
            l.valid_from = from;
            l.valid_until = len.map(|d| from + d);
            l.issued_at = issued;
            let bytes = l.to_payload();
            proptest::prop_assert_eq!(Licence::from_payload(&bytes).unwrap(), l.clone());
            proptest::prop_assert_eq!(Licence::from_own(&bytes, &[]).unwrap(), l);
        }

        #[test]
        fn payload_parsing_never_panics(junk: Vec<u8>, at: usize, byte: u8) {
            let _ = Licence::from_payload(&junk);
            let mut p = sample().to_payload();
            let i = at % p.len();
            p[i] = byte;
            let _ = Licence::from_payload(&p);
        }
    }
}
