//! The licence type catalogue (证照目录) and the service item catalogue (服务事项目录), loaded from
//! `fixtures/catalogue.json`, and face-field (照面信息) validation against a type's schema.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::holder::{HolderType, Uscc};
use super::licence_id::TypeCode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    #[error("catalogue is not valid JSON: {0}")]
    Json(String),
    #[error("licence type {code}: {why}")]
    Type { code: String, why: String },
    #[error("service item {code}: {why}")]
    Item { code: String, why: String },
}

/// Sharing class (共享属性) of a licence type: who may read it without the holder's presentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sharing {
    /// 无条件共享: any verifying department.
    Unconditional,
    /// 有条件共享: verifying departments whose scope lists the type.
    Conditional,
    /// 不予共享: only with the holder's presentation, and to a verifier of the issuing department.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Free text (Chinese text is the normal case), up to `max_len` characters.
    Text,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// A decimal number, optionally with a fraction (`500.00`).
    Number,
    /// One of `options`.
    Enum,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub name: String,
    pub kind: FieldKind,
    pub required: bool,
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Whose personal data the field holds, if anyone's: absent for the public face of a licence.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "personal")]
    pub personal: Option<Personal>,
    /// The value must be the holder's own number (a company's 统一社会信用代码 on its licence).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub equals_holder: bool,
    /// The shape of a code-like text value: `prefix`, then exactly `digits` ASCII digits (a
    /// 食品经营许可证编号 is JY and 14 digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<CodeFormat>,
}

/// A code's shape: a fixed prefix and a number of digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeFormat {
    pub prefix: String,
    pub digits: usize,
}

impl CodeFormat {
    fn fits(&self, v: &str) -> bool {
        v.strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.len() == self.digits && rest.bytes().all(|b| b.is_ascii_digit()))
    }
}

/// Half-width brackets as full-width ones: the register writes 有限责任公司（自然人投资或控股）
/// with full-width brackets, and systems feeding it write either.
pub fn fold_brackets(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['(', ')']) {
        s.replace('(', "（").replace(')', "）").into()
    } else {
        s.into()
    }
}

/// Personal data on a licence's face (`personal` of a field in the catalogue). Either kind is
/// in the signed document only as a salted digest (selective disclosure, spec/formats.md §1):
/// it reaches a QR code, a presentation or a public verdict only when the holder discloses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Personal {
    /// The holder's own (birth date, sex, the address of a natural person): a verifying
    /// department that looked the holder up by number sees it.
    Holder,
    /// Someone else's (a spouse's ID number, the parents' names): shown to the issuer and the
    /// holder; never to a verifier that looks the holder up, nor on annotated copies. The holder
    /// may disclose it with a presentation (it is on the holder's own licence).
    Other,
}

/// `personal` as the catalogue writes it: `"holder"` or `"other"`; `true`, the form of catalogues
/// (and logged catalogue changes) from before the two kinds, reads as `"other"`.
fn personal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Personal>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Flag(bool),
        Kind(Personal),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::Flag(true) => Some(Personal::Other),
        Raw::Flag(false) => None,
        Raw::Kind(k) => Some(k),
    })
}

fn default_max_len() -> usize {
    200
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenceType {
    pub code: String,
    pub name: String,
    /// The defining authority (制证依据的主管部门).
    pub authority_name: String,
    pub holder_types: Vec<HolderType>,
    pub fields: Vec<FieldDef>,
    /// Default validity in years; absent = long-term (长期有效).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_years: Option<u32>,
    pub sharing: Sharing,
    /// USCCs of the departments that may issue this type.
    pub issuers: Vec<String>,
    /// Every holder's number starts with this (a 个体工商户's USCC with 92: registration
    /// authority 9, category 2, GB 32100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_prefix: Option<String>,
}

/// One way to meet a requirement: a licence of `type_code` held by `holder`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alternative {
    pub type_code: String,
    /// `applicant`, or a role the service item declares in `other_holders` (the premises owner,
    /// the spouse), whose number the clerk passes with the check.
    #[serde(default = "applicant", skip_serializing_if = "is_applicant")]
    pub holder: String,
}

pub const APPLICANT: &str = "applicant";

fn applicant() -> String {
    APPLICANT.to_string()
}

