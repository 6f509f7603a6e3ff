//! Timestamps as the service stores them: milliseconds since the Unix epoch, UTC.
//!
//! One representation for both databases (an integer column) keeps the backends
//! identical and comparisons cheap; RFC 3339 is produced only at the edges.

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time with millisecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// A time that cannot be represented (before year 1 or after year 9999).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time is out of the supported range (years 1970-9999)")]
pub struct OutOfRange;

/// The latest representable time: 9999-12-31T23:59:59.999Z.
const MAX_MILLIS: i64 = 253_402_300_799_999;

impl Timestamp {
    /// From milliseconds since the epoch; refuses times before 1970 or after 9999.
    pub fn from_millis(millis: i64) -> Result<Self, OutOfRange> {
        if (0..=MAX_MILLIS).contains(&millis) {
            Ok(Self(millis))
        } else {
            Err(OutOfRange)
        }
    }

    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// Truncates to the millisecond.
    pub fn from_datetime(at: OffsetDateTime) -> Result<Self, OutOfRange> {
        let millis = at.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(millis)
            .map_err(|_| OutOfRange)
            .and_then(Self::from_millis)
    }

    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .expect("the range is checked on construction")
    }

    /// Parses RFC 3339 (any offset) and normalises to UTC milliseconds.
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimestampParseError> {
        let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| TimestampParseError)?;
        Self::from_datetime(at).map_err(|_| TimestampParseError)
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-28T03:04:12.345Z`.
    pub fn to_rfc3339(self) -> String {
        self.rfc3339(true)
    }

    /// RFC 3339 in UTC to the second, e.g. `2026-11-29T10:00:00Z`: for times that are
    /// whole by nature (usage history's buckets).
    pub fn to_rfc3339_seconds(self) -> String {
        self.rfc3339(false)
    }

    fn rfc3339(self, millis: bool) -> String {
        let at = self.to_datetime();
        let date_time = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
        );
        if millis {
            format!("{date_time}.{:03}Z", at.millisecond())
        } else {
            format!("{date_time}Z")
        }
    }

    /// This timestamp moved forward, saturating at the end of the range.
    pub fn plus_millis(self, millis: i64) -> Self {
        Self(self.0.saturating_add(millis).clamp(0, MAX_MILLIS))
    }

    /// This timestamp moved forward by `duration` (to the millisecond), saturating.
    pub fn plus(self, duration: std::time::Duration) -> Self {
        self.plus_millis(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
    }

    /// This timestamp moved back by `duration`, saturating at the start of the range.
    pub fn minus(self, duration: std::time::Duration) -> Self {
        self.plus_millis(-i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
    }
}

/// Text that is not an RFC 3339 time in the supported range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected an RFC 3339 time such as 2030-01-31T12:00:00Z")]
pub struct TimestampParseError;

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_utc_with_or_without_milliseconds() {
        let at = Timestamp::parse_rfc3339("2026-11-29T11:00:00.250+01:00").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-11-29T10:00:00.250Z");
        assert_eq!(at.to_rfc3339_seconds(), "2026-11-29T10:00:00Z");
    }

    #[test]
    fn formats_as_utc_with_milliseconds() {
        let t = Timestamp::from_millis(1_795_834_252_345).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-28T02:50:52.345Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()).unwrap(), t);
    }

    #[test]
    fn parsing_normalises_offsets_to_utc() {
        let t = Timestamp::parse_rfc3339("2030-01-01T02:00:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2030-01-01T00:00:00.000Z");
    }

    #[test]
    fn refuses_text_and_times_out_of_range() {
        assert!(Timestamp::parse_rfc3339("tomorrow").is_err());
        assert!(Timestamp::parse_rfc3339("1969-12-31T23:59:59Z").is_err());
        assert!(Timestamp::from_millis(-1).is_err());
        assert!(Timestamp::from_millis(MAX_MILLIS + 1).is_err());
        assert_eq!(
            Timestamp::from_millis(MAX_MILLIS).unwrap().to_rfc3339(),
            "9999-12-31T23:59:59.999Z"
        );
    }
}
