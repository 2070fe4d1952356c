//! Holder numbers (一号申请): who a licence is issued to, by the number on their identity
//! document, with each document's own rules.
//!
//! Natural persons: the citizen ID number (GB 11643, `111`); the 港澳台居民居住证 (`550`, GB 11643
//! rules with area 810000, 820000 or 830000); the 港澳居民来往内地通行证 (`516`) and the
//! 台湾居民来往大陆通行证 (`511`), by their lifetime number; the 外国人永久居留身份证 (`553`, the
//! 2023 18-digit number with its MOD 11-2 check, or the 2017 15-character one); a passport
//! (`414`), by issuing state and number. Organisations: the unified social credit code (GB 32100,
//! `001`); the organisation code (GB 11714, `002`) of licences from before the USCC; an
//! organisation registered abroad (`099`), by state and registration number.
//!
//! Parse, don't validate: once you hold a [`HolderId`] or a [`Uscc`], every check rule of its
//! type has passed and the number is in its one canonical form (the key of the holder index).
//! Input is trimmed and upper-cased here, once, at the edge.

use std::fmt;

use time::{Date, Month, OffsetDateTime};

/// Why a holder number was refused. Each variant names the rule that failed so that a counter
/// clerk or an integrator can tell a typing error from a wrong holder type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HolderError {
    #[error(
        "unknown holder type code {0:?}: expected 111 (citizen ID number), 550 (港澳台居民居住证), 516 (港澳居民来往内地通行证), 511 (台湾居民来往大陆通行证), 553 (外国人永久居留身份证), 414 (passport), 001 (unified social credit code), 002 (organisation code) or 099 (organisation registered abroad)"
    )]
    UnknownType(String),
    #[error("a {what} has {expected} characters, this one has {len}")]
    Length { what: &'static str, expected: &'static str, len: usize },
    #[error("{what}: the first 17 characters must be digits, found {ch:?}")]
    NotDigits { what: &'static str, ch: char },
    #[error("{what}: the last character must be a digit or X, found {ch:?}")]
    BadCheckChar { what: &'static str, ch: char },
    #[error("citizen ID number: area code {0} is not a GB/T 2260 code (province part must be 11–82)")]
    CitizenArea(String),
    #[error("citizen ID number: area code {0} is that of a 港澳台居民居住证: use holder type 550")]
    CitizenIsResidencePermit(String),
    #[error("港澳台居民居住证: area code must be 810000 (Hong Kong), 820000 (Macao) or 830000 (Taiwan), found {0}")]
    ResidencePermitArea(String),
    #[error("{what}: birth date {date} is not a calendar date")]
    BirthDate { what: &'static str, date: String },
    #[error("{what}: birth date {date} is in the future")]
    BirthInFuture { what: &'static str, date: String },
    #[error("{what}: check character (ISO 7064 MOD 11-2) should be {expected}, found {found}")]
    Check11 { what: &'static str, expected: char, found: char },
    #[error("{what}: {rule}")]
    Shape { what: &'static str, rule: &'static str },
    #[error("unified social credit code: character {ch:?} at position {pos} is not allowed (0-9 and A-Z without I, O, S, V, Z)")]
    UsccCharset { ch: char, pos: usize },
    #[error("{what}: organisation code check (GB 11714) should be {expected}, found {found}")]
    OrgCheck { what: &'static str, expected: char, found: char },
    #[error("unified social credit code: check character (GB 32100 MOD 31) should be {expected}, found {found}")]
    UsccCheck { expected: char, found: char },
}

impl HolderError {
    /// True when only a check character is wrong: the one failure a pre-2015 pilot code may
    /// have, and the only one an administrator's override can excuse (DESIGN §2).
    pub fn is_check_failure(&self) -> bool {
        matches!(self, Self::Check11 { .. } | Self::UsccCheck { .. } | Self::OrgCheck { .. })
    }
}

/// Whether a holder is a natural person (whose number is personal data: withheld from QR codes,
/// masked for verifiers) or an organisation (whose code is public).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderClass {
    Person,
    Organisation,
}

/// Holder type codes: the 证件类型 codes of the government service platforms for natural persons,
/// `001` for the USCC as in the licence catalogue, and `002`/`099` for the other organisation
/// codes (spec/formats.md §2 lists them with their rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum HolderType {
    /// `111`: 居民身份证, the citizen ID number (GB 11643).
    #[serde(rename = "111")]
    Citizen,
    /// `550`: 港澳台居民居住证, an 18-digit number under GB 11643 rules whose area code is
    /// 810000 (Hong Kong), 820000 (Macao) or 830000 (Taiwan).
    #[serde(rename = "550")]
    ResidencePermit,
    /// `516`: 港澳居民来往内地通行证. H (Hong Kong) or M (Macao) and the 8-digit lifetime number;
    /// the 2 digits after it on the card count the permit's renewals and are not the holder's.
    #[serde(rename = "516")]
    HkMacaoPermit,
    /// `511`: 台湾居民来往大陆通行证, the 8-digit lifetime number (since 2013; the 2 digits
    /// after it on the card count the permit's issues).
    #[serde(rename = "511")]
    TaiwanPermit,
    /// `553`: 外国人永久居留身份证. Since December 2023 18 digits: 9, the province of the
    /// accepting office, a 3-digit nationality code, the birth date, a sequence and the MOD 11-2
    /// check of GB 11643. Cards of 2017 still in use: 3 letters (nationality) and 12 digits.
    #[serde(rename = "553")]
    PermanentResident,
    /// `414`: a passport, `STATE:NUMBER` (the ICAO 9303 issuing-state code, then the document
    /// number): passport numbers are unique only within the state that issued them.
    #[serde(rename = "414")]
    Passport,
    /// `001`: an organisation, by unified social credit code (GB 32100).
    #[serde(rename = "001")]
    Organisation,
    /// `002`: an organisation by its organisation code (GB 11714, 8 characters and a check), as
    /// licences from before the USCC (2015) name it.
    #[serde(rename = "002")]
    OrganisationCode,
    /// `099`: an organisation registered abroad, `STATE:NUMBER` (ISO 3166 alpha-3 code, then its
    /// registration number without spaces or hyphens).
    #[serde(rename = "099")]
    ForeignOrganisation,
}

impl HolderType {
    pub const ALL: [HolderType; 9] = [
        Self::Citizen,
        Self::ResidencePermit,
        Self::HkMacaoPermit,
        Self::TaiwanPermit,
        Self::PermanentResident,
        Self::Passport,
        Self::Organisation,
        Self::OrganisationCode,
        Self::ForeignOrganisation,
    ];

    pub fn parse(code: &str) -> Result<Self, HolderError> {
        let code = code.trim();
        Self::ALL.into_iter().find(|t| t.code() == code).ok_or_else(|| HolderError::UnknownType(code.to_string()))
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Citizen => "111",
            Self::ResidencePermit => "550",
            Self::HkMacaoPermit => "516",
            Self::TaiwanPermit => "511",
            Self::PermanentResident => "553",
            Self::Passport => "414",
            Self::Organisation => "001",
            Self::OrganisationCode => "002",
            Self::ForeignOrganisation => "099",
        }
    }

    /// What the document is called, for messages.
    pub fn what(self) -> &'static str {
        match self {
            Self::Citizen => CITIZEN,
            Self::ResidencePermit => RESIDENCE,
            Self::HkMacaoPermit => "港澳居民来往内地通行证",
            Self::TaiwanPermit => "台湾居民来往大陆通行证",
            Self::PermanentResident => PERMANENT,
            Self::Passport => "passport",
            Self::Organisation => "unified social credit code",
            Self::OrganisationCode => ORG_CODE,
            Self::ForeignOrganisation => "registration abroad",
        }
    }

    pub fn class(self) -> HolderClass {
        match self {
            Self::Organisation | Self::OrganisationCode | Self::ForeignOrganisation => HolderClass::Organisation,
            _ => HolderClass::Person,
        }
    }

    pub fn is_person(self) -> bool {
        self.class() == HolderClass::Person
    }
}

const CITIZEN: &str = "citizen ID number";
const RESIDENCE: &str = "港澳台居民居住证";
const PERMANENT: &str = "外国人永久居留身份证";
const ORG_CODE: &str = "organisation code";

/// A holder number that has passed every rule of its type, in canonical form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HolderId {
    kind: HolderType,
    number: String,
}

