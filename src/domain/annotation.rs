//! Annotated copies (加注件): a copy of a licence that a verifying department made for one
//! purpose, signed by the platform's annotation key. The payload names the original (its id and
//! the SHA-256 of its document), carries its face as a verifier may see it (holder numbers
//! masked, no personal fields of other persons: never more than the maker was shown), and names
//! the maker, the purpose, the time and the expiry (`spec/licence.cddl`, `annotated-copy`).
//! Pure: encoding and decoding only.

use ciborium::Value;

use crate::cbor::{self, int, text, CborError, MapReader};

/// The private claim that carries the annotation (next to the licence claim -65537).
pub const CLAIM_ANNOTATION: i64 = -65538;
/// Longest validity of an annotated copy, in days.
pub const MAX_COPY_DAYS: u32 = 90;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// The platform that signed it (the log origin).
    pub platform: String,
    pub original_id: String,
    pub original_sha256: [u8; 32],
    /// The original's face as the copy shows it.
    pub face: Face,
    pub maker_uscc: String,
    pub maker_name: String,
    pub maker_client: String,
    /// 用途, e.g. "仅供办理食品经营许可使用".
    pub purpose: String,
    pub service_item: Option<String>,
    pub biz_num: Option<String>,
    /// Unix seconds.
    pub issued_at: i64,
    pub valid_until: i64,
}

/// The face of the original on a copy: what a verifier may see, nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Face {
    pub type_name: String,
    /// 证照编号.
    pub number: String,
    pub holder_type: String,
    /// Masked (`4403**********123X`) for citizens.
    pub holder_id: String,
    pub holder_name: String,
    pub issuer_name: String,
    /// Face fields without the personal fields of other persons.
    pub fields: Vec<(String, String)>,
    /// `YYYY-MM-DD`.
    pub valid_from: String,
    /// `YYYY-MM-DD`, absent for long-term.
    pub valid_until: Option<String>,
}

