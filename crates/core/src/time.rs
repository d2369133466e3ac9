//! Instants in UTC, stored as epoch milliseconds (DESIGN §9).

use std::fmt;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use crate::niche::NicheI64;

/// An instant in UTC with millisecond precision.
///
/// Every time tandem stores or compares is one of these; local time only
/// appears at the edges (parsing imports, business-hour arithmetic, report
/// week boundaries) through an explicit [`TimeZone`].
///
/// The milliseconds are kept shifted so that zero is never stored, which
/// makes `Option<Timestamp>` 8 bytes instead of 16 (millions of optional
/// times are held: stage entries per cycle, handoffs' responses, deals'
/// closes). The one instant it cannot hold is `i64::MAX` milliseconds, in
/// the year 292,278,994; [`Timestamp::from_millis`] takes it to the
/// millisecond before. Order, hash, `Debug` and serde are those of the
/// milliseconds.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(NicheI64);

/// A time string that no supported format accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid date/time {input:?}: expected ISO 8601 (2026-03-01T09:30:00Z), 'YYYY-MM-DD HH:MM:SS', 'YYYY-MM-DD' or a US export date (MM/DD/YYYY [HH:MM[:SS] [AM|PM]])")]
pub struct TimeError {
    input: String,
}

/// Milliseconds in one day.
pub const DAY_MS: i64 = 86_400_000;

impl Timestamp {
    /// The instant `ms` milliseconds after 1970-01-01T00:00:00Z.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(NicheI64::new(ms))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn millis(self) -> i64 {
        self.0.get()
    }

    /// Parses a time as written by people and CRM exports. Strings without an
    /// offset are local time in `tz`.
    ///
    /// Accepted: RFC 3339 / ISO 8601 with `Z` or an offset; `YYYY-MM-DD HH:MM[:SS[.fff]]`;
    /// `YYYY-MM-DDTHH:MM[:SS]`; `YYYY-MM-DD`; and the US style used by Salesforce
    /// and HubSpot reports, `MM/DD/YYYY [HH:MM[:SS]] [AM|PM]`.
    pub fn parse_in(input: &str, tz: &TimeZone) -> Result<Self, TimeError> {
        let s = input.trim();
        let err = || TimeError {
            input: input.to_string(),
        };
        if s.is_empty() {
            return Err(err());
        }
        if let Ok(ts) = s.parse::<jiff::Timestamp>() {
            return Ok(Timestamp::from_millis(ts.as_millisecond()));
        }
        let civil = parse_civil(s).ok_or_else(err)?;
        let ts = tz.to_timestamp(civil).map_err(|_| err())?;
        Ok(Timestamp::from_millis(ts.as_millisecond()))
    }

    /// [`Timestamp::parse_in`] with UTC for strings without an offset.
    pub fn parse(input: &str) -> Result<Self, TimeError> {
        Self::parse_in(input, &TimeZone::UTC)
    }

    /// This instant as a `jiff` timestamp.
    pub fn to_jiff(self) -> jiff::Timestamp {
        // Every i64 millisecond value tandem produces is within jiff's range
        // (years -9999..=9999); clamp rather than panic on absurd input.
        let ms = self.millis();
        jiff::Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        })
    }

    /// Whole and fractional days from `self` to `later`.
    pub fn days_until(self, later: Timestamp) -> f64 {
        (later.millis() - self.millis()) as f64 / DAY_MS as f64
    }

    /// `self` plus `days` whole days.
    pub fn plus_days(self, days: i64) -> Timestamp {
        Timestamp::from_millis(self.millis() + days * DAY_MS)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, e.g. `2026-03-01T09:30:00Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ts = self.to_jiff();
        if self.millis() % 1000 == 0 {
            write!(f, "{}", ts.strftime("%Y-%m-%dT%H:%M:%SZ"))
        } else {
            write!(f, "{}", ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"))
        }
    }
}

fn parse_civil(s: &str) -> Option<DateTime> {
    if let Ok(dt) = s.parse::<DateTime>() {
        return Some(dt);
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return Some(d.to_datetime(jiff::civil::Time::midnight()));
    }
    // "YYYY-MM-DD HH:MM[:SS]" parses above (jiff accepts a space separator);
    // what remains are US-style export dates.
    for fmt in [
        "%m/%d/%Y %I:%M:%S %p",
        "%m/%d/%Y %I:%M %p",
        "%m/%d/%Y %H:%M:%S",
        "%m/%d/%Y %H:%M",
    ] {
        if let Ok(dt) = DateTime::strptime(fmt, s) {
            return Some(dt);
        }
    }
    if let Ok(d) = jiff::civil::Date::strptime("%m/%d/%Y", s) {
        return Some(d.to_datetime(jiff::civil::Time::midnight()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_supported_formats_to_the_same_instant() {
        let expected = Timestamp::from_millis(1_772_357_400_000); // 2026-03-01T09:30:00Z
        for s in [
            "2026-03-01T09:30:00Z",
            "2026-03-01T10:30:00+01:00",
            "2026-03-01 09:30:00",
            "2026-03-01T09:30",
            "03/01/2026 09:30 AM",
            "03/01/2026 09:30:00",
        ] {
            assert_eq!(Timestamp::parse(s), Ok(expected), "{s}");
        }
        assert_eq!(
            Timestamp::parse("2026-03-01").map(Timestamp::millis),
            Ok(1_772_323_200_000)
        );
    }

    #[test]
    fn naive_times_are_read_in_the_given_zone() {
        let ny = jiff::tz::TimeZone::get("America/New_York").unwrap();
        // 09:30 EST is 14:30 UTC.
        let t = Timestamp::parse_in("2026-03-01 09:30:00", &ny).unwrap();
        assert_eq!(t.to_string(), "2026-03-01T14:30:00Z");
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "yesterday", "2026-13-01", "31/12/2026"] {
            assert!(Timestamp::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn display_round_trips() {
        let t = Timestamp::from_millis(1_772_357_400_123);
        assert_eq!(t.to_string(), "2026-03-01T09:30:00.123Z");
        assert_eq!(Timestamp::parse(&t.to_string()), Ok(t));
    }

    #[test]
    fn millis_print_and_serialize_as_the_number_and_an_option_is_8_bytes() {
        // Order and the range's ends are `NicheI64`'s (niche.rs).
        for m in [i64::MIN, -1, 0, 1_772_357_400_000] {
            let t = Timestamp::from_millis(m);
            assert_eq!(t.millis(), m);
            assert_eq!(format!("{t:?}"), format!("Timestamp({m})"));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, m.to_string());
            assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        }
        assert!(Timestamp::from_millis(-1) < Timestamp::from_millis(0));
        assert_eq!(std::mem::size_of::<Option<Timestamp>>(), 8);
        assert_eq!(Timestamp::default().millis(), 0);
    }
}