impl HolderId {
    /// Parses `number` as a holder of type `type_code`.
    pub fn parse(type_code: &str, number: &str) -> Result<Self, HolderError> {
        let kind = HolderType::parse(type_code)?;
        Self::parse_typed(kind, number)
    }

    pub fn parse_typed(kind: HolderType, number: &str) -> Result<Self, HolderError> {
        Self::parse_with(kind, number, true)
    }

    /// Like [`HolderId::parse`], but a wrong check character of a citizen ID number or a USCC is
    /// tolerated: every other rule (length, alphabet, area, birth date) still holds. Only for
    /// numbers that an administrator has allowed as pre-2015 pilot codes, and for holders inside
    /// documents whose signature has verified (the issuer checked the override when it signed).
    /// The other types postdate the pilots: their checks always hold. A citizen's number with a
    /// residence permit's area (810000, 820000), which new input must give as type 550, is
    /// accepted too: documents signed before that rule carry such numbers as type 111.
    pub fn parse_pilot(type_code: &str, number: &str) -> Result<Self, HolderError> {
        Self::parse_with(HolderType::parse(type_code)?, number, false)
    }

    fn parse_with(kind: HolderType, number: &str, checks: bool) -> Result<Self, HolderError> {
        let number = normalise(number);
        let today = || crate::domain::cst_date(OffsetDateTime::now_utc().unix_timestamp());
        let result = match kind {
            HolderType::Citizen => check_citizen(&number, today()).map(|()| number.clone()),
            HolderType::ResidencePermit => check_residence_permit(&number, today()).map(|()| number.clone()),
            HolderType::HkMacaoPermit => canonical_hk_macao(&number),
            HolderType::TaiwanPermit => canonical_taiwan(&number),
            HolderType::PermanentResident => check_permanent_resident(&number, today()).map(|()| number.clone()),
            HolderType::Passport => canonical_passport(&number),
            HolderType::Organisation => check_uscc(&number).map(|()| number.clone()),
            HolderType::OrganisationCode => canonical_org_code(&number),
            HolderType::ForeignOrganisation => canonical_foreign_org(&number),
        };
        let pilot = matches!(kind, HolderType::Citizen | HolderType::Organisation);
        match result {
            Ok(number) => Ok(Self { kind, number }),
            Err(e) if !checks && pilot && e.is_check_failure() => Ok(Self { kind, number }),
            // Before type 550 existed a residence permit's number went in as a citizen's: such
            // documents are signed and in the log, and keep their meaning.
            Err(HolderError::CitizenIsResidencePermit(_)) if !checks => Ok(Self { kind, number }),
            Err(e) => Err(e),
        }
    }