impl Face {
    fn to_value(&self) -> Value {
        let mut m = vec![
            (text("type_name"), text(&self.type_name)),
            (text("no"), text(&self.number)),
            (
                text("holder"),
                Value::Map(vec![
                    (text("type"), text(&self.holder_type)),
                    (text("id"), text(&self.holder_id)),
                    (text("name"), text(&self.holder_name)),
                ]),
            ),
            (text("issuer_name"), text(&self.issuer_name)),
            (text("fields"), Value::Map(self.fields.iter().map(|(k, v)| (text(k), text(v))).collect())),
            (text("valid_from"), text(&self.valid_from)),
        ];
        if let Some(u) = &self.valid_until {
            m.push((text("valid_until"), text(u)));
        }
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<Self, CborError> {
        let f = MapReader::new(v, "face")?;
        let holder =
            MapReader::new(f.text("holder").ok_or_else(|| CborError::Shape("face: holder".into()))?, "holder")?;
        let fields = match f.text("fields") {
            Some(Value::Map(entries)) => entries
                .iter()
                .map(|(k, v)| match (k.as_text(), v.as_text()) {
                    (Some(k), Some(v)) => Ok((k.to_string(), v.to_string())),
                    _ => Err(CborError::Shape("face: fields map text to text".into())),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(CborError::Shape("face: fields must be a map".into())),
        };
        Ok(Self {
            type_name: f.req_text("type_name")?.to_string(),
            number: f.req_text("no")?.to_string(),
            holder_type: holder.req_text("type")?.to_string(),
            holder_id: holder.req_text("id")?.to_string(),
            holder_name: holder.req_text("name")?.to_string(),
            issuer_name: f.req_text("issuer_name")?.to_string(),
            fields,
            valid_from: f.req_text("valid_from")?.to_string(),
            valid_until: f.opt_text("valid_until")?.map(str::to_string),
        })
    }
}

impl Annotation {
    pub fn to_payload(&self) -> Vec<u8> {
        let maker = vec![
            (text("uscc"), text(&self.maker_uscc)),
            (text("name"), text(&self.maker_name)),
            (text("client"), text(&self.maker_client)),
        ];
        let mut a = vec![
            (text("orig"), text(&self.original_id)),
            (text("orig_sha256"), Value::Bytes(self.original_sha256.to_vec())),
            (text("face"), self.face.to_value()),
            (text("maker"), Value::Map(maker)),
            (text("purpose"), text(&self.purpose)),
        ];
        if let Some(s) = &self.service_item {
            a.push((text("service_item"), text(s)));
        }
        if let Some(b) = &self.biz_num {
            a.push((text("biz_num"), text(b)));
        }
        cbor::encode(Value::Map(vec![
            (int(1), text(&self.platform)),
            (int(4), int(self.valid_until)),
            (int(6), int(self.issued_at)),
            (int(CLAIM_ANNOTATION), Value::Map(a)),
        ]))
    }

    pub fn from_payload(bytes: &[u8]) -> Result<Self, CborError> {
        let v = cbor::decode_deterministic(bytes)?;
        let claims = MapReader::new(&v, "CWT claims")?;
        let time = |k: i64| -> Result<i64, CborError> {
            claims
                .uint_at(k)?
                .and_then(|t| i64::try_from(t).ok())
                .ok_or_else(|| CborError::Shape(format!("annotated copy: claim {k} is required")))
        };
        let platform = claims
            .int(1)
            .and_then(|v| v.as_text())
            .ok_or_else(|| CborError::Shape("annotated copy: iss (1) is required".into()))?
            .to_string();
        let a = claims
            .int(CLAIM_ANNOTATION)
            .ok_or_else(|| CborError::Shape("annotated copy: the annotation claim (-65538) is required".into()))?;
        let a = MapReader::new(a, "annotation")?;
        let bytes_of = |k: &str| -> Result<Vec<u8>, CborError> {
            a.text(k)
                .and_then(|v| v.as_bytes())
                .cloned()
                .ok_or_else(|| CborError::Shape(format!("annotation: {k} must be bytes")))
        };
        let maker = MapReader::new(
            a.text("maker").ok_or_else(|| CborError::Shape("annotation: maker is required".into()))?,
            "maker",
        )?;
        Ok(Self {
            platform,
            original_id: a.req_text("orig")?.to_string(),
            original_sha256: bytes_of("orig_sha256")?
                .try_into()
                .map_err(|_| CborError::Shape("annotation: orig_sha256 must be 32 bytes".into()))?,
            face: Face::from_value(
                a.text("face").ok_or_else(|| CborError::Shape("annotation: face is required".into()))?,
            )?,
            maker_uscc: maker.req_text("uscc")?.to_string(),
            maker_name: maker.req_text("name")?.to_string(),
            maker_client: maker.req_text("client")?.to_string(),
            purpose: a.req_text("purpose")?.to_string(),
            service_item: a.opt_text("service_item")?.map(str::to_string),
            biz_num: a.opt_text("biz_num")?.map(str::to_string),
            issued_at: time(6)?,
            valid_until: time(4)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Annotation {
        Annotation {
            platform: "licvault.example.gov.cn/log".into(),
            original_id: "1.2.156.3005.2.11100000MB00001073001.11440300MB2000100X.202600000001.001.A".into(),
            original_sha256: [7; 32],
            face: Face {
                type_name: "营业执照".into(),
                number: "2026000001".into(),
                holder_type: "001".into(),
                holder_id: "91440300MA5E000256".into(),
                holder_name: "示例科技有限公司".into(),
                issuer_name: "示例市市场监督管理局".into(),
                fields: vec![("名称".into(), "示例科技有限公司".into())],
                valid_from: "2026-11-30".into(),
                valid_until: None,
            },
            maker_uscc: "11440300MB20008055".into(),
            maker_name: "示例市政务服务中心 综合窗口".into(),
            maker_client: "zwfw-counter".into(),
            purpose: "仅供办理食品经营许可使用".into(),
            service_item: Some("440300-XK-0001".into()),
            biz_num: None,
            issued_at: 1_800_000_000,
            valid_until: 1_800_086_400,
        }
    }

    #[test]
    fn round_trips() {
        let a = sample();
        assert_eq!(Annotation::from_payload(&a.to_payload()).unwrap(), a);
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(at: usize, byte: u8) {
            let mut p = sample().to_payload();
            let i = at % p.len();
            p[i] = byte;
            let _ = Annotation::from_payload(&p);
        }
    }
}
