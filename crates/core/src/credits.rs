//! Usage credits that renew: a refill rule, its UTC calendar boundaries, and when a
//! balance is due to be set back to the rule's amount.
//!
//! A refill is not a timer: the balance is set back at the first use after a
//! boundary, in the same conditional write that takes a credit (the store's `CONSUME`
//! statement runs the SQL form of [`Refill::due`]: change both together). The
//! balance was last set at `credits_set_at` (by the platform, or by a refill, which
//! sets it to the boundary it refilled for); it is due when that is before the
//! latest boundary.

use std::fmt;
use std::str::FromStr;

use time::{Date, Month, OffsetDateTime, Time};

use crate::rate::RateLimit;
use crate::time::Timestamp;

/// The most usage credits a key or a user can hold (fits every database's integer).
pub const MAX_REMAINING: u64 = 1_000_000_000_000_000;

/// How often credits are set back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interval {
    /// At the start of every UTC minute.
    Minute,
    /// At the start of every UTC hour.
    Hour,
    /// At 00:00 UTC.
    Day,
    /// At 00:00 UTC on Mondays (ISO weeks).
    Week,
    /// At 00:00 UTC on the 1st, or on [`Refill::day_of_month`].
    Month,
}

impl Interval {
    pub const ALL: [Self; 5] = [Self::Minute, Self::Hour, Self::Day, Self::Week, Self::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    /// The length of a fixed interval in milliseconds, and the offset of its
    /// boundaries from the epoch (weeks start on Mondays; 1970-01-01 was a Thursday).
    fn fixed(self) -> Option<(i64, i64)> {
        const MINUTE: i64 = 60_000;
        const DAY: i64 = 24 * 60 * MINUTE;
        match self {
            Self::Minute => Some((MINUTE, 0)),
            Self::Hour => Some((60 * MINUTE, 0)),
            Self::Day => Some((DAY, 0)),
            Self::Week => Some((7 * DAY, 4 * DAY)),
            Self::Month => None,
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .ok_or_else(|| {
                format!("interval must be one of minute, hour, day, week, month (got {s:?})")
            })
    }
}

/// Credits set back to `amount` at every boundary of `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Refill {
    amount: u64,
    interval: Interval,
    day_of_month: Option<u8>,
}

impl Refill {
    /// `amount` 1 to [`MAX_REMAINING`]; `day_of_month` (1 to 31) only for a monthly
    /// refill: in a shorter month it falls on the month's last day.
    pub fn new(amount: u64, interval: Interval, day_of_month: Option<u8>) -> Result<Self, String> {
        if !(1..=MAX_REMAINING).contains(&amount) {
            return Err(format!("amount must be between 1 and {MAX_REMAINING}"));
        }
        match (interval, day_of_month) {
            (Interval::Month, Some(day)) if !(1..=31).contains(&day) => {
                return Err("day_of_month must be between 1 and 31".into());
            }
            (Interval::Month, _) | (_, None) => {}
            (_, Some(_)) => return Err("day_of_month is only for a monthly refill".into()),
        }
        Ok(Self {
            amount,
            interval,
            // The 1st is the default: one spelling for one rule.
            day_of_month: day_of_month.filter(|&day| day != 1),
        })
    }

    pub fn amount(self) -> u64 {
        self.amount
    }

    pub fn interval(self) -> Interval {
        self.interval
    }

    /// The day of a monthly refill, when not the 1st.
    pub fn day_of_month(self) -> Option<u8> {
        self.day_of_month
    }

    /// The latest boundary at or before `now`.
    pub fn period_start(self, now: Timestamp) -> Timestamp {
        if let Some((length, offset)) = self.interval.fixed() {
            let ms = now.as_millis();
            let start = (ms - offset).div_euclid(length) * length + offset;
            return Timestamp::from_millis(start.max(0)).expect("not after now");
        }
        let date = now.to_datetime().date();
        let this = self.boundary_in(date.year(), date.month());
        if this.is_some_and(|at| at <= now) {
            return this.expect("checked");
        }
        let (year, month) = previous(date.year(), date.month());
        self.boundary_in(year, month)
            .filter(|at| *at <= now)
            .unwrap_or(Timestamp::from_millis(0).expect("the epoch"))
    }