    pub fn kind(&self) -> HolderType {
        self.kind
    }

    pub fn number(&self) -> &str {
        &self.number
    }

    /// The number with what identifies the person hidden, for pages and logs that may be seen by
    /// people who are not the holder: a natural person's number keeps only its first and last
    /// few characters (never the birth date), an organisation's code is public and shown whole.
    pub fn masked(&self) -> String {
        let n = &self.number;
        let keep = |head: usize, tail: usize| {
            let stars = n.len().saturating_sub(head + tail);
            format!("{}{}{}", &n[..head], "*".repeat(stars), &n[n.len() - tail..])
        };
        match self.kind {
            HolderType::Organisation | HolderType::OrganisationCode | HolderType::ForeignOrganisation => n.clone(),
            HolderType::Citizen | HolderType::ResidencePermit => keep(4, 4),
            HolderType::PermanentResident if n.len() == 18 => keep(4, 4),
            HolderType::PermanentResident => keep(3, 4),
            HolderType::HkMacaoPermit => keep(1, 2),
            HolderType::TaiwanPermit => keep(0, 2),
            HolderType::Passport => {
                // The state stays (it says which document to ask for); of the number, at most
                // the last 3 characters and never more than a third of it.
                let state = n.find(':').map_or(0, |i| i + 1);
                let tail = ((n.len() - state) / 3).min(3);
                keep(state, tail)
            }
        }
    }
}

impl fmt::Debug for HolderId {
    // A natural person's number is personal data: keep it out of debug output and panics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HolderId({}:{})", self.kind.code(), self.masked())
    }
}

/// A unified social credit code (GB 32100): issuers, defining authorities and company holders.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uscc(String);

