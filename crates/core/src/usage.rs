//! Usage history: verifications of a key counted per UTC hour, split into those that
//! answered VALID and those refused for a found key, and the ranges of hourly or
//! daily buckets they are read back in.
//!
//! Hours are the stored unit (the start of the hour, in milliseconds); days are sums
//! of 24 hours. A range is parsed once into [`UsageRange`]: aligned to whole buckets,
//! non-empty and at most [`MAX_BUCKETS`] long, so a reader can never be asked for an
//! unbounded answer.

use std::fmt;

use crate::time::Timestamp;

/// One hour in milliseconds: the stored bucket.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// The most buckets one answer holds: 31 days of hours.
pub const MAX_BUCKETS: i64 = 744;

/// Verifications of a found key: answered VALID, or refused (suspended, revoked,
/// expired, missing permissions, rate limited, out of credits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageCounts {
    pub valid: u64,
    pub refused: u64,
}

impl UsageCounts {
    /// One verification, valid or refused.
    pub fn one(valid: bool) -> Self {
        if valid {
            Self {
                valid: 1,
                refused: 0,
            }
        } else {
            Self {
                valid: 0,
                refused: 1,
            }
        }
    }

    pub fn add(&mut self, other: Self) {
        self.valid = self.valid.saturating_add(other.valid);
        self.refused = self.refused.saturating_add(other.refused);
    }
}

/// The counts of one hour (of one key, or summed over several).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourlyUsage {
    /// The start of the hour.
    pub hour: Timestamp,
    pub counts: UsageCounts,
}

/// The start of the UTC hour holding `at`.
pub fn hour_of(at: Timestamp) -> Timestamp {
    floor(at, HOUR_MS)
}

fn floor(at: Timestamp, step: i64) -> Timestamp {
    let ms = at.as_millis();
    Timestamp::from_millis(ms - ms.rem_euclid(step)).expect("flooring stays after 1970")
}

fn ceil(at: Timestamp, step: i64) -> Timestamp {
    let floored = floor(at, step);
    if floored == at {
        at
    } else {
        floored.plus_millis(step)
    }
}

/// The size of a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Granularity {
    #[default]
    Hour,
    Day,
}

impl Granularity {
    /// `hour` or `day`.
    pub fn parse(text: &str) -> Result<Self, UsageRangeError> {
        match text {
            "hour" => Ok(Self::Hour),
            "day" => Ok(Self::Day),
            _ => Err(UsageRangeError::Granularity),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    pub fn millis(self) -> i64 {
        match self {
            Self::Hour => HOUR_MS,
            Self::Day => DAY_MS,
        }
    }

    /// How far back a range reaches when only its end is given: 48 hours of hours,
    /// 30 days of days.
    fn default_span(self) -> i64 {
        match self {
            Self::Hour => 48 * HOUR_MS,
            Self::Day => 30 * DAY_MS,
        }
    }
}

/// Why a range was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UsageRangeError {
    #[error("granularity: expected hour or day")]
    Granularity,
    #[error("from must be before to")]
    Empty,
    #[error("the range holds {0} buckets; at most 744 are answered (31 days of hours)")]
    TooLong(i64),
}

/// Buckets of one size from `from` (the first bucket's start) to `to` (exclusive),
/// both on bucket boundaries (UTC hours or days), at least one and at most
/// [`MAX_BUCKETS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRange {
    from: Timestamp,
    to: Timestamp,
    granularity: Granularity,
}

impl UsageRange {
    /// The buckets that hold the times from `from` up to `to`: `from` is rounded
    /// down and `to` up to a bucket boundary. Without `to`, up to `now`; without
    /// `from`, [`Granularity`]'s default span before `to`.
    pub fn new(
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        granularity: Granularity,
        now: Timestamp,
    ) -> Result<Self, UsageRangeError> {
        let to = to.unwrap_or(now);
        let from = match from {
            Some(from) => from,
            None => Timestamp::from_millis(to.as_millis() - granularity.default_span())
                .unwrap_or(floor(to, granularity.millis())),
        };
        if from >= to {
            return Err(UsageRangeError::Empty);
        }
        let step = granularity.millis();
        let (from, to) = (floor(from, step), ceil(to, step));
        let buckets = (to.as_millis() - from.as_millis()) / step;
        if buckets > MAX_BUCKETS {
            return Err(UsageRangeError::TooLong(buckets));
        }
        Ok(Self {
            from,
            to,
            granularity,
        })
    }

