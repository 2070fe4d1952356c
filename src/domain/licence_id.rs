//! Licence identifiers (电子证照标识, GB/T 36904):
//! `1.2.156.3005.2.<type code>.<issuer USCC>.<serial>.<version>.<check>`.
//!
//! The type code is the defining authority's USCC followed by three digits; the serial is the
//! issuer's uppercase alphanumeric number; the version is three digits (`001`, `002`, …, a new
//! version for each renewal or amendment); the check character is ISO 7064 MOD 37,36 over the
//! segments after the root with the dots removed.

use std::fmt;

use super::holder::{HolderError, Uscc};

/// The OID arc under which every licence identifier lives.
pub const ROOT: &str = "1.2.156.3005.2";

const MAX_SERIAL: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenceIdError {
    #[error("a licence identifier starts with {ROOT}.")]
    Root,
    #[error("a licence identifier has 5 segments after {ROOT} (type code, issuer, serial, version, check), found {0}")]
    Segments(usize),
    #[error("licence type code {0:?} must be the defining authority's 18-character USCC followed by 3 digits")]
    TypeCodeShape(String),
    #[error("licence type code: defining authority: {0}")]
    TypeCodeAuthority(HolderError),
    #[error("issuer: {0}")]
    Issuer(HolderError),
    #[error("serial {0:?} must be 1–32 characters of 0-9 and A-Z")]
    Serial(String),
    #[error("version {0:?} must be three digits from 001 to 999")]
    Version(String),
    #[error("check character (ISO 7064 MOD 37,36) should be {expected}, found {found:?}")]
    Check { expected: char, found: String },
}

/// A licence type code: defining authority USCC ‖ 3 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeCode(String);

impl TypeCode {
    pub fn parse(s: &str) -> Result<Self, LicenceIdError> {
        let s = s.trim().to_ascii_uppercase();
        if s.len() != 21 || !s.is_ascii() || !s[18..].bytes().all(|b| b.is_ascii_digit()) {
            return Err(LicenceIdError::TypeCodeShape(s));
        }
        Uscc::parse(&s[..18]).map_err(LicenceIdError::TypeCodeAuthority)?;
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The defining authority's USCC (the first 18 characters).
    pub fn authority(&self) -> &str {
        &self.0[..18]
    }
}

impl fmt::Display for TypeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed, checked licence identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LicenceId {
    type_code: TypeCode,
    issuer: Uscc,
    serial: String,
    version: u16,
}

impl LicenceId {
    /// Builds the identifier of version `version` of `serial`; the check character is computed.
    pub fn new(type_code: TypeCode, issuer: Uscc, serial: &str, version: u16) -> Result<Self, LicenceIdError> {
        let serial = serial.trim().to_ascii_uppercase();
        if serial.is_empty() || serial.len() > MAX_SERIAL || !serial.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(LicenceIdError::Serial(serial));
        }
        if !(1..=999).contains(&version) {
            return Err(LicenceIdError::Version(version.to_string()));
        }
        Ok(Self { type_code, issuer, serial, version })
    }

    pub fn parse(s: &str) -> Result<Self, LicenceIdError> {
        let s = s.trim().to_ascii_uppercase();
        let rest = s.strip_prefix(ROOT).and_then(|r| r.strip_prefix('.')).ok_or(LicenceIdError::Root)?;
        let parts: Vec<&str> = rest.split('.').collect();
        if parts.len() != 5 {
            return Err(LicenceIdError::Segments(parts.len()));
        }
        let type_code = TypeCode::parse(parts[0])?;
        let issuer = Uscc::parse(parts[1]).map_err(LicenceIdError::Issuer)?;
        let v = parts[3];
        if v.len() != 3 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LicenceIdError::Version(v.to_string()));
        }
        let version: u16 = v.parse().map_err(|_| LicenceIdError::Version(v.to_string()))?;
        let id = Self::new(type_code, issuer, parts[2], version)?;
        let expected = id.check_char();
        if parts[4].len() != 1 || !parts[4].starts_with(expected) {
            return Err(LicenceIdError::Check { expected, found: parts[4].to_string() });
        }
        Ok(id)
    }

    pub fn type_code(&self) -> &TypeCode {
        &self.type_code
    }

    pub fn issuer(&self) -> &Uscc {
        &self.issuer
    }

    pub fn serial(&self) -> &str {
        &self.serial
    }

    pub fn version(&self) -> u16 {
        self.version
    }

    /// The identifier of the next version of the same licence (renewal or amendment).
    pub fn next_version(&self) -> Result<Self, LicenceIdError> {
        Self::new(self.type_code.clone(), self.issuer.clone(), &self.serial, self.version + 1)
    }

    fn check_char(&self) -> char {
        let body = format!("{}{}{}{:03}", self.type_code, self.issuer, self.serial, self.version);
        mod_37_36(&body)
    }
}

impl fmt::Display for LicenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ROOT}.{}.{}.{}.{:03}.{}", self.type_code, self.issuer, self.serial, self.version, self.check_char())
    }
}

/// ISO 7064 MOD 37,36 (hybrid system over 0-9A-Z) as FORMATS.md states it.
fn mod_37_36(body: &str) -> char {
    let mut p: u32 = 36;
    for c in body.chars() {
        let v = c.to_digit(36).unwrap_or(0);
        let mut s = (p + v) % 36;
        if s == 0 {
            s = 36;
        }
        p = (2 * s) % 37;
    }
    let check = (37 - p) % 36;
    char::from_digit(check, 36).map(|c| c.to_ascii_uppercase()).unwrap_or('0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_examples_pass() {
        for s in [
            "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F",
            "1.2.156.3005.2.12440305K12345677U001.91110108MA0ABCD1XL.2024000001.001.T",
            "1.2.156.3005.2.12440305K12345677U001.91110108MA0ABCD1XL.2024000001.002.R",
        ] {
            let id = LicenceId::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(id.to_string(), s);
        }
    }

    #[test]
    fn next_version_recomputes_check() {
        let id = LicenceId::parse("1.2.156.3005.2.12440305K12345677U001.91110108MA0ABCD1XL.2024000001.001.T").unwrap();
        assert_eq!(
            id.next_version().unwrap().to_string(),
            "1.2.156.3005.2.12440305K12345677U001.91110108MA0ABCD1XL.2024000001.002.R"
        );
    }

    #[track_caller]
    fn rejects(s: &str, needle: &str) {
        let e = LicenceId::parse(s).expect_err(s).to_string();
        assert!(e.contains(needle), "{e:?} does not mention {needle:?}");
    }

    #[test]
    fn bad_identifiers_say_why() {
        rejects("1.2.156.3005.3.12440305K12345677U001.91110108MA0ABCD1XL.2024000001.001.T", "starts with");
        rejects("1.2.156.3005.2.12440305K12345677U001.91110108MA0ABCD1XL.2024000001.001.X", "should be T");
        rejects("1.2.156.3005.2.12440305K12345677U001.91110108MA0ABCD1XL.2024000001.01.T", "version");
        rejects("1.2.156.3005.2.12440305K12345677U001.91110108MA0ABCD1XL.2024-01.001.T", "serial");
        rejects("1.2.156.3005.2.12440305K12345677U01.91110108MA0ABCD1XL.2024000001.001.T", "type code");
        rejects("1.2.156.3005.2.12440305K12345677U001.91110108MA0ABCD1XX.2024000001.001.T", "issuer");
        rejects("1.2.156.3005.2.12440305K12345677U001.2024000001.001.T", "5 segments");
    }
}