impl Uscc {
    pub fn parse(s: &str) -> Result<Self, HolderError> {
        let s = normalise(s);
        check_uscc(&s)?;
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Uscc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Uscc> for HolderId {
    fn from(u: Uscc) -> Self {
        Self { kind: HolderType::Organisation, number: u.0 }
    }
}

fn normalise(s: &str) -> String {
    s.trim().to_ascii_uppercase()
}

const CITIZEN_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CITIZEN_CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// The areas of the 港澳台居民居住证 (2018): Hong Kong, Macao, Taiwan.
const RESIDENCE_AREAS: [&str; 3] = ["810000", "820000", "830000"];

/// GB 11643: area (6) ‖ birth date (8) ‖ sequence (3) ‖ ISO 7064 MOD 11-2 check.
fn check_citizen(s: &str, today: Date) -> Result<(), HolderError> {
    check_gb11643(CITIZEN, s, today)?;
    if RESIDENCE_AREAS.contains(&&s[..6]) {
        return Err(HolderError::CitizenIsResidencePermit(s[..6].to_string()));
    }
    let province: u32 = s[..2].parse().unwrap_or(0);
    if !(11..=82).contains(&province) {
        return Err(HolderError::CitizenArea(s[..6].to_string()));
    }
    check_mod11_2(CITIZEN, s)
}

/// The 港澳台居民居住证: GB 11643 with the area of Hong Kong, Macao or Taiwan.
fn check_residence_permit(s: &str, today: Date) -> Result<(), HolderError> {
    check_gb11643(RESIDENCE, s, today)?;
    if !RESIDENCE_AREAS.contains(&&s[..6]) {
        return Err(HolderError::ResidencePermitArea(s[..6].to_string()));
    }
    check_mod11_2(RESIDENCE, s)
}

/// The 2023 外国人永久居留身份证: 9 ‖ province of the accepting office (2) ‖ nationality (3) ‖
/// birth date (8) ‖ sequence (3) ‖ MOD 11-2 check, as GB 11643. A 2017 card: 3 letters and 12
/// digits, whose inner rule is not published: only its shape is checked.
fn check_permanent_resident(s: &str, today: Date) -> Result<(), HolderError> {
    if s.len() == 15 && s.is_ascii() {
        let (letters, digits) = s.split_at(3);
        if letters.bytes().all(|b| b.is_ascii_uppercase()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(());
        }
        return Err(HolderError::Shape {
            what: PERMANENT,
            rule: "a card of 2017 has 3 letters (the nationality) and 12 digits",
        });
    }
    check_gb11643(PERMANENT, s, today)?;
    let province: u32 = s[1..3].parse().unwrap_or(0);
    if !s.starts_with('9') || !(11..=82).contains(&province) {
        return Err(HolderError::Shape {
            what: PERMANENT,
            rule: "the 2023 number starts with 9 and the province code (11–82) of the office that accepted it",
        });
    }
    check_mod11_2(PERMANENT, s)
}

/// Length, digits and birth date (positions 7–14) of an 18-character GB 11643-style number.
fn check_gb11643(what: &'static str, s: &str, today: Date) -> Result<(), HolderError> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 18 {
        return Err(HolderError::Length { what, expected: "18", len: chars.len() });
    }
    if let Some(&ch) = chars[..17].iter().find(|c| !c.is_ascii_digit()) {
        return Err(HolderError::NotDigits { what, ch });
    }
    let last = chars[17];
    if !(last.is_ascii_digit() || last == 'X') {
        return Err(HolderError::BadCheckChar { what, ch: last });
    }
    let birth = &s[6..14];
    let date = parse_yyyymmdd(birth).ok_or_else(|| HolderError::BirthDate { what, date: birth.to_string() })?;
    if date > today {
        return Err(HolderError::BirthInFuture { what, date: birth.to_string() });
    }
    Ok(())
}

/// ISO 7064 MOD 11-2 over the first 17 digits (already checked to be digits).
fn check_mod11_2(what: &'static str, s: &str) -> Result<(), HolderError> {
    let sum: u32 = s.bytes().take(17).zip(CITIZEN_WEIGHTS).map(|(c, w)| u32::from(c - b'0') * w).sum();
    let expected = CITIZEN_CHECK[(sum % 11) as usize];
    let found = s.as_bytes()[17] as char;
    if expected != found {
        return Err(HolderError::Check11 { what, expected, found });
    }
    Ok(())
}

/// H or M, the 8-digit lifetime number, and optionally the 2-digit renewal count, which is
/// dropped: a renewed permit names the same holder.
fn canonical_hk_macao(s: &str) -> Result<String, HolderError> {
    let b = s.as_bytes();
    let ok = matches!(b.len(), 9 | 11) && matches!(b[0], b'H' | b'M') && b[1..].iter().all(u8::is_ascii_digit);
    if !ok {
        return Err(HolderError::Shape {
            what: "港澳居民来往内地通行证",
            rule: "H (Hong Kong) or M (Macao), the 8-digit lifetime number, and optionally the 2 digits of the renewal count",
        });
    }
    Ok(s[..9].to_string())
}

/// The 8-digit lifetime number, and optionally the 2-digit issue count, which is dropped.
fn canonical_taiwan(s: &str) -> Result<String, HolderError> {
    if matches!(s.len(), 8 | 10) && s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(s[..8].to_string());
    }
    Err(HolderError::Shape {
        what: "台湾居民来往大陆通行证",
        rule: "the 8-digit lifetime number, optionally followed by the 2 digits of the issue count \
               (numbers from before 2013 changed with every permit and have all expired)",
    })
}