fn is_applicant(s: &String) -> bool {
    s == APPLICANT
}

/// A licence requirement of a service item (材料要求). Written either as one licence
/// (`type_code`, optionally `holder`) or as a group of which one is enough (`one_of`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRequirement", into = "RawRequirement")]
pub struct Requirement {
    /// Met by any one of these, in the order given.
    pub alternatives: Vec<Alternative>,
    /// false = optional ("if any, gives priority").
    pub required: bool,
    pub note: String,
}

/// The catalogue file's form of a requirement.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequirement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    type_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    holder: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    one_of: Vec<Alternative>,
    required: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    note: String,
}

impl TryFrom<RawRequirement> for Requirement {
    type Error = String;

    fn try_from(r: RawRequirement) -> Result<Self, String> {
        let alternatives = match (r.type_code, r.one_of.is_empty()) {
            (Some(type_code), true) => vec![Alternative { type_code, holder: r.holder.unwrap_or_else(applicant) }],
            (None, false) if r.holder.is_none() => r.one_of,
            _ => return Err("a requirement has either type_code (and optionally holder) or one_of".into()),
        };
        Ok(Self { alternatives, required: r.required, note: r.note })
    }
}

impl From<Requirement> for RawRequirement {
    fn from(r: Requirement) -> Self {
        let (type_code, holder, one_of) = match <[Alternative; 1]>::try_from(r.alternatives) {
            Ok([a]) => (Some(a.type_code), (a.holder != APPLICANT).then_some(a.holder), Vec::new()),
            Err(many) => (None, None, many),
        };
        Self { type_code, holder, one_of, required: r.required, note: r.note }
    }
}

/// A holder other than the applicant whose licences a service item may need (the premises
/// owner, the spouse). The clerk passes their number under `role` with the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtherHolder {
    pub role: String,
    /// What the role is called on the counter's screen, e.g. 经营场所产权人.
    pub name: String,
    pub holder_types: Vec<HolderType>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceItem {
    pub code: String,
    pub name: String,
    /// The holder types that may apply: one code, or a list (a natural-person item usually takes
    /// every natural person's document: 111, 550, 516, 511, 553, 414).
    #[serde(with = "one_or_many")]
    pub applicant: Vec<HolderType>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_holders: Vec<OtherHolder>,
    pub requirements: Vec<Requirement>,
    /// What the counter should know beyond the shared licences (e.g. a licence that is not
    /// shared and that the applicant shows in person).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl ServiceItem {
    /// The holder types a role (`applicant` or one of `other_holders`) may have.
    pub fn role_types(&self, role: &str) -> Option<&[HolderType]> {
        if role == APPLICANT {
            return Some(&self.applicant);
        }
        self.other_holders.iter().find(|h| h.role == role).map(|h| h.holder_types.as_slice())
    }
}

/// A list of holder types written as one code when it has one (the form of catalogues before
/// there were several natural persons' documents, which logged catalogue changes still carry).
mod one_or_many {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::domain::HolderType;

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Form {
        One(HolderType),
        Many(Vec<HolderType>),
    }

