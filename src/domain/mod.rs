//! Domain types: parsed newtypes that cannot hold an invalid value. No I/O, no clocks except where
//! a rule is about "now" (a birth date in the future), no HTTP, no storage.

pub mod annotation;
pub mod catalogue;
pub mod disclosure;
pub mod holder;
pub mod licence;
pub mod licence_id;
pub mod presentation;
pub mod status;
pub mod text;

pub use catalogue::{Catalogue, FieldError, LicenceType, ServiceItem, Sharing};
pub use disclosure::{Disclosure, DisclosureKey};
pub use holder::{HolderError, HolderId, HolderType, Uscc};
pub use licence::{CoHolder, Licence, LicenceError, Presented, ShownHolder, StatusRef};
pub use licence_id::{LicenceId, LicenceIdError, TypeCode};
pub use status::{Status, VersionKind};
pub use text::TextError;

use time::{Date, Month};

/// Parses `YYYY-MM-DD` (four-digit year, ASCII digits only) into a calendar date.
pub fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    if !b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit()) {
        return None;
    }
    let y: i32 = s[0..4].parse().ok()?;
    let m: u8 = s[5..7].parse().ok()?;
    let d: u8 = s[8..10].parse().ok()?;
    Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()
}

/// First and last dates a licence's validity may name (`valid_from`, `valid_until`). The signed
/// document carries them as CWT NumericDates (RFC 8392), which licvault writes as unsigned
/// integers: 1970-01-01 00:00 CST is before the Unix epoch, so 1970-01-02 is the first whole day.
/// The last is far enough for any licence and keeps every time inside i64 seconds.
pub const FIRST_VALIDITY_DATE: Date = time::macros::date!(1970 - 01 - 02);
pub const LAST_VALIDITY_DATE: Date = time::macros::date!(2999 - 12 - 31);

/// Parses a validity date: `YYYY-MM-DD` within [`FIRST_VALIDITY_DATE`]..=[`LAST_VALIDITY_DATE`].
pub fn parse_validity_date(field: &str, s: &str) -> Result<Date, String> {
    let d = parse_date(s).ok_or_else(|| format!("{field} {s:?} is not a date written YYYY-MM-DD"))?;
    if d < FIRST_VALIDITY_DATE || d > LAST_VALIDITY_DATE {
        return Err(format!(
            "{field} {d} is outside the dates a licence can carry ({FIRST_VALIDITY_DATE} to {LAST_VALIDITY_DATE})"
        ));
    }
    Ok(d)
}

/// Licences are dated in China Standard Time (UTC+8): a licence "valid until 2030-06-30" is valid
/// through the end of that day in Beijing.
pub const CST_OFFSET_SECS: i64 = 8 * 3600;

/// Unix seconds at 00:00 CST of `d`.
pub fn start_of_day_cst(d: Date) -> i64 {
    d.midnight().assume_utc().unix_timestamp() - CST_OFFSET_SECS
}

/// The calendar date in CST of unix seconds `t`.
pub fn cst_date(t: i64) -> Date {
    time::OffsetDateTime::from_unix_timestamp(t + CST_OFFSET_SECS).map(|d| d.date()).unwrap_or(Date::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("2024-02-29"), Date::from_calendar_date(2024, Month::February, 29).ok());
        for bad in ["-999-01-01", "+999-01-01", "2023-02-29", "2024-1-01", "2024-01-1 ", "２０２４-01-01", "0000-00-00"]
        {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert!(parse_validity_date("valid_from", "1970-01-02").is_ok());
        assert!(parse_validity_date("valid_from", "2999-12-31").is_ok());
        let e = parse_validity_date("valid_from", "1969-12-31").unwrap_err();
        assert!(e.contains("valid_from 1969-12-31 is outside"), "{e}");
        assert!(parse_validity_date("valid_until", "3000-01-01").is_err());
        assert!(parse_validity_date("valid_from", "1970-01-01").is_err());
        assert!(start_of_day_cst(FIRST_VALIDITY_DATE) >= 0);
    }
}
