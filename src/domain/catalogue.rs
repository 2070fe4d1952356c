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
    /// 不予共享: only with the holder's presentation.
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FieldDef {
    pub name: String,
    pub kind: FieldKind,
    pub required: bool,
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Personal data of someone other than the holder: stored and signed, never shown on the public
    /// verification page.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub personal: bool,
}

fn default_max_len() -> usize {
    200
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Requirement {
    pub type_code: String,
    /// false = optional ("if any, gives priority").
    pub required: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceItem {
    pub code: String,
    pub name: String,
    pub applicant: HolderType,
    pub requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
        let mut types = BTreeMap::new();
        for t in file.licence_types {
            let err = |why: String| CatalogueError::Type { code: t.code.clone(), why };
            let code = TypeCode::parse(&t.code).map_err(|e| err(e.to_string()))?;
            if t.holder_types.is_empty() || t.issuers.is_empty() || t.fields.is_empty() {
                return Err(err("needs holder types, issuers and fields".into()));
            }
            for issuer in &t.issuers {
                Uscc::parse(issuer).map_err(|e| err(format!("issuer {issuer}: {e}")))?;
            }
            let mut names = BTreeSet::new();
            for f in &t.fields {
                if !names.insert(f.name.as_str()) {
                    return Err(err(format!("field {} appears twice", f.name)));
                }
                if f.kind == FieldKind::Enum && f.options.is_empty() {
                    return Err(err(format!("enum field {} has no options", f.name)));
                }
            }
            types.insert(code.as_str().to_string(), t);
        }
        let mut items = BTreeMap::new();
        for item in file.service_items {
            for r in &item.requirements {
                if !types.contains_key(&r.type_code) {
                    return Err(CatalogueError::Item {
                        code: item.code.clone(),
                        why: format!("requires unknown licence type {}", r.type_code),
                    });
                }
            }
            items.insert(item.code.clone(), item);
        }
        Ok(Self { types, items })
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
                    if !def.options.iter().any(|o| o == value) {
                        return Err(FieldError::NotOption { name: def.name.clone(), options: def.options.clone() });
                    }
                }
            }
        }
        Ok(())
    }

    pub fn may_issue(&self, issuer: &str) -> bool {
        self.issuers.iter().any(|i| i == issuer)
    }

    /// Names of fields that must not be shown on public pages.
    pub fn personal_fields(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().filter(|f| f.personal).map(|f| f.name.as_str())
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