    /// The earliest boundary after `at` (the end of the range when there is none).
    pub fn next_after(self, at: Timestamp) -> Timestamp {
        if let Some((length, _)) = self.interval.fixed() {
            return self.period_start(at).plus_millis(length);
        }
        let date = at.to_datetime().date();
        let this = self.boundary_in(date.year(), date.month());
        if let Some(this) = this.filter(|this| *this > at) {
            return this;
        }
        let (year, month) = next(date.year(), date.month());
        self.boundary_in(year, month)
            .unwrap_or(at.plus_millis(i64::MAX))
    }

    /// Whether a balance last set at `set_at` is to be set back at `now`: a boundary
    /// passed since. A balance never set (`None`) is due.
    pub fn due(self, set_at: Option<Timestamp>, now: Timestamp) -> bool {
        set_at.is_none_or(|set_at| set_at < self.period_start(now))
    }

    /// A monthly boundary: `day_of_month` (or the 1st) of `year`-`month` at 00:00 UTC,
    /// on the month's last day when it has fewer days.
    fn boundary_in(self, year: i32, month: Month) -> Option<Timestamp> {
        let day = self.day_of_month.unwrap_or(1).min(month.length(year));
        let date = Date::from_calendar_date(year, month, day).ok()?;
        Timestamp::from_datetime(OffsetDateTime::new_utc(date, Time::MIDNIGHT)).ok()
    }
}

fn previous(year: i32, month: Month) -> (i32, Month) {
    match month {
        Month::January => (year - 1, Month::December),
        other => (year, other.previous()),
    }
}

fn next(year: i32, month: Month) -> (i32, Month) {
    match month {
        Month::December => (year + 1, Month::January),
        other => (year, other.next()),
    }
}

/// `AMOUNT/INTERVAL`, with `@DAY` for a month not renewed on the 1st: `1000/month@15`.
impl fmt::Display for Refill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.amount, self.interval)?;
        if let Some(day) = self.day_of_month {
            write!(f, "@{day}")?;
        }
        Ok(())
    }
}

impl FromStr for Refill {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let grant: CreditGrant = s.parse()?;
        grant
            .refill
            .ok_or_else(|| format!("expected AMOUNT/INTERVAL such as 1000/month (got {s:?})"))
    }
}

/// Credits as a deployment's default for new keys: `remaining`, set back to that
/// amount at every boundary when `refill` is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditGrant {
    pub remaining: u64,
    pub refill: Option<Refill>,
}

/// `1000` (once), `1000/day` (renewed daily), `1000/month@15` (on the 15th).
impl FromStr for CreditGrant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = || format!("expected AMOUNT or AMOUNT/INTERVAL such as 1000/month (got {s:?})");
        let (amount, rule) = match s.split_once('/') {
            Some((amount, rule)) => (amount, Some(rule)),
            None => (s, None),
        };
        let remaining: u64 = amount.trim().parse().map_err(|_| usage())?;
        if !(1..=MAX_REMAINING).contains(&remaining) {
            return Err(format!("the amount must be between 1 and {MAX_REMAINING}"));
        }
        let Some(rule) = rule else {
            return Ok(Self {
                remaining,
                refill: None,
            });
        };
        let (interval, day) = match rule.split_once('@') {
            Some((interval, day)) => {
                let day: u8 = day.trim().parse().map_err(|_| usage())?;
                (interval, Some(day))
            }
            None => (rule, None),
        };
        let refill = Refill::new(remaining, interval.trim().parse()?, day)?;
        Ok(Self {
            remaining,
            refill: Some(refill),
        })
    }
}

/// Limits the platform sets on a user, shared by all the user's keys: one rate limit
/// pool and one credit balance, each checked after the key's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct UserLimits {
    pub rate_limit: Option<RateLimit>,
    pub credits: Option<CreditGrant>,
}

