//! Holder numbers (一号申请): the 18-digit citizen ID number (GB 11643, holder type `111`) and the
//! 18-character unified social credit code (GB 32100, holder type `001`).
//!
//! Parse, don't validate: once you hold a [`HolderId`] or a [`Uscc`], every check rule of
//! DESIGN §2 has passed. Input is trimmed and upper-cased here, once, at the edge.

use std::fmt;

use time::{Date, Month, OffsetDateTime};

/// Why a holder number was refused. Each variant names the rule that failed so that a counter
/// clerk or an integrator can tell a typing error from a wrong holder type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HolderError {
    #[error(
        "unknown holder type code {0:?}: expected \"111\" (citizen ID number) or \"001\" (unified social credit code)"
    )]
    UnknownType(String),
    #[error("a {what} has 18 characters, this one has {len}")]
    Length { what: &'static str, len: usize },
    #[error("citizen ID number: the first 17 characters must be digits, found {0:?}")]
    CitizenNotDigits(char),
    #[error("citizen ID number: the last character must be a digit or X, found {0:?}")]
    CitizenBadCheckChar(char),
    #[error("citizen ID number: area code {0} is not a GB/T 2260 code (province part must be 11–82)")]
    CitizenArea(String),
    #[error("citizen ID number: birth date {0} is not a calendar date")]
    CitizenBirthDate(String),
    #[error("citizen ID number: birth date {0} is in the future")]
    CitizenBirthInFuture(String),
    #[error("citizen ID number: check character (ISO 7064 MOD 11-2) should be {expected}, found {found}")]
    CitizenCheck { expected: char, found: char },
    #[error("unified social credit code: character {ch:?} at position {pos} is not allowed (0-9 and A-Z without I, O, S, V, Z)")]
    UsccCharset { ch: char, pos: usize },
    #[error("unified social credit code: organisation code (positions 9–17) check (GB 11714) should be {expected}, found {found}")]
    UsccOrgCheck { expected: char, found: char },
    #[error("unified social credit code: check character (GB 32100 MOD 31) should be {expected}, found {found}")]
    UsccCheck { expected: char, found: char },
}

impl HolderError {
    /// True when only a check character is wrong: the one failure a pre-2015 pilot code may
    /// have, and the only one an administrator's override can excuse (DESIGN §2).
    pub fn is_check_failure(&self) -> bool {
        matches!(self, Self::CitizenCheck { .. } | Self::UsccCheck { .. } | Self::UsccOrgCheck { .. })
    }
}

/// Holder type codes of GB/T 36904 as used by the licence catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum HolderType {
    /// `111`: a natural person, identified by the citizen ID number.
    #[serde(rename = "111")]
    Citizen,
    /// `001`: an organisation, identified by the unified social credit code.
    #[serde(rename = "001")]
    Organisation,
}

impl HolderType {
    pub fn parse(code: &str) -> Result<Self, HolderError> {
        match code.trim() {
            "111" => Ok(Self::Citizen),
            "001" => Ok(Self::Organisation),
            other => Err(HolderError::UnknownType(other.to_string())),
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Citizen => "111",
            Self::Organisation => "001",
        }
    }
}

/// A holder number that has passed every rule of its type.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HolderId {
    kind: HolderType,
    number: String,
}

impl HolderId {
    /// Parses `number` as a holder of type `type_code` (`111` or `001`).
    pub fn parse(type_code: &str, number: &str) -> Result<Self, HolderError> {
        let kind = HolderType::parse(type_code)?;
        Self::parse_typed(kind, number)
    }

    pub fn parse_typed(kind: HolderType, number: &str) -> Result<Self, HolderError> {
        Self::parse_with(kind, number, true)
    }

    /// Like [`HolderId::parse`], but a wrong check character is tolerated: every other rule
    /// (length, alphabet, area, birth date) still holds. Only for numbers that an administrator
    /// has allowed as pre-2015 pilot codes, and for holders inside documents whose signature has
    /// verified (the issuer checked the override when it signed).
    pub fn parse_pilot(type_code: &str, number: &str) -> Result<Self, HolderError> {
        Self::parse_with(HolderType::parse(type_code)?, number, false)
    }