    pub fn serialize<S: Serializer>(types: &[HolderType], s: S) -> Result<S::Ok, S::Error> {
        match types {
            [one] => Form::One(*one).serialize(s),
            many => Form::Many(many.to_vec()).serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<HolderType>, D::Error> {
        let form = Form::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "applicant: a holder type code (111, 550, 516, 511, 553, 414, 001, 002, 099) or a list of them",
            )
        })?;
        Ok(match form {
            Form::One(one) => vec![one],
            Form::Many(many) => many,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    licence_types: Vec<LicenceType>,
    service_items: Vec<ServiceItem>,
}

/// Both catalogues, checked: every code parses, every reference resolves.
#[derive(Debug, Clone)]
pub struct Catalogue {
    types: BTreeMap<String, LicenceType>,
    items: BTreeMap<String, ServiceItem>,
}

impl Catalogue {
    pub fn from_json(json: &str) -> Result<Self, CatalogueError> {
        let file: CatalogueFile = serde_json::from_str(json).map_err(|e| CatalogueError::Json(e.to_string()))?;
        Self::build(file.licence_types, file.service_items)
    }

    /// Checks both lists together: every code parses and appears once, every reference
    /// resolves, and no service item requires a licence that no verifier could be shown.
    pub fn build(licence_types: Vec<LicenceType>, service_items: Vec<ServiceItem>) -> Result<Self, CatalogueError> {
        let mut types = BTreeMap::new();
        for mut t in licence_types {
            let code = t.code.clone();
            let err = |why: String| CatalogueError::Type { code: code.clone(), why };
            let parsed = TypeCode::parse(&t.code).map_err(|e| err(e.to_string()))?;
            if parsed.as_str() != t.code {
                return Err(err(format!("write the code as {parsed}")));
            }
            if t.holder_types.is_empty() || t.issuers.is_empty() || t.fields.is_empty() {
                return Err(err("needs holder types, issuers and fields".into()));
            }
            if t.validity_years.is_some_and(|y| !(1..=100).contains(&y)) {
                return Err(err("validity_years is 1–100 (absent: long-term)".into()));
            }
            // Text is kept as the text rule leaves it (trimmed, NFC), so a name in the catalogue
            // matches the same name typed in a request.
            let clean = |what: &str, text: &str, max: usize| {
                super::text::clean(what, text, max).map_err(|e| err(e.to_string()))
            };
            t.name = clean("name", &t.name, 100)?;
            t.authority_name = clean("authority_name", &t.authority_name, 100)?;
            for issuer in &mut t.issuers {
                *issuer = Uscc::parse(issuer).map_err(|e| err(format!("issuer {issuer}: {e}")))?.as_str().to_string();
            }
            let mut names = BTreeSet::new();
            for f in &mut t.fields {
                f.name = clean("field name", &f.name, 64)?;
                if super::disclosure::reserved_field_name(&f.name) {
                    return Err(err(format!("field {}: names starting holder. or co_holders[ are reserved", f.name)));
                }
                if !names.insert(f.name.clone()) {
                    return Err(err(format!("field {} appears twice", f.name)));
                }
                if !(1..=10_000).contains(&f.max_len) {
                    return Err(err(format!("field {}: max_len is 1–10000", f.name)));
                }
                for o in &mut f.options {
                    *o = clean("option", o, f.max_len)?;
                }
                if f.kind == FieldKind::Enum && f.options.is_empty() {
                    return Err(err(format!("enum field {} has no options", f.name)));
                }
                if let Some(c) = &f.format {
                    if f.kind != FieldKind::Text
                        || !(1..=64).contains(&c.digits)
                        || !c.prefix.bytes().all(|b| b.is_ascii_alphanumeric())
                        || c.prefix.len() + c.digits > f.max_len
                    {
                        return Err(err(format!(
                            "field {}: a format is for a text field: an ASCII letter-and-digit prefix and 1–64 digits, within max_len",
                            f.name
                        )));
                    }
                }
            }
            if t.holder_prefix
                .as_deref()
                .is_some_and(|p| p.is_empty() || p.len() > 17 || !p.bytes().all(|b| b.is_ascii_alphanumeric()))
            {
                return Err(err("holder_prefix is 1–17 ASCII letters and digits".into()));
            }
            if types.insert(t.code.clone(), t).is_some() {
                return Err(err("appears twice".into()));
            }
        }
        let mut items = BTreeMap::new();
        for mut item in service_items {
            let code = item.code.clone();
            let err = |why: String| CatalogueError::Item { code: code.clone(), why };
            if item.code.is_empty()
                || item.code.len() > 64
                || !item.code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(err("the code is 1–64 letters, digits and hyphens".into()));
            }
            let clean = |what: &str, text: &str, max: usize| {
                super::text::clean(what, text, max).map_err(|e| err(e.to_string()))
            };
            item.name = clean("name", &item.name, 100)?;
            if !item.note.is_empty() {
                item.note = clean("note", &item.note, 200)?;
            }
            if item.applicant.is_empty() {
                return Err(err("applicant names at least one holder type".into()));
            }
            let mut roles = BTreeSet::new();
            for h in &mut item.other_holders {
                let role_ok = !h.role.is_empty()
                    && h.role.len() <= 32
                    && h.role.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit());
                if !role_ok || h.role == APPLICANT || !roles.insert(h.role.clone()) || h.holder_types.is_empty() {
                    return Err(err(format!(
                        "other holder role {:?} must be 1–32 of a-z, 0-9 and _, not applicant, not repeated, with holder types",
                        h.role
                    )));
                }
                h.name = clean("other_holders.name", &h.name, 50)?;
            }
            for r in &item.requirements {
                if r.alternatives.is_empty() {
                    return Err(err("a requirement needs at least one licence type".into()));
                }
                for a in &r.alternatives {
                    let ty = types
                        .get(&a.type_code)
                        .ok_or_else(|| err(format!("requires unknown licence type {}", a.type_code)))?;
                    let role_types = item.role_types(&a.holder).ok_or_else(|| {
                        err(format!("requirement names holder {:?}, which other_holders does not declare", a.holder))
                    })?;
                    if !role_types.iter().any(|h| ty.holder_types.contains(h)) {
                        return Err(err(format!("{} is never held by the {}", ty.name, a.holder)));
                    }
                    // A service item is checked by verifying departments: a type that is not
                    // shared (only its issuing department sees it) would always answer
                    // not_shared, so the requirement could never be met.
                    if ty.sharing == Sharing::None {
                        return Err(err(format!(
                            "requires {} ({}), whose sharing class is none: no verifying department may see it; \
                             the applicant shows it in person instead (say so in the item's note)",
                            ty.name, ty.code
                        )));
                    }
                }
            }
            for r in item.requirements.iter_mut().filter(|r| !r.note.is_empty()) {
                r.note = clean("requirement note", &r.note, 200)?;
            }
            if items.insert(item.code.clone(), item).is_some() {
                return Err(err("appears twice".into()));
            }
        }
        Ok(Self { types, items })
    }

