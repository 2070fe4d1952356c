//! Domain types: parsed newtypes that cannot hold an invalid value. No I/O, no clocks except where
//! a rule is about "now" (a birth date in the future), no HTTP, no storage.

pub mod catalogue;
pub mod holder;
pub mod licence;
pub mod licence_id;
pub mod status;

pub use catalogue::{Catalogue, FieldError, LicenceType, ServiceItem, Sharing};
pub use holder::{HolderError, HolderId, HolderType, Uscc};
pub use licence::{Licence, LicenceError};
pub use licence_id::{LicenceId, LicenceIdError, TypeCode};
pub use status::Status;

use time::{Date, Month};

/// Parses `YYYY-MM-DD` into a calendar date.
pub fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i32 = s[0..4].parse().ok()?;
    let m: u8 = s[5..7].parse().ok()?;
    let d: u8 = s[8..10].parse().ok()?;
    Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()
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