    fn parse_with(kind: HolderType, number: &str, checks: bool) -> Result<Self, HolderError> {
        let number = normalise(number);
        let result = match kind {
            HolderType::Citizen => {
                check_citizen(&number, crate::domain::cst_date(OffsetDateTime::now_utc().unix_timestamp()))
            }
            HolderType::Organisation => check_uscc(&number),
        };
        match result {
            Ok(()) => Ok(Self { kind, number }),
            Err(e) if !checks && e.is_check_failure() => Ok(Self { kind, number }),
            Err(e) => Err(e),
        }
    }

    pub fn kind(&self) -> HolderType {
        self.kind
    }

    pub fn number(&self) -> &str {
        &self.number
    }

    /// The number with all but the first and last few characters hidden, for pages and logs
    /// that may be seen by people who are not the holder.
    pub fn masked(&self) -> String {
        match self.kind {
            HolderType::Organisation => self.number.clone(),
            HolderType::Citizen => format!("{}**********{}", &self.number[..4], &self.number[14..]),
        }
    }
}

impl fmt::Debug for HolderId {
    // Citizen ID numbers are personal data: keep them out of debug output and panics.
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

/// GB 11643: area (6) ‖ birth date (8) ‖ sequence (3) ‖ ISO 7064 MOD 11-2 check.
fn check_citizen(s: &str, today: Date) -> Result<(), HolderError> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 18 {
        return Err(HolderError::Length { what: "citizen ID number", len: chars.len() });
    }
    if let Some(&c) = chars[..17].iter().find(|c| !c.is_ascii_digit()) {
        return Err(HolderError::CitizenNotDigits(c));
    }
    let last = chars[17];
    if !(last.is_ascii_digit() || last == 'X') {
        return Err(HolderError::CitizenBadCheckChar(last));
    }
    let province: u32 = s[..2].parse().unwrap_or(0);
    if !(11..=82).contains(&province) {
        return Err(HolderError::CitizenArea(s[..6].to_string()));
    }
    let birth = &s[6..14];
    let date = parse_yyyymmdd(birth).ok_or_else(|| HolderError::CitizenBirthDate(birth.to_string()))?;
    if date > today {
        return Err(HolderError::CitizenBirthInFuture(birth.to_string()));
    }
    let sum: u32 = chars[..17].iter().zip(CITIZEN_WEIGHTS).map(|(c, w)| c.to_digit(10).unwrap_or(0) * w).sum();
    let expected = CITIZEN_CHECK[(sum % 11) as usize];
    if expected != last {
        return Err(HolderError::CitizenCheck { expected, found: last });
    }
    Ok(())
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
        return Err(HolderError::Length { what: "unified social credit code", len: chars.len() });
    }
    if let Some((pos, &ch)) = chars.iter().enumerate().find(|(_, c)| !USCC_ALPHABET.contains(**c)) {
        return Err(HolderError::UsccCharset { ch, pos: pos + 1 });
    }
    let org_expected = org_check_char(&chars[8..16]);
    if org_expected != chars[16] {
        return Err(HolderError::UsccOrgCheck { expected: org_expected, found: chars[16] });
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

/// Whether `text` contains a citizen ID number (18 characters that pass every GB 11643 rule):
/// free text that ends up in the log (a use reason, a case number) must not carry one in clear.
pub fn contains_citizen_number(text: &str) -> bool {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(17)).any(|i| {
        let w = &b[i..i + 18];
        w[..17].iter().all(u8::is_ascii_digit)
            && (w[17].is_ascii_digit() || w[17] == b'X' || w[17] == b'x')
            && (i == 0 || !b[i - 1].is_ascii_digit())
            && std::str::from_utf8(w).is_ok_and(|n| HolderId::parse("111", n).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citizen_numbers_in_text() {
        assert!(contains_citizen_number("核验44030519900101123X婚姻状况"));
        assert!(contains_citizen_number("11010519491231002x"));
        assert!(!contains_citizen_number("核验婚姻状况 SPJY-2026-0042"));
        // 18 digits that fail the check character, and a longer run of digits, are not numbers.
        assert!(!contains_citizen_number("440305199001011231"));
        assert!(!contains_citizen_number("9911010519491231002X"));
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
        check("002", "12440305K12345677U", Err("unknown holder type"));
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