/// `STATE:NUMBER` with the ICAO 9303 issuing-state code (1–3 letters, `D` for Germany) and a
/// document number of 1–9 letters and digits (`DEU` becomes `D`); a CHN passport (the
/// mainland's or a SAR's) has 9 characters, a letter first and 7 digits last.
fn canonical_passport(s: &str) -> Result<String, HolderError> {
    let shape = HolderError::Shape {
        what: "passport",
        rule:
            "STATE:NUMBER, the issuing state's ICAO code (1–3 letters) and the document number (1–9 letters and digits)",
    };
    let (state, number) = split_state(s, 9).ok_or(shape)?;
    // Germany's passports say D (ICAO 9303), not DEU: one holder, one key.
    let state = if state == "DEU" { "D" } else { state };
    if state == "CHN" {
        // Every passport CHN issues (ordinary E…/G…, the SARs' K…/H…/MA…, diplomatic and
        // service ones): 9 characters, a letter first, digits last.
        let b = number.as_bytes();
        let ok = b.len() == 9 && b[0].is_ascii_uppercase() && b[2..].iter().all(u8::is_ascii_digit);
        if !ok {
            return Err(HolderError::Shape {
                what: "passport",
                rule: "a passport of CHN (the mainland's or a SAR's) has 9 characters: a letter, then a letter or a digit, then 7 digits",
            });
        }
    }
    Ok(format!("{state}:{number}"))
}

/// GB 11714: 8 characters of 0-9 and A-Z, then the check (0-9 or X), often written after a hyphen.
fn canonical_org_code(s: &str) -> Result<String, HolderError> {
    let s = match s.split_once('-') {
        Some((body, check)) if body.len() == 8 => format!("{body}{check}"),
        _ => s.to_string(),
    };
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 9 || !chars[..8].iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()) {
        return Err(HolderError::Shape {
            what: ORG_CODE,
            rule: "8 characters of 0-9 and A-Z, then the check character (0-9 or X), optionally after a hyphen",
        });
    }
    let expected = org_check_char(&chars[..8]);
    if expected != chars[8] {
        return Err(HolderError::OrgCheck { what: ORG_CODE, expected, found: chars[8] });
    }
    Ok(s)
}

/// `STATE:NUMBER`: ISO 3166 alpha-3 code and the registration number (1–32 letters and digits;
/// spaces and hyphens are dropped).
fn canonical_foreign_org(s: &str) -> Result<String, HolderError> {
    let s: String = s.chars().filter(|&c| c != ' ' && c != '-').collect();
    match split_state(&s, 32) {
        Some((state, number)) if state.len() == 3 => Ok(format!("{state}:{number}")),
        _ => Err(HolderError::Shape {
            what: "registration abroad",
            rule: "STATE:NUMBER, the ISO 3166 alpha-3 code of the state of registration and the registration number (1–32 letters and digits)",
        }),
    }
}

fn split_state(s: &str, max: usize) -> Option<(&str, &str)> {
    let (state, number) = s.split_once(':')?;
    let (state, number) = (state.trim(), number.trim());
    let state_ok = (1..=3).contains(&state.len()) && state.bytes().all(|b| b.is_ascii_uppercase());
    let number_ok =
        (1..=max).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    (state_ok && number_ok).then_some((state, number))
}

fn parse_yyyymmdd(s: &str) -> Option<Date> {
    let y: i32 = s.get(0..4)?.parse().ok()?;
    let m: u8 = s.get(4..6)?.parse().ok()?;
    let d: u8 = s.get(6..8)?.parse().ok()?;
    if y < 1800 {
        return None;
    }
    Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()
}

/// The 31 symbols of GB 32100 (0-9, A-Z without I, O, S, V, Z).
const USCC_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