    /// This catalogue with `t` added or replaced, checked as a whole.
    pub fn with_type(&self, t: LicenceType) -> Result<Self, CatalogueError> {
        let mut types: Vec<LicenceType> = self.types.values().filter(|x| x.code != t.code).cloned().collect();
        types.push(t);
        Self::build(types, self.items.values().cloned().collect())
    }

    /// This catalogue with `item` added or replaced, checked as a whole.
    pub fn with_item(&self, item: ServiceItem) -> Result<Self, CatalogueError> {
        let mut items: Vec<ServiceItem> = self.items.values().filter(|x| x.code != item.code).cloned().collect();
        items.push(item);
        Self::build(self.types.values().cloned().collect(), items)
    }

    pub fn licence_type(&self, code: &str) -> Option<&LicenceType> {
        self.types.get(code)
    }

    pub fn licence_types(&self) -> impl Iterator<Item = &LicenceType> {
        self.types.values()
    }

    pub fn service_item(&self, code: &str) -> Option<&ServiceItem> {
        self.items.get(code)
    }

    pub fn service_items(&self) -> impl Iterator<Item = &ServiceItem> {
        self.items.values()
    }
}

/// Why a set of face fields does not fit its licence type's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("field {0:?} is not part of this licence type")]
    Unknown(String),
    #[error("field {0:?} is given twice (the names differ only in spaces or Unicode normalisation)")]
    Duplicate(String),
    #[error("required field {0:?} is missing or empty")]
    Missing(String),
    #[error("field {name:?} has {len} characters, at most {max} are allowed")]
    TooLong { name: String, len: usize, max: usize },
    #[error("field {0:?} must be a date written YYYY-MM-DD")]
    NotDate(String),
    #[error("field {0:?} must be a decimal number")]
    NotNumber(String),
    #[error("field {name:?} must be one of {options:?}")]
    NotOption { name: String, options: Vec<String> },
    #[error("field {0:?} contains control characters")]
    Control(String),
    #[error("field {name:?} must be {prefix} followed by {digits} digits")]
    Format { name: String, prefix: String, digits: usize },
    #[error("field {0:?} must be the holder's own number")]
    NotHolder(String),
    #[error("this licence type is held by holders whose number starts with {0}")]
    HolderPrefix(String),
}