impl CreditGrant {
    /// A balance of `remaining` (default: the refill's amount), renewed by `refill`.
    pub fn new(remaining: Option<u64>, refill: Option<Refill>) -> Result<Self, String> {
        let remaining = remaining
            .or(refill.map(Refill::amount))
            .ok_or("needs remaining, refill or both")?;
        if remaining > MAX_REMAINING {
            return Err(format!("remaining must be at most {MAX_REMAINING}"));
        }
        Ok(Self { remaining, refill })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    fn rule(interval: Interval, day: Option<u8>) -> Refill {
        Refill::new(5, interval, day).unwrap()
    }

    #[test]
    fn fixed_intervals_start_on_utc_calendar_boundaries() {
        let now = at("2026-12-09T13:45:30.250Z"); // a Wednesday
        let cases = [
            (
                Interval::Minute,
                "2026-12-09T13:45:00Z",
                "2026-12-09T13:46:00Z",
            ),
            (
                Interval::Hour,
                "2026-12-09T13:00:00Z",
                "2026-12-09T14:00:00Z",
            ),
            (
                Interval::Day,
                "2026-12-09T00:00:00Z",
                "2026-12-10T00:00:00Z",
            ),
            (
                Interval::Week,
                "2026-12-07T00:00:00Z",
                "2026-12-14T00:00:00Z",
            ),
            (
                Interval::Month,
                "2026-12-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
        ];
        for (interval, start, next) in cases {
            let refill = rule(interval, None);
            assert_eq!(refill.period_start(now), at(start), "{interval}");
            assert_eq!(refill.next_after(now), at(next), "{interval}");
        }
    }

    #[test]
    fn a_boundary_belongs_to_the_period_it_starts() {
        let boundary = at("2027-03-01T00:00:00Z"); // a Monday and a 1st
        for interval in Interval::ALL {
            let refill = rule(interval, None);
            assert_eq!(refill.period_start(boundary), boundary, "{interval}");
            assert!(refill.next_after(boundary) > boundary, "{interval}");
            assert!(refill.due(Some(boundary.plus_millis(-1)), boundary));
            assert!(!refill.due(Some(boundary), boundary));
        }
    }

    #[test]
    fn a_monthly_day_falls_on_the_last_day_of_shorter_months() {
        let refill = rule(Interval::Month, Some(31));
        assert_eq!(
            refill.next_after(at("2027-02-01T00:00:00Z")),
            at("2027-02-28T00:00:00Z")
        );
        assert_eq!(
            refill.next_after(at("2028-02-01T00:00:00Z")),
            at("2028-02-29T00:00:00Z"),
            "a leap year"
        );
        assert_eq!(
            refill.period_start(at("2027-03-15T00:00:00Z")),
            at("2027-02-28T00:00:00Z")
        );
        let fifteenth = rule(Interval::Month, Some(15));
        assert_eq!(
            fifteenth.period_start(at("2027-01-10T00:00:00Z")),
            at("2026-12-15T00:00:00Z"),
            "before the day: the previous month's, across a year"
        );
        assert_eq!(
            fifteenth.next_after(at("2026-12-15T00:00:00Z")),
            at("2027-01-15T00:00:00Z")
        );
    }

    #[test]
    fn a_balance_is_due_once_per_boundary() {
        let refill = rule(Interval::Minute, None);
        let now = at("2026-12-07T10:00:30Z");
        assert!(refill.due(None, now), "never set");
        assert!(refill.due(Some(at("2026-12-07T09:59:59.999Z")), now));
        assert!(
            !refill.due(Some(at("2026-12-07T10:00:00Z")), now),
            "refilled for this minute"
        );
        assert!(
            !refill.due(Some(at("2026-12-07T10:00:10Z")), now),
            "set by the platform since"
        );
    }

    #[test]
    fn rules_refuse_what_cannot_be_meant() {
        assert!(Refill::new(0, Interval::Day, None).is_err());
        assert!(Refill::new(MAX_REMAINING + 1, Interval::Day, None).is_err());
        assert!(Refill::new(1, Interval::Day, Some(3)).is_err());
        assert!(Refill::new(1, Interval::Month, Some(0)).is_err());
        assert!(Refill::new(1, Interval::Month, Some(32)).is_err());
        assert_eq!(
            Refill::new(1, Interval::Month, Some(1)).unwrap(),
            Refill::new(1, Interval::Month, None).unwrap(),
            "the 1st is the default"
        );
    }

    #[test]
    fn grants_read_and_write_as_text() {
        let grant: CreditGrant = "1000".parse().unwrap();
        assert_eq!(grant.remaining, 1000);
        assert_eq!(grant.refill, None);
        let grant: CreditGrant = "1000/month@15".parse().unwrap();
        assert_eq!(grant.refill.unwrap().to_string(), "1000/month@15");
        assert_eq!(
            "5/minute".parse::<Refill>().unwrap().to_string(),
            "5/minute"
        );
        for bad in [
            "",
            "x",
            "0",
            "10/fortnight",
            "10/day@3",
            "10/month@",
            "-1/day",
            "5",
        ] {
            assert!(bad.parse::<Refill>().is_err(), "{bad:?}");
        }
        assert!("0/day".parse::<CreditGrant>().is_err());
    }
}