fn check_uscc(s: &str) -> Result<(), HolderError> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 18 {
        return Err(HolderError::Length { what: "unified social credit code", expected: "18", len: chars.len() });
    }
    if let Some((pos, &ch)) = chars.iter().enumerate().find(|(_, c)| !USCC_ALPHABET.contains(**c)) {
        return Err(HolderError::UsccCharset { ch, pos: pos + 1 });
    }
    let org_expected = org_check_char(&chars[8..16]);
    if org_expected != chars[16] {
        return Err(HolderError::OrgCheck {
            what: "unified social credit code (positions 9–17)",
            expected: org_expected,
            found: chars[16],
        });
    }
    let expected = uscc_check_char(&chars[..17]);
    if expected != chars[17] {
        return Err(HolderError::UsccCheck { expected, found: chars[17] });
    }
    Ok(())
}

/// GB 11714 check of the 8-character organisation code body (USCC positions 9–16): letters count
/// 10..35 in the plain A-Z order; 10 is written `X`, 11 is written `0`.
fn org_check_char(body: &[char]) -> char {
    let sum: u32 = body.iter().zip(ORG_WEIGHTS).map(|(c, w)| c.to_digit(36).unwrap_or(0) * w).sum();
    match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        n => char::from_digit(n, 10).unwrap_or('0'),
    }
}

/// GB 32100 check over the first 17 characters (all in [`USCC_ALPHABET`]).
fn uscc_check_char(first17: &[char]) -> char {
    let sum: u32 = first17.iter().zip(USCC_WEIGHTS).map(|(c, w)| USCC_ALPHABET.find(*c).unwrap_or(0) as u32 * w).sum();
    USCC_ALPHABET.as_bytes()[((31 - sum % 31) % 31) as usize] as char
}

/// Computes the check characters for a USCC body of 16 characters (positions 1–16): returns the
/// full 18-character code. Used to make synthetic codes for fixtures and tests.
pub fn complete_uscc(body16: &str) -> Option<String> {
    let mut chars: Vec<char> = body16.chars().collect();
    if chars.len() != 16 || !chars.iter().all(|c| USCC_ALPHABET.contains(*c)) {
        return None;
    }
    chars.push(org_check_char(&chars[8..16]));
    chars.push(uscc_check_char(&chars));
    Some(chars.into_iter().collect())
}

/// Appends the ISO 7064 MOD 11-2 check to 17 digits: a GB 11643-style number (citizen,
/// 港澳台居民居住证, 2023 永居证). Used to make synthetic numbers for fixtures and tests.
pub fn complete_gb11643(body17: &str) -> Option<String> {
    if body17.len() != 17 || !body17.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = body17.bytes().zip(CITIZEN_WEIGHTS).map(|(c, w)| u32::from(c - b'0') * w).sum();
    Some(format!("{body17}{}", CITIZEN_CHECK[(sum % 11) as usize]))
}