impl LicenceType {
    /// Checks `fields` against the schema: names, required, kind, length. Text is counted in
    /// characters, not bytes: 经营范围 of 300 Chinese characters is normal.
    pub fn validate_fields(&self, fields: &BTreeMap<String, String>) -> Result<(), FieldError> {
        for name in fields.keys() {
            if !self.fields.iter().any(|f| &f.name == name) {
                return Err(FieldError::Unknown(name.clone()));
            }
        }
        for def in &self.fields {
            let value = fields.get(&def.name).map(|v| v.as_str()).unwrap_or("");
            if value.trim().is_empty() {
                if def.required {
                    return Err(FieldError::Missing(def.name.clone()));
                }
                continue;
            }
            let len = value.chars().count();
            if len > def.max_len {
                return Err(FieldError::TooLong { name: def.name.clone(), len, max: def.max_len });
            }
            if value.chars().any(|c| c.is_control() && c != '\n') {
                return Err(FieldError::Control(def.name.clone()));
            }
            if def.format.as_ref().is_some_and(|c| !c.fits(value)) {
                let c = def.format.as_ref().map(|c| (c.prefix.clone(), c.digits)).unwrap_or_default();
                return Err(FieldError::Format { name: def.name.clone(), prefix: c.0, digits: c.1 });
            }
            match def.kind {
                FieldKind::Text => {}
                FieldKind::Date => {
                    if super::parse_date(value).is_none() {
                        return Err(FieldError::NotDate(def.name.clone()));
                    }
                }
                FieldKind::Number => {
                    let mut parts = value.splitn(2, '.');
                    let int = parts.next().unwrap_or("");
                    let frac = parts.next();
                    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
                        return Err(FieldError::NotNumber(def.name.clone()));
                    }
                }
                FieldKind::Enum => {
                    let value = fold_brackets(value);
                    if !def.options.iter().any(|o| fold_brackets(o) == value) {
                        return Err(FieldError::NotOption { name: def.name.clone(), options: def.options.clone() });
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes each enum value as the catalogue's option it matches with brackets folded
    /// ([`fold_brackets`]), so the document carries the register's spelling.
    pub fn canonicalise(&self, fields: &mut BTreeMap<String, String>) {
        for def in self.fields.iter().filter(|d| d.kind == FieldKind::Enum) {
            if let Some(v) = fields.get_mut(&def.name) {
                let folded = fold_brackets(v).into_owned();
                if let Some(o) = def.options.iter().find(|o| fold_brackets(o) == folded) {
                    v.clone_from(o);
                }
            }
        }
    }

    /// The checks across the holder and the face: the holder's number prefix, and each field
    /// that must be the holder's own number.
    pub fn check_holder(&self, holder: &str, fields: &BTreeMap<String, String>) -> Result<(), FieldError> {
        if let Some(p) = self.holder_prefix.as_deref().filter(|p| !holder.starts_with(p)) {
            return Err(FieldError::HolderPrefix(p.to_string()));
        }
        for def in self.fields.iter().filter(|d| d.equals_holder) {
            if fields.get(&def.name).is_some_and(|v| v.trim() != holder) {
                return Err(FieldError::NotHolder(def.name.clone()));
            }
        }
        Ok(())
    }

    pub fn may_issue(&self, issuer: &str) -> bool {
        self.issuers.iter().any(|i| i == issuer)
    }

    /// Whose personal data field `name` holds (`None`: public face, or no such field).
    pub fn personal(&self, name: &str) -> Option<Personal> {
        self.fields.iter().find(|f| f.name == name).and_then(|f| f.personal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> Catalogue {
        Catalogue::from_json(include_str!("../../fixtures/catalogue.json")).expect("fixture catalogue loads")
    }

    #[test]
    fn fixture_catalogue_is_complete() {
        let c = catalogue();
        assert!(c.licence_types().count() >= 8);
        assert!(c.service_items().count() >= 4);
    }

    #[test]
    fn items_never_require_an_unshared_type() {
        let json = include_str!("../../fixtures/catalogue.json");
        let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
        let gg = v["service_items"].as_array_mut().unwrap().iter_mut().find(|i| i["code"] == "440300-GG-0001").unwrap();
        gg["requirements"].as_array_mut().unwrap().push(
            serde_json::json!({"type_code": "11100000MB0000609M001", "required": false, "note": "如有，可优先配租"}),
        );
        let err = Catalogue::from_json(&v.to_string()).unwrap_err().to_string();
        assert!(err.contains("440300-GG-0001") && err.contains("sharing class is none"), "{err}");
        // A role the item does not declare, and a requirement with both forms, are refused too.
        let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
        v["service_items"][0]["requirements"][0]["holder"] = serde_json::json!("landlord");
        assert!(Catalogue::from_json(&v.to_string()).unwrap_err().to_string().contains("landlord"));
        let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
        v["service_items"][0]["requirements"][0]["one_of"] =
            serde_json::json!([{"type_code": "11100000MB00001073001"}]);
        assert!(Catalogue::from_json(&v.to_string()).is_err());
    }

    #[test]
    fn requirements_keep_their_file_form() {
        let c = catalogue();
        let item = c.service_item("440300-XK-0001").unwrap();
        assert_eq!(item.requirements[1].alternatives[1].holder, "premises_owner");
        let json = serde_json::to_value(item).unwrap();
        assert_eq!(
            json["requirements"][0],
            serde_json::json!({"type_code": "11100000MB00001073001", "required": true})
        );
        assert_eq!(json["requirements"][1]["one_of"][0], serde_json::json!({"type_code": "11100000MB0000705Y001"}));
        let back: ServiceItem = serde_json::from_value(json).unwrap();
        assert_eq!(&back, item);
    }

    #[test]
    fn brackets_holder_prefix_and_code_formats() {
        let c = catalogue();
        let t = c.licence_type("11100000MB00001073001").unwrap().clone();
        let mut fields = BTreeMap::from([("类型".to_string(), "有限责任公司(自然人投资或控股)".to_string())]);
        t.canonicalise(&mut fields);
        assert_eq!(fields["类型"], "有限责任公司（自然人投资或控股）", "half-width brackets read as the register's");
        let company = "91440300MA5E000256";
        let face = BTreeMap::from([("统一社会信用代码".to_string(), company.to_string())]);
        assert_eq!(t.check_holder(company, &face), Ok(()));
        assert_eq!(t.check_holder("91440300MA5E00037X", &face), Err(FieldError::NotHolder("统一社会信用代码".into())));
        let sole = c.licence_type("11100000MB00001073002").unwrap();
        assert_eq!(sole.check_holder(company, &BTreeMap::new()), Err(FieldError::HolderPrefix("92".into())));
        let food = c.licence_type("11100000MB00001073003").unwrap();
        let code = food.fields.iter().find(|f| f.name == "许可证编号").unwrap().format.clone().unwrap();
        assert!(code.fits("JY14403050012345"));
        for bad in ["JY1440305001234", "JY144030500123456", "JX14403050012345", "JY1440305001234A"] {
            assert!(!code.fits(bad), "{bad}");
        }
    }

    #[test]
    fn field_validation() {
        let c = catalogue();
        let t = c.licence_types().find(|t| t.name == "营业执照").expect("营业执照 in catalogue");
        let mut fields: BTreeMap<String, String> = t
            .fields
            .iter()
            .filter(|f| f.required)
            .map(|f| {
                let v = match f.kind {
                    FieldKind::Date => "2020-01-02".to_string(),
                    FieldKind::Number => "100".to_string(),
                    FieldKind::Enum => f.options[0].clone(),
                    FieldKind::Text => "测试".to_string(),
                };
                (f.name.clone(), v)
            })
            .collect();
        assert_eq!(t.validate_fields(&fields), Ok(()));
        fields.insert("不存在".into(), "x".into());
        assert_eq!(t.validate_fields(&fields), Err(FieldError::Unknown("不存在".into())));
        fields.remove("不存在");
        fields.insert("成立日期".into(), "2020-02-30".into());
        assert_eq!(t.validate_fields(&fields), Err(FieldError::NotDate("成立日期".into())));
        fields.insert("成立日期".into(), "2020-02-29".into());
        fields.insert("经营范围".into(), "零".repeat(2001));
        assert!(matches!(t.validate_fields(&fields), Err(FieldError::TooLong { .. })));
        fields.remove("名称");
        fields.insert("经营范围".into(), "零".repeat(300));
        assert_eq!(t.validate_fields(&fields), Err(FieldError::Missing("名称".into())));
    }
}