    /// The first bucket's start.
    pub fn from(&self) -> Timestamp {
        self.from
    }

    /// The end of the last bucket (exclusive).
    pub fn to(&self) -> Timestamp {
        self.to
    }

    pub fn granularity(&self) -> Granularity {
        self.granularity
    }

    /// Every bucket of the range, oldest first, with the hours in `hours` summed into
    /// the bucket holding them (zeros where none); hours outside the range are ignored.
    pub fn buckets(&self, hours: &[HourlyUsage]) -> Vec<HourlyUsage> {
        let step = self.granularity.millis();
        let (from, to) = (self.from.as_millis(), self.to.as_millis());
        let mut buckets: Vec<HourlyUsage> = (from..to)
            .step_by(usize::try_from(step).expect("a bucket fits"))
            .map(|start| HourlyUsage {
                hour: Timestamp::from_millis(start).expect("within the range"),
                counts: UsageCounts::default(),
            })
            .collect();
        for usage in hours {
            let at = usage.hour.as_millis();
            if (from..to).contains(&at) {
                let index = usize::try_from((at - from) / step).expect("within the range");
                buckets[index].counts.add(usage.counts);
            }
        }
        buckets
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    fn hourly(text: &str, valid: u64, refused: u64) -> HourlyUsage {
        HourlyUsage {
            hour: at(text),
            counts: UsageCounts { valid, refused },
        }
    }

    #[test]
    fn a_range_is_widened_to_whole_buckets() {
        let now = at("2026-11-29T10:37:00Z");
        let range = UsageRange::new(
            Some(at("2026-11-29T08:15:00Z")),
            None,
            Granularity::Hour,
            now,
        )
        .unwrap();
        assert_eq!(range.from(), at("2026-11-29T08:00:00Z"));
        assert_eq!(range.to(), at("2026-11-29T11:00:00Z"));
        let days = UsageRange::new(None, None, Granularity::Day, now).unwrap();
        assert_eq!(days.from(), at("2026-10-30T00:00:00Z"));
        assert_eq!(days.to(), at("2026-11-30T00:00:00Z"));
    }

    #[test]
    fn an_empty_or_overlong_range_is_refused() {
        let now = at("2026-11-29T10:00:00Z");
        let empty = UsageRange::new(Some(now), Some(now), Granularity::Hour, now);
        assert_eq!(empty, Err(UsageRangeError::Empty));
        let long = UsageRange::new(
            Some(at("2026-10-01T00:00:00Z")),
            Some(now),
            Granularity::Hour,
            now,
        );
        assert!(matches!(long, Err(UsageRangeError::TooLong(_))));
        let exact = UsageRange::new(
            Some(at("2026-10-29T10:00:00Z")),
            Some(at("2026-11-29T10:00:00Z")),
            Granularity::Hour,
            now,
        );
        assert!(exact.is_ok(), "744 hours are answered");
        assert_eq!(
            Granularity::parse("week"),
            Err(UsageRangeError::Granularity)
        );
    }

    #[test]
    fn buckets_are_dense_and_days_sum_their_hours() {
        let range = UsageRange::new(
            Some(at("2026-11-28T00:00:00Z")),
            Some(at("2026-11-30T00:00:00Z")),
            Granularity::Day,
            at("2026-11-30T00:00:00Z"),
        )
        .unwrap();
        let buckets = range.buckets(&[
            hourly("2026-11-29T01:00:00Z", 2, 1),
            hourly("2026-11-29T23:00:00Z", 3, 0),
            hourly("2026-11-30T00:00:00Z", 99, 99),
        ]);
        assert_eq!(
            buckets,
            [
                hourly("2026-11-28T00:00:00Z", 0, 0),
                hourly("2026-11-29T00:00:00Z", 5, 1),
            ]
        );
    }
}