/// Whether `text` contains a natural person's 18-character number (a citizen ID number, a
/// 港澳台居民居住证 or a 2023 外国人永久居留身份证 that passes every rule): free text that ends up
/// in the log (a use reason, a case number) must not carry one in clear.
pub fn contains_person_number(text: &str) -> bool {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(17)).any(|i| {
        let w = &b[i..i + 18];
        w[..17].iter().all(u8::is_ascii_digit)
            && (w[17].is_ascii_digit() || w[17] == b'X' || w[17] == b'x')
            && (i == 0 || !b[i - 1].is_ascii_digit())
            && std::str::from_utf8(w).is_ok_and(|n| {
                [HolderType::Citizen, HolderType::ResidencePermit, HolderType::PermanentResident]
                    .into_iter()
                    .any(|t| HolderId::parse_typed(t, n).is_ok())
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citizen_numbers_in_text() {
        assert!(contains_person_number("核验44030519900101123X婚姻状况"));
        assert!(contains_person_number("11010519491231002x"));
        assert!(!contains_person_number("核验婚姻状况 SPJY-2026-0042"));
        // 18 digits that fail the check character, and a longer run of digits, are not numbers.
        assert!(!contains_person_number("440305199001011231"));
        assert!(!contains_person_number("9911010519491231002X"));
    }

    #[track_caller]
    fn check(kind: &str, input: &str, expected: Result<&str, &str>) {
        match (HolderId::parse(kind, input), expected) {
            (Ok(h), Ok(want)) => assert_eq!(h.number(), want),
            (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{e} does not mention {want}"),
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn citizen_numbers() {
        check("111", "11010519491231002X", Ok("11010519491231002X"));
        check("111", "440524188001010014", Ok("440524188001010014"));
        check("111", " 11010519491231002x ", Ok("11010519491231002X"));
        check("111", "110105194912310021", Err("should be X"));
        check("111", "110101190002290015", Err("not a calendar date"));
        check("111", "11010519491231002", Err("18 characters"));
        check("111", "1101051949123100AX", Err("must be digits"));
        check("111", "000000194912310020", Err("area code"));
        check("111", "110105299912310021", Err("future"));
    }

    /// "Not in the future" is judged by the calendar in China: between 16:00 and 24:00 UTC a
    /// child born today in Beijing has a birth date that is tomorrow in UTC.
    #[test]
    fn a_child_born_today_in_china_is_not_in_the_future() {
        let today = crate::domain::cst_date(OffsetDateTime::now_utc().unix_timestamp());
        let body = format!("440305{:04}{:02}{:02}001", today.year(), u8::from(today.month()), today.day());
        let chars: Vec<char> = body.chars().collect();
        let sum: u32 = chars.iter().zip(CITIZEN_WEIGHTS).map(|(c, w)| c.to_digit(10).unwrap() * w).sum();
        let number = format!("{body}{}", CITIZEN_CHECK[(sum % 11) as usize]);
        check("111", &number, Ok(&number));
        // And tomorrow in China is refused.
        let tomorrow = today.next_day().unwrap();
        let body = format!("440305{:04}{:02}{:02}001", tomorrow.year(), u8::from(tomorrow.month()), tomorrow.day());
        let chars: Vec<char> = body.chars().collect();
        let sum: u32 = chars.iter().zip(CITIZEN_WEIGHTS).map(|(c, w)| c.to_digit(10).unwrap() * w).sum();
        check("111", &format!("{body}{}", CITIZEN_CHECK[(sum % 11) as usize]), Err("future"));
    }

    #[test]
    fn uscc_numbers() {
        check("001", "91110108MA0ABCD1XL", Ok("91110108MA0ABCD1XL"));
        check("001", "52310104mj0123456m", Ok("52310104MJ0123456M"));
        check("001", "12440305K12345677U", Ok("12440305K12345677U"));
        check("001", "91110108MA0ABCD1XI", Err("'I' at position 18"));
        check("001", "12440305K12345677V", Err("not allowed"));
        check("001", "12440305K12345678U", Err("GB 11714"));
        check("001", "12440305K12345677Y", Err("should be U"));
        check("003", "12440305K12345677U", Err("unknown holder type"));
    }

    #[test]
    fn pilot_codes_skip_only_the_check_characters() {
        assert!(HolderId::parse_pilot("001", "12440305K12345677Y").is_ok());
        assert!(HolderId::parse_pilot("001", "12440305K12345678U").is_ok());
        assert!(HolderId::parse_pilot("111", "110105194912310021").is_ok());
        assert!(HolderId::parse_pilot("001", "12440305K1234567IU").is_err(), "alphabet still holds");
        assert!(HolderId::parse_pilot("111", "110101190002290015").is_err(), "dates still hold");
        assert!(HolderId::parse_pilot("111", "11010519491231002").is_err(), "length still holds");
        assert!(HolderId::parse("001", "12440305K12345677Y").unwrap_err().is_check_failure());
        assert!(!HolderId::parse("001", "12440305K1234567IU").unwrap_err().is_check_failure());
    }

    #[test]
    fn residence_permits_follow_gb11643_with_their_own_areas() {
        let hk = complete_gb11643("81000019900101001").unwrap();
        check("550", &hk, Ok(&hk));
        check(
            "550",
            &complete_gb11643("83000019851231002").unwrap(),
            Ok(&complete_gb11643("83000019851231002").unwrap()),
        );
        check("111", &hk, Err("use holder type 550"));
        // Documents signed before type 550 existed keep loading.
        assert_eq!(HolderId::parse_pilot("111", &hk).unwrap().number(), hk);
        check("550", &complete_gb11643("44030519900101001").unwrap(), Err("810000 (Hong Kong)"));
        check("550", &complete_gb11643("81000020991231001").unwrap(), Err("future"));
        let wrong = format!("{}{}", &hk[..17], if hk.ends_with('0') { '1' } else { '0' });
        check("550", &wrong, Err("MOD 11-2"));
        assert!(HolderId::parse_pilot("550", &wrong).is_err(), "no pilot codes among residence permits");
    }

    #[test]
    fn permanent_residence_cards_of_2023_and_2017() {
        let n = complete_gb11643("91184019850615001").unwrap();
        check("553", &n, Ok(&n));
        check("553", &complete_gb11643("11184019850615001").unwrap(), Err("starts with 9"));
        check("553", &complete_gb11643("91184019851315001").unwrap(), Err("not a calendar date"));
        check("553", &format!("{}{}", &n[..17], if n.ends_with('1') { '2' } else { '1' }), Err("should be"));
        check("553", "usa110085061501", Ok("USA110085061501"));
        check("553", "US1110085061501", Err("3 letters"));
        check("553", "9118401985", Err("18"));
        assert!(contains_person_number(&format!("核验永居证{n}")));
    }

    #[test]
    fn travel_permits_are_keyed_by_their_lifetime_number() {
        // The renewal count on the card changes, the holder does not.
        check("516", "H1234567800", Ok("H12345678"));
        check("516", "h1234567803", Ok("H12345678"));
        check("516", "M12345678", Ok("M12345678"));
        check("516", "K1234567800", Err("H (Hong Kong) or M (Macao)"));
        check("516", "H123456780", Err("lifetime number"));
        check("511", "1234567801", Ok("12345678"));
        check("511", "12345678", Ok("12345678"));
        check("511", "A1234567", Err("before 2013"));
    }

    #[test]
    fn passports_are_keyed_by_state_and_number() {
        check("414", " usa:123456789 ", Ok("USA:123456789"));
        check("414", "D:C01X00T47", Ok("D:C01X00T47"));
        check("414", "CHN:EA1234567", Ok("CHN:EA1234567"));
        check("414", "CHN:E12345678", Ok("CHN:E12345678"));
        check("414", "CHN:G12345678", Ok("CHN:G12345678"));
        check("414", "CHN:K12345678", Ok("CHN:K12345678"));
        check("414", "CHN:MA1234567", Ok("CHN:MA1234567"));
        check("414", "CHN:E1234567", Err("9 characters"));
        check("414", "deu:C01X00T47", Ok("D:C01X00T47"));
        check("414", "123456789", Err("STATE:NUMBER"));
        check("414", "USA:1234567890", Err("1–9 letters and digits"));
        let p = HolderId::parse("414", "USA:123456789").unwrap();
        assert_eq!(p.masked(), "USA:******789");
        assert_eq!(HolderId::parse("414", "GBR:12345").unwrap().masked(), "GBR:****5");
    }

    #[test]
    fn other_organisation_codes() {
        let body = ['1', '2', '3', '4', '5', '6', '7', '8'];
        let code = format!("12345678{}", org_check_char(&body));
        check("002", &format!("12345678-{}", &code[8..]), Ok(&code));
        check("002", &format!("12345678{}", if code.ends_with('0') { '1' } else { '0' }), Err("GB 11714"));
        check("002", "1234567", Err("8 characters"));
        check("002", "1234-5678-9", Err("8 characters"));
        check("099", "deu:HRB 12345", Ok("DEU:HRB12345"));
        check("099", "D:HRB12345", Err("alpha-3"));
        assert_eq!(HolderId::parse("099", "DEU:HRB12345").unwrap().masked(), "DEU:HRB12345");
    }

    #[test]
    fn masks_hide_what_identifies_a_person() {
        let mask = |t: &str, n: &str| HolderId::parse(t, n).unwrap().masked();
        assert_eq!(mask("516", "H1234567800"), "H******78");
        assert_eq!(mask("511", "12345678"), "******78");
        assert_eq!(mask("553", "USA110085061501"), "USA********1501");
        let n = complete_gb11643("91184019850615001").unwrap();
        assert_eq!(mask("553", &n), format!("9118**********{}", &n[14..]));
        for t in HolderType::ALL {
            assert_eq!(HolderType::parse(t.code()), Ok(t));
        }
    }

    #[test]
    fn complete_uscc_round_trips() {
        assert_eq!(complete_uscc("12440305K1234567").as_deref(), Some("12440305K12345677U"));
        assert_eq!(complete_uscc("91110108MA0ABCD1").as_deref(), Some("91110108MA0ABCD1XL"));
    }

    #[test]
    fn debug_masks_citizen_numbers() {
        let h = HolderId::parse("111", "11010519491231002X").unwrap();
        assert_eq!(format!("{h:?}"), "HolderId(111:1101**********002X)");
    }
}
