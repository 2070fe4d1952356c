//! The licence as signed: the CWT claims payload of the COSE_Sign1 document (DESIGN §3,
//! `spec/licence.cddl`). Conversion to and from deterministic CBOR lives here because it is pure.

use std::collections::BTreeMap;

use ciborium::Value;

use super::holder::{HolderError, HolderId, Uscc};
use super::licence_id::{LicenceId, LicenceIdError};
use crate::cbor::{self, int, text, CborError, MapReader};

/// CWT claim keys (RFC 8392 §4).
pub const CLAIM_ISS: i64 = 1;
pub const CLAIM_EXP: i64 = 4;
pub const CLAIM_NBF: i64 = 5;
pub const CLAIM_IAT: i64 = 6;
/// The private claim that carries the licence (private-use range of the CWT claims registry).
pub const CLAIM_LICENCE: i64 = -65537;

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
    /// Unix seconds.
    pub issued_at: i64,
    pub valid_from: i64,
    /// `None`: long-term (长期有效).
    pub valid_until: Option<i64>,
}

/// A further holder of a licence (`co_holders` in `spec/licence.cddl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoHolder {
    pub id: HolderId,
    pub name: String,
}

fn holder_value(id: &HolderId, name: &str) -> Value {
    Value::Map(vec![
        (text("type"), text(id.kind().code())),
        (text("id"), text(id.number())),
        (text("name"), text(name)),
    ])
}

fn parse_holder(v: &Value) -> Result<(HolderId, String), LicenceError> {
    let holder = MapReader::new(v, "holder")?;
    // A signed document may carry an administrator-approved pilot code (DESIGN §2): the
    // issuer checked the override when it signed, so only the shape is checked here.
    let id = HolderId::parse_pilot(holder.req_text("type")?, holder.req_text("id")?)?;
    Ok((id, holder.req_text("name")?.to_string()))
}

impl Licence {
    pub fn issuer(&self) -> &Uscc {
        self.id.issuer()
    }

    /// Every holder: the holder, then the co-holders.
    pub fn holders(&self) -> impl Iterator<Item = &HolderId> {
        std::iter::once(&self.holder).chain(self.co_holders.iter().map(|c| &c.id))
    }

    /// The CWT claims as deterministic CBOR: the COSE payload.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut lic = vec![
            (text("id"), text(self.id.to_string())),
            (text("type"), text(self.id.type_code().as_str())),
            (text("type_name"), text(&self.type_name)),
            (text("no"), text(&self.number)),
            (text("holder"), holder_value(&self.holder, &self.holder_name)),
            (text("issuer_name"), text(&self.issuer_name)),
            (text("area"), text(&self.area_code)),
            (text("fields"), Value::Map(self.fields.iter().map(|(k, v)| (text(k), text(v))).collect())),
        ];
        if let Some(p) = &self.predecessor {
            lic.push((text("prev"), text(p.to_string())));
        }
        if !self.co_holders.is_empty() {
            let co = self.co_holders.iter().map(|c| holder_value(&c.id, &c.name)).collect();
            lic.push((text("co_holders"), Value::Array(co)));
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
        cbor::encode(Value::Map(claims))
    }

    /// Parses a payload. The bytes must be deterministic CBOR: a document whose payload we would
    /// have encoded differently was not made by a conforming issuer.
    pub fn from_payload(bytes: &[u8]) -> Result<Self, LicenceError> {
        Self::from_value(&cbor::decode_deterministic(bytes)?)
    }

    /// Parses a payload this process just encoded with [`Licence::to_payload`]: the same checks
    /// as [`Licence::from_payload`] but the determinism check, which `cbor::encode` guarantees by
    /// construction (`own_payloads_are_deterministic` checks it over random licences). Issuance
    /// decodes every document back with it before committing (a claim the decoder would refuse,
    /// such as a negative `nbf`, is caught there).
    pub fn from_own_payload(bytes: &[u8]) -> Result<Self, LicenceError> {
        Self::from_value(&cbor::decode(bytes)?)
    }

    fn from_value(v: &Value) -> Result<Self, LicenceError> {
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
        let lic_v = claims
            .int(CLAIM_LICENCE)
            .ok_or_else(|| CborError::Shape("the licence claim (-65537) is required".into()))?;
        let lic = MapReader::new(lic_v, "licence claim")?;
        let id = LicenceId::parse(lic.req_text("id")?)?;
        if lic.req_text("type")? != id.type_code().as_str() {
            return Err(LicenceError::Inconsistent("type code differs from the identifier's".into()));
        }
        if iss != id.issuer().as_str() {
            return Err(LicenceError::Inconsistent("iss differs from the identifier's issuer".into()));
        }
        let holder_v = lic.text("holder").ok_or_else(|| CborError::Shape("licence: holder is required".into()))?;
        let (holder_id, holder_name) = parse_holder(holder_v)?;
        let co_holders = match lic.text("co_holders") {
            None => Vec::new(),
            Some(Value::Array(list)) if !list.is_empty() => list
                .iter()
                .map(|v| parse_holder(v).map(|(id, name)| CoHolder { id, name }))
                .collect::<Result<_, _>>()?,
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
        let predecessor = lic.opt_text("prev")?.map(LicenceId::parse).transpose()?;
        if valid_until.is_some_and(|exp| exp <= valid_from) {
            return Err(LicenceError::Inconsistent("exp is not after nbf".into()));
        }
        Ok(Self {
            id,
            type_name: lic.req_text("type_name")?.to_string(),
            number: lic.req_text("no")?.to_string(),
            holder: holder_id,
            holder_name,
            co_holders,
            issuer_name: lic.req_text("issuer_name")?.to_string(),
            area_code: lic.req_text("area")?.to_string(),
            fields,
            predecessor,
            issued_at,
            valid_from,
            valid_until,
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
            valid_from: 1_700_000_000,
            valid_until: None,
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
            proptest::prop_assert_eq!(Licence::from_own_payload(&bytes).unwrap(), l);
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
